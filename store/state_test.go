package store_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tqlabs/tq-mw-thehive/store"
)

func TestLinks(t *testing.T) {
	db := MustOpen(t)
	if _, ok, err := db.Link("case:~1"); err != nil || ok {
		t.Fatalf("Link of missing = %v, %v", ok, err)
	}
	links := map[string]store.Link{
		"case:~1":       {Kind: "events", ID: 10, Modified: 1700, Hash: "h1"},
		"observable:~2": {Kind: "indicators", ID: 20, Modified: 1800, Hash: "h2", RelatedID: 10},
	}
	for k, l := range links {
		if err := db.PutLink(ctx, k, l); err != nil {
			t.Fatal(err)
		}
	}
	updated := store.Link{Kind: "events", ID: 10, Modified: 1900, Hash: "h3"}
	if err := db.PutLink(ctx, "case:~1", updated); err != nil {
		t.Fatal(err)
	}
	links["case:~1"] = updated
	for k, want := range links {
		got, ok, err := db.Link(k)
		if err != nil || !ok {
			t.Fatalf("Link(%q) = %v, %v", k, ok, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Link(%q) (-want +got):\n%s", k, diff)
		}
	}
	if err := db.PutLink(ctx, "", store.Link{}); err == nil {
		t.Error("PutLink with empty key succeeded")
	}
}

func TestPutCaseKeepsNewest(t *testing.T) {
	tests := []struct {
		name     string
		modified int64
		body     string
		wantMod  int64
		wantBody string
	}{
		{"older ignored", 100, `{"v":"old"}`, 200, `{"v":"stored"}`},
		{"same replaces", 200, `{"v":"same"}`, 200, `{"v":"same"}`},
		{"newer replaces", 300, `{"v":"new"}`, 300, `{"v":"new"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := MustOpen(t)
			if err := db.PutCase(ctx, "~1", 200, []byte(`{"v":"stored"}`)); err != nil {
				t.Fatal(err)
			}
			if err := db.PutCase(ctx, "~1", tt.modified, []byte(tt.body)); err != nil {
				t.Fatal(err)
			}
			body, mod, ok, err := db.Case("~1")
			if err != nil || !ok {
				t.Fatalf("Case = %v, %v", ok, err)
			}
			if mod != tt.wantMod || string(body) != tt.wantBody {
				t.Errorf("Case = %s @%d, want %s @%d", body, mod, tt.wantBody, tt.wantMod)
			}
		})
	}
	db := MustOpen(t)
	if _, _, ok, err := db.Case("~404"); ok || err != nil {
		t.Errorf("Case of missing = %v, %v", ok, err)
	}
}

func TestCheckpoints(t *testing.T) {
	db := MustOpen(t)
	if _, ok, err := db.Checkpoint("backfill"); ok || err != nil {
		t.Fatalf("missing checkpoint = %v, %v", ok, err)
	}
	buf := []byte(`{"ts":1,"ids":["~1"]}`)
	if err := db.PutCheckpoint(ctx, "backfill", buf); err != nil {
		t.Fatal(err)
	}
	buf[2] = 'X' // the store keeps its own copy
	got, ok, err := db.Checkpoint("backfill")
	if err != nil || !ok || string(got) != `{"ts":1,"ids":["~1"]}` {
		t.Errorf("Checkpoint = %s, %v, %v", got, ok, err)
	}
	if err := db.PutCheckpoint(ctx, "empty", nil); err != nil {
		t.Fatal(err)
	}
	if got, ok, _ := db.Checkpoint("empty"); !ok || len(got) != 0 {
		t.Errorf("empty checkpoint = %q, %v; want present and empty", got, ok)
	}
	if err := db.DeleteCheckpoint(ctx, "backfill"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.Checkpoint("backfill"); ok {
		t.Error("checkpoint still there after delete")
	}
	if err := db.DeleteCheckpoint(ctx, "never"); err != nil {
		t.Errorf("DeleteCheckpoint of missing: %v", err)
	}
}
