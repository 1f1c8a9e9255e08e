package agent_test

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tqlabs/tq-mw-thehive/agent"
)

// loadResult is one closed-loop load run.
type loadResult struct {
	n        int
	elapsed  time.Duration
	p50, p99 time.Duration
}

func (r loadResult) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

// runLoad posts bodies[i] for i in [0,n) from `clients` goroutines, each
// waiting for its answer before the next (closed loop), and measures.
func runLoad(b *testing.B, url string, clients int, bodies [][]byte) loadResult {
	b.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	lat := make([]time.Duration, len(bodies))
	var next sync.Mutex
	idx := 0
	var wg sync.WaitGroup
	var failed error
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				i := idx
				idx++
				next.Unlock()
				if i >= len(bodies) {
					return
				}
				t0 := time.Now()
				resp, err := hc.Post(url, "application/json", bytes.NewReader(bodies[i]))
				if err != nil {
					next.Lock()
					failed = err
					next.Unlock()
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					next.Lock()
					failed = fmt.Errorf("status %d", resp.StatusCode)
					next.Unlock()
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failed != nil {
		b.Fatal(failed)
	}
	slices.Sort(lat)
	return loadResult{n: len(bodies), elapsed: elapsed, p50: lat[len(lat)/2], p99: lat[len(lat)*99/100]}
}

// BenchmarkIntake measures durable intake (validation + fsync'd group
// commit) against a no-op handler on the same machine in the same run,
// 64 concurrent clients posting the testdata webhooks with unique audit ids.
func BenchmarkIntake(b *testing.B) {
	const clients = 64
	const n = 20000
	// As the binary does at start (cmd/tq-mw-thehive): see agent.MinProcs.
	// It applies to the no-op baseline too, which runs in this process.
	if p := runtime.GOMAXPROCS(0); p < agent.MinProcs {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(agent.MinProcs))
	}
	caseBody := readFile(b, "webhook-case-update.json")
	obsBody := readFile(b, "webhook-observable-update.json")
	bodies := make([][]byte, n)
	for i := range bodies {
		src := caseBody
		if i%2 == 1 {
			src = obsBody
		}
		bodies[i] = withField(b, src, "_id", fmt.Sprintf("~bench%d", i))
	}

	noop := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"stored","id":1}` + "\n"))
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go noop.Serve(ln)
	defer noop.Close()

	ta := startAgent(b, baseConfig(b))
	// The load generator shares the process (and the 2 cores); fewer GC
	// cycles keep its own pauses out of both runs' tails.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	for i := 0; i < b.N; i++ {
		// Fresh audit ids for the durable run (no dedup shortcut), made
		// before either run so neither pays for the other's garbage.
		durable := make([][]byte, n)
		for j := range bodies {
			durable[j] = withField(b, bodies[j], "_id", fmt.Sprintf("~bench%d-%d", i, j))
		}
		runtime.GC()
		base := runLoad(b, "http://"+ln.Addr().String()+"/cases", clients, bodies)
		runtime.GC()
		dur := runLoad(b, ta.URL+"/cases", clients, durable)
		b.ReportMetric(base.rate(), "noop-req/s")
		b.ReportMetric(dur.rate(), "durable-req/s")
		b.ReportMetric(dur.rate()/base.rate(), "ratio")
		b.ReportMetric(float64(dur.p50.Microseconds())/1000, "durable-p50-ms")
		b.ReportMetric(float64(dur.p99.Microseconds())/1000, "durable-p99-ms")
		b.ReportMetric(float64(base.p99.Microseconds())/1000, "noop-p99-ms")
		b.ReportMetric(histogramQuantile(scrape(b, ta.URL), "tq_thehive_intake_duration_seconds", 0.99)*1000, "server-p99-ms")
	}
	b.StopTimer()
	if got := ta.pending(b); got < n {
		b.Fatalf("store holds %d messages, want at least %d", got, n)
	}
}

// histogramQuantile is the upper bound of the bucket holding quantile q of
// a scraped Prometheus histogram (coarse, but the agent's own view of the
// latency, without the load generator's scheduling).
func histogramQuantile(m map[string]float64, name string, q float64) float64 {
	total := m[name+"_count"]
	type bucket struct{ le, n float64 }
	var bs []bucket
	for k, v := range m {
		var le float64
		if _, err := fmt.Sscanf(k, name+`_bucket{le="%g"}`, &le); err == nil {
			bs = append(bs, bucket{le, v})
		}
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	for _, b := range bs {
		if b.n >= q*total {
			return b.le
		}
	}
	return 0
}
