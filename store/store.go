// Package store is the agent's durable state: the outbox of received
// webhooks, the TheHive → ThreatQ links, the latest case states and the
// reconciler's checkpoints. It is the only package that speaks to bbolt.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	// ErrNotFound is returned when a message id is not in the outbox.
	ErrNotFound = errors.New("store: not found")
	// ErrLocked is returned (wrapped, with the holder's pid) by Open when
	// another process holds the database.
	ErrLocked = errors.New("database is locked by another process")
	// ErrReadOnly is returned by every write on a handle opened with
	// Options.ReadOnly.
	ErrReadOnly = errors.New("store: database is open read-only")
	// ErrClosed is returned by writes after Close.
	ErrClosed = errors.New("store: database is closed")
	// ErrNotPending is returned by MarkDone, MarkRetry and MarkDead when the
	// message has left the pending state.
	ErrNotPending = errors.New("store: message is not pending")
)

var (
	outboxBucket      = []byte("outbox")      // id → JSON Message
	pendingBucket     = []byte("pending")     // id → next attempt (8 bytes unix ns, 0 = now) + root id
	deadBucket        = []byte("dead")        // id → empty
	doneBucket        = []byte("done")        // id → done at (8 bytes unix ns) + audit id, so Purge decodes nothing
	auditIDsBucket    = []byte("audit_ids")   // audit id → id
	linksBucket       = []byte("links")       // key → JSON Link
	casesBucket       = []byte("cases")       // case id → modified (8 bytes) + case JSON
	checkpointsBucket = []byte("checkpoints") // name → opaque bytes

	allBuckets = [][]byte{
		outboxBucket, pendingBucket, deadBucket, doneBucket,
		auditIDsBucket, linksBucket, casesBucket, checkpointsBucket,
	}
)

// Options configures Open.
type Options struct {
	Timeout time.Duration // how long to wait for the file lock; default 1s
	// ReadOnly takes a shared lock; every write returns ErrReadOnly. The
	// lock is flock(2), so a read-only open still fails with ErrLocked
	// while a read-write handle (the running agent) holds the file.
	ReadOnly bool
	Now      func() time.Time // injectable clock; default time.Now
}

// DB is an open store. Its methods are safe for concurrent use.
type DB struct {
	bolt *bolt.DB
	path string
	ro   bool
	now  func() time.Time

	// mu guards closed and the sends on reqs, so Close can close reqs
	// without racing a writer that is about to send.
	mu        sync.RWMutex
	closed    bool
	reqs      chan *writeReq
	committer sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	notify chan struct{}
}

// Open opens (creating it if needed, mode 0600) the database at path.
// If another process holds it, Open gives up after opts.Timeout with an
// error wrapping ErrLocked that names the holder's pid.
func Open(path string, opts Options) (*DB, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:  opts.Timeout,
		ReadOnly: opts.ReadOnly,
		// The freelist is rebuilt by a scan at open instead of being
		// written on every commit: fewer pages per fsync. Durability of
		// the data itself is unchanged (NoSync stays false).
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("store: open %s: %w (%s)", path, ErrLocked, holder(path))
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db := &DB{
		bolt:   bdb,
		path:   path,
		ro:     opts.ReadOnly,
		now:    opts.Now,
		notify: make(chan struct{}, 1),
	}
	if opts.ReadOnly {
		err = bdb.View(func(tx *bolt.Tx) error {
			for _, name := range allBuckets {
				if tx.Bucket(name) == nil {
					return fmt.Errorf("bucket %q missing: the database was never opened read-write", name)
				}
			}
			return nil
		})
	} else {
		err = bdb.Update(func(tx *bolt.Tx) error {
			for _, name := range allBuckets {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return fmt.Errorf("create bucket %q: %w", name, err)
				}
			}
			return nil
		})
		if err == nil {
			err = writePID(pidPath(path))
		}
	}
	if err != nil {
		_ = bdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if !opts.ReadOnly {
		db.reqs = make(chan *writeReq, maxBatch)
		db.committer.Add(1)
		go db.commitLoop()
	}
	return db, nil
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Close lets every write already handed to the committer commit and reply,
// then closes the database. Writes that arrive after Close return ErrClosed.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		if !db.ro {
			db.mu.Lock()
			db.closed = true
			close(db.reqs)
			db.mu.Unlock()
			db.committer.Wait()
		}
		if err := db.bolt.Close(); err != nil {
			db.closeErr = fmt.Errorf("store: close %s: %w", db.path, err)
		}
		if !db.ro {
			// Only after the lock is gone: a stale file would otherwise
			// name us while a successor already holds the database.
			_ = os.Remove(pidPath(db.path))
		}
	})
	return db.closeErr
}

func pidPath(path string) string { return path + ".pid" }

// writePID records the lock holder so a second instance can name it. Written
// via rename so a reader never sees a half-written number.
func writePID(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return nil
}

func holder(path string) string {
	b, err := os.ReadFile(pidPath(path))
	if err != nil {
		return "pid unknown"
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return "pid unknown"
	}
	return "pid " + strconv.Itoa(pid)
}

func itob(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func btoi(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// timeToNanos maps the zero time to 0 so "due now" needs no special case.
func timeToNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func nanosToTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
