package threatq_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tqlabs/tq-mw-thehive/threatq"
	"github.com/tqlabs/tq-mw-thehive/threatq/threatqtest"
)

// BenchmarkUpsertIndicator measures the create path (lookup + consume +
// tags) and the no-op update path against the fake, with and without a
// per-request latency, and reports HTTP requests per upsert.
func BenchmarkUpsertIndicator(b *testing.B) {
	for _, lat := range []time.Duration{0, 2 * time.Millisecond} {
		for _, mode := range []string{"create", "update"} {
			b.Run(fmt.Sprintf("%s/latency=%s", mode, lat), func(b *testing.B) {
				s := threatqtest.NewServer(b)
				c := newClient(b, s)
				ctx := context.Background()
				evID, _, err := c.UpsertEvent(ctx, sampleEvent(threatq.KindEvent), 0)
				if err != nil {
					b.Fatal(err)
				}
				ind := threatq.Indicator{
					Value: "bench.example", Type: "FQDN", Tags: []string{"t1", "t2"},
					Source:     threatq.Source{TLP: "AMBER"},
					Attributes: []threatq.Attribute{{Name: "PAP", Value: "AMBER"}, {Name: "Sighted?", Value: "No"}},
					Related:    &threatq.Ref{Kind: threatq.KindEvent, ID: evID},
				}
				id, _, err := c.UpsertIndicator(ctx, ind, 0, false)
				if err != nil {
					b.Fatal(err)
				}
				s.SetLatency(lat)
				start := c.Requests()
				b.ResetTimer()
				for i := range b.N {
					var err error
					if mode == "create" {
						ind.Value = fmt.Sprintf("h%d.bench.example", i)
						_, _, err = c.UpsertIndicator(ctx, ind, 0, false)
					} else {
						_, _, err = c.UpsertIndicator(ctx, ind, id, true)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(c.Requests()-start)/float64(b.N), "requests/op")
			})
		}
	}
}
