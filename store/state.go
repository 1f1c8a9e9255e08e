package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Link ties a TheHive object to the ThreatQ object it was written to: the
// worker's idempotency record.
type Link struct {
	Kind      string `json:"kind"`                 // "events","incident","indicators"
	ID        int    `json:"id"`                   // ThreatQ id
	Modified  int64  `json:"modified"`             // TheHive _updatedAt (or _createdAt) of the state last applied
	Hash      string `json:"hash"`                 // hash of the mapped ThreatQ object last applied
	RelatedID int    `json:"related_id,omitempty"` // for indicators: the event/incident already related
}

var errEmptyKey = errors.New("empty key")

// Link returns the link stored under key.
func (db *DB) Link(key string) (Link, bool, error) {
	var l Link
	var ok bool
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(linksBucket).Get([]byte(key))
		if v == nil {
			return nil
		}
		ok = true
		var err error
		l, err = decodeLink(v)
		return err
	})
	if err != nil {
		return Link{}, false, fmt.Errorf("store: link %q: %w", key, err)
	}
	return l, ok, nil
}

// PutLink stores l under key, replacing any previous link.
func (db *DB) PutLink(ctx context.Context, key string, l Link) error {
	err := func() error {
		if key == "" {
			return errEmptyKey
		}
		v := encodeLink(l)
		return db.update(ctx, false, func(tx *bolt.Tx) error {
			return tx.Bucket(linksBucket).Put([]byte(key), v)
		})
	}()
	if err != nil {
		return fmt.Errorf("store: put link %q: %w", key, err)
	}
	return nil
}

// PutCase stores the latest known state of a TheHive case. A state older
// than the stored one (by modified) is ignored without error, so a slow
// backfill cannot overwrite what a webhook already brought.
func (db *DB) PutCase(ctx context.Context, caseID string, modified int64, body []byte) error {
	err := func() error {
		if caseID == "" {
			return errEmptyKey
		}
		v := make([]byte, 8+len(body))
		binary.BigEndian.PutUint64(v, uint64(modified))
		copy(v[8:], body)
		return db.update(ctx, false, func(tx *bolt.Tx) error {
			b := tx.Bucket(casesBucket)
			if old := b.Get([]byte(caseID)); len(old) >= 8 && int64(binary.BigEndian.Uint64(old)) > modified {
				return nil
			}
			return b.Put([]byte(caseID), v)
		})
	}()
	if err != nil {
		return fmt.Errorf("store: put case %q: %w", caseID, err)
	}
	return nil
}

// Case returns the stored state of case caseID.
func (db *DB) Case(caseID string) (body []byte, modified int64, ok bool, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(casesBucket).Get([]byte(caseID))
		if len(v) < 8 {
			return nil
		}
		ok = true
		modified = int64(binary.BigEndian.Uint64(v))
		body = slices.Clone(v[8:])
		return nil
	})
	if err != nil {
		return nil, 0, false, fmt.Errorf("store: case %q: %w", caseID, err)
	}
	return body, modified, ok, nil
}

// Checkpoint returns the bytes stored under name.
func (db *DB) Checkpoint(name string) ([]byte, bool, error) {
	var v []byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(checkpointsBucket).Get([]byte(name)); b != nil {
			v = slices.Clone(b)
			if v == nil {
				v = []byte{}
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: checkpoint %q: %w", name, err)
	}
	return v, v != nil, nil
}

// PutCheckpoint stores v under name.
func (db *DB) PutCheckpoint(ctx context.Context, name string, v []byte) error {
	err := func() error {
		if name == "" {
			return errEmptyKey
		}
		v := slices.Clone(v)
		if v == nil {
			v = []byte{}
		}
		return db.update(ctx, false, func(tx *bolt.Tx) error {
			return tx.Bucket(checkpointsBucket).Put([]byte(name), v)
		})
	}()
	if err != nil {
		return fmt.Errorf("store: put checkpoint %q: %w", name, err)
	}
	return nil
}

// DeleteCheckpoint removes name; deleting a missing checkpoint is no error.
func (db *DB) DeleteCheckpoint(ctx context.Context, name string) error {
	err := db.update(ctx, false, func(tx *bolt.Tx) error {
		return tx.Bucket(checkpointsBucket).Delete([]byte(name))
	})
	if err != nil {
		return fmt.Errorf("store: delete checkpoint %q: %w", name, err)
	}
	return nil
}
