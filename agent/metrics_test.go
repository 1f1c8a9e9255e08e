package agent_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tqlabs/tq-mw-thehive/agent"
	"github.com/tqlabs/tq-mw-thehive/mapping"
	"github.com/tqlabs/tq-mw-thehive/threatq/threatqtest"
)

// scrape returns the agent's metrics as "name{labels}" → value.
func scrape(t testing.TB, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

func TestMetricsCountWhatHappened(t *testing.T) {
	tq := threatqtest.NewServer(t)
	ta := startAgent(t, syncConfig(t, tq))
	// Five transient faults on the next indicator writes: each is retried.
	tq.InjectNext("POST /api/indicators/consume", threatqtest.Fault503, 3)
	tq.InjectNext("GET /api/indicators", threatqtest.Fault500, 2)

	ta.mustPost(t, caseMsg(t, "~a0", "~c1", "New", 1000))
	const obs = 6
	for i := range obs {
		ta.mustPost(t, obsMsg(t, fmt.Sprintf("~a%d", i+1), "~c1", fmt.Sprintf("~o%d", i), fmt.Sprintf("10.0.0.%d", i), false, 1000))
	}
	ta.mustPost(t, obsMsg(t, "~a1", "~c1", "~o0", "10.0.0.0", false, 1000)) // a duplicate delivery: 200, not stored
	if code, _ := ta.post(t, "/cases", withField(t, caseMsg(t, "~al", "~x", "New", 1), "objectType", "Alert"), nil); code != 202 {
		t.Fatalf("alert: %d", code)
	}
	if code, _ := ta.post(t, "/cases", []byte(`{`), nil); code != 400 {
		t.Fatalf("bad body: %d", code)
	}
	ta.waitDrained(t)

	m := scrape(t, ta.URL)
	for key, want := range map[string]float64{
		`tq_thehive_webhooks_received_total{code="200",object_type="Case"}`:       1,
		`tq_thehive_webhooks_received_total{code="200",object_type="Observable"}`: obs + 1,
		`tq_thehive_webhooks_received_total{code="202",object_type="Alert"}`:      1,
		`tq_thehive_webhooks_received_total{code="400",object_type="unknown"}`:    1,
		`tq_thehive_upstream_retries_total{service="threatq"}`:                    5,
		`tq_thehive_deliveries_total{result="done"}`:                              obs,
		`tq_thehive_deliveries_total{result="skipped"}`:                           1, // the case, before it had an observable
		`tq_thehive_intake_duration_seconds_count`:                                obs + 4,
	} {
		if got := m[key]; got != want {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
	if m[`tq_thehive_upstream_request_duration_seconds_count{code="200",service="threatq"}`] == 0 {
		t.Error("no ThreatQ request durations recorded")
	}
	// Gauges are refreshed by housekeeping every few seconds.
	waitFor(t, 10*time.Second, "pending gauge at 0", func() bool {
		_, ok := scrape(t, ta.URL)["tq_thehive_outbox_pending"]
		return ok && scrape(t, ta.URL)["tq_thehive_outbox_pending"] == 0
	})
}

// Reload swaps the mapping for messages processed from then on; an invalid
// config is refused and the old one stays.
func TestReloadChangesMapping(t *testing.T) {
	tq := threatqtest.NewServer(t)
	cfg := syncConfig(t, tq)
	ta := startAgent(t, cfg)
	ta.mustPost(t, caseMsg(t, "~a0", "~c1", "New", 1000))
	other := withField(t, withField(t, obsMsg(t, "~a1", "~c1", "~o1", "some-token", false, 1000), "object.dataType", "other"), "_id", "~a1")
	ta.mustPost(t, other)
	ta.waitDrained(t)
	if n := len(tq.Snapshot().Indicators); n != 0 {
		t.Fatalf("%d indicators for an unmapped type before reload", n)
	}

	bad := cfg
	bad.Sync.TLPScheme = "bogus"
	if err := ta.Reload(bad); err == nil {
		t.Fatal("Reload accepted an invalid config")
	}
	custom, err := mapping.ParseTypeMapping("other: String\nip: IP Address\n")
	if err != nil {
		t.Fatal(err)
	}
	good := cfg
	good.Sync.TypeMapping = custom
	if err := ta.Reload(good); err != nil {
		t.Fatal(err)
	}
	ta.mustPost(t, withField(t, withField(t, obsMsg(t, "~a2", "~c1", "~o2", "another-token", false, 1000), "object.dataType", "other"), "_id", "~a2"))
	ta.waitDrained(t)
	snap := tq.Snapshot()
	if len(snap.Indicators) != 1 || snap.Indicators[0].Type != "String" || snap.Indicators[0].Value != "another-token" {
		t.Fatalf("after reload: %+v, want one String indicator", snap.Indicators)
	}
	_ = agent.Config{}
}
