package store_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tqlabs/tq-mw-thehive/store"
)

// benchWriters is the number of concurrent appenders, like webhook
// requests in flight.
const benchWriters = 64

// benchBody is a webhook of realistic size (~1 KiB).
var benchBody = json.RawMessage(`{"_type":"Audit","action":"update","objectType":"Case","object":{"description":"` +
	strings.Repeat("x", 900) + `"}}`)

// setParallelism makes RunParallel start about benchWriters goroutines.
func setParallelism(b *testing.B) {
	b.SetParallelism(max(1, benchWriters/runtime.GOMAXPROCS(0)))
}

func BenchmarkAppendParallel(b *testing.B) {
	db := MustOpen(b)
	var seq atomic.Int64
	setParallelism(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			m := &store.Message{
				AuditID: fmt.Sprint("audit-", n), Action: "update", ObjectType: "Case",
				ObjectID: "~1", RootID: fmt.Sprint("~", n%50), Body: benchBody,
			}
			if _, _, err := db.Append(ctx, m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

// BenchmarkAppendDBBatch does the same work through bbolt's DB.Batch, whose
// MaxBatchDelay (10 ms) is what the store's committer avoids.
func BenchmarkAppendDBBatch(b *testing.B) {
	bdb, err := bolt.Open(filepath.Join(b.TempDir(), "batch.db"), 0o600, &bolt.Options{
		Timeout: time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer bdb.Close()
	names := []string{"outbox", "pending", "audit_ids"}
	if err := bdb.Update(func(tx *bolt.Tx) error {
		for _, n := range names {
			if _, err := tx.CreateBucketIfNotExists([]byte(n)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	setParallelism(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			m := store.Message{
				AuditID: fmt.Sprint("audit-", n), Action: "update", ObjectType: "Case",
				ObjectID: "~1", RootID: fmt.Sprint("~", n%50), Body: benchBody,
				ReceivedAt: time.Now().UTC(), State: store.StatePending,
			}
			err := bdb.Batch(func(tx *bolt.Tx) error {
				audit := tx.Bucket([]byte("audit_ids"))
				if audit.Get([]byte(m.AuditID)) != nil {
					return nil
				}
				ob := tx.Bucket([]byte("outbox"))
				id, err := ob.NextSequence()
				if err != nil {
					return err
				}
				m.ID = id
				v, err := json.Marshal(&m)
				if err != nil {
					return err
				}
				key := binary.BigEndian.AppendUint64(nil, id)
				pend := binary.BigEndian.AppendUint64(nil, 0)
				pend = append(pend, m.RootID...)
				if err := ob.Put(key, v); err != nil {
					return err
				}
				if err := tx.Bucket([]byte("pending")).Put(key, pend); err != nil {
					return err
				}
				return audit.Put([]byte(m.AuditID), key)
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}
