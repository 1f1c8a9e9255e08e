package agent_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tqlabs/tq-mw-thehive/agent"
	"github.com/tqlabs/tq-mw-thehive/mapping"
	"github.com/tqlabs/tq-mw-thehive/thehive"
	"github.com/tqlabs/tq-mw-thehive/thehive/thehivetest"
	"github.com/tqlabs/tq-mw-thehive/threatq/threatqtest"
)

func withTheHive(cfg agent.Config, th *thehivetest.Server, key string) agent.Config {
	cfg.TheHive = thehive.Config{URL: th.URL, APIKey: key, RetryMax: 6,
		RetryWaitMin: 5 * time.Millisecond, RetryWaitMax: 50 * time.Millisecond, Timeout: 5 * time.Second}
	return cfg
}

// expected computes, from the fake TheHive's own state, what ThreatQ must
// hold after a full sync with opts: one Event per case with a syncable
// observable, one Indicator per distinct value/type.
func expected(th *thehivetest.Server, opts mapping.Options) (events map[string]bool, indicators map[string]bool) {
	events, indicators = map[string]bool{}, map[string]bool{}
	for _, c := range th.Cases() {
		for _, o := range th.Observables(c.ID) {
			ind, skip := mapping.Indicator(&o, opts)
			if skip != nil {
				continue
			}
			events[mapping.Title(&c)] = true
			indicators[ind.Type+"|"+ind.Value] = true
		}
		if opts.IncludeCasesWithoutObservables {
			events[mapping.Title(&c)] = true
		}
	}
	return events, indicators
}

// checkThreatQ asserts that tq holds exactly the expected objects, each
// once, with one value per attribute.
func checkThreatQ(t *testing.T, tq *threatqtest.Server, events, indicators map[string]bool) {
	t.Helper()
	snap := tq.Snapshot()
	seen := map[string]int{}
	for _, ev := range snap.Events {
		seen[ev.Title]++
		for name, vals := range attrs(ev) {
			if len(vals) != 1 {
				t.Errorf("event %q: attribute %q has values %v", ev.Title, name, vals)
			}
		}
	}
	for title := range events {
		if seen[title] != 1 {
			t.Errorf("event %q is in ThreatQ %d times, want once", title, seen[title])
		}
	}
	if len(snap.Events) != len(events) {
		t.Errorf("%d events in ThreatQ, want %d", len(snap.Events), len(events))
	}
	seenInd := map[string]int{}
	for _, ind := range snap.Indicators {
		seenInd[ind.Type+"|"+ind.Value]++
		if len(ind.Related["events"]) == 0 {
			t.Errorf("indicator %s is related to no event", ind.Value)
		}
	}
	for k := range indicators {
		if seenInd[k] != 1 {
			t.Errorf("indicator %s is in ThreatQ %d times, want once", k, seenInd[k])
		}
	}
	if len(snap.Indicators) != len(indicators) {
		t.Errorf("%d indicators in ThreatQ, want %d", len(snap.Indicators), len(indicators))
	}
}

func TestBackfillCoversEverything(t *testing.T) {
	for _, pageSize := range []int{1, 7, 100} {
		t.Run(fmt.Sprintf("page=%d", pageSize), func(t *testing.T) {
			th := thehivetest.NewServer(t, thehivetest.Options{Cases: 60, ObservablesPerCase: 3, Seed: 3, APIKey: "k", SameTimestampEvery: 5})
			tq := threatqtest.NewServer(t)
			cfg := withTheHive(syncConfig(t, tq), th, "k")
			var total atomic.Int64
			sum, err := agent.Backfill(t.Context(), cfg, agent.BackfillOptions{PageSize: pageSize, Total: func(n int64) { total.Store(n) }})
			if err != nil {
				t.Fatalf("backfill: %v (summary %+v)", err, sum)
			}
			if sum.Cases != 60 || sum.Observables != 180 || total.Load() != 60 {
				t.Errorf("summary %+v, total %d; want 60 cases, 180 observables", sum, total.Load())
			}
			events, indicators := expected(th, cfg.Sync)
			checkThreatQ(t, tq, events, indicators)

			// A second run fetches only what changed since: nothing to write.
			before := tq.Snapshot().Total
			sum, err = agent.Backfill(t.Context(), cfg, agent.BackfillOptions{PageSize: pageSize})
			if err != nil {
				t.Fatal(err)
			}
			if d := tq.Snapshot().Total - before; d != 0 {
				t.Errorf("an incremental rerun made %d ThreatQ requests (summary %+v), want 0", d, sum)
			}
		})
	}
}

// Cases created and updated while the backfill runs still reach ThreatQ at
// their latest state (the next walk picks up what the current one passed).
func TestBackfillSeesChangesDuringRun(t *testing.T) {
	th := thehivetest.NewServer(t, thehivetest.Options{Cases: 40, ObservablesPerCase: 2, Seed: 5, APIKey: "k"})
	tq := threatqtest.NewServer(t)
	cfg := withTheHive(syncConfig(t, tq), th, "k")
	cfg.Sync.IncludeCasesWithoutObservables = true
	first := th.Cases()[0].ID
	pages := 0
	opts := agent.BackfillOptions{PageSize: 5, Progress: func(agent.Progress) {
		pages++
		if pages == 3 {
			th.UpdateCase(first, func(c *thehive.Case) { c.Title = "renamed during backfill" })
			th.AddCase(thehive.Case{Title: "born during backfill", Status: "New", Severity: 2, TLP: 2, PAP: 2})
		}
	}}
	if _, err := agent.Backfill(t.Context(), cfg, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.Backfill(t.Context(), cfg, agent.BackfillOptions{PageSize: 5}); err != nil {
		t.Fatal(err)
	}
	snap := tq.Snapshot()
	found := map[string]bool{}
	for _, ev := range snap.Events {
		found[ev.Title] = true
	}
	c, _ := th.Case(first)
	if !found[mapping.Title(&c)] {
		t.Errorf("the case renamed during the backfill is not in ThreatQ under its new title %q", mapping.Title(&c))
	}
	if len(snap.Events) != 41 {
		t.Errorf("%d events, want 41 (40 + one created during the run; a rename updates in place)", len(snap.Events))
	}
}

func TestBackfillResumesAfterInterruption(t *testing.T) {
	th := thehivetest.NewServer(t, thehivetest.Options{Cases: 80, ObservablesPerCase: 2, Seed: 9, APIKey: "k"})
	tq := threatqtest.NewServer(t)
	cfg := withTheHive(syncConfig(t, tq), th, "k")
	ctx, cancel := context.WithCancel(t.Context())
	pages := 0
	_, err := agent.Backfill(ctx, cfg, agent.BackfillOptions{PageSize: 10, Progress: func(agent.Progress) {
		if pages++; pages == 3 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted backfill returned %v, want context.Canceled", err)
	}
	before := th.Stats().Queries
	sum, err := agent.Backfill(t.Context(), cfg, agent.BackfillOptions{PageSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	// Resumed after page 3: at most one page of cases is walked again.
	if sum.Cases > 80-30+10 {
		t.Errorf("resumed run walked %d cases, want at most %d", sum.Cases, 80-30+10)
	}
	_ = before
	events, indicators := expected(th, cfg.Sync)
	checkThreatQ(t, tq, events, indicators)
}

func TestBackfillUnderFaults(t *testing.T) {
	th := thehivetest.NewServer(t, thehivetest.Options{Cases: 50, ObservablesPerCase: 3, Seed: 11, APIKey: "k"})
	th.SetFaults(thehivetest.Faults{ErrorRate: 0.1, RateLimitRate: 0.1, SlowRate: 0.05, SlowDelay: 20 * time.Millisecond, TruncateRate: 0.05})
	tq := threatqtest.NewServer(t, threatqtest.WithSeed(3))
	tq.SetFaults(threatqtest.Faults{Rate500: 0.08, Rate429: 0.08, RateDrop: 0.05, RateDropAfterCommit: 0.05})
	cfg := withTheHive(syncConfig(t, tq), th, "k")
	sum, err := agent.Backfill(t.Context(), cfg, agent.BackfillOptions{PageSize: 7, RetryBase: 5 * time.Millisecond, Attempts: 20})
	if err != nil {
		t.Fatalf("backfill under faults: %v (summary %+v)", err, sum)
	}
	th.SetFaults(thehivetest.Faults{})
	tq.SetFaults(threatqtest.Faults{})
	events, indicators := expected(th, cfg.Sync)
	checkThreatQ(t, tq, events, indicators)
}

// A case seen by webhook and by backfill is in ThreatQ once; an
// observable whose case the store never saw creates the case's Event from
// TheHive.
func TestWebhookAndBackfillMeet(t *testing.T) {
	th := thehivetest.NewServer(t, thehivetest.Options{Cases: 10, ObservablesPerCase: 2, Seed: 13, APIKey: "k"})
	tq := threatqtest.NewServer(t)
	cfg := withTheHive(syncConfig(t, tq), th, "k")
	c := th.Cases()[4]
	ta := startAgent(t, cfg)
	// An observable webhook for a case the agent never heard of.
	o, err := th.AddObservable(c.ID, thehive.Observable{DataType: "domain", Data: "evil.example", TLP: 2, PAP: 2})
	if err != nil {
		t.Fatal(err)
	}
	ta.mustPost(t, withField(t, obsMsg(t, "~w1", c.ID, o.ID, "evil.example", false, o.CreatedAt), "object.dataType", "domain"))
	ta.waitDrained(t)
	if st := th.Stats(); st.CaseGets == 0 {
		t.Error("the unknown case was not fetched from TheHive")
	}
	snap := tq.Snapshot()
	if len(snap.Events) != 1 || snap.Events[0].Title != mapping.Title(&c) {
		t.Fatalf("events %+v, want the fetched case %q", snap.Events, mapping.Title(&c))
	}
	ta.stop()
	if _, err := agent.Backfill(t.Context(), cfg, agent.BackfillOptions{PageSize: 3}); err != nil {
		t.Fatal(err)
	}
	events, indicators := expected(th, cfg.Sync)
	checkThreatQ(t, tq, events, indicators)
}

func TestBackfillDryRunWritesNothing(t *testing.T) {
	th := thehivetest.NewServer(t, thehivetest.Options{Cases: 20, ObservablesPerCase: 2, Seed: 1, APIKey: "k"})
	tq := threatqtest.NewServer(t)
	cfg := withTheHive(syncConfig(t, tq), th, "k")
	sum, err := agent.Backfill(t.Context(), cfg, agent.BackfillOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Cases != 20 || sum.Observables != 40 {
		t.Errorf("dry run summary %+v", sum)
	}
	if n := tq.Snapshot().Total; n != 0 {
		t.Errorf("dry run made %d ThreatQ requests", n)
	}
	// And left no checkpoint: a real run walks everything.
	sum, err = agent.Backfill(t.Context(), cfg, agent.BackfillOptions{})
	if err != nil || sum.Cases != 20 {
		t.Fatalf("real run after dry run: %+v, %v", sum, err)
	}
}

// `run` reconciles periodically: cases that never arrived by webhook reach
// ThreatQ, and a later change is picked up by the next run.
func TestPeriodicReconcile(t *testing.T) {
	th := thehivetest.NewServer(t, thehivetest.Options{Cases: 15, ObservablesPerCase: 2, Seed: 17, APIKey: "k"})
	tq := threatqtest.NewServer(t)
	cfg := withTheHive(syncConfig(t, tq), th, "k")
	cfg.ReconcileInterval = 200 * time.Millisecond
	cfg.Sync.IncludeCasesWithoutObservables = true
	ta := startAgent(t, cfg)
	waitFor(t, 30*time.Second, "the first reconcile to sync every case", func() bool { return len(tq.Snapshot().Events) == 15 })
	c := th.Cases()[3]
	updated, err := th.UpdateCase(c.ID, func(c *thehive.Case) { c.Status = "Closed" })
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a later reconcile to pick up the change", func() bool {
		for _, ev := range tq.Snapshot().Events {
			if ev.Title == mapping.Title(&updated) {
				return slices.Equal(ev.Values("Status"), []string{"Closed"})
			}
		}
		return false
	})
	if n := len(tq.Snapshot().Events); n != 15 {
		t.Errorf("%d events after the update, want 15", n)
	}
	m := scrape(t, ta.URL)
	if m["tq_thehive_reconcile_last_success_timestamp_seconds"] == 0 {
		t.Error("reconcile_last_success metric not set")
	}
}

// A TheHive that keeps failing stops the backfill with a clear error and
// the checkpoint of the last complete page; the rerun picks up from there.
func TestBackfillStopsOnPersistentTheHiveFailure(t *testing.T) {
	th := thehivetest.NewServer(t, thehivetest.Options{Cases: 40, ObservablesPerCase: 1, Seed: 23, APIKey: "k"})
	tq := threatqtest.NewServer(t)
	cfg := withTheHive(syncConfig(t, tq), th, "k")
	cfg.TheHive.RetryMax = 2
	pages := 0
	_, err := agent.Backfill(t.Context(), cfg, agent.BackfillOptions{PageSize: 10, Progress: func(agent.Progress) {
		if pages++; pages == 2 {
			th.SetFaults(thehivetest.Faults{ErrorRate: 1})
		}
	}})
	if err == nil || !strings.Contains(err.Error(), "checkpoint kept") {
		t.Fatalf("backfill against a failing TheHive returned %v, want an error saying the checkpoint is kept", err)
	}
	th.SetFaults(thehivetest.Faults{})
	sum, err := agent.Backfill(t.Context(), cfg, agent.BackfillOptions{PageSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Cases > 40-20 {
		t.Errorf("the rerun walked %d cases; the first run had completed 2 pages of 10, so at most 20 remain", sum.Cases)
	}
	events, indicators := expected(th, cfg.Sync)
	checkThreatQ(t, tq, events, indicators)
}

// ThreatQ down for longer than the backfill's retries: the run stops with
// the page's checkpoint unsaved, and the rerun syncs everything (nothing is
// passed over as "failed").
func TestBackfillStopsWhileThreatQIsDown(t *testing.T) {
	th := thehivetest.NewServer(t, thehivetest.Options{Cases: 30, ObservablesPerCase: 2, Seed: 29, APIKey: "k"})
	tq := threatqtest.NewServer(t)
	cfg := withTheHive(syncConfig(t, tq), th, "k")
	pages := 0
	_, err := agent.Backfill(t.Context(), cfg, agent.BackfillOptions{PageSize: 10, Attempts: 2, RetryBase: time.Millisecond,
		Progress: func(agent.Progress) {
			if pages++; pages == 1 {
				tq.SetDown(true)
			}
		}})
	if err == nil || !strings.Contains(err.Error(), "checkpoint kept") {
		t.Fatalf("backfill with ThreatQ down returned %v, want a stop with the checkpoint kept", err)
	}
	tq.SetDown(false)
	sum, err := agent.Backfill(t.Context(), cfg, agent.BackfillOptions{PageSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Cases != 20 || sum.Failed != 0 {
		t.Errorf("rerun: %+v, want the 20 cases after the first page, none failed", sum)
	}
	events, indicators := expected(th, cfg.Sync)
	checkThreatQ(t, tq, events, indicators)
}

// Each organisation, and a --since walk, keeps its own checkpoint.
func TestBackfillCheckpointsPerWalk(t *testing.T) {
	th := thehivetest.NewServer(t, thehivetest.Options{Cases: 12, ObservablesPerCase: 1, Seed: 31, APIKey: "k"})
	tq := threatqtest.NewServer(t)
	cfg := withTheHive(syncConfig(t, tq), th, "k")
	since := time.Now().Add(-time.Hour) // after every generated case: the --since walk finds none
	if sum, err := agent.Backfill(t.Context(), cfg, agent.BackfillOptions{Since: since}); err != nil || sum.Cases != 0 {
		t.Fatalf("--since walk: %+v, %v", sum, err)
	}
	// The full backfill is not mistaken for the finished --since walk.
	if sum, err := agent.Backfill(t.Context(), cfg, agent.BackfillOptions{}); err != nil || sum.Cases != 12 {
		t.Fatalf("full backfill after a --since walk: %+v, %v; want all 12 cases", sum, err)
	}
}
