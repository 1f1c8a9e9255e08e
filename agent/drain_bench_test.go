package agent_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tqlabs/tq-mw-thehive/store"
	"github.com/tqlabs/tq-mw-thehive/threatq/threatqtest"
)

// fillOutbox appends n mixed messages, one case message then nine
// observables per case, straight into the store at path.
func fillOutbox(tb testing.TB, path string, n int) {
	tb.Helper()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	const perCase = 10
	errs := make(chan error, 64)
	sem := make(chan struct{}, 64)
	for i := range n {
		c := i / perCase
		cid := fmt.Sprintf("~c%d", c)
		var body []byte
		if i%perCase == 0 {
			body = caseMsg(tb, fmt.Sprintf("~a%d", i), cid, "New", 1000)
		} else {
			body = obsMsg(tb, fmt.Sprintf("~a%d", i), cid, fmt.Sprintf("~o%d", i), fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), i%3 == 0, 1000)
		}
		m := &store.Message{AuditID: fmt.Sprintf("~a%d", i), Action: "update", RootID: cid, Body: body}
		if i%perCase == 0 {
			m.ObjectType, m.ObjectID = "Case", cid
		} else {
			m.ObjectType, m.ObjectID = "Observable", fmt.Sprintf("~o%d", i)
		}
		// Appends in ID order per case: wait for the case message before its observables.
		if i%perCase == 0 {
			if _, _, err := db.Append(ctx, m); err != nil {
				tb.Fatal(err)
			}
			continue
		}
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			if _, _, err := db.Append(ctx, m); err != nil {
				errs <- err
			}
		}()
	}
	for range cap(sem) {
		sem <- struct{}{}
	}
	select {
	case err := <-errs:
		tb.Fatal(err)
	default:
	}
}

// BenchmarkDrain: webhooks/s from a full outbox of 10,000 mixed messages
// into the fake ThreatQ, with 0 and 2 ms added per request, and the
// ThreatQ requests each message cost.
func BenchmarkDrain(b *testing.B) {
	const n = 10000
	for _, latency := range []time.Duration{0, 2 * time.Millisecond} {
		b.Run(fmt.Sprintf("latency=%s", latency), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				tq := threatqtest.NewServer(b, threatqtest.WithLatency(latency))
				cfg := syncConfig(b, tq)
				cfg.Workers = 32
				fillOutbox(b, cfg.DBPath, n)
				start := time.Now()
				ta := startAgent(b, cfg)
				st := ta.waitDrained(b)
				elapsed := time.Since(start)
				ta.stop()
				if st.Dead != 0 {
					b.Fatalf("%d dead letters", st.Dead)
				}
				snap := tq.Snapshot()
				if len(snap.Indicators) != n-n/10 {
					b.Fatalf("%d indicators, want %d", len(snap.Indicators), n-n/10)
				}
				b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
				b.ReportMetric(float64(snap.Total)/float64(n), "tq-req/msg")
			}
		})
	}
}
