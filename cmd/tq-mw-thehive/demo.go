package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tqlabs/tq-mw-thehive/agent"
	"github.com/tqlabs/tq-mw-thehive/mapping"
	"github.com/tqlabs/tq-mw-thehive/store"
	"github.com/tqlabs/tq-mw-thehive/thehive"
	"github.com/tqlabs/tq-mw-thehive/thehive/thehivetest"
	"github.com/tqlabs/tq-mw-thehive/threatq"
	"github.com/tqlabs/tq-mw-thehive/threatq/threatqtest"
)

var demoCommand = &cli.Command{
	Name:  "demo",
	Usage: "run the agent between a fake TheHive and a fake ThreatQ on loopback and show what arrives",
	Description: "Needs no config. Starts an in-memory TheHive (a few hundred cases) and an in-memory\n" +
		"ThreatQ on loopback ports, the real agent between them in a temporary directory, posts\n" +
		"the manual's two sample webhooks plus generated ones to /cases, runs a backfill, injects\n" +
		"ThreatQ faults (500, 429, dropped connections) on the way, and prints what arrived.\n" +
		"Exits 0 when ThreatQ holds exactly what TheHive has.",
	Flags: append(dirFlags()[:1:1],
		&cli.IntFlag{Name: "cases", Value: 300, Usage: "cases in the fake TheHive"},
		&cli.IntFlag{Name: "webhooks", Value: 60, Usage: "cases whose changes are also posted as webhooks (each: the case and its observables)"},
		&cli.Float64Flag{Name: "fault-rate", Value: 0.1, Usage: "fraction of ThreatQ requests answered with an injected fault"},
		&cli.BoolFlag{Name: "keep-running", Usage: "leave the fakes and the agent up until Ctrl-C, to poke at them with curl"},
		&cli.StringFlag{Name: "dir", Usage: "keep the agent's files (outbox database, admin socket) in `DIR` instead of a temporary directory"},
	),
	OnUsageError: usageError,
	Action:       action(demoAction),
}

func demoAction(c *cli.Context) error {
	v := c.Int("verbosity")
	level := slog.LevelWarn
	if v >= 3 {
		level = slog.LevelDebug
	} else if v == 2 && c.IsSet("verbosity") {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := runDemo(ctx, c.App.Writer, demoOptions{
		Cases: c.Int("cases"), Webhooks: c.Int("webhooks"), FaultRate: c.Float64("fault-rate"),
		KeepRunning: c.Bool("keep-running"), Dir: c.String("dir"), Logger: logger,
	})
	if err != nil {
		return &runtimeError{err: fmt.Errorf("demo: %w", err)}
	}
	if !res.OK {
		return &runtimeError{err: errors.New("demo: ThreatQ does not hold what TheHive has (see above)")}
	}
	return nil
}

type demoOptions struct {
	Cases, Webhooks int
	FaultRate       float64
	KeepRunning     bool
	Dir             string
	Logger          *slog.Logger
}

// demoResult is what the demo printed, for its test.
type demoResult struct {
	OK               bool
	Events           int
	Indicators       int
	IndicatorsByType map[string]int
	WantEvents       int
	WantIndicators   int
	Posted           map[string]int // stored, duplicate, ignored
	Faults           int
	Dead             int
	ThreatQ          *threatqtest.Server
	TheHive          *thehivetest.Server
	ThreatQRequests  int
	BackfillSummary  agent.Summary
}

// The manual's two samples are embedded so the demo needs no files.
var (
	sampleCase       = mustReadSample("webhook-case-update.json")
	sampleObservable = mustReadSample("webhook-observable-update.json")
)

func runDemo(ctx context.Context, w io.Writer, o demoOptions) (*demoResult, error) {
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "tq-mw-thehive-demo-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}

	const apiKey = "demo-api-key"
	th := thehivetest.New(thehivetest.Options{Cases: o.Cases, ObservablesPerCase: 3, Seed: 42, APIKey: apiKey, SameTimestampEvery: 4})
	if err := th.Start("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start fake TheHive: %w", err)
	}
	defer th.Close()
	tq := threatqtest.New(threatqtest.Config{Seed: 42})
	if err := tq.Start("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start fake ThreatQ: %w", err)
	}
	defer tq.Close()
	tq.SetFaults(threatqtest.Faults{Rate500: o.FaultRate * 0.4, Rate429: o.FaultRate * 0.2, RateDrop: o.FaultRate * 0.2, RateDropAfterCommit: o.FaultRate * 0.2})

	cfg := agent.Config{
		DBPath:      filepath.Join(dir, dbFileName),
		ListenAddr:  "127.0.0.1:0",
		AdminSocket: filepath.Join(dir, socketFileName),
		ThreatQ: threatq.Config{BaseURL: tq.URL, ClientID: tq.ClientID, Email: tq.Email, Password: tq.Password,
			RetryWaitMin: 10 * time.Millisecond, RetryWaitMax: 200 * time.Millisecond,
			// The fake applies a write at once or never (no slow faults here).
			SettleTime: 100 * time.Millisecond},
		TheHive:   thehive.Config{URL: th.URL, APIKey: apiKey, RetryWaitMin: 10 * time.Millisecond, RetryWaitMax: 200 * time.Millisecond},
		RetryBase: 50 * time.Millisecond, RetryMax: time.Second,
		Workers: 16,
		Logger:  o.Logger,
	}
	a, err := agent.New(cfg)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(actx) }()
	select {
	case <-a.Ready():
	case err := <-done:
		return nil, err
	}
	defer func() { cancel(); <-done }()
	base := "http://" + a.Addr().String()
	fmt.Fprintf(w, "fake TheHive  %s  (%d cases, 3 observables each)\n", th.URL, th.Len())
	fmt.Fprintf(w, "fake ThreatQ  %s  (%.0f%% of requests get an injected fault)\n", tq.URL, o.FaultRate*100)
	fmt.Fprintf(w, "agent         %s/cases  (outbox %s)\n\n", base, cfg.DBPath)

	res := &demoResult{Posted: map[string]int{}, ThreatQ: tq, TheHive: th}
	bodies := demoWebhooks(th, o.Webhooks)
	fmt.Fprintf(w, "posting %d webhooks (the manual's two samples, generated case and observable updates, a TheHive 3-shape one, a repeat, an alert, a delete)...\n", len(bodies))
	for _, b := range bodies {
		status, err := postWebhook(ctx, base+"/cases", b)
		if err != nil {
			return nil, err
		}
		res.Posted[status]++
	}
	if err := waitDrained(ctx, a.Outbox()); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "running a backfill of every TheHive case...\n")
	sum, err := a.Backfill(ctx, agent.BackfillOptions{PageSize: 50, RetryBase: 20 * time.Millisecond, Attempts: 20})
	if err != nil {
		return nil, fmt.Errorf("backfill: %w", err)
	}
	res.BackfillSummary = sum
	if err := waitDrained(ctx, a.Outbox()); err != nil {
		return nil, err
	}
	tq.SetFaults(threatqtest.Faults{})

	st, err := a.Outbox().Stats()
	if err != nil {
		return nil, err
	}
	res.Dead = st.Dead
	snap := tq.Snapshot()
	res.Events, res.Indicators = len(snap.Events), len(snap.Indicators)
	res.ThreatQRequests = snap.Total
	res.IndicatorsByType = map[string]int{}
	for _, ind := range snap.Indicators {
		res.IndicatorsByType[ind.Type]++
	}
	for _, r := range tq.Requests() {
		if r.Fault != "" {
			res.Faults++
		}
	}
	wantEvents, wantIndicators := expectedThreatQ(th)
	// Plus the manual's sample case and its SHA-1 observable, which only
	// exist as webhooks.
	wantEvents, wantIndicators = wantEvents+1, wantIndicators+1
	res.WantEvents, res.WantIndicators = wantEvents, wantIndicators
	dupes := duplicateCount(snap)
	res.OK = res.Events == wantEvents && res.Indicators == wantIndicators && res.Dead == 0 && dupes == 0

	fmt.Fprintf(w, "\nwebhooks: %d stored, %d duplicate, %d ignored\n", res.Posted["stored"], res.Posted["duplicate"], res.Posted["ignored"])
	fmt.Fprintf(w, "backfill: %d cases, %d observables: %d created, %d updated, %d unchanged, %d skipped, %d failed\n\n",
		sum.Cases, sum.Observables, sum.Created, sum.Updated, sum.Unchanged, sum.Skipped, sum.Failed)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "IN THREATQ\tCOUNT\tEXPECTED\n")
	fmt.Fprintf(tw, "events\t%d\t%d\n", res.Events, wantEvents)
	fmt.Fprintf(tw, "indicators\t%d\t%d\n", res.Indicators, wantIndicators)
	types := make([]string, 0, len(res.IndicatorsByType))
	for t := range res.IndicatorsByType {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		fmt.Fprintf(tw, "  %s\t%d\t\n", t, res.IndicatorsByType[t])
	}
	fmt.Fprintf(tw, "duplicate objects or attribute values\t%d\t0\n", dupes)
	fmt.Fprintf(tw, "injected ThreatQ faults (all retried)\t%d\t\n", res.Faults)
	fmt.Fprintf(tw, "ThreatQ requests\t%d\t\n", res.ThreatQRequests)
	fmt.Fprintf(tw, "dead letters\t%d\t0\n", res.Dead)
	tw.Flush()
	if sample := findEvent(snap, "Hive Case #~43872472 Hamsters Test"); sample != nil {
		fmt.Fprintf(w, "\nthe manual's sample case became event %d %q with attributes:\n", sample.ID, sample.Title)
		for _, at := range sample.Attributes {
			fmt.Fprintf(w, "  %-12s %s\n", at.Name, at.Value)
		}
	}
	if res.OK {
		fmt.Fprintf(w, "\nOK: ThreatQ holds every case and observable of TheHive, once.\n")
	} else {
		fmt.Fprintf(w, "\nMISMATCH: ThreatQ does not hold what TheHive has.\n")
	}
	self := os.Args[0]
	if o.KeepRunning || o.Dir != "" {
		fmt.Fprintf(w, "\nlook closer:\n  %s outbox stats -c %s\n  %s outbox list --state done --limit 5 -c %s\n  %s outbox show 2 -c %s\n",
			self, dir, self, dir, self, dir)
	}
	if o.KeepRunning {
		fmt.Fprintf(w, "  curl %s/metrics\n  curl %s/readyz\n  curl -H 'Content-Type: application/json' --data @testdata/webhook-case-update.json %s/cases\n", base, base, base)
		fmt.Fprintf(w, "\neverything stays up (--keep-running); Ctrl-C to stop.\n")
		<-ctx.Done()
	} else {
		fmt.Fprintf(w, "\nthe fakes and the agent stop now; run \"%s demo --keep-running\" to poke at them (outbox commands, /metrics, /readyz, curl).\n", self)
	}
	return res, nil
}

func mustReadSample(name string) []byte {
	b, err := demoSamples.ReadFile("testdata/" + name)
	if err != nil {
		panic(err)
	}
	return b
}

type auditMessage struct {
	ID           string            `json:"_id"`
	Type         string            `json:"_type"`
	CreatedAt    int64             `json:"_createdAt"`
	Action       string            `json:"action"`
	ObjectType   string            `json:"objectType"`
	ObjectID     string            `json:"objectId"`
	RootID       string            `json:"rootId"`
	Object       any               `json:"object,omitempty"`
	Organisation map[string]string `json:"organisation"`
}

// demoWebhooks builds what TheHive would post for the first n cases.
func demoWebhooks(th *thehivetest.Server, n int) [][]byte {
	org := map[string]string{"organisationId": "~1", "organisation": "demo"}
	out := [][]byte{sampleCase, sampleObservable}
	seq := 0
	add := func(m auditMessage) {
		seq++
		m.ID, m.Type, m.Organisation = fmt.Sprintf("~demo%d", seq), "Audit", org
		b, _ := json.Marshal(m)
		out = append(out, b)
	}
	cases := th.Cases()
	for i := 0; i < n && i < len(cases); i++ {
		c := cases[i]
		add(auditMessage{CreatedAt: c.Modified(), Action: "update", ObjectType: "Case", ObjectID: c.ID, RootID: c.ID, Object: c})
		for _, ob := range th.Observables(c.ID) {
			add(auditMessage{CreatedAt: ob.Modified(), Action: "create", ObjectType: "Observable", ObjectID: ob.ID, RootID: c.ID, Object: ob})
		}
	}
	out = append(out, sampleCase) // a repeat delivery of the same audit: stored once
	add(auditMessage{Action: "create", ObjectType: "Alert", ObjectID: "~alert1", RootID: "~alert1", Object: map[string]any{"_id": "~alert1"}})
	if len(cases) > 0 {
		add(auditMessage{Action: "delete", ObjectType: "Observable", ObjectID: "~gone", RootID: cases[0].ID})
	}
	// The TheHive 3-compatible shape (webhook version 0 on older setups).
	out = append(out, []byte(`{"_type":"audit","operation":"Update","objectType":"case","objectId":"~43872472","rootId":"~43872472",
	  "base":true,"startDate":1751886507808,"requestId":"demo-v0",
	  "object":{"_id":"~43872472","id":"~43872472","caseId":5984,"title":"Hamsters Test","description":"Test integration with ThreatQ",
	    "severity":3,"tlp":1,"pap":1,"flag":false,"status":"New","owner":"thehive@thehive.local","tags":["utility"],
	    "startDate":1751456989469,"createdAt":1751457012174,"updatedAt":1751886507804},
	  "organisationId":"~4980800","organisation":"demo"}`))
	return out
}

func postWebhook(ctx context.Context, url string, body []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("post webhook: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode >= 300 {
		return "", fmt.Errorf("post webhook: %d %s", resp.StatusCode, out.Error)
	}
	return out.Status, nil
}

func waitDrained(ctx context.Context, db *store.DB) error {
	for {
		st, err := db.Stats()
		if err != nil {
			return err
		}
		if st.Pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// expectedThreatQ is what ThreatQ must hold after a full sync with the
// default options, computed from the fake TheHive alone.
func expectedThreatQ(th *thehivetest.Server) (events, indicators int) {
	evs, inds := map[string]bool{}, map[string]bool{}
	for _, c := range th.Cases() {
		for _, ob := range th.Observables(c.ID) {
			ind, skip := mapping.Indicator(&ob, mapping.Options{})
			if skip != nil {
				continue
			}
			evs[c.ID] = true
			inds[ind.Type+"|"+ind.Value] = true
		}
	}
	return len(evs), len(inds)
}

// duplicateCount counts objects stored twice and attributes with more than
// one value: both are what the agent's idempotency must prevent.
func duplicateCount(s threatqtest.Snapshot) int {
	n := 0
	titles := map[string]bool{}
	for _, ev := range s.Events {
		if titles[ev.Title] {
			n++
		}
		titles[ev.Title] = true
		n += multiValued(ev)
	}
	keys := map[string]bool{}
	for _, ind := range s.Indicators {
		k := ind.Type + "|" + ind.Value
		if keys[k] {
			n++
		}
		keys[k] = true
		n += multiValued(ind)
	}
	return n
}

func multiValued(o threatqtest.Object) int {
	seen := map[string]int{}
	n := 0
	for _, a := range o.Attributes {
		if seen[a.Name]++; seen[a.Name] == 2 {
			n++
		}
	}
	return n
}

func findEvent(s threatqtest.Snapshot, title string) *threatqtest.Object {
	for i := range s.Events {
		if s.Events[i].Title == title {
			return &s.Events[i]
		}
	}
	return nil
}
