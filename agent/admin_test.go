package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tqlabs/tq-mw-thehive/agent"
	"github.com/tqlabs/tq-mw-thehive/store"
)

// adminFixture is a real store behind NewAdminHandler on a unix socket in
// t.TempDir(), with three messages: 1 done, 2 dead, 3 pending.
type adminFixture struct {
	db     *store.DB
	client *agent.AdminClient
	sock   string
	doneAt time.Time
}

func newAdminFixture(t *testing.T) *adminFixture {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "outbox.db"), store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f := &adminFixture{db: db, doneAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	for i, id := range []string{"~1", "~2", "~3"} {
		body := `{"_id":"audit-` + id + `","objectType":"Case","objectId":"` + id + `","action":"update"}`
		got, _, err := db.Append(ctx, &store.Message{AuditID: "audit-" + id, Action: "update", ObjectType: "Case",
			ObjectID: id, RootID: id, Body: json.RawMessage(body)})
		if err != nil {
			t.Fatal(err)
		}
		if got != uint64(i+1) {
			t.Fatalf("append %d: id %d", i+1, got)
		}
	}
	if err := db.MarkDone(ctx, 1, f.doneAt, "done", []store.Result{{Kind: "events", ID: 42, Action: "created"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkDead(ctx, 2, f.doneAt, "threatq: 422 invalid"); err != nil {
		t.Fatal(err)
	}

	f.sock = filepath.Join(dir, "admin.sock")
	ln, err := net.Listen("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: agent.NewAdminHandler(db), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ln) }()
	f.client = agent.NewAdminClient(f.sock)
	t.Cleanup(func() {
		f.client.Close()
		srv.Close()
		<-served
		db.Close()
	})
	return f
}

func TestAdminClientMatchesStore(t *testing.T) {
	f := newAdminFixture(t)
	ctx := t.Context()

	if err := f.client.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	want, err := f.db.Stats()
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.client.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("stats (-store +admin):\n%s", diff)
	}
	if got.Pending != 1 || got.Dead != 1 || got.Done != 1 || got.OldestPending.IsZero() {
		t.Errorf("stats = %+v", got)
	}

	timeEq := cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })
	for _, tt := range []struct {
		state        store.State
		after        uint64
		limit        int
		wantIDs      []uint64
		wantStateAll store.State
	}{
		{"", 0, 0, []uint64{1, 2, 3}, ""},
		{"", 1, 1, []uint64{2}, ""},
		{store.StateDead, 0, 10, []uint64{2}, store.StateDead},
		{store.StateDone, 0, 10, []uint64{1}, store.StateDone},
		{store.StatePending, 0, 10, []uint64{3}, store.StatePending},
		{store.StatePending, 3, 10, nil, ""},
	} {
		msgs, err := f.client.List(ctx, tt.state, tt.after, tt.limit)
		if err != nil {
			t.Fatalf("list %q after %d: %v", tt.state, tt.after, err)
		}
		var ids []uint64
		for _, m := range msgs {
			ids = append(ids, m.ID)
		}
		if diff := cmp.Diff(tt.wantIDs, ids); diff != "" {
			t.Errorf("list %q after %d limit %d (-want +got):\n%s", tt.state, tt.after, tt.limit, diff)
		}
		direct, err := f.db.List(tt.state, tt.after, max(tt.limit, 50))
		if err != nil {
			t.Fatal(err)
		}
		if len(direct) == len(msgs) {
			if diff := cmp.Diff(direct, msgs, timeEq, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("list %q: admin differs from store (-store +admin):\n%s", tt.state, diff)
			}
		}
	}

	m, err := f.client.Get(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	dm, _ := f.db.Get(1)
	if diff := cmp.Diff(dm, m, timeEq); diff != "" {
		t.Errorf("get 1 (-store +admin):\n%s", diff)
	}
	if len(m.Results) != 1 || m.Results[0].ID != 42 || !m.DoneAt.Equal(f.doneAt) || !json.Valid(m.Body) {
		t.Errorf("get 1 = %+v", m)
	}
	if _, err := f.client.Get(ctx, 99); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get 99: err = %v, want ErrNotFound", err)
	}
}

func TestAdminClientWrites(t *testing.T) {
	f := newAdminFixture(t)
	ctx := t.Context()

	n, err := f.client.RequeueDead(ctx)
	if err != nil || n != 1 {
		t.Fatalf("requeue dead = %d, %v; want 1", n, err)
	}
	if m, _ := f.db.Get(2); m.State != store.StatePending {
		t.Errorf("message 2 state %q after requeue-dead", m.State)
	}
	if err := f.client.Requeue(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if m, _ := f.db.Get(1); m.State != store.StatePending {
		t.Errorf("message 1 state %q after requeue", m.State)
	}
	if err := f.client.Requeue(ctx, 77); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("requeue 77: err = %v, want ErrNotFound", err)
	}

	if err := f.db.MarkDone(ctx, 3, f.doneAt, "done", nil); err != nil {
		t.Fatal(err)
	}
	if n, err := f.client.Purge(ctx, f.doneAt); err != nil || n != 0 {
		t.Errorf("purge before doneAt = %d, %v; want 0 (strictly before)", n, err)
	}
	if n, err := f.client.Purge(ctx, f.doneAt.Add(time.Second)); err != nil || n != 1 {
		t.Errorf("purge = %d, %v; want 1", n, err)
	}
	if _, err := f.db.Get(3); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("message 3 after purge: %v", err)
	}
}

func TestAdminHandlerErrors(t *testing.T) {
	f := newAdminFixture(t)
	h := agent.NewAdminHandler(f.db)
	for _, tt := range []struct {
		method, target string
		status         int
		errPart        string
	}{
		{"GET", "/outbox/messages?state=stuck", 400, "state"},
		{"GET", "/outbox/messages?after=x", 400, "after"},
		{"GET", "/outbox/messages?limit=0", 400, "limit"},
		{"GET", "/outbox/messages?limit=100000", 400, "limit"},
		{"GET", "/outbox/messages/abc", 400, "invalid message id"},
		{"GET", "/outbox/messages/0", 400, "invalid message id"},
		{"GET", "/outbox/messages/12345", 404, "not found"},
		{"POST", "/outbox/messages/12345/requeue", 404, "not found"},
		{"POST", "/outbox/purge", 400, "done_before"},
		{"POST", "/outbox/purge?done_before=yesterday", 400, "done_before"},
		{"DELETE", "/outbox/stats", 405, "not allowed"},
		{"GET", "/nope", 404, "no such endpoint"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.target, nil))
		if rec.Code != tt.status {
			t.Errorf("%s %s: status %d, want %d", tt.method, tt.target, rec.Code, tt.status)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: content type %q", tt.method, tt.target, ct)
		}
		var body struct{ Error string }
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || !strings.Contains(body.Error, tt.errPart) {
			t.Errorf("%s %s: body %q, want an error containing %q", tt.method, tt.target, rec.Body, tt.errPart)
		}
	}

	// The stats shape is part of the API.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/outbox/stats", nil))
	var stats map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &stats); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"pending", "dead", "done", "oldest_pending", "db_bytes"} {
		if _, ok := stats[k]; !ok {
			t.Errorf("stats has no %q: %s", k, rec.Body)
		}
	}
}

func TestAdminClientUnreachable(t *testing.T) {
	c := agent.NewAdminClient(filepath.Join(t.TempDir(), "none.sock"))
	defer c.Close()
	if err := c.Ping(t.Context()); err == nil {
		t.Error("ping of a missing socket: no error")
	}
	if _, err := c.Stats(t.Context()); err == nil {
		t.Error("stats over a missing socket: no error")
	}
}
