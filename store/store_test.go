package store_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tqlabs/tq-mw-thehive/store"
)

func TestOpenFileMode(t *testing.T) {
	db := MustOpen(t)
	fi, err := os.Stat(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode = %v, want 0600", got)
	}
	pid, err := os.ReadFile(db.Path() + ".pid")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(pid)), fmt.Sprint(os.Getpid()); got != want {
		t.Errorf("pid file = %q, want %q", got, want)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	c := newClock()
	db, err := store.Open(path, store.Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		mustAppend(t, db, newMsg("~1", fmt.Sprint("a", i)))
	}
	if err := db.MarkDone(ctx, 1, c.Now(), "done", []store.Result{{Kind: "events", ID: 3, Action: "created"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkDead(ctx, 2, c.Now(), "bad"); err != nil {
		t.Fatal(err)
	}
	link := store.Link{Kind: "events", ID: 3, Modified: 42, Hash: "abc"}
	if err := db.PutLink(ctx, "case:~1", link); err != nil {
		t.Fatal(err)
	}
	if err := db.PutCase(ctx, "~1", 42, []byte(`{"_id":"~1"}`)); err != nil {
		t.Fatal(err)
	}
	if err := db.PutCheckpoint(ctx, "reconcile", []byte(`{"ts":1}`)); err != nil {
		t.Fatal(err)
	}
	before, err := db.List("", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".pid"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file after Close: %v, want removed", err)
	}

	for _, ro := range []bool{false, true} {
		t.Run(fmt.Sprintf("readonly=%v", ro), func(t *testing.T) {
			db := MustOpenPath(t, path, store.Options{ReadOnly: ro, Now: c.Now})
			after, err := db.List("", 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, after); diff != "" {
				t.Errorf("messages after reopen (-before +after):\n%s", diff)
			}
			s, err := db.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if s.Pending != 1 || s.Done != 1 || s.Dead != 1 {
				t.Errorf("stats = %+v", s)
			}
			if got, ok, err := db.Link("case:~1"); err != nil || !ok || got != link {
				t.Errorf("Link = %+v, %v, %v; want %+v", got, ok, err, link)
			}
			if body, mod, ok, err := db.Case("~1"); err != nil || !ok || mod != 42 || string(body) != `{"_id":"~1"}` {
				t.Errorf("Case = %s, %d, %v, %v", body, mod, ok, err)
			}
			if cp, ok, err := db.Checkpoint("reconcile"); err != nil || !ok || string(cp) != `{"ts":1}` {
				t.Errorf("Checkpoint = %s, %v, %v", cp, ok, err)
			}
			if got, _ := db.NextBatch(c.Now(), 0, nil); !slices.Equal(ids(got), []uint64{3}) {
				t.Errorf("NextBatch = %v, want [3]", ids(got))
			}
			if _, err := db.NextDue(); err != nil {
				t.Error(err)
			}
			if _, dup, err := db.Append(ctx, newMsg("~1", "a0")); err != nil && !ro || err == nil && !dup {
				t.Errorf("Append of stored audit id: dup %v err %v", dup, err)
			}
		})
	}
}

func TestReadOnlyRejectsWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, db, newMsg("~1", ""))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = MustOpenPath(t, path, store.Options{ReadOnly: true})
	now := time.Now()
	writes := map[string]func() error{
		"Append":           func() error { _, _, err := db.Append(ctx, newMsg("~1", "")); return err },
		"MarkDone":         func() error { return db.MarkDone(ctx, 1, now, "", nil) },
		"MarkRetry":        func() error { return db.MarkRetry(ctx, 1, now, "x", now) },
		"MarkDead":         func() error { return db.MarkDead(ctx, 1, now, "x") },
		"Requeue":          func() error { return db.Requeue(ctx, 1) },
		"RequeueDead":      func() error { _, err := db.RequeueDead(ctx); return err },
		"Purge":            func() error { _, err := db.Purge(ctx, now); return err },
		"PutLink":          func() error { return db.PutLink(ctx, "k", store.Link{}) },
		"PutCase":          func() error { return db.PutCase(ctx, "k", 1, []byte("{}")) },
		"PutCheckpoint":    func() error { return db.PutCheckpoint(ctx, "k", nil) },
		"DeleteCheckpoint": func() error { return db.DeleteCheckpoint(ctx, "k") },
	}
	for name, w := range writes {
		if err := w(); !errors.Is(err, store.ErrReadOnly) {
			t.Errorf("%s on read-only: error = %v, want ErrReadOnly", name, err)
		}
	}
	if m := mustGet(t, db, 1); m.State != store.StatePending {
		t.Errorf("message changed on read-only handle: %+v", m)
	}
}

func TestReadOnlyOpenOfMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.db")
	if _, err := store.Open(path, store.Options{ReadOnly: true}); err == nil {
		t.Fatal("read-only Open of a missing file succeeded")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("read-only Open created %s", path)
	}
}

// startHolder runs this test binary as a child that holds path open
// read-write, and returns once the child has it.
func startHolder(t *testing.T, path string) (pid int, release func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	released := false
	release = func() {
		if released {
			return
		}
		released = true
		stdin.Close()
		_, _ = io.Copy(io.Discard, stdout)
		if err := cmd.Wait(); err != nil {
			t.Errorf("holder: %v", err)
		}
	}
	t.Cleanup(release)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("holder said %q, %v", line, err)
	}
	return cmd.Process.Pid, release
}

func TestOpenLockedFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	pid, release := startHolder(t, path)

	for _, ro := range []bool{false, true} {
		_, err := store.Open(path, store.Options{Timeout: 50 * time.Millisecond, ReadOnly: ro})
		if !errors.Is(err, store.ErrLocked) {
			t.Fatalf("Open(readonly=%v) of a held db: error = %v, want ErrLocked", ro, err)
		}
		if want := fmt.Sprintf("database is locked by another process (pid %d)", pid); !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}

	// Without the side file the holder cannot be named.
	if err := os.Remove(path + ".pid"); err != nil {
		t.Fatal(err)
	}
	_, err := store.Open(path, store.Options{Timeout: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "database is locked by another process (pid unknown)") {
		t.Errorf("error = %v, want pid unknown", err)
	}

	release()
	db := MustOpenPath(t, path, store.Options{Timeout: 5 * time.Second})
	mustAppend(t, db, newMsg("~1", ""))
}
