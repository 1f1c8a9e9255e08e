package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tqlabs/tq-mw-thehive/store"
)

var ctx = context.Background()

func newMsg(root, audit string) *store.Message {
	return &store.Message{
		AuditID:    audit,
		Action:     "update",
		ObjectType: "Case",
		ObjectID:   root,
		RootID:     root,
		Body:       json.RawMessage(fmt.Sprintf(`{"rootId":%q,"_id":%q}`, root, audit)),
	}
}

func mustAppend(tb testing.TB, db *store.DB, m *store.Message) uint64 {
	tb.Helper()
	id, dup, err := db.Append(ctx, m)
	if err != nil {
		tb.Fatal(err)
	}
	if dup {
		tb.Fatalf("append %q: unexpected dup of %d", m.AuditID, id)
	}
	return id
}

func mustGet(tb testing.TB, db *store.DB, id uint64) store.Message {
	tb.Helper()
	m, err := db.Get(id)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func ids(ms []store.Message) []uint64 {
	out := make([]uint64, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func openClock(t *testing.T) (*store.DB, *clock) {
	t.Helper()
	c := newClock()
	db := MustOpenPath(t, filepath.Join(t.TempDir(), "store.db"), store.Options{Now: c.Now})
	return db, c
}

func TestAppendAssignsIncreasingIDs(t *testing.T) {
	db, c := openClock(t)
	var got []uint64
	for i := range 5 {
		m := newMsg("~1", fmt.Sprintf("a%d", i))
		id := mustAppend(t, db, m)
		if m.ID != id || m.State != store.StatePending || !m.ReceivedAt.Equal(c.Now()) {
			t.Errorf("append set ID=%d State=%q ReceivedAt=%v, want %d pending %v", m.ID, m.State, m.ReceivedAt, id, c.Now())
		}
		got = append(got, id)
	}
	if want := []uint64{1, 2, 3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("ids = %v, want %v", got, want)
	}
	all, err := db.List("", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(all), got) {
		t.Errorf("List ids = %v, want %v", ids(all), got)
	}
	m := mustGet(t, db, 3)
	want := newMsg("~1", "a2")
	want.ID, want.State, want.ReceivedAt = 3, store.StatePending, c.Now()
	if diff := cmp.Diff(*want, m); diff != "" {
		t.Errorf("Get(3) mismatch (-want +got):\n%s", diff)
	}
	if _, err := db.Get(99); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(99) error = %v, want ErrNotFound", err)
	}
}

func TestAppendRejectsInvalidBody(t *testing.T) {
	db := MustOpen(t)
	m := newMsg("~1", "")
	m.Body = json.RawMessage(`{"truncated":`)
	if _, _, err := db.Append(ctx, m); err == nil {
		t.Fatal("Append of invalid JSON succeeded")
	}
	if s, _ := db.Stats(); s.Pending != 0 {
		t.Errorf("pending = %d after rejected append, want 0", s.Pending)
	}
}

func TestAppendCancelledContext(t *testing.T) {
	db := MustOpen(t)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := db.Append(cctx, newMsg("~1", "x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append error = %v, want context.Canceled", err)
	}
}

func TestStateTransitions(t *testing.T) {
	db, c := openClock(t)
	t0 := c.Now()
	id := mustAppend(t, db, newMsg("~1", "a"))

	// pending → retry: still pending, not due before next.
	next := t0.Add(time.Minute)
	if err := db.MarkRetry(ctx, id, t0, "threatq: 503", next); err != nil {
		t.Fatal(err)
	}
	m := mustGet(t, db, id)
	if m.State != store.StatePending || m.Attempts != 1 || m.LastError != "threatq: 503" || !m.NextAttemptAt.Equal(next) {
		t.Errorf("after retry: %+v", m)
	}
	if got, _ := db.NextBatch(t0, 10, nil); len(got) != 0 {
		t.Errorf("NextBatch before due = %v, want none", ids(got))
	}
	if due, _ := db.NextDue(); !due.Equal(next) {
		t.Errorf("NextDue = %v, want %v", due, next)
	}
	if got, _ := db.NextBatch(next, 10, nil); !slices.Equal(ids(got), []uint64{id}) {
		t.Errorf("NextBatch when due = %v, want [%d]", ids(got), id)
	}

	// pending → dead.
	if err := db.MarkDead(ctx, id, next, "threatq: 400 bad type"); err != nil {
		t.Fatal(err)
	}
	m = mustGet(t, db, id)
	if m.State != store.StateDead || m.Attempts != 2 || m.LastError != "threatq: 400 bad type" {
		t.Errorf("after dead: %+v", m)
	}
	if got, _ := db.NextBatch(next, 10, nil); len(got) != 0 {
		t.Errorf("NextBatch with only dead = %v", ids(got))
	}
	if err := db.MarkRetry(ctx, id, next, "x", next); !errors.Is(err, store.ErrNotPending) {
		t.Errorf("MarkRetry of dead: error = %v, want ErrNotPending", err)
	}

	// dead → pending via Requeue, due now.
	if err := db.Requeue(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.NextBatch(c.Now(), 10, nil); !slices.Equal(ids(got), []uint64{id}) {
		t.Errorf("NextBatch after requeue = %v, want [%d]", ids(got), id)
	}

	// pending → done with results.
	res := []store.Result{{Kind: "events", ID: 7, Action: "created"}}
	doneAt := c.Add(time.Second)
	if err := db.MarkDone(ctx, id, doneAt, "", res); err != nil {
		t.Fatal(err)
	}
	m = mustGet(t, db, id)
	if m.State != store.StateDone || m.Attempts != 3 || !m.DoneAt.Equal(doneAt) || !m.NextAttemptAt.IsZero() {
		t.Errorf("after done: %+v", m)
	}
	if diff := cmp.Diff(res, m.Results); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	gotOutcomes := []string{}
	for _, a := range m.History {
		gotOutcomes = append(gotOutcomes, a.Outcome)
	}
	if want := []string{"retry", "dead", "requeued", "done"}; !slices.Equal(gotOutcomes, want) {
		t.Errorf("history = %v, want %v", gotOutcomes, want)
	}
	if err := db.MarkDone(ctx, id, doneAt, "", nil); !errors.Is(err, store.ErrNotPending) {
		t.Errorf("second MarkDone: error = %v, want ErrNotPending", err)
	}

	// done → pending via Requeue too.
	if err := db.Requeue(ctx, id); err != nil {
		t.Fatal(err)
	}
	if m := mustGet(t, db, id); m.State != store.StatePending || !m.DoneAt.IsZero() {
		t.Errorf("after requeue of done: %+v", m)
	}
	if s, _ := db.Stats(); s.Pending != 1 || s.Done != 0 || s.Dead != 0 {
		t.Errorf("stats = %+v, want 1 pending only", s)
	}
	if err := db.Requeue(ctx, 99); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Requeue(99) error = %v, want ErrNotFound", err)
	}
}

func TestMarkDoneOutcomes(t *testing.T) {
	tests := []struct {
		outcome      string
		wantAttempts int
	}{
		{"done", 1},
		{"coalesced", 0},
		{"skipped", 0},
	}
	for _, tt := range tests {
		t.Run(tt.outcome, func(t *testing.T) {
			db, c := openClock(t)
			id := mustAppend(t, db, newMsg("~1", ""))
			if err := db.MarkDone(ctx, id, c.Now(), tt.outcome, nil); err != nil {
				t.Fatal(err)
			}
			m := mustGet(t, db, id)
			if m.Attempts != tt.wantAttempts || len(m.History) != 1 || m.History[0].Outcome != tt.outcome {
				t.Errorf("got attempts %d history %+v, want %d and one %q", m.Attempts, m.History, tt.wantAttempts, tt.outcome)
			}
		})
	}
}

func TestRequeueDead(t *testing.T) {
	db, c := openClock(t)
	var dead []uint64
	for i := range 5 {
		id := mustAppend(t, db, newMsg(fmt.Sprintf("~%d", i), ""))
		if i%2 == 0 {
			if err := db.MarkDead(ctx, id, c.Now(), "bad"); err != nil {
				t.Fatal(err)
			}
			dead = append(dead, id)
		}
	}
	got, err := db.List(store.StateDead, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), dead) {
		t.Fatalf("dead = %v, want %v", ids(got), dead)
	}
	n, err := db.RequeueDead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(dead) {
		t.Errorf("RequeueDead = %d, want %d", n, len(dead))
	}
	if s, _ := db.Stats(); s.Pending != 5 || s.Dead != 0 {
		t.Errorf("stats after RequeueDead = %+v", s)
	}
	for _, id := range dead {
		if m := mustGet(t, db, id); m.State != store.StatePending || m.History[len(m.History)-1].Outcome != "requeued" {
			t.Errorf("message %d after RequeueDead: %+v", id, m)
		}
	}
}

func TestNextBatchPerRootOrdering(t *testing.T) {
	db, c := openClock(t)
	now := c.Now()
	//            1     2     3     4     5     6     7
	roots := []string{"A", "B", "A", "B", "A", "C", "B"}
	for _, r := range roots {
		mustAppend(t, db, newMsg(r, ""))
	}
	later := now.Add(time.Hour)
	// A's head is backed off: all of A waits.
	if err := db.MarkRetry(ctx, 1, now, "503", later); err != nil {
		t.Fatal(err)
	}
	// B's second message is backed off: B stops before it.
	if err := db.MarkRetry(ctx, 4, now, "503", later); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		now   time.Time
		limit int
		busy  []string
		want  []uint64
	}{
		{"backoff blocks root", now, 0, nil, []uint64{2, 6}},
		{"busy root skipped", now, 0, []string{"C"}, []uint64{2}},
		{"all busy", now, 0, []string{"B", "C"}, nil},
		{"limit", later, 3, nil, []uint64{1, 2, 3}},
		{"all due", later, 0, nil, []uint64{1, 2, 3, 4, 5, 6, 7}},
		{"busy when due", later, 0, []string{"A"}, []uint64{2, 4, 6, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var busy func(string) bool
			if tt.busy != nil {
				busy = func(r string) bool { return slices.Contains(tt.busy, r) }
			}
			got, err := db.NextBatch(tt.now, tt.limit, busy)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tt.want) {
				t.Errorf("NextBatch = %v, want %v", ids(got), tt.want)
			}
		})
	}

	// Once B's head is done, B's next message is the head and still waits.
	if err := db.MarkDone(ctx, 2, now, "done", nil); err != nil {
		t.Fatal(err)
	}
	got, _ := db.NextBatch(now, 0, nil)
	if want := []uint64{6}; !slices.Equal(ids(got), want) {
		t.Errorf("NextBatch after B head done = %v, want %v", ids(got), want)
	}
}

func TestNextDue(t *testing.T) {
	db, c := openClock(t)
	now := c.Now()
	if due, err := db.NextDue(); err != nil || !due.IsZero() {
		t.Fatalf("NextDue on empty = %v, %v; want zero", due, err)
	}
	for _, r := range []string{"A", "B", "C"} {
		mustAppend(t, db, newMsg(r, ""))
	}
	if due, _ := db.NextDue(); !due.IsZero() {
		t.Errorf("NextDue with all due = %v, want zero", due)
	}
	if err := db.MarkRetry(ctx, 1, now, "x", now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkRetry(ctx, 2, now, "x", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if due, _ := db.NextDue(); !due.Equal(now.Add(time.Minute)) {
		t.Errorf("NextDue = %v, want %v", due, now.Add(time.Minute))
	}
	c.Add(90 * time.Second)
	if due, _ := db.NextDue(); !due.Equal(now.Add(2 * time.Minute)) {
		t.Errorf("NextDue after 90s = %v, want %v", due, now.Add(2*time.Minute))
	}
}

func TestAuditIDDedup(t *testing.T) {
	db := MustOpen(t)
	id := mustAppend(t, db, newMsg("~1", "audit-1"))
	got, dup, err := db.Append(ctx, newMsg("~1", "audit-1"))
	if err != nil {
		t.Fatal(err)
	}
	if !dup || got != id {
		t.Errorf("second Append = %d, dup %v; want %d, true", got, dup, id)
	}
	// No audit id: never deduplicated.
	a := mustAppend(t, db, newMsg("~1", ""))
	b := mustAppend(t, db, newMsg("~1", ""))
	if a == b {
		t.Errorf("appends without audit id share id %d", a)
	}
	if s, _ := db.Stats(); s.Pending != 3 {
		t.Errorf("pending = %d, want 3", s.Pending)
	}
}

func TestAuditIDDedupConcurrent(t *testing.T) {
	db := MustOpen(t)
	const n = 64
	type res struct {
		id  uint64
		dup bool
	}
	results := make([]res, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			id, dup, err := db.Append(ctx, newMsg("~1", fmt.Sprintf("audit-%d", i%4)))
			if err != nil {
				t.Error(err)
			}
			results[i] = res{id, dup}
		})
	}
	close(start)
	wg.Wait()
	firsts := map[string]uint64{}
	byAudit := map[string]map[uint64]bool{}
	for i, r := range results {
		a := fmt.Sprintf("audit-%d", i%4)
		if byAudit[a] == nil {
			byAudit[a] = map[uint64]bool{}
		}
		byAudit[a][r.id] = true
		if !r.dup {
			if prev, ok := firsts[a]; ok {
				t.Errorf("%s stored twice: %d and %d", a, prev, r.id)
			}
			firsts[a] = r.id
		}
	}
	for a, set := range byAudit {
		if len(set) != 1 {
			t.Errorf("%s got ids %v, want one", a, set)
		}
	}
	if s, _ := db.Stats(); s.Pending != 4 {
		t.Errorf("pending = %d, want 4", s.Pending)
	}
}

func TestConcurrentAppend(t *testing.T) {
	db := MustOpen(t)
	const workers, each = 64, 10
	var mu sync.Mutex
	var got []uint64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id := mustAppendNoFatal(t, db, newMsg(fmt.Sprintf("~%d", w), fmt.Sprintf("w%d-%d", w, i)))
				mu.Lock()
				got = append(got, id)
				mu.Unlock()
			}
		})
	}
	// Failing writes interleaved with the appends must not cost them their commit.
	for range 16 {
		wg.Go(func() {
			if err := db.MarkDone(ctx, 1<<40, time.Now(), "", nil); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("MarkDone(unknown) error = %v, want ErrNotFound", err)
			}
		})
	}
	wg.Wait()
	slices.Sort(got)
	if len(slices.Compact(slices.Clone(got))) != workers*each {
		t.Fatalf("got %d distinct ids of %d appends", len(slices.Compact(slices.Clone(got))), workers*each)
	}
	all, err := db.List(store.StatePending, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(all), got) {
		t.Errorf("pending ids differ from acknowledged ids")
	}
	// Per worker (one root each), ids follow the order of the appends.
	last := map[string]uint64{}
	for _, m := range all {
		if m.ID <= last[m.RootID] {
			t.Errorf("root %s: id %d after %d", m.RootID, m.ID, last[m.RootID])
		}
		last[m.RootID] = m.ID
	}
}

func mustAppendNoFatal(t *testing.T, db *store.DB, m *store.Message) uint64 {
	id, dup, err := db.Append(ctx, m)
	if err != nil || dup {
		t.Errorf("Append: id %d dup %v err %v", id, dup, err)
	}
	return id
}

func TestPurge(t *testing.T) {
	db, c := openClock(t)
	t0 := c.Now()
	for i := range 4 {
		id := mustAppend(t, db, newMsg("~1", fmt.Sprintf("a%d", i)))
		if i < 3 {
			if err := db.MarkDone(ctx, id, t0.Add(time.Duration(i)*time.Hour), "done", nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	n, err := db.Purge(ctx, t0.Add(90*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("Purge = %d, want 2", n)
	}
	all, _ := db.List("", 0, 0)
	if want := []uint64{3, 4}; !slices.Equal(ids(all), want) {
		t.Errorf("left after purge = %v, want %v", ids(all), want)
	}
	if _, err := db.Get(1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(purged) error = %v", err)
	}
	// The purged audit id is free again; the kept one still deduplicates.
	if _, dup, _ := db.Append(ctx, newMsg("~1", "a0")); dup {
		t.Error("purged audit id a0 still deduplicated")
	}
	if _, dup, _ := db.Append(ctx, newMsg("~1", "a2")); !dup {
		t.Error("kept audit id a2 not deduplicated")
	}
}

func TestListPaging(t *testing.T) {
	db := MustOpen(t)
	for range 7 {
		mustAppend(t, db, newMsg("~1", ""))
	}
	var pages [][]uint64
	var after uint64
	for {
		page, err := db.List(store.StatePending, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		pages = append(pages, ids(page))
		after = page[len(page)-1].ID
	}
	want := [][]uint64{{1, 2, 3}, {4, 5, 6}, {7}}
	if diff := cmp.Diff(want, pages); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}
	if _, err := db.List("bogus", 0, 0); err == nil {
		t.Error("List of unknown state succeeded")
	}
}

func TestHistoryCapped(t *testing.T) {
	db, c := openClock(t)
	id := mustAppend(t, db, newMsg("~1", ""))
	for i := range 25 {
		if err := db.MarkRetry(ctx, id, c.Now(), fmt.Sprintf("err %d", i), c.Now()); err != nil {
			t.Fatal(err)
		}
	}
	m := mustGet(t, db, id)
	if len(m.History) != 20 || m.Attempts != 25 {
		t.Fatalf("history %d entries, attempts %d; want 20, 25", len(m.History), m.Attempts)
	}
	if m.History[0].Error != "err 5" || m.History[19].Error != "err 24" {
		t.Errorf("history runs %q..%q, want err 5..err 24", m.History[0].Error, m.History[19].Error)
	}
}

func TestStats(t *testing.T) {
	db, c := openClock(t)
	t0 := c.Now()
	if s, err := db.Stats(); err != nil || s.Pending != 0 || !s.OldestPending.IsZero() || s.DBBytes == 0 {
		t.Fatalf("empty stats = %+v, %v", s, err)
	}
	for i := range 6 {
		c.Add(time.Second)
		mustAppend(t, db, newMsg("~1", fmt.Sprint(i)))
	}
	_ = db.MarkDone(ctx, 1, c.Now(), "done", nil)
	_ = db.MarkDone(ctx, 2, c.Now(), "done", nil)
	_ = db.MarkDead(ctx, 3, c.Now(), "bad")
	s, err := db.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.Pending != 3 || s.Done != 2 || s.Dead != 1 {
		t.Errorf("stats = %+v, want 3 pending, 2 done, 1 dead", s)
	}
	if want := t0.Add(4 * time.Second); !s.OldestPending.Equal(want) {
		t.Errorf("OldestPending = %v, want %v", s.OldestPending, want)
	}
}

func TestNotify(t *testing.T) {
	db, c := openClock(t)
	notified := func() bool {
		select {
		case <-db.Notify():
			return true
		default:
			return false
		}
	}
	if notified() {
		t.Fatal("notified before any write")
	}
	id := mustAppend(t, db, newMsg("~1", ""))
	mustAppend(t, db, newMsg("~1", ""))
	if !notified() {
		t.Error("no notification after Append")
	}
	if notified() {
		t.Error("notifications not coalesced")
	}
	if err := db.MarkDead(ctx, id, c.Now(), "x"); err != nil {
		t.Fatal(err)
	}
	if notified() {
		t.Error("notified after MarkDead")
	}
	if err := db.Requeue(ctx, id); err != nil {
		t.Fatal(err)
	}
	if !notified() {
		t.Error("no notification after Requeue")
	}
}

func TestCloseWaitsForInFlightWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[uint64]bool{}
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			id, _, err := db.Append(ctx, newMsg("~1", fmt.Sprint(i)))
			switch {
			case err == nil:
				mu.Lock()
				acked[id] = true
				mu.Unlock()
			case !errors.Is(err, store.ErrClosed):
				t.Errorf("Append during Close: %v", err)
			}
		})
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if _, _, err := db.Append(ctx, newMsg("~1", "late")); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Append after Close: error = %v, want ErrClosed", err)
	}
	db = MustOpenPath(t, path, store.Options{})
	for id := range acked {
		if _, err := db.Get(id); err != nil {
			t.Errorf("acknowledged message %d lost: %v", id, err)
		}
	}
}

func TestAppendKeepsBodyText(t *testing.T) {
	db := MustOpen(t)
	m := newMsg("~1", "")
	m.Body = json.RawMessage("{\n  \"description\": \"<b>a & b</b>\"\n}")
	id := mustAppend(t, db, m)
	if got, want := string(mustGet(t, db, id).Body), `{"description":"<b>a & b</b>"}`; got != want {
		t.Errorf("stored body = %s, want %s", got, want)
	}
}

// A purge larger than one chunk removes everything due, over several
// transactions, and leaves the rest.
func TestPurgeInChunks(t *testing.T) {
	db := MustOpen(t)
	ctx := context.Background()
	old := time.Now().Add(-48 * time.Hour)
	const n = 2500
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := mustAppend(t, db, &store.Message{AuditID: fmt.Sprintf("~p%d", i), Action: "update", ObjectType: "Case", ObjectID: "~c", RootID: fmt.Sprintf("~r%d", i), Body: json.RawMessage(`{}`)})
			at := old
			if i%10 == 0 {
				at = time.Now() // recent: kept
			}
			if err := db.MarkDone(ctx, id, at, "", nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := db.Purge(ctx, time.Now().Add(-time.Hour))
	if err != nil || got != n-n/10 {
		t.Fatalf("Purge = %d, %v; want %d", got, err, n-n/10)
	}
	st, _ := db.Stats()
	if st.Done != n/10 {
		t.Errorf("%d done left, want %d", st.Done, n/10)
	}
}
