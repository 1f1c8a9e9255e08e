package agent_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tqlabs/tq-mw-thehive/agent"
	"github.com/tqlabs/tq-mw-thehive/store"
	"github.com/tqlabs/tq-mw-thehive/thehive"
	"github.com/tqlabs/tq-mw-thehive/thehive/thehivetest"
	"github.com/tqlabs/tq-mw-thehive/threatq/threatqtest"
)

// These tests run the real binary as a child process and kill it with
// SIGKILL: only a separate process shows what survives a crash.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func agentBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and crashes the binary; skipped in -short")
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tq-mw-thehive-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "tq-mw-thehive")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/tq-mw-thehive").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeAgentConfig writes a config file the binary accepts.
func writeAgentConfig(t testing.TB, dir, tqURL, thURL string) {
	t.Helper()
	cfg := fmt.Sprintf(`threatq:
  host: %s
  client_id: test-client
  email: agent@example.com
  password: s3cret-password
thehive:
  url: %s
  api_key: k
reconcile_interval: 0s
worker:
  concurrency: 8
`, tqURL, thURL)
	if err := os.WriteFile(filepath.Join(dir, "tq-mw-thehive.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

type child struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	url    string
}

func startChild(t testing.TB, dir string, port int, args ...string) *child {
	t.Helper()
	all := append([]string{"-c", dir, "-p", fmt.Sprint(port), "-v", "1"}, args...)
	cmd := exec.Command(agentBinary(t), all...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stderr: &stderr, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return c
}

func (c *child) waitHealthy(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(c.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("agent at %s never became healthy; its output:\n%s", c.url, c.stderr.String())
}

func (c *child) kill(t testing.TB) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
}

func (c *child) terminate(t testing.TB) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("agent exited with %v after SIGTERM; output:\n%s", err, c.stderr.String())
	}
}

// Every webhook that got a 200 before a SIGKILL is in the outbox after
// the restart, exactly once.
func TestCrashKeepsAcknowledgedWebhooks(t *testing.T) {
	dir := t.TempDir()
	writeAgentConfig(t, dir, "http://127.0.0.1:1", "http://127.0.0.1:1") // ThreatQ unreachable: nothing drains
	port := freePort(t)
	c := startChild(t, dir, port, "run")
	c.waitHealthy(t)

	base := readFile(t, "webhook-observable-update.json")
	const n, clients, killAfter = 3000, 32, 600
	var acked sync.Map
	var ackCount atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	killed := make(chan struct{})
	var killOnce sync.Once
	hc := &http.Client{Timeout: 5 * time.Second}
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				id := fmt.Sprintf("~crash%d", i)
				resp, err := hc.Post(c.url+"/cases", "application/json", bytes.NewReader(withField(t, base, "_id", id)))
				if err != nil {
					select {
					case <-killed:
						return
					default:
						continue
					}
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					acked.Store(id, true)
					if ackCount.Add(1) == killAfter {
						killOnce.Do(func() { c.kill(t); close(killed) })
					}
				}
			}
		}()
	}
	wg.Wait()
	killOnce.Do(func() { c.kill(t); close(killed) })
	if ackCount.Load() < killAfter {
		t.Fatalf("only %d acks before the end; output:\n%s", ackCount.Load(), c.stderr.String())
	}

	c2 := startChild(t, dir, port, "run")
	c2.waitHealthy(t)
	c2.terminate(t)

	db, err := store.Open(filepath.Join(dir, "tq-mw-thehive.db"), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	msgs, err := db.List("", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, m := range msgs {
		count[m.AuditID]++
	}
	missing := 0
	acked.Range(func(k, _ any) bool {
		if count[k.(string)] != 1 {
			missing++
			if missing < 5 {
				t.Errorf("acknowledged webhook %s is in the outbox %d times, want once", k, count[k.(string)])
			}
		}
		return true
	})
	for id, c := range count {
		if c > 1 {
			t.Errorf("%s stored %d times", id, c)
		}
	}
	t.Logf("%d acknowledged before SIGKILL, %d stored (some unacknowledged in-flight ones may have committed)", ackCount.Load(), len(msgs))
	if missing > 0 {
		t.Fatalf("%d acknowledged webhooks lost", missing)
	}
}

// normalized renders a ThreatQ snapshot independent of ids and order, to
// compare the outcome of two runs.
func normalized(s threatqtest.Snapshot) []string {
	evTitle := map[int]string{}
	var out []string
	for _, ev := range s.Events {
		evTitle[ev.ID] = ev.Title
	}
	render := func(kind string, o threatqtest.Object, key string) string {
		var at []string
		for _, a := range o.Attributes {
			at = append(at, a.Name+"="+a.Value)
		}
		sort.Strings(at)
		tags := slices.Clone(o.Tags)
		sort.Strings(tags)
		var rel []string
		for _, id := range o.Related["events"] {
			rel = append(rel, evTitle[id])
		}
		sort.Strings(rel)
		return fmt.Sprintf("%s %s type=%s desc=%q attrs=%v tags=%v tlp=%d rel=%v", kind, key, o.Type, o.Description, at, tags, tlpOf(o), rel)
	}
	for _, ev := range s.Events {
		out = append(out, render("event", ev, ev.Title))
	}
	for _, ind := range s.Indicators {
		out = append(out, render("indicator", ind, ind.Value))
	}
	sort.Strings(out)
	return out
}

func drainWorkload(t testing.TB) [][]byte {
	var bodies [][]byte
	for c := range 30 {
		cid := fmt.Sprintf("~c%d", c)
		for u := range 3 {
			bodies = append(bodies, caseMsg(t, fmt.Sprintf("~a%d-%d", c, u), cid, fmt.Sprintf("S%d", u), int64(1000+u)))
			for o := range 3 {
				bodies = append(bodies, obsMsg(t, fmt.Sprintf("~a%d-%d-%d", c, u, o), cid, fmt.Sprintf("~o%d-%d", c, o),
					fmt.Sprintf("10.1.%d.%d", c, o), u == 2, int64(1000+u)))
			}
		}
	}
	return bodies
}

// Killing the agent while it drains into ThreatQ, then restarting it,
// ends in exactly the ThreatQ state of a run without a crash.
func TestCrashDuringDrain(t *testing.T) {
	bodies := drainWorkload(t)

	// Reference: the same webhooks, no crash.
	ref := threatqtest.NewServer(t)
	ta := startAgent(t, syncConfig(t, ref))
	for _, b := range bodies {
		ta.mustPost(t, b)
	}
	if st := ta.waitDrained(t); st.Dead != 0 {
		t.Fatalf("reference run dead-lettered %d messages", st.Dead)
	}
	ta.stop()
	want := normalized(ref.Snapshot())
	t.Logf("reference run done")

	tq := threatqtest.NewServer(t, threatqtest.WithLatency(3*time.Millisecond))
	dir := t.TempDir()
	writeAgentConfig(t, dir, tq.URL, "http://127.0.0.1:1")
	port := freePort(t)
	c := startChild(t, dir, port, "run")
	c.waitHealthy(t)
	for _, b := range bodies {
		resp, err := http.Post(c.url+"/cases", "application/json", bytes.NewReader(b))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("post: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	waitFor(t, 30*time.Second, "some deliveries", func() bool { return tq.Snapshot().Total > 150 })
	t0 := time.Now()
	c.kill(t)
	mid := tq.Snapshot()
	defer func() { t.Logf("restart to complete: %s", time.Since(t0)) }()
	if len(mid.Indicators) == 90 && len(mid.Events) == 30 {
		t.Log("everything was delivered before the kill; the crash tested little")
	}

	c2 := startChild(t, dir, port, "run")
	c2.waitHealthy(t)
	// Poll the running agent through its admin socket, as an operator would.
	waitFor(t, 60*time.Second, "the restarted agent to drain its outbox", func() bool {
		st := outboxStats(t, dir)
		return st.Pending == 0
	})
	c2.terminate(t)
	if st := outboxStats(t, dir); st.Dead != 0 || st.Pending != 0 {
		t.Fatalf("after the restart: %+v", st)
	}
	got := normalized(tq.Snapshot())
	if !slices.Equal(got, want) {
		t.Errorf("ThreatQ after crash and restart differs from a run without crash:\n got %d objects\nwant %d objects\n%s",
			len(got), len(want), diffLines(got, want))
	}
}

type statsJSON struct {
	Pending int   `json:"pending"`
	Dead    int   `json:"dead"`
	Done    int   `json:"done"`
	DBBytes int64 `json:"db_bytes"`
}

// outboxStats runs `outbox stats --json`: against the running agent's
// socket, or the database when it is stopped.
func outboxStats(t testing.TB, dir string) statsJSON {
	t.Helper()
	out, err := exec.Command(agentBinary(t), "-c", dir, "outbox", "stats", "--json").Output()
	if err != nil {
		t.Fatalf("outbox stats: %v %s", err, out)
	}
	var st statsJSON
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("outbox stats --json printed %q: %v", out, err)
	}
	return st
}

func diffLines(got, want []string) string {
	var b strings.Builder
	g := map[string]bool{}
	for _, s := range got {
		g[s] = true
	}
	w := map[string]bool{}
	for _, s := range want {
		w[s] = true
		if !g[s] {
			fmt.Fprintf(&b, "- %s\n", s)
		}
	}
	for _, s := range got {
		if !w[s] {
			fmt.Fprintf(&b, "+ %s\n", s)
		}
	}
	return b.String()
}

// A backfill killed with SIGKILL resumes from its checkpoint: the rerun
// walks only what the checkpoint had not covered, and ThreatQ ends up as
// after an uninterrupted backfill.
func TestCrashDuringBackfill(t *testing.T) {
	th := thehivetest.NewServer(t, thehivetest.Options{Cases: 200, ObservablesPerCase: 3, Seed: 21, APIKey: "k", SameTimestampEvery: 3})
	tq := threatqtest.NewServer(t, threatqtest.WithLatency(2*time.Millisecond))
	dir := t.TempDir()
	writeAgentConfig(t, dir, tq.URL, th.URL)
	const pageSize = 10
	c := startChild(t, dir, freePort(t), "backfill", "--page-size", fmt.Sprint(pageSize), "--no-progress")
	waitFor(t, 60*time.Second, "backfill under way", func() bool { return len(tq.Snapshot().Events) > 40 })
	c.kill(t)

	db, err := store.Open(filepath.Join(dir, "tq-mw-thehive.db"), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	raw, ok, err := db.Checkpoint(agent.CheckpointBackfill)
	db.Close()
	if err != nil || !ok {
		t.Fatalf("no checkpoint after the kill: %v", err)
	}
	var cur thehive.Cursor
	if err := json.Unmarshal(raw, &cur); err != nil {
		t.Fatal(err)
	}
	if cur.Done {
		t.Fatal("the backfill finished before the kill; nothing was tested")
	}
	covered := 0
	seen := map[string]bool{}
	for _, id := range cur.SeenIDs {
		seen[id] = true
	}
	for _, cs := range th.Cases() {
		if cs.CreatedAt < cur.Value || (cs.CreatedAt == cur.Value && seen[cs.ID]) {
			covered++
		}
	}

	var out bytes.Buffer
	cmd := exec.Command(agentBinary(t), "-c", dir, "-v", "1", "backfill", "--page-size", fmt.Sprint(pageSize), "--json")
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("resumed backfill: %v\n%s", err, out.String())
	}
	var sum agent.Summary
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
		t.Fatalf("summary %q: %v", out.String(), err)
	}
	if int(sum.Cases) != 200-covered {
		t.Errorf("resumed run walked %d cases; the checkpoint covered %d of 200, so want %d", sum.Cases, covered, 200-covered)
	}
	events, indicators := expected(th, agent.Config{}.Sync)
	checkThreatQ(t, tq, events, indicators)

}
