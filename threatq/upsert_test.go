package threatq_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tqlabs/tq-mw-thehive/threatq"
	"github.com/tqlabs/tq-mw-thehive/threatq/threatqtest"
)

func sampleEvent(kind threatq.Kind) threatq.Event {
	return threatq.Event{
		Kind:        kind,
		Title:       "Hive Case #~4387 Hamsters Test",
		Description: "hamsters everywhere",
		HappenedAt:  time.Date(2025, 7, 7, 10, 0, 0, 0, time.UTC),
		Tags:        []string{"hamster", "test"},
		Source:      threatq.Source{Name: threatq.SourceName, TLP: "AMBER"},
		TheHiveID:   "~4387",
		Attributes: []threatq.Attribute{
			{Name: "Status", Value: "New"},
			{Name: "Severity", Value: "MEDIUM"},
			{Name: "PAP", Value: "AMBER"},
		},
	}
}

func attrMap(o threatqtest.Object) map[string][]string {
	m := map[string][]string{}
	for _, a := range o.Attributes {
		m[a.Name] = append(m[a.Name], a.Value)
	}
	return m
}

func TestUpsertEventCreateThenUpdate(t *testing.T) {
	s := threatqtest.NewServer(t)
	c := newClient(t, s)
	ctx := context.Background()
	ev := sampleEvent(threatq.KindEvent)

	id, created, err := c.UpsertEvent(ctx, ev, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !created || id <= 0 {
		t.Fatalf("created=%v id=%d", created, id)
	}
	snap := s.Snapshot()
	if len(snap.Events) != 1 {
		t.Fatalf("events = %d", len(snap.Events))
	}
	got := snap.Events[0]
	want := threatqtest.Object{
		ID: id, Title: ev.Title, Type: "Incident", Description: ev.Description, HappenedAt: "2025-07-07 10:00:00",
		Tags:    []string{"hamster", "test"},
		Sources: []threatqtest.Source{{Name: "TheHive", TLPID: 2}},
	}
	if diff := cmp.Diff(want, got, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Attributes" }, cmp.Ignore())); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	wantAttrs := map[string][]string{"TheHive Id": {"~4387"}, "Status": {"New"}, "Severity": {"MEDIUM"}, "PAP": {"AMBER"}}
	if diff := cmp.Diff(wantAttrs, attrMap(got)); diff != "" {
		t.Errorf("attributes (-want +got):\n%s", diff)
	}
	// The create path is the type lookup, the event lookup, the create and
	// the tags.
	if got := countWhere(s, "POST", "/api/events", ""); got != 1 {
		t.Errorf("creates = %d", got)
	}

	// Update: one attribute changes, one tag is added, TLP changes.
	ev.Attributes[0].Value = "InProgress"
	ev.Tags = append(ev.Tags, "escalated")
	ev.Description = "more hamsters"
	ev.Source.TLP = "RED"
	s.ResetRequests()
	before := c.Requests()
	id2, created, err := c.UpsertEvent(ctx, ev, id)
	if err != nil {
		t.Fatal(err)
	}
	if id2 != id || created {
		t.Errorf("update: id=%d created=%v, want %d false", id2, created, id)
	}
	got = s.Snapshot().Events[0]
	wantAttrs["Status"] = []string{"InProgress"}
	if diff := cmp.Diff(wantAttrs, attrMap(got)); diff != "" {
		t.Errorf("attributes after update (-want +got):\n%s", diff)
	}
	if got.Description != "more hamsters" || !slices.Contains(got.Tags, "escalated") || got.Sources[0].TLPID != 1 {
		t.Errorf("after update: %+v", got)
	}
	counts, _ := s.Counts()
	wantCounts := map[string]int{
		"GET /api/events/{id}":                  1,
		"PUT /api/events/{id}":                  1,
		"PUT /api/events/{id}/attributes/{aid}": 1, // only Status
		"POST /api/events/{id}/tags":            1,
		"POST /api/events/{id}/sources":         1,
	}
	if diff := cmp.Diff(wantCounts, counts); diff != "" {
		t.Errorf("update requests (-want +got):\n%s", diff)
	}
	if n := c.Requests() - before; n != 5 {
		t.Errorf("update sent %d requests, want 5", n)
	}

	// Unchanged: a single GET.
	s.ResetRequests()
	if _, _, err := c.UpsertEvent(ctx, ev, id); err != nil {
		t.Fatal(err)
	}
	if _, total := s.Counts(); total != 1 {
		t.Errorf("no-op update sent %d requests, want 1", total)
	}
}

func TestUpsertEventReplacesDuplicateValues(t *testing.T) {
	s := threatqtest.NewServer(t)
	c := newClient(t, s)
	ctx := context.Background()
	ev := sampleEvent(threatq.KindEvent)
	id, _, err := c.UpsertEvent(ctx, ev, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Someone (or an old consume) left a second Status value.
	postAttr(t, s, "events", id, "Status", "Stale")
	ev.Attributes[0].Value = "Resolved"
	if _, _, err := c.UpsertEvent(ctx, ev, id); err != nil {
		t.Fatal(err)
	}
	if got := s.Snapshot().Events[0].Values("Status"); !slices.Equal(got, []string{"Resolved"}) {
		t.Errorf("Status values = %q, want [Resolved]", got)
	}
}

func TestUpsertIncident(t *testing.T) {
	s := threatqtest.NewServer(t)
	c := newClient(t, s)
	ctx := context.Background()
	ev := sampleEvent(threatq.KindIncident)
	id, created, err := c.UpsertEvent(ctx, ev, 0)
	if err != nil || !created {
		t.Fatalf("create: %v created=%v", err, created)
	}
	snap := s.Snapshot()
	if len(snap.Events) != 0 || len(snap.Incidents) != 1 {
		t.Fatalf("events=%d incidents=%d", len(snap.Events), len(snap.Incidents))
	}
	if inc := snap.Incidents[0]; inc.Value != ev.Title || inc.Values("TheHive Id")[0] != "~4387" || inc.Sources[0].TLPID != 2 {
		t.Errorf("incident = %+v", inc)
	}
	// Lost link: the lookup by value finds it.
	ev.Attributes[1].Value = "HIGH"
	id2, created, err := c.UpsertEvent(ctx, ev, 0)
	if err != nil || created || id2 != id {
		t.Fatalf("second upsert: id=%d created=%v err=%v", id2, created, err)
	}
	if got := s.Snapshot().Incidents[0].Values("Severity"); !slices.Equal(got, []string{"HIGH"}) {
		t.Errorf("Severity = %q", got)
	}
	if got := countWhere(s, "GET", "/api/incident", "value="); got != 2 {
		t.Errorf("incident lookups = %d, want 2", got)
	}
}

func TestUpsertEventLookupBeforeCreate(t *testing.T) {
	s := threatqtest.NewServer(t)
	c := newClient(t, s)
	ctx := context.Background()
	ev := sampleEvent(threatq.KindEvent)
	id1, created1, err := c.UpsertEvent(ctx, ev, 0)
	if err != nil {
		t.Fatal(err)
	}
	id2, created2, err := c.UpsertEvent(ctx, ev, 0)
	if err != nil {
		t.Fatal(err)
	}
	if id1 != id2 || !created1 || created2 {
		t.Errorf("ids %d/%d created %v/%v", id1, id2, created1, created2)
	}
	// Same title, another case: a different event, never merged.
	other := ev
	other.TheHiveID = "~9999"
	id3, created3, err := c.UpsertEvent(ctx, other, 0)
	if err != nil || !created3 || id3 == id1 {
		t.Errorf("other case: id=%d created=%v err=%v", id3, created3, err)
	}
	// A stale stored id (404) falls back to the lookup.
	id4, created4, err := c.UpsertEvent(ctx, ev, 12345)
	if err != nil || created4 || id4 != id1 {
		t.Errorf("stale id: id=%d created=%v err=%v", id4, created4, err)
	}
	if got := len(s.Snapshot().Events); got != 2 {
		t.Errorf("events = %d, want 2", got)
	}
}

func TestUpsertIndicatorCreateWithRelation(t *testing.T) {
	s := threatqtest.NewServer(t)
	c := newClient(t, s)
	ctx := context.Background()
	evID, _, err := c.UpsertEvent(ctx, sampleEvent(threatq.KindEvent), 0)
	if err != nil {
		t.Fatal(err)
	}
	ind := threatq.Indicator{
		Value: "evil.example.com", Type: "FQDN", Description: "unknown signature",
		Tags:   []string{"c2"},
		Source: threatq.Source{Name: "TheHive", TLP: "GREEN"},
		Attributes: []threatq.Attribute{
			{Name: "PAP", Value: "AMBER"}, {Name: "Sighted?", Value: "No"}, {Name: "Indicator Of Compromise?", Value: "Yes"},
		},
		Related: &threatq.Ref{Kind: threatq.KindEvent, ID: evID},
	}
	before := c.Requests()
	id, created, err := c.UpsertIndicator(ctx, ind, 0, false)
	if err != nil || !created {
		t.Fatalf("create: %v created=%v", err, created)
	}
	// type table, lookup, consume, tags
	if n := c.Requests() - before; n != 4 {
		t.Errorf("create sent %d requests, want 4", n)
	}
	snap := s.Snapshot()
	want := threatqtest.Object{
		ID: id, Value: "evil.example.com", Type: "FQDN", Status: "Review", Description: "unknown signature",
		Attributes: []threatqtest.Attribute{{Name: "PAP", Value: "AMBER"}, {Name: "Sighted?", Value: "No"}, {Name: "Indicator Of Compromise?", Value: "Yes"}},
		Tags:       []string{"c2"},
		Sources:    []threatqtest.Source{{Name: "TheHive", TLPID: 3}},
		Related:    map[string][]int{"events": {evID}},
	}
	if diff := cmp.Diff(want, snap.Indicators[0], cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".ID" && strings.HasPrefix(p.String(), "Attributes")
	}, cmp.Ignore())); diff != "" {
		t.Errorf("indicator (-want +got):\n%s", diff)
	}
	if got := snap.Events[0].Related["indicators"]; !slices.Equal(got, []int{id}) {
		t.Errorf("event relations = %v", got)
	}
}

func TestUpsertIndicatorUpdateRemovesIOC(t *testing.T) {
	s := threatqtest.NewServer(t)
	c := newClient(t, s)
	ctx := context.Background()
	incID, _, err := c.UpsertEvent(ctx, sampleEvent(threatq.KindIncident), 0)
	if err != nil {
		t.Fatal(err)
	}
	ind := threatq.Indicator{
		Value: "1.2.3.4", Type: "IP Address",
		Attributes: []threatq.Attribute{{Name: "PAP", Value: "GREEN"}, {Name: "Indicator Of Compromise?", Value: "Yes"}},
		Related:    &threatq.Ref{Kind: threatq.KindIncident, ID: incID},
	}
	id, _, err := c.UpsertIndicator(ctx, ind, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	ind.Attributes = []threatq.Attribute{{Name: "PAP", Value: "RED"}}
	ind.RemoveAttributes = []string{"Indicator Of Compromise?"}
	ind.Description = "now described"
	s.ResetRequests()
	id2, created, err := c.UpsertIndicator(ctx, ind, id, true)
	if err != nil || created || id2 != id {
		t.Fatalf("update: id=%d created=%v err=%v", id2, created, err)
	}
	got := s.Snapshot().Indicators[0]
	if diff := cmp.Diff(map[string][]string{"PAP": {"RED"}}, attrMap(got)); diff != "" {
		t.Errorf("attributes (-want +got):\n%s", diff)
	}
	if got.Description != "now described" || !slices.Equal(got.Related["incident"], []int{incID}) {
		t.Errorf("indicator = %+v", got)
	}
	counts, _ := s.Counts()
	if counts["POST /api/indicators/consume"] != 0 || counts["POST /api/indicators/{id}/incident"] != 0 {
		t.Errorf("update used consume or re-related: %v", counts)
	}
}

func TestUpsertIndicatorLookupAvoidsConsumeAppend(t *testing.T) {
	s := threatqtest.NewServer(t)
	c := newClient(t, s)
	ctx := context.Background()
	ind := threatq.Indicator{Value: "d41d8cd98f00b204e9800998ecf8427e", Type: "MD5", Attributes: []threatq.Attribute{{Name: "PAP", Value: "GREEN"}}}
	id, _, err := c.UpsertIndicator(ctx, ind, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	ind.Attributes[0].Value = "AMBER"
	id2, created, err := c.UpsertIndicator(ctx, ind, 0, false)
	if err != nil || created || id2 != id {
		t.Fatalf("id=%d created=%v err=%v", id2, created, err)
	}
	if got := s.Snapshot().Indicators[0].Values("PAP"); !slices.Equal(got, []string{"AMBER"}) {
		t.Errorf("PAP = %q, want [AMBER]", got)
	}
	if got := countWhere(s, "POST", "/api/indicators/consume", ""); got != 1 {
		t.Errorf("consumes = %d, want 1", got)
	}
}

func TestDroppedAfterCommitDoesNotDuplicate(t *testing.T) {
	tests := []struct {
		name  string
		match string
	}{
		{"event create", "POST /api/events"},
		{"consume", "POST /api/indicators/consume"},
		{"attribute add", "POST /api/indicators/{id}/attributes"},
		{"tags", "POST /api/indicators/{id}/tags"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := threatqtest.NewServer(t)
			c := newClient(t, s)
			ctx := context.Background()
			ind := threatq.Indicator{Value: "x.example", Type: "FQDN", Tags: []string{"t"}, Attributes: []threatq.Attribute{{Name: "PAP", Value: "GREEN"}}}
			if tt.match == "POST /api/indicators/{id}/attributes" {
				// Pre-create without PAP so the update path POSTs it.
				if _, _, err := c.UpsertIndicator(ctx, threatq.Indicator{Value: "x.example", Type: "FQDN"}, 0, false); err != nil {
					t.Fatal(err)
				}
			}
			s.InjectNext(tt.match, threatqtest.FaultDropAfterCommit, 1)
			evID, _, err := c.UpsertEvent(ctx, sampleEvent(threatq.KindEvent), 0)
			if err != nil {
				t.Fatal(err)
			}
			ind.Related = &threatq.Ref{Kind: threatq.KindEvent, ID: evID}
			if _, _, err := c.UpsertIndicator(ctx, ind, 0, false); err != nil {
				t.Fatal(err)
			}
			snap := s.Snapshot()
			if len(snap.Events) != 1 || len(snap.Indicators) != 1 {
				t.Fatalf("events=%d indicators=%d, want 1/1", len(snap.Events), len(snap.Indicators))
			}
			if got := snap.Indicators[0].Values("PAP"); !slices.Equal(got, []string{"GREEN"}) {
				t.Errorf("PAP = %q", got)
			}
			if got := snap.Indicators[0].Tags; !slices.Equal(got, []string{"t"}) {
				t.Errorf("tags = %q", got)
			}
			var dropped int
			for _, r := range s.Requests() {
				if r.Fault == "drop-after-commit" {
					dropped++
				}
			}
			if dropped != 1 {
				t.Errorf("fault not hit: %d", dropped)
			}
		})
	}
}

// TestTransientFaults runs many upserts, concurrently, against a fake that
// fails 30% of requests (500/503/429/drop/drop-after-commit): every upsert
// must end up applied exactly once.
func TestTransientFaults(t *testing.T) {
	s := threatqtest.NewServer(t, threatqtest.WithSeed(42))
	c := newClient(t, s, func(c *threatq.Config) { c.RetryMax = 8 })
	ctx := context.Background()
	s.SetFaults(threatqtest.Faults{Rate500: 0.07, Rate503: 0.07, Rate429: 0.06, RateDrop: 0.04, RateTruncate: 0.03, RateDropAfterCommit: 0.03, IncludeToken: true})

	// retry is what the outbox worker does with a transient error.
	retry := func(op func() error) error {
		var err error
		for range 20 {
			if err = op(); err == nil || threatq.IsPermanent(err) {
				return err
			}
		}
		return err
	}
	const cases, perCase = 8, 4
	var wg sync.WaitGroup
	errs := make(chan error, cases*perCase*2)
	for i := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := sampleEvent(threatq.KindEvent)
			ev.Title = fmt.Sprintf("Hive Case #~%d faults", i)
			ev.TheHiveID = fmt.Sprintf("~%d", i)
			var evID int
			for pass := range 2 {
				ev.Attributes[0].Value = fmt.Sprintf("status-%d", pass)
				if err := retry(func() (err error) { evID, _, err = c.UpsertEvent(ctx, ev, evID); return err }); err != nil {
					errs <- err
					return
				}
				for j := range perCase {
					ind := threatq.Indicator{
						Value: fmt.Sprintf("h%d-%d.example", i, j), Type: "FQDN", Tags: []string{"a", "b"},
						Source:     threatq.Source{TLP: "AMBER"},
						Attributes: []threatq.Attribute{{Name: "PAP", Value: fmt.Sprintf("pap-%d", pass)}},
						Related:    &threatq.Ref{Kind: threatq.KindEvent, ID: evID},
					}
					if err := retry(func() error { _, _, err := c.UpsertIndicator(ctx, ind, 0, pass > 0); return err }); err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("upsert failed despite retries: %v", err)
	}
	s.SetFaults(threatqtest.Faults{})
	snap := s.Snapshot()
	if len(snap.Events) != cases || len(snap.Indicators) != cases*perCase {
		t.Fatalf("events=%d indicators=%d, want %d/%d", len(snap.Events), len(snap.Indicators), cases, cases*perCase)
	}
	for _, ev := range snap.Events {
		if got := ev.Values("Status"); !slices.Equal(got, []string{"status-1"}) {
			t.Errorf("event %d Status = %q", ev.ID, got)
		}
		if got := ev.Values("TheHive Id"); len(got) != 1 {
			t.Errorf("event %d TheHive Id = %q", ev.ID, got)
		}
	}
	for _, ind := range snap.Indicators {
		if got := ind.Values("PAP"); !slices.Equal(got, []string{"pap-1"}) {
			t.Errorf("indicator %s PAP = %q", ind.Value, got)
		}
		if len(ind.Related["events"]) != 1 || len(ind.Tags) != 2 {
			t.Errorf("indicator %s: related %v tags %v", ind.Value, ind.Related, ind.Tags)
		}
	}
	var faults int
	for _, r := range s.Requests() {
		if r.Fault != "" {
			faults++
		}
	}
	if faults < 20 {
		t.Errorf("only %d faults injected; the test is not exercising retries", faults)
	}
}

func TestPermanentRejection(t *testing.T) {
	s := threatqtest.NewServer(t)
	c := newClient(t, s)
	ctx := context.Background()
	s.SetFaults(threatqtest.Faults{PermanentWrites: true})
	_, _, err := c.UpsertEvent(ctx, sampleEvent(threatq.KindEvent), 0)
	if !threatq.IsPermanent(err) {
		t.Fatalf("want permanent error, got %v", err)
	}
	var e *threatq.Error
	if !errors.As(err, &e) || e.StatusCode != 400 || !strings.Contains(err.Error(), "injected permanent rejection") {
		t.Errorf("error = %v", err)
	}
	if !strings.HasPrefix(err.Error(), `threatq: upsert event "Hive Case #~4387 Hamsters Test": `) {
		t.Errorf("error lacks context: %v", err)
	}
	if got := countWhere(s, "POST", "/api/events", ""); got != 1 {
		t.Errorf("400 retried: %d POSTs", got)
	}
}

func TestUnknownTypeIsPermanent(t *testing.T) {
	s := threatqtest.NewServer(t)
	c := newClient(t, s)
	ctx := context.Background()
	_, _, err := c.UpsertIndicator(ctx, threatq.Indicator{Value: "x", Type: "Quantum Hash"}, 0, false)
	if !threatq.IsPermanent(err) || !errors.Is(err, threatq.ErrUnknownType) || !strings.Contains(err.Error(), `"Quantum Hash"`) {
		t.Errorf("got %v", err)
	}
	ev := sampleEvent(threatq.KindEvent)
	ev.Type = "Nope"
	if _, _, err := c.UpsertEvent(ctx, ev, 0); !threatq.IsPermanent(err) || !errors.Is(err, threatq.ErrUnknownType) {
		t.Errorf("event type: got %v", err)
	}
	ev.Type = ""
	ev.Source.TLP = "PURPLE"
	if _, _, err := c.UpsertEvent(ctx, ev, 0); !threatq.IsPermanent(err) || !errors.Is(err, threatq.ErrInvalid) {
		t.Errorf("bad TLP: got %v", err)
	}
	// The type table was fetched once for both lookups.
	if got := countWhere(s, "GET", "/api/indicator/types", ""); got != 1 {
		t.Errorf("indicator type fetches = %d", got)
	}
}

func TestTLPMapping(t *testing.T) {
	s := threatqtest.NewServer(t)
	c := newClient(t, s)
	ctx := context.Background()
	tests := []struct {
		tlp  string
		want int
	}{{"RED", 1}, {"AMBER", 2}, {"AMBER+STRICT", 2}, {"GREEN", 3}, {"WHITE", 4}, {"CLEAR", 4}, {"", 0}}
	for i, tt := range tests {
		val := fmt.Sprintf("tlp%d.example", i)
		if _, _, err := c.UpsertIndicator(ctx, threatq.Indicator{Value: val, Type: "FQDN", Source: threatq.Source{TLP: tt.tlp}}, 0, false); err != nil {
			t.Fatal(err)
		}
		got := s.Snapshot().Indicators[i].Sources
		if len(got) != 1 || got[0].Name != "TheHive" || got[0].TLPID != tt.want {
			t.Errorf("TLP %q: sources %v, want tlp_id %d", tt.tlp, got, tt.want)
		}
	}
}
