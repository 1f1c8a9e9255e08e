package store

import (
	"context"
	"errors"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// maxBatch bounds one transaction so a burst cannot build an unbounded
// commit; it is also the queue depth writers can fill without blocking.
const maxBatch = 1024

// writeReq is one write waiting for the committer. fn may run more than
// once (the batch is re-run without a failing request), so it must derive
// all its results from the tx and overwrite them on every run.
type writeReq struct {
	fn   func(*bolt.Tx) error
	wake bool       // signal Notify after the commit
	done chan error // buffered 1: the committer never blocks on a caller that gave up
}

// update hands fn to the committer and waits for the outcome of the commit
// that holds it.
//
// Durability rule of the outbox: a write is acknowledged (update returns
// nil) only after the bbolt transaction containing it has committed, and a
// bbolt commit returns only after fsync of the data and meta pages (NoSync
// is never set). Concurrent writers share that fsync — group commit — rather
// than skip it.
//
// If ctx ends first, update returns ctx.Err() at once, but the request is
// already queued and may still commit: callers must treat that outcome as
// unknown (for Append, a retry with the same audit id is deduplicated).
func (db *DB) update(ctx context.Context, wake bool, fn func(*bolt.Tx) error) error {
	if db.ro {
		return ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &writeReq{fn: fn, wake: wake, done: make(chan error, 1)}
	db.mu.RLock()
	if db.closed {
		db.mu.RUnlock()
		return ErrClosed
	}
	select {
	case db.reqs <- r:
	case <-ctx.Done():
		db.mu.RUnlock()
		return ctx.Err()
	}
	db.mu.RUnlock()
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitLoop is the single writer. It takes whatever requests are queued
// right now (no timer: an idle store commits a lone request immediately,
// a busy one accumulates the next batch during the current fsync) and
// commits them in one transaction.
func (db *DB) commitLoop() {
	defer db.committer.Done()
	batch := make([]*writeReq, 0, maxBatch)
	for r := range db.reqs {
		batch = append(batch[:0], r)
	drain:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-db.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		db.commit(batch)
		clear(batch) // drop references to finished requests
	}
}

// batchErr marks which request failed so commit can tell a request's own
// error from a failure of the transaction itself.
type batchErr struct {
	i   int
	err error
}

func (e *batchErr) Error() string { return e.err.Error() }

// commit applies batch in one transaction. A request whose fn fails gets
// its error and the transaction is rolled back and re-run without it, so
// one bad request never costs the others their write.
func (db *DB) commit(batch []*writeReq) {
	for len(batch) > 0 {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			for i, r := range batch {
				if err := r.fn(tx); err != nil {
					return &batchErr{i: i, err: err}
				}
			}
			return nil
		})
		var be *batchErr
		if errors.As(err, &be) {
			batch[be.i].done <- be.err
			batch = append(batch[:be.i:be.i], batch[be.i+1:]...)
			continue
		}
		// Signal before replying, so a caller that sees its write
		// acknowledged can rely on the wake-up being there.
		if err == nil && slices.ContainsFunc(batch, func(r *writeReq) bool { return r.wake }) {
			select {
			case db.notify <- struct{}{}:
			default:
			}
		}
		for _, r := range batch {
			r.done <- err
		}
		return
	}
}

// Notify returns a channel that receives (coalesced, buffer 1, never
// blocking the committer) after every commit that appended or requeued a
// message, so the worker can sleep instead of polling. It is meant for a
// single consumer.
func (db *DB) Notify() <-chan struct{} { return db.notify }
