package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// State is where a message is in its life: pending → done | dead.
type State string

const (
	StatePending State = "pending"
	StateDone    State = "done"
	StateDead    State = "dead"
)

// historyCap bounds Message.History so a message retried for weeks does
// not grow without end.
const historyCap = 20

// Message is one stored webhook and its delivery record.
type Message struct {
	ID            uint64          `json:"id"`
	ReceivedAt    time.Time       `json:"received_at"`
	AuditID       string          `json:"audit_id,omitempty"`
	Action        string          `json:"action"`
	ObjectType    string          `json:"object_type"`
	ObjectID      string          `json:"object_id"`
	RootID        string          `json:"root_id"`
	Body          json.RawMessage `json:"body"` // the webhook as received (valid JSON; stored compacted)
	State         State           `json:"state"`
	Attempts      int             `json:"attempts"`
	LastError     string          `json:"last_error,omitempty"`
	NextAttemptAt time.Time       `json:"next_attempt_at,omitempty,omitzero"`
	DoneAt        time.Time       `json:"done_at,omitempty,omitzero"`
	History       []Attempt       `json:"history,omitempty"` // the last 20 entries
	Results       []Result        `json:"results,omitempty"` // ThreatQ objects this message produced
}

// Attempt is one entry of a message's history.
type Attempt struct {
	At      time.Time `json:"at"`
	Outcome string    `json:"outcome"` // "done","retry","dead","coalesced","skipped","requeued"
	Error   string    `json:"error,omitempty"`
}

// Result is a ThreatQ object a message produced.
type Result struct {
	Kind   string `json:"kind"`   // "events","incident","indicators"
	ID     int    `json:"id"`     // ThreatQ id
	Action string `json:"action"` // "created","updated","unchanged"
}

// Stats summarises the outbox.
type Stats struct {
	Pending, Dead, Done int
	OldestPending       time.Time // ReceivedAt of the oldest pending message; zero if none
	DBBytes             int64
}

// idPrefix is how every encoded Message starts while its ID is still 0:
// Append encodes outside the committer and splices the real ID in, so the
// single writer does no JSON work for appends.
var idPrefix = []byte(`{"id":0,`)

// Append stores m as a new pending message and returns its id once the
// commit holding it is durable (see update). The store sets ID, State and,
// if zero, ReceivedAt, on m as well. If m.AuditID is already stored —
// including by a concurrent Append in the same commit — nothing is written
// and Append returns the existing id with dup true.
func (db *DB) Append(ctx context.Context, m *Message) (id uint64, dup bool, err error) {
	// One pass validates the body and compacts it; encode then splices it
	// in as it is.
	var compact bytes.Buffer
	compact.Grow(len(m.Body))
	if err := json.Compact(&compact, m.Body); err != nil {
		return 0, false, fmt.Errorf("store: append: body is not valid JSON")
	}
	// Encode a private copy: the committer must never read memory the
	// caller may touch again after a cancelled wait.
	cp := *m
	cp.Body = compact.Bytes()
	cp.ID = 0
	cp.State = StatePending
	if cp.ReceivedAt.IsZero() {
		cp.ReceivedAt = db.now().UTC()
	}
	enc, err := encode(&cp)
	if err != nil {
		return 0, false, fmt.Errorf("store: append: %w", err)
	}
	if !bytes.HasPrefix(enc, idPrefix) {
		return 0, false, fmt.Errorf("store: append: unexpected encoding %.20q", enc)
	}
	rest := enc[len(idPrefix)-1:] // from the comma on
	pend := pendingValue(cp.NextAttemptAt, cp.RootID)
	var auditKey []byte
	if cp.AuditID != "" {
		auditKey = []byte(cp.AuditID)
	}

	err = db.update(ctx, true, func(tx *bolt.Tx) error {
		if auditKey != nil {
			if v := tx.Bucket(auditIDsBucket).Get(auditKey); v != nil {
				id, dup = btoi(v), true
				return nil
			}
		}
		ob := tx.Bucket(outboxBucket)
		seq, err := ob.NextSequence()
		if err != nil {
			return err
		}
		id, dup = seq, false
		key := itob(seq)
		val := make([]byte, 0, len(`{"id":`)+20+len(rest))
		val = append(val, `{"id":`...)
		val = strconv.AppendUint(val, seq, 10)
		val = append(val, rest...)
		if err := ob.Put(key, val); err != nil {
			return err
		}
		if err := tx.Bucket(pendingBucket).Put(key, pend); err != nil {
			return err
		}
		if auditKey != nil {
			return tx.Bucket(auditIDsBucket).Put(auditKey, key)
		}
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("store: append: %w", err)
	}
	if !dup {
		m.ID, m.State, m.ReceivedAt = id, StatePending, cp.ReceivedAt
	}
	return id, dup, nil
}

func pendingValue(next time.Time, rootID string) []byte {
	v := make([]byte, 8+len(rootID))
	binary.BigEndian.PutUint64(v, uint64(timeToNanos(next)))
	copy(v[8:], rootID)
	return v
}

func parsePending(v []byte) (next int64, rootID string) {
	return int64(binary.BigEndian.Uint64(v)), string(v[8:])
}

// NextBatch returns up to limit (≤ 0: no limit) pending messages, in ID
// order, that may be delivered at now. Per root, messages are eligible from
// the root's oldest pending message on, and only while they are due: a root
// whose oldest message is backed off, or for which busy(rootID) reports
// true, contributes nothing, and a root stops at its first message not yet
// due, so a root's changes are never delivered out of order. busy may be nil.
func (db *DB) NextBatch(now time.Time, limit int, busy func(rootID string) bool) ([]Message, error) {
	var out []Message
	err := db.bolt.View(func(tx *bolt.Tx) error {
		ob := tx.Bucket(outboxBucket)
		open := make(map[string]bool) // root → still delivering
		nowNs := now.UnixNano()
		c := tx.Bucket(pendingBucket).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			next, root := parsePending(v)
			ok, seen := open[root]
			if !seen {
				ok = busy == nil || !busy(root)
			}
			if ok && next > nowNs {
				ok = false
			}
			open[root] = ok
			if !ok {
				continue
			}
			m, err := decode(ob, k)
			if err != nil {
				return err
			}
			out = append(out, m)
			if limit > 0 && len(out) >= limit {
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: next batch: %w", err)
	}
	return out, nil
}

// NextDue returns the earliest time at which a pending message that is
// held back only by its backoff becomes due (zero if none), so the worker
// can sleep until then. Per root only the first message not yet due counts.
func (db *DB) NextDue() (time.Time, error) {
	var min int64
	nowNs := db.now().UnixNano()
	err := db.bolt.View(func(tx *bolt.Tx) error {
		blocked := make(map[string]bool)
		c := tx.Bucket(pendingBucket).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			next, root := parsePending(v)
			if next <= nowNs || blocked[root] {
				continue
			}
			blocked[root] = true
			if min == 0 || next < min {
				min = next
			}
		}
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("store: next due: %w", err)
	}
	return nanosToTime(min), nil
}

// MarkDone records a finished delivery: outcome is "done" (the default),
// "coalesced" or "skipped"; only "done" counts as an attempt.
func (db *DB) MarkDone(ctx context.Context, id uint64, at time.Time, outcome string, results []Result) error {
	if outcome == "" {
		outcome = "done"
	}
	results = slices.Clone(results)
	err := db.modify(ctx, id, false, func(tx *bolt.Tx, m *Message) error {
		if m.State != StatePending {
			return ErrNotPending
		}
		if outcome == "done" {
			m.Attempts++
		}
		m.State, m.DoneAt, m.NextAttemptAt = StateDone, at.UTC(), time.Time{}
		m.Results = results
		addHistory(m, Attempt{At: at.UTC(), Outcome: outcome})
		key := itob(id)
		if err := tx.Bucket(pendingBucket).Delete(key); err != nil {
			return err
		}
		v := make([]byte, 8+len(m.AuditID))
		binary.BigEndian.PutUint64(v, uint64(timeToNanos(m.DoneAt)))
		copy(v[8:], m.AuditID)
		return tx.Bucket(doneBucket).Put(key, v)
	})
	if err != nil {
		return fmt.Errorf("store: mark done %d: %w", id, err)
	}
	return nil
}

// MarkRetry records a failed attempt; the message stays pending and is not
// due before next.
func (db *DB) MarkRetry(ctx context.Context, id uint64, at time.Time, errMsg string, next time.Time) error {
	err := db.modify(ctx, id, false, func(tx *bolt.Tx, m *Message) error {
		if m.State != StatePending {
			return ErrNotPending
		}
		m.Attempts++
		m.LastError, m.NextAttemptAt = errMsg, next.UTC()
		addHistory(m, Attempt{At: at.UTC(), Outcome: "retry", Error: errMsg})
		return tx.Bucket(pendingBucket).Put(itob(id), pendingValue(m.NextAttemptAt, m.RootID))
	})
	if err != nil {
		return fmt.Errorf("store: mark retry %d: %w", id, err)
	}
	return nil
}

// MarkDead records a permanent failure; the message waits in dead until
// requeued.
func (db *DB) MarkDead(ctx context.Context, id uint64, at time.Time, reason string) error {
	err := db.modify(ctx, id, false, func(tx *bolt.Tx, m *Message) error {
		if m.State != StatePending {
			return ErrNotPending
		}
		m.Attempts++
		m.State, m.LastError, m.NextAttemptAt = StateDead, reason, time.Time{}
		addHistory(m, Attempt{At: at.UTC(), Outcome: "dead", Error: reason})
		key := itob(id)
		if err := tx.Bucket(pendingBucket).Delete(key); err != nil {
			return err
		}
		return tx.Bucket(deadBucket).Put(key, []byte{})
	})
	if err != nil {
		return fmt.Errorf("store: mark dead %d: %w", id, err)
	}
	return nil
}

// Requeue makes message id pending and due now, whatever its state (a
// pending message loses its backoff). It returns ErrNotFound for an
// unknown id.
func (db *DB) Requeue(ctx context.Context, id uint64) error {
	at := db.now().UTC()
	err := db.modify(ctx, id, true, func(tx *bolt.Tx, m *Message) error {
		return requeue(tx, m, at)
	})
	if err != nil {
		return fmt.Errorf("store: requeue %d: %w", id, err)
	}
	return nil
}

// RequeueDead makes every dead message pending and due now and returns
// how many there were.
func (db *DB) RequeueDead(ctx context.Context) (int, error) {
	at := db.now().UTC()
	var n int
	err := db.update(ctx, true, func(tx *bolt.Tx) error {
		n = 0
		var ids [][]byte
		c := tx.Bucket(deadBucket).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			ids = append(ids, slices.Clone(k))
		}
		ob := tx.Bucket(outboxBucket)
		for _, k := range ids {
			m, err := decode(ob, k)
			if err != nil {
				return err
			}
			if err := requeue(tx, &m, at); err != nil {
				return err
			}
			if err := put(ob, &m); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: requeue dead: %w", err)
	}
	return n, nil
}

func requeue(tx *bolt.Tx, m *Message, at time.Time) error {
	key := itob(m.ID)
	switch m.State {
	case StateDead:
		if err := tx.Bucket(deadBucket).Delete(key); err != nil {
			return err
		}
	case StateDone:
		if err := tx.Bucket(doneBucket).Delete(key); err != nil {
			return err
		}
	}
	m.State, m.NextAttemptAt, m.DoneAt = StatePending, time.Time{}, time.Time{}
	addHistory(m, Attempt{At: at, Outcome: "requeued"})
	return tx.Bucket(pendingBucket).Put(key, pendingValue(time.Time{}, m.RootID))
}

// Purge deletes the done messages with DoneAt before doneBefore, and their
// audit ids (a later redelivery of such an audit is stored anew).
func (db *DB) Purge(ctx context.Context, doneBefore time.Time) (int, error) {
	total := 0
	for {
		n, err := db.purgeChunk(ctx, doneBefore)
		total += n
		if err != nil || n < purgeChunk {
			return total, err
		}
	}
}

// purgeChunk bounds one purge transaction: the committer is shared with
// intake, and one huge delete would hold every webhook's ack behind it.
const purgeChunk = 1000

func (db *DB) purgeChunk(ctx context.Context, doneBefore time.Time) (int, error) {
	limit := doneBefore.UnixNano()
	var n int
	err := db.update(ctx, false, func(tx *bolt.Tx) error {
		n = 0
		type victim struct{ key, audit []byte }
		var victims []victim
		c := tx.Bucket(doneBucket).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if int64(binary.BigEndian.Uint64(v)) < limit {
				victims = append(victims, victim{slices.Clone(k), slices.Clone(v[8:])})
				if len(victims) == purgeChunk {
					break
				}
			}
		}
		ob, done, audit := tx.Bucket(outboxBucket), tx.Bucket(doneBucket), tx.Bucket(auditIDsBucket)
		for _, vi := range victims {
			if err := ob.Delete(vi.key); err != nil {
				return err
			}
			if err := done.Delete(vi.key); err != nil {
				return err
			}
			// Only if it still points here: the same audit id may have been
			// stored again after an earlier purge.
			if len(vi.audit) > 0 && bytes.Equal(audit.Get(vi.audit), vi.key) {
				if err := audit.Delete(vi.audit); err != nil {
					return err
				}
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: purge: %w", err)
	}
	return n, nil
}

// Get returns message id, or ErrNotFound.
func (db *DB) Get(id uint64) (Message, error) {
	var m Message
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		m, err = decode(tx.Bucket(outboxBucket), itob(id))
		return err
	})
	if err != nil {
		return Message{}, fmt.Errorf("store: get %d: %w", id, err)
	}
	return m, nil
}

// List returns up to limit (≤ 0: no limit) messages in state ("" = any)
// with an ID above afterID, in ID order; pass the last ID seen to page.
func (db *DB) List(state State, afterID uint64, limit int) ([]Message, error) {
	var index []byte
	switch state {
	case "":
		index = outboxBucket
	case StatePending:
		index = pendingBucket
	case StateDead:
		index = deadBucket
	case StateDone:
		index = doneBucket
	default:
		return nil, fmt.Errorf("store: list: unknown state %q", state)
	}
	var out []Message
	err := db.bolt.View(func(tx *bolt.Tx) error {
		ob := tx.Bucket(outboxBucket)
		if afterID == ^uint64(0) {
			return nil
		}
		c := tx.Bucket(index).Cursor()
		for k, _ := c.Seek(itob(afterID + 1)); k != nil; k, _ = c.Next() {
			m, err := decode(ob, k)
			if err != nil {
				return err
			}
			out = append(out, m)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	return out, nil
}

// Stats counts the messages per state.
func (db *DB) Stats() (Stats, error) {
	var s Stats
	err := db.bolt.View(func(tx *bolt.Tx) error {
		s.Pending = count(tx.Bucket(pendingBucket))
		s.Dead = count(tx.Bucket(deadBucket))
		s.Done = count(tx.Bucket(doneBucket))
		s.DBBytes = tx.Size()
		if k, _ := tx.Bucket(pendingBucket).Cursor().First(); k != nil {
			m, err := decode(tx.Bucket(outboxBucket), k)
			if err != nil {
				return err
			}
			s.OldestPending = m.ReceivedAt
		}
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("store: stats: %w", err)
	}
	return s, nil
}

func count(b *bolt.Bucket) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

// modify runs fn on message id inside a write and stores the result.
func (db *DB) modify(ctx context.Context, id uint64, wake bool, fn func(*bolt.Tx, *Message) error) error {
	return db.update(ctx, wake, func(tx *bolt.Tx) error {
		ob := tx.Bucket(outboxBucket)
		m, err := decode(ob, itob(id))
		if err != nil {
			return err
		}
		if err := fn(tx, &m); err != nil {
			return err
		}
		return put(ob, &m)
	})
}

// decode unmarshals a stored message; json.Unmarshal copies, so the result
// outlives the transaction (Body included: RawMessage is copied too).
func decode(ob *bolt.Bucket, key []byte) (Message, error) {
	v := ob.Get(key)
	if v == nil {
		return Message{}, ErrNotFound
	}
	var m Message
	if err := json.Unmarshal(v, &m); err != nil {
		return Message{}, fmt.Errorf("decode message %d: %w", btoi(key), err)
	}
	return m, nil
}

func put(ob *bolt.Bucket, m *Message) error {
	v, err := encode(m)
	if err != nil {
		return fmt.Errorf("encode message %d: %w", m.ID, err)
	}
	return ob.Put(itob(m.ID), v)
}

// encode is json.Marshal without HTML escaping, so a stored body differs
// from the received one only by insignificant whitespace.
// bodyNull is how the encoder writes the Body field when it is cleared.
// The sequence holds an unescaped quote, so it cannot occur inside any of
// the string fields before it: its first occurrence is the field itself.
var bodyNull = []byte(`,"body":null`)

// encode renders m as stored. The body is spliced in verbatim instead of
// going through encoding/json, which would re-scan and compact it: the
// body is valid JSON already (Append compacts it, stored messages were),
// and this is the intake hot path.
func encode(m *Message) ([]byte, error) {
	cp := *m
	body := cp.Body
	cp.Body = nil
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&cp); err != nil {
		return nil, err
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	i := bytes.Index(b, bodyNull)
	if i < 0 || len(body) == 0 {
		return b, nil
	}
	out := make([]byte, 0, len(b)+len(body))
	out = append(out, b[:i]...)
	out = append(out, `,"body":`...)
	out = append(out, body...)
	out = append(out, b[i+len(bodyNull):]...)
	return out, nil
}

func addHistory(m *Message, a Attempt) {
	m.History = append(m.History, a)
	if n := len(m.History); n > historyCap {
		m.History = slices.Clone(m.History[n-historyCap:])
	}
}
