package agent_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tqlabs/tq-mw-thehive/agent"
	"github.com/tqlabs/tq-mw-thehive/store"
	"github.com/tqlabs/tq-mw-thehive/threatq"
	"github.com/tqlabs/tq-mw-thehive/threatq/threatqtest"
)

// syncConfig is an agent delivering to tq with short retry timings.
func syncConfig(t testing.TB, tq *threatqtest.Server) agent.Config {
	cfg := baseConfig(t)
	cfg.ThreatQ = threatq.Config{
		BaseURL: tq.URL, ClientID: tq.ClientID, Email: tq.Email, Password: tq.Password,
		RetryMax: 3, RetryWaitMin: 5 * time.Millisecond, RetryWaitMax: 50 * time.Millisecond,
		Timeout: 5 * time.Second,
		// The fake applies a write at once, or (slow fault) after a delay
		// that tests using one set SettleTime for.
		SettleTime: 50 * time.Millisecond,
	}
	cfg.RetryBase = 20 * time.Millisecond
	cfg.RetryMax = 200 * time.Millisecond
	cfg.AuthPause = 100 * time.Millisecond
	cfg.Workers = 8
	return cfg
}

func (ta *testAgent) waitDrained(t testing.TB) store.Stats {
	t.Helper()
	var st store.Stats
	waitFor(t, 60*time.Second, "outbox drained", func() bool {
		var err error
		st, err = ta.Outbox().Stats()
		if err != nil {
			t.Fatal(err)
		}
		return st.Pending == 0
	})
	return st
}

func (ta *testAgent) mustPost(t testing.TB, body []byte) {
	t.Helper()
	code, out := ta.post(t, "/cases", body, nil)
	if code != http.StatusOK {
		t.Fatalf("POST /cases: %d %v", code, out)
	}
}

func attrs(o threatqtest.Object) map[string][]string {
	m := map[string][]string{}
	for _, a := range o.Attributes {
		m[a.Name] = append(m[a.Name], a.Value)
	}
	return m
}

func tlpOf(o threatqtest.Object) int {
	for _, s := range o.Sources {
		if s.Name == threatq.SourceName {
			return s.TLPID
		}
	}
	return 0
}

// The manual's two webhooks become the Event and Indicator its mapping
// chapter describes (shared/testdata/README.md).
func TestSyncManualSamples(t *testing.T) {
	tq := threatqtest.NewServer(t)
	ta := startAgent(t, syncConfig(t, tq))
	ta.mustPost(t, readFile(t, "webhook-case-update.json"))
	ta.waitDrained(t)
	if n := len(tq.Snapshot().Events); n != 0 {
		t.Fatalf("a case without observables created %d events (include_cases_without_observables is off)", n)
	}
	ta.mustPost(t, readFile(t, "webhook-observable-update.json"))
	st := ta.waitDrained(t)
	if st.Dead != 0 {
		t.Fatalf("dead letters: %d", st.Dead)
	}
	snap := tq.Snapshot()
	if len(snap.Events) != 1 || len(snap.Indicators) != 1 {
		t.Fatalf("got %d events, %d indicators; want 1, 1", len(snap.Events), len(snap.Indicators))
	}
	ev := snap.Events[0]
	if ev.Title != "Hive Case #~43872472 Hamsters Test" {
		t.Errorf("event title %q", ev.Title)
	}
	wantEv := map[string][]string{
		"TheHive Id": {"~43872472"}, "Status": {"New"}, "Owner": {"thehive@thehive.local"},
		"Case Id": {"5984"}, "Severity": {"HIGH"}, "PAP": {"GREEN"}, "Flagged": {"No"},
	}
	if got := attrs(ev); !equalAttrs(got, wantEv) {
		t.Errorf("event attributes %v, want %v", got, wantEv)
	}
	if !slices.Equal(ev.Tags, []string{"utility"}) {
		t.Errorf("event tags %v", ev.Tags)
	}
	if tlpOf(ev) != 3 { // GREEN
		t.Errorf("event TLP id %d, want 3 (GREEN)", tlpOf(ev))
	}
	ind := snap.Indicators[0]
	if ind.Value != "ff7b2c3938306261881c42e78d0df51d9bcdd574" || ind.Type != "SHA-1" || ind.Description != "unknown signature" {
		t.Errorf("indicator %q %q %q", ind.Value, ind.Type, ind.Description)
	}
	wantInd := map[string][]string{"PAP": {"AMBER"}, "Sighted?": {"Yes"}}
	if got := attrs(ind); !equalAttrs(got, wantInd) {
		t.Errorf("indicator attributes %v, want %v", got, wantInd)
	}
	if !slices.Equal(ind.Tags, []string{"ioc"}) || tlpOf(ind) != 2 {
		t.Errorf("indicator tags %v tlp %d", ind.Tags, tlpOf(ind))
	}
	if !slices.Contains(ind.Related["events"], ev.ID) && !slices.Contains(ev.Related["indicators"], ind.ID) {
		t.Errorf("indicator not related to the event: %v / %v", ind.Related, ev.Related)
	}

	// A replay of both webhooks (new audit ids, same state) writes nothing.
	before := tq.Snapshot().Total
	ta.mustPost(t, withField(t, readFile(t, "webhook-case-update.json"), "_id", "~replay1"))
	ta.mustPost(t, withField(t, readFile(t, "webhook-observable-update.json"), "_id", "~replay2"))
	ta.waitDrained(t)
	if after := tq.Snapshot().Total; after != before {
		t.Errorf("replaying unchanged objects made %d ThreatQ requests, want 0", after-before)
	}
	msgs, _ := ta.Outbox().List(store.StateDone, 0, 0)
	if len(msgs) != 4 {
		t.Fatalf("%d done messages, want 4", len(msgs))
	}
	if r := msgs[1].Results; len(r) == 0 {
		t.Errorf("observable message recorded no ThreatQ results: %+v", msgs[1])
	}
}

func equalAttrs(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// caseMsg builds a Case webhook for case id with the given status and
// update time.
func caseMsg(t testing.TB, audit, id, status string, updated int64) []byte {
	b := readFile(t, "webhook-case-update.json")
	b = withField(t, b, "_id", audit)
	b = withField(t, b, "objectId", id)
	b = withField(t, b, "rootId", id)
	b = withField(t, b, "object._id", id)
	b = withField(t, b, "object.status", status)
	b = withField(t, b, "object._updatedAt", updated)
	return b
}

func obsMsg(t testing.TB, audit, caseID, id, data string, ioc bool, updated int64) []byte {
	b := readFile(t, "webhook-observable-update.json")
	b = withField(t, b, "_id", audit)
	b = withField(t, b, "objectId", id)
	b = withField(t, b, "rootId", caseID)
	b = withField(t, b, "object._id", id)
	b = withField(t, b, "object.data", data)
	if strings.Count(data, ".") == 3 {
		b = withField(t, b, "object.dataType", "ip")
	}
	b = withField(t, b, "object.ioc", ioc)
	b = withField(t, b, "object._updatedAt", updated)
	return b
}

func TestSyncUpdatesInPlace(t *testing.T) {
	tq := threatqtest.NewServer(t)
	ta := startAgent(t, syncConfig(t, tq))
	hash := "ff7b2c3938306261881c42e78d0df51d9bcdd574"
	ta.mustPost(t, caseMsg(t, "~a1", "~c1", "New", 1000))
	ta.mustPost(t, obsMsg(t, "~a2", "~c1", "~o1", hash, true, 1000))
	ta.waitDrained(t)
	ind := tq.Snapshot().Indicators[0]
	if got := ind.Values("Indicator Of Compromise?"); !slices.Equal(got, []string{"Yes"}) {
		t.Fatalf("IOC attribute %v, want [Yes]", got)
	}
	ta.mustPost(t, caseMsg(t, "~a3", "~c1", "InProgress", 2000))
	ta.mustPost(t, obsMsg(t, "~a4", "~c1", "~o1", hash, false, 2000))
	ta.waitDrained(t)
	snap := tq.Snapshot()
	if len(snap.Events) != 1 || len(snap.Indicators) != 1 {
		t.Fatalf("updates created objects: %d events %d indicators", len(snap.Events), len(snap.Indicators))
	}
	if got := snap.Events[0].Values("Status"); !slices.Equal(got, []string{"InProgress"}) {
		t.Errorf("Status values %v, want [InProgress] (updated in place)", got)
	}
	if got := snap.Indicators[0].Values("Indicator Of Compromise?"); len(got) != 0 {
		t.Errorf("IOC attribute %v after ioc turned false, want none", got)
	}
	// An older state arriving late does not overwrite the newer one.
	ta.mustPost(t, caseMsg(t, "~a5", "~c1", "Stale", 1500))
	ta.waitDrained(t)
	if got := tq.Snapshot().Events[0].Values("Status"); !slices.Equal(got, []string{"InProgress"}) {
		t.Errorf("a stale update changed Status to %v", got)
	}
}

func TestSyncOptions(t *testing.T) {
	hash := "ff7b2c3938306261881c42e78d0df51d9bcdd574"
	tests := []struct {
		name              string
		mutate            func(*agent.Config)
		ioc               bool
		events, incidents int
		indicators        int
		caseOnlyEvents    int // events after only the case message
	}{
		{"defaults", nil, false, 1, 0, 1, 0},
		{"include cases without observables", func(c *agent.Config) { c.Sync.IncludeCasesWithoutObservables = true }, false, 1, 0, 1, 1},
		{"ioc_only skips a non-IOC", func(c *agent.Config) { c.Sync.IOCOnly = true }, false, 0, 0, 0, 0},
		{"ioc_only keeps an IOC", func(c *agent.Config) { c.Sync.IOCOnly = true }, true, 1, 0, 1, 0},
		{"incidents", func(c *agent.Config) { c.Sync.CasesAsIncidents = true }, false, 0, 1, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tq := threatqtest.NewServer(t)
			cfg := syncConfig(t, tq)
			if tt.mutate != nil {
				tt.mutate(&cfg)
			}
			ta := startAgent(t, cfg)
			ta.mustPost(t, caseMsg(t, "~a1", "~c1", "New", 1000))
			ta.waitDrained(t)
			if n := len(tq.Snapshot().Events); n != tt.caseOnlyEvents {
				t.Errorf("after the case alone: %d events, want %d", n, tt.caseOnlyEvents)
			}
			ta.mustPost(t, obsMsg(t, "~a2", "~c1", "~o1", hash, tt.ioc, 1000))
			st := ta.waitDrained(t)
			snap := tq.Snapshot()
			if len(snap.Events) != tt.events || len(snap.Incidents) != tt.incidents || len(snap.Indicators) != tt.indicators {
				t.Errorf("got %d events %d incidents %d indicators, want %d %d %d",
					len(snap.Events), len(snap.Incidents), len(snap.Indicators), tt.events, tt.incidents, tt.indicators)
			}
			if st.Dead != 0 {
				t.Errorf("%d dead letters", st.Dead)
			}
			if tt.incidents == 1 && snap.Incidents[0].Value != "Hive Case #~c1 Hamsters Test" {
				t.Errorf("incident value %q", snap.Incidents[0].Value)
			}
		})
	}
}

// Under 30% transient faults (500, 503, 429, dropped connections, and
// writes applied but unanswered) everything arrives once, and each case's
// last update wins.
func TestSyncTransientFaults(t *testing.T) {
	tq := threatqtest.NewServer(t, threatqtest.WithSeed(7))
	tq.SetFaults(threatqtest.Faults{Rate500: 0.06, Rate503: 0.06, Rate429: 0.06, RateDrop: 0.06, RateDropAfterCommit: 0.06,
		RateSlow: 0.03, Slow: 600 * time.Millisecond}) // slower than the client's timeout below: a timeout, retried
	cfg := syncConfig(t, tq)
	cfg.ThreatQ.Timeout = 300 * time.Millisecond
	cfg.ThreatQ.SettleTime = 700 * time.Millisecond // > Slow: a timed-out write lands before the re-check
	ta := startAgent(t, cfg)
	const cases, obsPerCase, updates = 12, 3, 4
	var wg sync.WaitGroup
	for c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cid := fmt.Sprintf("~c%d", c)
			for u := range updates {
				ta.mustPost(t, caseMsg(t, fmt.Sprintf("~a%d-%d", c, u), cid, fmt.Sprintf("S%d", u), int64(1000+u)))
				for o := range obsPerCase {
					data := fmt.Sprintf("%040x", c*100+o)
					ta.mustPost(t, obsMsg(t, fmt.Sprintf("~a%d-%d-%d", c, u, o), cid, fmt.Sprintf("~o%d-%d", c, o), data, u%2 == 1, int64(1000+u)))
				}
			}
		}()
	}
	wg.Wait()
	st := ta.waitDrained(t)
	if st.Dead != 0 {
		dead, _ := ta.Outbox().List(store.StateDead, 0, 5)
		t.Fatalf("%d dead letters under transient faults, e.g. %+v", st.Dead, dead[0].LastError)
	}
	tq.SetFaults(threatqtest.Faults{})
	snap := tq.Snapshot()
	if len(snap.Events) != cases || len(snap.Indicators) != cases*obsPerCase {
		t.Fatalf("got %d events, %d indicators; want %d, %d", len(snap.Events), len(snap.Indicators), cases, cases*obsPerCase)
	}
	titles := map[string]bool{}
	for _, ev := range snap.Events {
		if titles[ev.Title] {
			t.Errorf("duplicate event %q", ev.Title)
		}
		titles[ev.Title] = true
		if got := ev.Values("Status"); !slices.Equal(got, []string{fmt.Sprintf("S%d", updates-1)}) {
			t.Errorf("%s: Status %v, want the last update only", ev.Title, got)
		}
		for name, vals := range attrs(ev) {
			if len(vals) != 1 {
				t.Errorf("%s: attribute %q has %d values", ev.Title, name, len(vals))
			}
		}
	}
	for _, ind := range snap.Indicators {
		// The last update had ioc = true (u = 3).
		if got := ind.Values("Indicator Of Compromise?"); !slices.Equal(got, []string{"Yes"}) {
			t.Errorf("indicator %s IOC %v", ind.Value, got)
		}
		for name, vals := range attrs(ind) {
			if len(vals) != 1 {
				t.Errorf("indicator %s: attribute %q has %d values", ind.Value, name, len(vals))
			}
		}
	}
}

// A permanent 400 dead-letters the message with its reason; once the
// cause is gone, requeue delivers it.
func TestSyncPermanentFailureAndRequeue(t *testing.T) {
	tq := threatqtest.NewServer(t)
	ta := startAgent(t, syncConfig(t, tq))
	tq.SetFaults(threatqtest.Faults{PermanentWrites: true})
	ta.mustPost(t, caseMsg(t, "~a1", "~c1", "New", 1000))
	ta.mustPost(t, obsMsg(t, "~a2", "~c1", "~o1", "10.0.0.1", false, 1000))
	st := ta.waitDrained(t)
	if st.Dead != 1 {
		t.Fatalf("dead = %d, want 1", st.Dead)
	}
	dead, _ := ta.Outbox().List(store.StateDead, 0, 0)
	if dead[0].LastError == "" {
		t.Error("dead letter has no reason")
	}
	tq.SetFaults(threatqtest.Faults{})
	n, err := ta.Outbox().RequeueDead(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("requeue: %d, %v", n, err)
	}
	st = ta.waitDrained(t)
	if st.Dead != 0 || len(tq.Snapshot().Indicators) != 1 {
		t.Fatalf("after requeue: dead %d, indicators %d", st.Dead, len(tq.Snapshot().Indicators))
	}
}

func TestSyncTokenExpiryAndOutage(t *testing.T) {
	tq := threatqtest.NewServer(t)
	ta := startAgent(t, syncConfig(t, tq))
	ta.mustPost(t, caseMsg(t, "~case", "~c1", "New", 1000))
	ta.mustPost(t, obsMsg(t, "~a0", "~c1", "~o0", "10.0.0.1", false, 1000))
	ta.waitDrained(t)
	tq.ExpireTokens()
	ta.mustPost(t, obsMsg(t, "~a1", "~c1", "~o1", "10.0.0.2", false, 1000))
	ta.waitDrained(t)

	tq.SetDown(true)
	for i := range 10 {
		ta.mustPost(t, obsMsg(t, fmt.Sprintf("~b%d", i), "~c1", fmt.Sprintf("~p%d", i), fmt.Sprintf("10.0.1.%d", i), false, 1000))
	}
	waitFor(t, 20*time.Second, "readyz degraded", func() bool {
		code, _ := ta.do(t, "GET", "/readyz", nil, nil)
		return code == http.StatusServiceUnavailable
	})
	tq.SetDown(false)
	st := ta.waitDrained(t)
	if st.Dead != 0 {
		t.Fatalf("an outage dead-lettered %d messages", st.Dead)
	}
	if n := len(tq.Snapshot().Indicators); n != 12 {
		t.Fatalf("%d indicators after the outage, want 12", n)
	}
	waitFor(t, 10*time.Second, "readyz ok", func() bool {
		code, _ := ta.do(t, "GET", "/readyz", nil, nil)
		return code == http.StatusOK
	})
}

// Wrong credentials pause delivery; nothing is dead-lettered and intake
// keeps storing.
func TestSyncAuthFailurePauses(t *testing.T) {
	tq := threatqtest.NewServer(t)
	cfg := syncConfig(t, tq)
	cfg.ThreatQ.Password = "wrong"
	ta := startAgent(t, cfg)
	ta.mustPost(t, caseMsg(t, "~case", "~c1", "New", 1000))
	for i := range 5 {
		ta.mustPost(t, obsMsg(t, fmt.Sprintf("~a%d", i), "~c1", fmt.Sprintf("~o%d", i), "10.0.0.1", false, 1000))
	}
	var body map[string]any
	waitFor(t, 20*time.Second, "readyz reports auth failure", func() bool {
		var code int
		code, body = ta.do(t, "GET", "/readyz", nil, nil)
		return code == http.StatusServiceUnavailable
	})
	b, _ := json.Marshal(body)
	if !strings.Contains(string(b), "authentication") {
		t.Errorf("readyz body %s does not name the auth failure", b)
	}
	st, _ := ta.Outbox().Stats()
	if st.Dead != 0 || st.Pending != 5 {
		t.Fatalf("pending %d dead %d; want 5 observables pending, 0 dead", st.Pending, st.Dead)
	}

	// The operator fixes the password and reloads (SIGHUP): delivery resumes.
	fixed := cfg
	fixed.ThreatQ.Password = tq.Password
	if err := ta.Reload(fixed); err != nil {
		t.Fatal(err)
	}
	st = ta.waitDrained(t)
	if st.Dead != 0 || len(tq.Snapshot().Indicators) != 1 {
		t.Fatalf("after the fix: dead %d, indicators %d; want 0 and 1", st.Dead, len(tq.Snapshot().Indicators))
	}
}

// /readyz turns degraded when the oldest pending message passes the
// backlog threshold, and says so.
func TestReadyzBacklogAge(t *testing.T) {
	cfg := baseConfig(t) // ThreatQ unreachable: nothing drains
	cfg.MaxBacklogAge = 50 * time.Millisecond
	ta := startAgent(t, cfg)
	if code, _ := ta.do(t, "GET", "/readyz", nil, nil); code != http.StatusOK {
		t.Fatalf("readyz with an empty outbox: %d", code)
	}
	ta.mustPost(t, caseMsg(t, "~a1", "~c1", "New", 1000))
	ta.mustPost(t, obsMsg(t, "~a2", "~c1", "~o1", "10.0.0.1", false, 1000)) // needs ThreatQ: stays pending
	var body map[string]any
	waitFor(t, 10*time.Second, "readyz degraded by backlog age", func() bool {
		var code int
		code, body = ta.do(t, "GET", "/readyz", nil, nil)
		b, _ := json.Marshal(body)
		return code == http.StatusServiceUnavailable && strings.Contains(string(b), "oldest pending message")
	})
}
