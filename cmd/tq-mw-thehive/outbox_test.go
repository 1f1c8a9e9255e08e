package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tqlabs/tq-mw-thehive/agent"
	"github.com/tqlabs/tq-mw-thehive/store"
)

// seedOutbox creates <dir>/tq-mw-thehive.db with message 1 done, 2 dead
// and 3 pending, and returns it open read-write.
func seedOutbox(t *testing.T, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(dir, dbFileName), store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range []string{"~41", "~42", "~43"} {
		body := `{"_id":"a` + id + `","objectType":"Case","objectId":"` + id + `","action":"update","object":{"title":"Hamsters"}}`
		if _, _, err := db.Append(ctx, &store.Message{AuditID: "a" + id, Action: "update", ObjectType: "Case",
			ObjectID: id, RootID: id, Body: json.RawMessage(body)}); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-200 * time.Hour)
	if err := db.MarkDone(ctx, 1, old, "done", []store.Result{{Kind: "events", ID: 4242, Action: "created"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkDead(ctx, 2, time.Now(), "threatq: create event: 422 bad attribute"); err != nil {
		t.Fatal(err)
	}
	return db
}

// serveAdmin plays the running agent: it keeps db open (so the CLI's own
// open fails with ErrLocked) and serves the admin API on the config dir's
// socket.
func serveAdmin(t *testing.T, dir string, db *store.DB) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(dir, socketFileName))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: agent.NewAdminHandler(db), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
}

// outboxModes runs fn against a seeded outbox once with the agent stopped
// (direct database access) and once with it "running" (admin socket).
func outboxModes(t *testing.T, fn func(t *testing.T, dir string, db func() *store.DB)) {
	t.Run("direct", func(t *testing.T) {
		dir := t.TempDir()
		seedOutbox(t, dir).Close()
		fn(t, dir, func() *store.DB {
			db, err := store.Open(filepath.Join(dir, dbFileName), store.Options{Timeout: time.Second, ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		})
	})
	t.Run("socket", func(t *testing.T) {
		dir := t.TempDir()
		db := seedOutbox(t, dir)
		t.Cleanup(func() { db.Close() })
		serveAdmin(t, dir, db)
		fn(t, dir, func() *store.DB { return db })
	})
}

func TestOutboxStatsJSON(t *testing.T) {
	outboxModes(t, func(t *testing.T, dir string, _ func() *store.DB) {
		res := runBin(t, nil, "outbox", "stats", "--json", "-c", dir)
		if res.code != 0 {
			t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
		}
		dec := json.NewDecoder(strings.NewReader(res.stdout))
		var got map[string]any
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, res.stdout)
		}
		if dec.More() {
			t.Errorf("more than one JSON value:\n%s", res.stdout)
		}
		for k, want := range map[string]float64{"pending": 1, "dead": 1, "done": 1} {
			if got[k] != want {
				t.Errorf("%s = %v, want %v", k, got[k], want)
			}
		}
		if age, ok := got["oldest_pending_age_seconds"].(float64); !ok || age < 0 {
			t.Errorf("oldest_pending_age_seconds = %v", got["oldest_pending_age_seconds"])
		}
		if b, ok := got["db_bytes"].(float64); !ok || b <= 0 {
			t.Errorf("db_bytes = %v", got["db_bytes"])
		}
		// The global -c works before the subcommands too.
		for _, args := range [][]string{{"-c", dir, "outbox", "stats", "--json"}, {"outbox", "-c", dir, "stats", "--json"}} {
			if res := runBin(t, nil, args...); res.code != 0 || !strings.Contains(res.stdout, `"pending": 1`) {
				t.Errorf("%v: exit %d, stdout %q, stderr %q", args, res.code, res.stdout, res.stderr)
			}
		}
	})
}

func TestOutboxListAndShow(t *testing.T) {
	outboxModes(t, func(t *testing.T, dir string, _ func() *store.DB) {
		res := runBin(t, nil, "outbox", "list", "-c", dir)
		if res.code != 0 {
			t.Fatalf("list: exit %d, stderr %q", res.code, res.stderr)
		}
		lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") {
			t.Fatalf("list table:\n%s", res.stdout)
		}
		if !strings.Contains(lines[2], "dead") || !strings.Contains(lines[2], "422 bad attribute") || !strings.Contains(lines[2], "Case ~42") {
			t.Errorf("dead row %q", lines[2])
		}

		res = runBin(t, nil, "outbox", "list", "--state", "dead", "--json", "-c", dir)
		var msgs []store.Message
		if err := json.Unmarshal([]byte(res.stdout), &msgs); err != nil || len(msgs) != 1 || msgs[0].ID != 2 {
			t.Errorf("list --state dead --json: %v %+v\n%s", err, msgs, res.stderr)
		}
		res = runBin(t, nil, "outbox", "list", "--after", "1", "--limit", "1", "--json", "-c", dir)
		if err := json.Unmarshal([]byte(res.stdout), &msgs); err != nil || len(msgs) != 1 || msgs[0].ID != 2 {
			t.Errorf("list --after 1 --limit 1: %v %+v", err, msgs)
		}

		res = runBin(t, nil, "outbox", "show", "1", "-c", dir)
		if res.code != 0 {
			t.Fatalf("show: exit %d, stderr %q", res.code, res.stderr)
		}
		for _, want := range []string{"State", "done", "History:", "ThreatQ results:", "events", "4242", "Webhook:", `"title": "Hamsters"`} {
			if !strings.Contains(res.stdout, want) {
				t.Errorf("show does not contain %q:\n%s", want, res.stdout)
			}
		}
		res = runBin(t, nil, "outbox", "show", "--json", "2", "-c", dir)
		var m store.Message
		if err := json.Unmarshal([]byte(res.stdout), &m); err != nil || m.State != store.StateDead || m.LastError == "" {
			t.Errorf("show --json 2: %v %+v", err, m)
		}
		res = runBin(t, nil, "outbox", "show", "99", "-c", dir)
		if res.code != exitFailure || !strings.Contains(res.stderr, "message 99 not found") {
			t.Errorf("show 99: exit %d, stderr %q", res.code, res.stderr)
		}
	})
}

func TestOutboxRequeueAndPurge(t *testing.T) {
	outboxModes(t, func(t *testing.T, dir string, db func() *store.DB) {
		res := runBin(t, nil, "outbox", "requeue", "--all-dead", "--json", "-c", dir)
		if res.code != 0 || strings.TrimSpace(strings.Join(strings.Fields(res.stdout), "")) != `{"requeued":1}` {
			t.Errorf("requeue --all-dead: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
		}
		res = runBin(t, nil, "outbox", "requeue", "99", "-c", dir)
		if res.code != exitFailure || !strings.Contains(res.stderr, "not found") {
			t.Errorf("requeue 99: exit %d, stderr %q", res.code, res.stderr)
		}
		res = runBin(t, nil, "outbox", "purge", "--done-before", "168h", "-c", dir)
		if res.code != 0 || !strings.Contains(res.stdout, "purged 1") {
			t.Errorf("purge: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
		}
		s, err := db().Stats()
		if err != nil {
			t.Fatal(err)
		}
		if s.Pending != 2 || s.Dead != 0 || s.Done != 0 {
			t.Errorf("after requeue and purge: %+v", s)
		}
	})
}

// The agent holds the lock but its socket is gone: say so.
func TestOutboxLockedWithoutSocket(t *testing.T) {
	dir := t.TempDir()
	db := seedOutbox(t, dir)
	defer db.Close()
	res := runBin(t, nil, "outbox", "stats", "-c", dir)
	if res.code != exitFailure {
		t.Errorf("exit %d, want 1", res.code)
	}
	for _, want := range []string{"agent is running", "admin socket", socketFileName, "not reachable"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr %q does not contain %q", res.stderr, want)
		}
	}
}

func TestOutboxNoDatabase(t *testing.T) {
	dir := t.TempDir()
	res := runBin(t, nil, "outbox", "stats", "-c", dir)
	if res.code != exitFailure || !strings.Contains(res.stderr, "no outbox database") {
		t.Errorf("exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		t    time.Time
		want string
	}{
		{time.Time{}, "-"},
		{now, "just now"},
		{now.Add(-3 * time.Minute), "3m ago"},
		{now.Add(-90 * time.Second), "1m ago"},
		{now.Add(-5 * time.Hour), "5h ago"},
		{now.Add(-72 * time.Hour), "3d ago"},
		{now.Add(30 * time.Second), "in 30s"},
	} {
		if got := ago(tt.t, now); got != tt.want {
			t.Errorf("ago(%v) = %q, want %q", now.Sub(tt.t), got, tt.want)
		}
	}
}
