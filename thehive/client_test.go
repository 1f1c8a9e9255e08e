package thehive_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tqlabs/tq-mw-thehive/thehive"
	"github.com/tqlabs/tq-mw-thehive/thehive/thehivetest"
)

func TestNewClientValidates(t *testing.T) {
	for _, cfg := range []thehive.Config{
		{URL: "", APIKey: "k"},
		{URL: "ftp://hive", APIKey: "k"},
		{URL: "https://hive", APIKey: ""},
		{URL: "https://hive", APIKey: "k", ProxyURL: "::bad"},
	} {
		if _, err := thehive.NewClient(cfg); err == nil {
			t.Errorf("NewClient(%+v) accepted", cfg)
		} else if cfg.APIKey != "" && strings.Contains(err.Error(), cfg.APIKey) {
			t.Errorf("error %q leaks the key", err)
		}
	}
}

func TestAuthFailureIsNotRetried(t *testing.T) {
	srv := thehivetest.NewServer(t, thehivetest.Options{Cases: 5, APIKey: "right-key", Organisation: "acme"})
	tests := []struct {
		name string
		key  string
		org  string
		want int
	}{
		{"wrong key", "wrong-key-secret", "", http.StatusUnauthorized},
		{"other organisation", "right-key", "other", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.Stats().Requests
			c := newTestClient(t, srv.URL, func(cfg *thehive.Config) { cfg.APIKey, cfg.Organisation = tt.key, tt.org })
			_, err := c.CountCases(context.Background(), nil)
			var he *thehive.Error
			if !errors.As(err, &he) || he.StatusCode != tt.want || !thehive.IsAuth(err) || !thehive.IsPermanent(err) {
				t.Fatalf("err = %v, want status %d, auth, permanent", err, tt.want)
			}
			if strings.Contains(err.Error(), tt.key) {
				t.Errorf("error %q leaks the key", err)
			}
			if n := srv.Stats().Requests - before; n != 1 {
				t.Errorf("%d requests, want 1 (no retry)", n)
			}
		})
	}
	c := newTestClient(t, srv.URL, func(cfg *thehive.Config) { cfg.APIKey, cfg.Organisation = "right-key", "acme" })
	if n, err := c.CountCases(context.Background(), nil); err != nil || n != 5 {
		t.Errorf("right key: %d, %v", n, err)
	}
}

func TestBadQueryIsPermanent(t *testing.T) {
	srv := thehivetest.NewServer(t, thehivetest.Options{Cases: 5, APIKey: testKey})
	c := newTestClient(t, srv.URL)
	err := c.Query(context.Background(), "bad", []thehive.Op{{"_name": "listCats"}}, nil)
	var he *thehive.Error
	if !errors.As(err, &he) || he.StatusCode != 400 || he.Type != "BadRequest" || he.Message == "" {
		t.Fatalf("err = %#v", err)
	}
	if !thehive.IsPermanent(err) || thehive.IsAuth(err) || thehive.IsNotFound(err) {
		t.Errorf("classification of %v", err)
	}
	if n := srv.Stats().Requests; n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestCaseGet(t *testing.T) {
	srv := thehivetest.NewServer(t, thehivetest.Options{Cases: 10, Seed: 2, APIKey: testKey})
	c := newTestClient(t, srv.URL)
	want, _ := srv.Case("4")
	for _, id := range []string{want.ID, "4"} {
		got, err := c.Case(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		want.TLPLabel, want.PAPLabel, want.SeverityLabel = got.TLPLabel, got.PAPLabel, got.SeverityLabel
		if diff := cmp.Diff(want, *got); diff != "" {
			t.Errorf("Case(%q) mismatch (-want +got):\n%s", id, diff)
		}
		if got.TLPLabel == "" {
			t.Error("no tlpLabel")
		}
	}
	_, err := c.Case(context.Background(), "~999")
	if !thehive.IsNotFound(err) {
		t.Errorf("unknown case: %v", err)
	}
}

func TestCountCases(t *testing.T) {
	srv := thehivetest.NewServer(t, thehivetest.Options{Cases: 250, Seed: 4, APIKey: testKey})
	c := newTestClient(t, srv.URL)
	all := srv.Cases()
	cut := all[100].CreatedAt
	var want int64
	for _, cs := range all {
		if cs.CreatedAt >= cut && cs.Severity >= 3 {
			want++
		}
	}
	got, err := c.CountCases(context.Background(), thehive.And(thehive.Gte("_createdAt", cut), thehive.Gte("severity", 3)))
	if err != nil || got != want {
		t.Errorf("CountCases = %d, %v; want %d", got, err, want)
	}
	if n, err := c.CountCases(context.Background(), nil); err != nil || n != 250 {
		t.Errorf("CountCases(nil) = %d, %v", n, err)
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		opts thehivetest.Options
		want string
	}{
		{thehivetest.Options{Version: "5.1.4-1"}, "5.1.4-1"},
		{thehivetest.Options{}, "5.2.16-1"},
		{thehivetest.Options{NoStatus: true}, ""},
	}
	for _, tt := range tests {
		srv := thehivetest.NewServer(t, tt.opts)
		got, err := newTestClient(t, srv.URL).Status(context.Background())
		if err != nil || got != tt.want {
			t.Errorf("Status = %q, %v; want %q", got, err, tt.want)
		}
	}
}

// handlerServer answers with the given steps in turn, then 599 forever.
func handlerServer(t *testing.T, steps ...http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if i >= len(steps) {
			http.Error(w, "unexpected request", 599)
			return
		}
		steps[i](w, r)
	}))
	t.Cleanup(ts.Close)
	return ts, &n
}

func TestQueryRetriesTruncatedBody(t *testing.T) {
	var body string
	ts, n := handlerServer(t,
		func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`[{"_id":"~1","_createdAt":1},{"_id`)) },
		func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		},
		func(w http.ResponseWriter, r *http.Request) {
			b := make([]byte, r.ContentLength)
			r.Body.Read(b)
			body = string(b)
			if r.Header.Get("Authorization") != "Bearer "+testKey || r.Header.Get("X-Organisation") != "acme" ||
				r.URL.Query().Get("name") != "q1" {
				t.Errorf("headers %v, query %q", r.Header, r.URL.RawQuery)
			}
			w.Write([]byte(`[{"_id":"~1","_createdAt":1},{"_id":"~2","_createdAt":2}]`))
		},
	)
	c := newTestClient(t, ts.URL, func(cfg *thehive.Config) { cfg.Organisation = "acme" })
	var got []thehive.Case
	if err := c.Query(context.Background(), "q1", []thehive.Op{thehive.ListCase(), thehive.Page(0, 2)}, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || n.Load() != 3 {
		t.Errorf("%d cases after %d requests", len(got), n.Load())
	}
	if want := `{"query":[{"_name":"listCase"},{"_name":"page","from":0,"to":2}]}`; body != want {
		t.Errorf("body %s, want %s", body, want)
	}
}

func TestErrorBodies(t *testing.T) {
	ts, _ := handlerServer(t,
		func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"type":"NotFound","message":"Case ~9 not found"}`))
		},
		func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte("<html>proxy says no</html>"))
		},
		func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"number": "not a number"}`)) },
	)
	c := newTestClient(t, ts.URL)
	_, err := c.Case(context.Background(), "~9")
	var he *thehive.Error
	if !errors.As(err, &he) || he.Type != "NotFound" || he.Message != "Case ~9 not found" || !thehive.IsNotFound(err) {
		t.Errorf("json error: %#v", err)
	}
	_, err = c.Case(context.Background(), "~9")
	if !errors.As(err, &he) || he.StatusCode != 403 || he.Message != "<html>proxy says no</html>" || !thehive.IsAuth(err) {
		t.Errorf("raw error: %#v", err)
	}
	// Complete JSON of the wrong shape is not retried.
	if _, err = c.Case(context.Background(), "~9"); err == nil || thehive.IsPermanent(err) {
		t.Errorf("type mismatch: %v", err)
	}
}

func TestBackoff(t *testing.T) {
	resp := func(code int, ra string) *http.Response {
		r := &http.Response{StatusCode: code, Header: http.Header{}}
		if ra != "" {
			r.Header.Set("Retry-After", ra)
		}
		return r
	}
	lo, hi := 100*time.Millisecond, 10*time.Second
	if got := thehive.Backoff(lo, hi, 0, resp(429, "3")); got != 3*time.Second {
		t.Errorf("Retry-After 3: %v", got)
	}
	if got := thehive.Backoff(lo, time.Second, 0, resp(503, "3")); got != time.Second {
		t.Errorf("Retry-After over max: %v", got)
	}
	for attempt := range 8 {
		got := thehive.Backoff(lo, hi, attempt, resp(500, "3"))
		upper := min(hi, lo<<(attempt+1))
		if got < lo || got > upper {
			t.Errorf("attempt %d: %v outside [%v, %v]", attempt, got, lo, upper)
		}
	}
}

func TestFilterBuildersJSON(t *testing.T) {
	got, err := json.Marshal(thehive.Filter(thehive.And(
		thehive.Gte("_createdAt", int64(1734425224596)),
		thehive.Or(thehive.Eq("severity", 3), thehive.Not(thehive.Has("_updatedAt"))),
		thehive.In("status", "New", "InProgress"),
		thehive.Between("_updatedAt", 1, 2),
		thehive.Gt("a", 1), thehive.Lt("b", 2), thehive.Lte("c", 3), thehive.Ne("d", "x"),
	)))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"_and":[{"_gte":{"_field":"_createdAt","_value":1734425224596}},` +
		`{"_or":[{"_eq":{"_field":"severity","_value":3}},{"_not":{"_has":"_updatedAt"}}]},` +
		`{"_in":{"_field":"status","_values":["New","InProgress"]}},` +
		`{"_between":{"_field":"_updatedAt","_from":1,"_to":2}},` +
		`{"_gt":{"_field":"a","_value":1}},{"_lt":{"_field":"b","_value":2}},` +
		`{"_lte":{"_field":"c","_value":3}},{"_ne":{"_field":"d","_value":"x"}}],"_name":"filter"}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	for _, tt := range []struct {
		op   thehive.Op
		want string
	}{
		{thehive.Sort("_createdAt"), `{"_fields":[{"_createdAt":"asc"}],"_name":"sort"}`},
		{thehive.Sort("number", "desc"), `{"_fields":[{"number":"desc"}],"_name":"sort"}`},
		{thehive.PageWithTotal(0, 100), `{"_name":"page","extraData":["total"],"from":0,"to":100}`},
		{thehive.GetCase("~1"), `{"_name":"getCase","idOrName":"~1"}`},
		{thehive.Count(), `{"_name":"count"}`},
	} {
		if got, _ := json.Marshal(tt.op); string(got) != tt.want {
			t.Errorf("got %s, want %s", got, tt.want)
		}
	}
}
