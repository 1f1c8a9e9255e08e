package agent_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tqlabs/tq-mw-thehive/agent"
	"github.com/tqlabs/tq-mw-thehive/thehive/thehivetest"
	"github.com/tqlabs/tq-mw-thehive/threatq/threatqtest"
)

type backfillRun struct {
	sum     agent.Summary
	elapsed time.Duration
	maxRSS  int64 // bytes, of the agent process alone (VmHWM)
	maxAnon int64 // peak anonymous RSS: heap and stacks, without the mmap'd bbolt file
	maxHeap int64 // peak live Go heap (after GC), as the backfill reports it
	maxObjs int64 // peak Go heap objects, garbage included
}

// sampleAnonRSS polls /proc/pid/status for RssAnon until stop closes, and
// returns the peak. The bbolt file is memory-mapped, so total RSS also
// counts the file's pages in the page cache, which grow with the data
// stored (one link per object) and are not the agent's working memory.
func sampleAnonRSS(pid int, stop <-chan struct{}) <-chan int64 {
	out := make(chan int64, 1)
	go func() {
		var peak int64
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
				for _, line := range strings.Split(string(b), "\n") {
					if f := strings.Fields(line); len(f) >= 2 && f[0] == "RssAnon:" {
						if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil && kb*1024 > peak {
							peak = kb * 1024
						}
					}
				}
			}
			select {
			case <-stop:
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// runBackfillBinary runs `backfill` as a child process, so its peak RSS is
// the agent's own and not the fakes' (which live in this process).
func runBackfillBinary(b *testing.B, cases int) backfillRun {
	b.Helper()
	th := thehivetest.NewServer(b, thehivetest.Options{Cases: cases, ObservablesPerCase: 5, Seed: 1, APIKey: "k"})
	tq := threatqtest.NewServer(b)
	dir := b.TempDir()
	writeAgentConfig(b, dir, tq.URL, th.URL)
	var out bytes.Buffer
	cmd := exec.Command(agentBinary(b), "-c", dir, "-v", "1", "backfill", "--json", "--page-size", "100", "--parallel", "16")
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), os.Getenv("BACKFILL_CHILD_ENV"))
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	anon := sampleAnonRSS(cmd.Process.Pid, stop)
	err := cmd.Wait()
	elapsed := time.Since(start)
	close(stop)
	maxAnon := <-anon
	if err != nil {
		b.Fatalf("backfill of %d cases: %v\n%s", cases, err, out.String())
	}
	var sum agent.Summary
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
		b.Fatalf("summary %q: %v", out.String(), err)
	}
	var mem struct {
		PeakLive    int64 `json:"go_heap_live_peak_bytes"`
		PeakObjects int64 `json:"go_heap_objects_peak_bytes"`
	}
	_ = json.Unmarshal(out.Bytes(), &mem)
	if sum.Cases != int64(cases) || sum.Failed != 0 {
		b.Fatalf("summary %+v, want %d cases and no failures", sum, cases)
	}
	if fi, err := os.Stat(dir + "/tq-mw-thehive.db"); err == nil {
		b.Logf("%d cases: outbox database %.1f MiB", cases, float64(fi.Size())/(1<<20))
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return backfillRun{sum: sum, elapsed: elapsed, maxRSS: ru.Maxrss * 1024, maxAnon: maxAnon, maxHeap: mem.PeakLive, maxObjs: mem.PeakObjects}
}

// BenchmarkBackfill: a full backfill of 10,000 and of 100,000 cases × 5
// observables from the fake TheHive into the fake ThreatQ (no added
// latency): cases/s, observables/s, and the agent's peak RSS at both
// sizes, whose ratio shows memory stays flat.
func BenchmarkBackfill(b *testing.B) {
	sizes := []int{10000, 100000}
	if s := os.Getenv("BACKFILL_SIZES"); s != "" { // e.g. "1000,10000" for a quick look
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				b.Fatalf("BACKFILL_SIZES: %v", err)
			}
			sizes = append(sizes, n)
		}
	}
	for i := 0; i < b.N; i++ {
		var runs []backfillRun
		for _, n := range sizes {
			r := runBackfillBinary(b, n)
			runs = append(runs, r)
			b.Logf("%d cases: %s, %.0f cases/s, %.0f observables/s, peak RSS %.1f MiB (anonymous %.1f MiB; Go heap live %.1f MiB, with garbage %.1f MiB), summary %+v",
				n, r.elapsed.Round(time.Millisecond), float64(r.sum.Cases)/r.elapsed.Seconds(),
				float64(r.sum.Observables)/r.elapsed.Seconds(), float64(r.maxRSS)/(1<<20), float64(r.maxAnon)/(1<<20), float64(r.maxHeap)/(1<<20), float64(r.maxObjs)/(1<<20), r.sum)
		}
		small, large := runs[0], runs[1]
		b.ReportMetric(float64(large.sum.Cases)/large.elapsed.Seconds(), "cases/s")
		b.ReportMetric(float64(large.sum.Observables)/large.elapsed.Seconds(), "observables/s")
		b.ReportMetric(large.elapsed.Seconds(), fmt.Sprintf("s-for-%dk", sizes[1]/1000))
		b.ReportMetric(float64(small.maxRSS)/(1<<20), fmt.Sprintf("rss-MiB-%dk", sizes[0]/1000))
		b.ReportMetric(float64(large.maxRSS)/(1<<20), fmt.Sprintf("rss-MiB-%dk", sizes[1]/1000))
		b.ReportMetric(float64(large.maxRSS)/float64(small.maxRSS), "rss-ratio")
		b.ReportMetric(float64(small.maxAnon)/(1<<20), fmt.Sprintf("anon-MiB-%dk", sizes[0]/1000))
		b.ReportMetric(float64(large.maxAnon)/(1<<20), fmt.Sprintf("anon-MiB-%dk", sizes[1]/1000))
		b.ReportMetric(float64(large.maxAnon)/float64(small.maxAnon), "anon-ratio")
		b.ReportMetric(float64(small.maxHeap)/(1<<20), fmt.Sprintf("live-heap-MiB-%dk", sizes[0]/1000))
		b.ReportMetric(float64(large.maxHeap)/(1<<20), fmt.Sprintf("live-heap-MiB-%dk", sizes[1]/1000))
		b.ReportMetric(float64(large.maxHeap)/float64(small.maxHeap), "live-heap-ratio")
	}
}
