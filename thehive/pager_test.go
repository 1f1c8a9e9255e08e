package thehive_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tqlabs/tq-mw-thehive/thehive"
	"github.com/tqlabs/tq-mw-thehive/thehive/thehivetest"
)

const testKey = "test-api-key-0123"

func newTestClient(t *testing.T, url string, mod ...func(*thehive.Config)) *thehive.Client {
	t.Helper()
	cfg := thehive.Config{
		URL:          url,
		APIKey:       testKey,
		RetryMax:     10,
		RetryWaitMin: time.Millisecond,
		RetryWaitMax: 5 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := thehive.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// drain runs a case listing to its end and returns the pages' cases in
// order, failing the test on error.
func drain(t *testing.T, c *thehive.Client, cur thehive.Cursor, size int, each func(thehive.CasePage)) ([]thehive.Case, thehive.Cursor) {
	t.Helper()
	var got []thehive.Case
	last := cur
	for page, err := range c.Cases(context.Background(), cur, size) {
		if err != nil {
			t.Fatalf("after %d cases: %v", len(got), err)
		}
		if len(page.Cases) > size {
			t.Fatalf("page of %d cases, want at most %d", len(page.Cases), size)
		}
		got = append(got, page.Cases...)
		last = page.Cursor
		if each != nil {
			each(page)
		}
	}
	return got, last
}

func idsOf(cases []thehive.Case) []string {
	ids := make([]string, len(cases))
	for i, c := range cases {
		ids[i] = c.ID
	}
	return ids
}

// checkExactlyOnce fails unless got holds every id of want exactly once.
func checkExactlyOnce(t *testing.T, got, want []string) {
	t.Helper()
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("case %s yielded %d times", id, n)
		}
	}
	for _, id := range want {
		if seen[id] == 0 {
			t.Errorf("case %s never yielded", id)
		}
		delete(seen, id)
	}
	for id := range seen {
		t.Errorf("case %s yielded but not expected", id)
	}
	if t.Failed() {
		t.Fatalf("got %d ids, want %d", len(got), len(want))
	}
}

func TestCasesBackfillExactlyOnce(t *testing.T) {
	tests := []struct {
		pageSize, sameEvery int
	}{
		{1, 13},    // every page is a single timestamp
		{7, 13},    // runs straddle page boundaries
		{100, 13},  //
		{7, 1},     // distinct timestamps
		{100, 250}, // whole pages share one _createdAt
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("page%d_same%d", tt.pageSize, tt.sameEvery), func(t *testing.T) {
			srv := thehivetest.NewServer(t, thehivetest.Options{
				Cases: 1000, Seed: 7, APIKey: testKey, SameTimestampEvery: tt.sameEvery, RecordQueries: true,
			})
			c := newTestClient(t, srv.URL)
			got, last := drain(t, c, thehive.BackfillCursor(), tt.pageSize, nil)
			checkExactlyOnce(t, idsOf(got), idsOf(srv.Cases()))
			if !last.Done {
				t.Errorf("last cursor %+v not done", last)
			}
			if !slices.IsSortedFunc(got, func(a, b thehive.Case) int { return int(a.CreatedAt - b.CreatedAt) }) {
				t.Error("cases not in _createdAt order")
			}
			for _, q := range srv.Queries() {
				if !strings.Contains(q, `"from":0,`) {
					t.Fatalf("query without from:0: %s", q)
				}
			}
			// Full pages of one timestamp need one request each, plus the
			// final short page; more would mean wasted or repeated pages.
			if n, max := len(srv.Queries()), 1000/tt.pageSize+1; n > max {
				t.Errorf("%d queries, want at most %d", n, max)
			}
		})
	}
}

func TestCasesResumeFromCheckpoint(t *testing.T) {
	srv := thehivetest.NewServer(t, thehivetest.Options{Cases: 400, Seed: 3, APIKey: testKey, SameTimestampEvery: 9})
	c := newTestClient(t, srv.URL)

	var first []thehive.Case
	var checkpoint []byte
	pages := 0
	for page, err := range c.Cases(context.Background(), thehive.BackfillCursor(), 7) {
		if err != nil {
			t.Fatal(err)
		}
		first = append(first, page.Cases...)
		var err2 error
		if checkpoint, err2 = json.Marshal(page.Cursor); err2 != nil {
			t.Fatal(err2)
		}
		if pages++; pages == 23 {
			break // killed mid-run
		}
	}
	var cur thehive.Cursor
	if err := json.Unmarshal(checkpoint, &cur); err != nil {
		t.Fatal(err)
	}
	if len(cur.SeenIDs) == 0 && cur.Value == 0 {
		t.Fatalf("checkpoint %s carries no position", checkpoint)
	}
	rest, last := drain(t, newTestClient(t, srv.URL), cur, 7, nil)
	if !last.Done {
		t.Error("resumed run did not finish")
	}
	checkExactlyOnce(t, append(idsOf(first), idsOf(rest)...), idsOf(srv.Cases()))
}

func TestCasesDoneCursorYieldsNothing(t *testing.T) {
	srv := thehivetest.NewServer(t, thehivetest.Options{Cases: 5, APIKey: testKey})
	c := newTestClient(t, srv.URL)
	got, _ := drain(t, c, thehive.Cursor{Field: thehive.FieldCreatedAt, Done: true}, 10, nil)
	if len(got) != 0 || srv.Stats().Requests != 0 {
		t.Errorf("done cursor: %d cases, %d requests", len(got), srv.Stats().Requests)
	}
	for _, err := range c.Cases(context.Background(), thehive.Cursor{Field: "title"}, 10) {
		if err == nil {
			t.Error("invalid cursor field accepted")
		}
	}
}

// An incremental run sees cases change under it: updated cases move past
// the cursor and must still be yielded at their final state; cases created
// while the run is in its second pass belong to the next run, which
// NextSync must reach.
func TestCasesSyncUpdatedDuringRun(t *testing.T) {
	srv := thehivetest.NewServer(t, thehivetest.Options{Cases: 600, Seed: 11, APIKey: testKey, SameTimestampEvery: 5})
	all := srv.Cases()
	since := all[300].CreatedAt
	c := newTestClient(t, srv.URL)

	yielded := map[string]thehive.Case{}
	var order []string
	touched := map[string]bool{}
	var lateAdded []string
	pages := 0
	_, last := drain(t, c, thehive.SyncCursor(since), 9, func(p thehive.CasePage) {
		for _, cs := range p.Cases {
			yielded[cs.ID] = cs
			order = append(order, cs.ID)
		}
		pages++
		if p.Cursor.Done {
			return // changes after the last answer belong to the next run
		}
		// Already yielded cases (the page's last one sits at the cursor's
		// boundary, in SeenIDs), a case far ahead, and an old case (created
		// before since, so only its update qualifies it).
		last := p.Cases[len(p.Cases)-1].ID
		for _, id := range []string{p.Cases[0].ID, last, all[550-pages].ID, all[pages].ID} {
			up, err := srv.UpdateCase(id, func(c *thehive.Case) { c.Title = fmt.Sprintf("edited on page %d", pages) })
			if err != nil {
				t.Fatal(err)
			}
			touched[up.ID] = true
		}
		added := srv.AddCase(thehive.Case{Title: fmt.Sprintf("new on page %d", pages)})
		if p.Cursor.Phase == "updated" {
			lateAdded = append(lateAdded, added.ID)
		}
	})
	if !last.Done || last.StartedAt == 0 {
		t.Fatalf("last cursor %+v", last)
	}
	late := map[string]bool{}
	for _, id := range lateAdded {
		late[id] = true
	}
	for _, cs := range srv.Cases() {
		if cs.Modified() < since || late[cs.ID] {
			continue
		}
		got, ok := yielded[cs.ID]
		if !ok {
			t.Errorf("case %s (created %d, updated %d) skipped", cs.ID, cs.CreatedAt, cs.UpdatedAt)
			continue
		}
		if got.Title != cs.Title || got.UpdatedAt != cs.UpdatedAt {
			t.Errorf("case %s last yielded as %q@%d, final state %q@%d", cs.ID, got.Title, got.UpdatedAt, cs.Title, cs.UpdatedAt)
		}
	}
	for id := range touched {
		if _, ok := yielded[id]; !ok {
			t.Errorf("updated case %s never yielded", id)
		}
	}
	if len(lateAdded) == 0 {
		t.Fatal("test never reached the second pass")
	}

	// The next run starts from when this one started and picks up what
	// raced its end.
	next, _ := drain(t, c, last.NextSync(5*time.Second), 50, nil)
	got := map[string]bool{}
	for _, cs := range next {
		got[cs.ID] = true
	}
	for _, id := range lateAdded {
		if !got[id] {
			t.Errorf("case %s created during the second pass missed by the next run", id)
		}
	}
}

func TestCaseObservables(t *testing.T) {
	srv := thehivetest.NewServer(t, thehivetest.Options{Cases: 20, ObservablesPerCase: 5, Seed: 5, APIKey: testKey})
	id := srv.Cases()[4].ID
	for _, d := range []string{"1.2.3.4", "evil.example", "x@y.example"} {
		if _, err := srv.AddObservable(id, thehive.Observable{DataType: "other", Data: d}); err != nil {
			t.Fatal(err)
		}
	}
	want := srv.Observables(id)
	if len(want) != 8 {
		t.Fatalf("fake holds %d observables, want 8", len(want))
	}
	for _, size := range []int{1, 2, 3, 100} {
		c := newTestClient(t, srv.URL)
		var got []string
		for page, err := range c.CaseObservables(context.Background(), id, size) {
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > size {
				t.Fatalf("page of %d, want at most %d", len(page), size)
			}
			for _, o := range page {
				got = append(got, o.ID)
			}
		}
		wantIDs := make([]string, len(want))
		for i, o := range want {
			wantIDs[i] = o.ID
		}
		checkExactlyOnce(t, got, wantIDs)
	}

	c := newTestClient(t, srv.URL)
	for _, err := range c.CaseObservables(context.Background(), "~1", 10) {
		if !thehive.IsNotFound(err) {
			t.Errorf("unknown case: err = %v, want not found", err)
		}
	}
}

func TestCasesSurviveFaults(t *testing.T) {
	srv := thehivetest.NewServer(t, thehivetest.Options{Cases: 300, Seed: 9, APIKey: testKey, SameTimestampEvery: 4})
	srv.SetFaults(thehivetest.Faults{
		ErrorRate: 0.15, RateLimitRate: 0.1, SlowRate: 0.05, SlowDelay: 2 * time.Millisecond,
		TruncateRate: 0.15, DropRate: 0.15,
	})
	c := newTestClient(t, srv.URL)
	got, last := drain(t, c, thehive.BackfillCursor(), 10, nil)
	if !last.Done {
		t.Error("not done")
	}
	srv.SetFaults(thehivetest.Faults{})
	checkExactlyOnce(t, idsOf(got), idsOf(srv.Cases()))
	st := srv.Stats()
	if st.Errors == 0 || st.RateLimited == 0 || st.Slowed == 0 || st.Truncated == 0 || st.Dropped == 0 {
		t.Errorf("some fault never injected: %+v", st)
	}
}

func TestSlowServerTimesOutAndRetries(t *testing.T) {
	srv := thehivetest.NewServer(t, thehivetest.Options{Cases: 30, Seed: 1, APIKey: testKey})
	srv.SetFaults(thehivetest.Faults{SlowRate: 0.4, SlowDelay: 10 * time.Second})
	c := newTestClient(t, srv.URL, func(cfg *thehive.Config) { cfg.Timeout = 100 * time.Millisecond })
	got, _ := drain(t, c, thehive.BackfillCursor(), 10, nil)
	checkExactlyOnce(t, idsOf(got), idsOf(srv.Cases()))
	if srv.Stats().Slowed == 0 {
		t.Error("no slow answer injected")
	}
}

func TestCasesErrorKeepsCursor(t *testing.T) {
	srv := thehivetest.NewServer(t, thehivetest.Options{Cases: 50, Seed: 1, APIKey: testKey})
	c := newTestClient(t, srv.URL, func(cfg *thehive.Config) { cfg.RetryMax = 1 })
	var last thehive.Cursor
	var gotErr error
	n := 0
	for page, err := range c.Cases(context.Background(), thehive.BackfillCursor(), 10) {
		if err != nil {
			gotErr = err
			if page.Cursor.Value != last.Value || len(page.Cases) != 0 {
				t.Errorf("error page cursor %+v, want last good %+v", page.Cursor, last)
			}
			break
		}
		last = page.Cursor
		if n++; n == 2 {
			srv.SetFaults(thehivetest.Faults{ErrorRate: 1})
		}
	}
	if gotErr == nil || thehive.IsPermanent(gotErr) {
		t.Fatalf("err = %v, want a transient error", gotErr)
	}
}
