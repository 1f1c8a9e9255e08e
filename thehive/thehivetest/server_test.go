package thehivetest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/tqlabs/tq-mw-thehive/thehive"
	"github.com/tqlabs/tq-mw-thehive/thehive/thehivetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const key = "k3y"

// post sends a raw query and returns status, X-Total and body.
func post(t testing.TB, s *thehivetest.Server, body string) (int, string, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/api/v1/query?name=test", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Total"), b
}

func queryCases(t testing.TB, s *thehivetest.Server, ops ...any) []thehive.Case {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"query": ops})
	code, _, body := post(t, s, string(b))
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var out []thehive.Case
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return out
}

func ids(cs []thehive.Case) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func TestFilters(t *testing.T) {
	s := thehivetest.NewServer(t, thehivetest.Options{Cases: 300, Seed: 21, APIKey: key, SameTimestampEvery: 3})
	all := s.Cases()
	mid := all[150].CreatedAt
	tests := []struct {
		name   string
		filter string
		want   func(c thehive.Case) bool
	}{
		{"gte", fmt.Sprintf(`{"_gte":{"_field":"_createdAt","_value":%d}}`, mid), func(c thehive.Case) bool { return c.CreatedAt >= mid }},
		{"gt", fmt.Sprintf(`{"_gt":{"_field":"_createdAt","_value":%d}}`, mid), func(c thehive.Case) bool { return c.CreatedAt > mid }},
		{"lt", fmt.Sprintf(`{"_lt":{"_field":"_createdAt","_value":%d}}`, mid), func(c thehive.Case) bool { return c.CreatedAt < mid }},
		{"lte", fmt.Sprintf(`{"_lte":{"_field":"_createdAt","_value":%d}}`, mid), func(c thehive.Case) bool { return c.CreatedAt <= mid }},
		{"eq", fmt.Sprintf(`{"_eq":{"_field":"_createdAt","_value":%d}}`, mid), func(c thehive.Case) bool { return c.CreatedAt == mid }},
		{"eq deprecated short form", `{"_eq":{"severity":3}}`, func(c thehive.Case) bool { return c.Severity == 3 }},
		{"ne", `{"_ne":{"_field":"status","_value":"New"}}`, func(c thehive.Case) bool { return c.Status != "New" }},
		{"in", `{"_in":{"_field":"status","_values":["New","TruePositive"]}}`, func(c thehive.Case) bool { return c.Status == "New" || c.Status == "TruePositive" }},
		{"in numbers", `{"_in":{"_field":"tlp","_values":[0,4]}}`, func(c thehive.Case) bool { return c.TLP == 0 || c.TLP == 4 }},
		{"between", fmt.Sprintf(`{"_between":{"_field":"_createdAt","_from":%d,"_to":%d}}`, all[10].CreatedAt, all[20].CreatedAt),
			func(c thehive.Case) bool { return c.CreatedAt >= all[10].CreatedAt && c.CreatedAt < all[20].CreatedAt }},
		{"has", `{"_has":"assignee"}`, func(c thehive.Case) bool { return c.Assignee != "" }},
		{"not has updatedAt", `{"_not":{"_has":"_updatedAt"}}`, func(c thehive.Case) bool { return c.UpdatedAt == 0 }},
		{"and", `{"_and":[{"_gte":{"_field":"severity","_value":2}},{"_eq":{"_field":"flag","_value":true}}]}`,
			func(c thehive.Case) bool { return c.Severity >= 2 && c.Flag }},
		{"or", fmt.Sprintf(`{"_or":[{"_gte":{"_field":"_updatedAt","_value":%d}},{"_gte":{"_field":"_createdAt","_value":%d}}]}`, mid, mid),
			func(c thehive.Case) bool { return c.UpdatedAt >= mid || c.CreatedAt >= mid }},
		{"tags", `{"_eq":{"_field":"tags","_value":"phishing"}}`, func(c thehive.Case) bool { return slices.Contains(c.Tags, "phishing") }},
		{"like", `{"_like":{"_field":"title","_value":"phishing*"}}`, func(c thehive.Case) bool { return strings.HasPrefix(c.Title, "Phishing") }},
		{"startsWith", `{"_startsWith":{"_field":"title","_value":"Web"}}`, func(c thehive.Case) bool { return strings.HasPrefix(c.Title, "Web") }},
		{"id", fmt.Sprintf(`{"_id":%q}`, all[7].ID), func(c thehive.Case) bool { return c.ID == all[7].ID }},
		{"any", `{"_any":null}`, func(thehive.Case) bool { return true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []string
			for _, c := range all {
				if tt.want(c) {
					want = append(want, c.ID)
				}
			}
			if len(want) == 0 || len(want) == len(all) && tt.name != "any" {
				t.Fatalf("filter selects %d of %d: a weak test", len(want), len(all))
			}
			var f map[string]any
			if err := json.Unmarshal([]byte(tt.filter), &f); err != nil {
				t.Fatal(err)
			}
			f["_name"] = "filter"
			// Both the indexed path (sorted on _createdAt) and the generic one.
			for _, tail := range [][]any{
				{map[string]any{"_name": "sort", "_fields": []any{map[string]string{"_createdAt": "asc"}}}},
				{map[string]any{"_name": "sort", "_fields": []any{map[string]string{"number": "asc"}}}},
			} {
				got := ids(queryCases(t, s, append([]any{map[string]string{"_name": "listCase"}, f}, tail...)...))
				sort.Strings(got)
				w := slices.Clone(want)
				sort.Strings(w)
				if diff := cmp.Diff(w, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			}
			body, _ := json.Marshal(map[string]any{"query": []any{map[string]string{"_name": "listCase"}, f, map[string]string{"_name": "count"}}})
			if _, _, b := post(t, s, string(body)); string(bytes.TrimSpace(b)) != fmt.Sprint(len(want)) {
				t.Errorf("count = %s, want %d", b, len(want))
			}
		})
	}
}

func TestSortAndPage(t *testing.T) {
	s := thehivetest.NewServer(t, thehivetest.Options{Cases: 1500, Seed: 22, APIKey: key})
	all := s.Cases()
	want := slices.Clone(all)
	sort.SliceStable(want, func(a, b int) bool {
		if want[a].Severity != want[b].Severity {
			return want[a].Severity > want[b].Severity
		}
		return want[a].Number < want[b].Number
	})
	body := `{"query":[{"_name":"listCase"},{"_name":"sort","_fields":[{"severity":"desc"},{"number":"asc"}]},{"_name":"page","from":10,"to":25,"extraData":["total"]}]}`
	code, total, b := post(t, s, body)
	var got []thehive.Case
	if err := json.Unmarshal(b, &got); code != 200 || err != nil {
		t.Fatalf("%d %v %s", code, err, b)
	}
	if diff := cmp.Diff(ids(want[10:25]), ids(got)); diff != "" {
		t.Errorf("sort/page (-want +got):\n%s", diff)
	}
	if total != "1000" {
		t.Errorf("X-Total = %q, want the 1000 cap", total)
	}
	// Indexed path: page past the start, to exclusive, total under the cap.
	body = fmt.Sprintf(`{"query":[{"_name":"listCase"},{"_name":"filter","_gte":{"_field":"_createdAt","_value":%d}},{"_name":"sort","_fields":[{"_createdAt":"asc"}]},{"_name":"page","from":3,"to":5,"extraData":["total"]}]}`, all[1400].CreatedAt)
	_, total, b = post(t, s, body)
	got = nil
	json.Unmarshal(b, &got) //nolint:errcheck
	if diff := cmp.Diff(ids(all[1403:1405]), ids(got)); diff != "" || total != "100" {
		t.Errorf("indexed page: total %q (-want +got):\n%s", total, diff)
	}
	// Without extraData there is no X-Total; _updatedAt sorts put cases
	// without one last.
	_, total, b = post(t, s, `{"query":[{"_name":"listCase"},{"_name":"sort","_fields":[{"_updatedAt":"asc"}]}]}`)
	got = nil
	json.Unmarshal(b, &got) //nolint:errcheck
	if total != "" || len(got) != 1500 || got[0].UpdatedAt == 0 || got[1499].UpdatedAt != 0 {
		t.Errorf("X-Total %q, %d cases, first %d last %d", total, len(got), got[0].UpdatedAt, got[len(got)-1].UpdatedAt)
	}
}

func TestQueryErrors(t *testing.T) {
	s := thehivetest.NewServer(t, thehivetest.Options{Cases: 3, APIKey: key})
	tests := []struct {
		name, body, typ string
		code            int
	}{
		{"unknown operation", `{"query":[{"_name":"listCase"},{"_name":"frobnicate"}]}`, "BadRequest", 400},
		{"unknown start", `{"query":[{"_name":"filter","_any":null}]}`, "BadRequest", 400},
		{"bad filter", `{"query":[{"_name":"listCase"},{"_name":"filter","_gte":3}]}`, "BadRequest", 400},
		{"unknown filter operator", `{"query":[{"_name":"listCase"},{"_name":"filter","_near":{"_field":"a","_value":1}}]}`, "BadRequest", 400},
		{"bad sort", `{"query":[{"_name":"listCase"},{"_name":"sort","_fields":[{"number":"up"}]}]}`, "BadRequest", 400},
		{"bad page", `{"query":[{"_name":"listCase"},{"_name":"page","from":5,"to":1}]}`, "BadRequest", 400},
		{"not json", `nope`, "BadRequest", 400},
		{"unknown case", `{"query":[{"_name":"getCase","idOrName":"~1"},{"_name":"observables"}]}`, "NotFound", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, b := post(t, s, tt.body)
			var e struct{ Type, Message string }
			if err := json.Unmarshal(b, &e); err != nil || code != tt.code || e.Type != tt.typ || e.Message == "" {
				t.Errorf("got %d %s, want %d %s", code, b, tt.code, tt.typ)
			}
		})
	}
	for _, auth := range []string{"", "Bearer wrong", "Basic " + key} {
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/v1/case/1", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("auth %q: status %d", auth, resp.StatusCode)
		}
	}
}

func TestGeneratedDataIsDeterministicAndVaried(t *testing.T) {
	opts := thehivetest.Options{Cases: 400, ObservablesPerCase: 5, Seed: 99}
	a, b := thehivetest.New(opts), thehivetest.New(opts)
	if diff := cmp.Diff(a.Cases(), b.Cases()); diff != "" {
		t.Fatalf("same seed, different cases:\n%s", diff)
	}
	opts.Seed = 100
	if cmp.Equal(a.Cases(), thehivetest.New(opts).Cases()) {
		t.Error("different seeds, same cases")
	}
	types := map[string]int{}
	hashLens := map[int]bool{}
	ioc, sighted, total := 0, 0, 0
	obsIDs := map[string]bool{}
	for _, c := range a.Cases() {
		obs := a.Observables(c.ID)
		if diff := cmp.Diff(obs, b.Observables(c.ID)); diff != "" {
			t.Fatalf("observables differ:\n%s", diff)
		}
		for _, o := range obs {
			total++
			obsIDs[o.ID] = true
			types[o.DataType]++
			if o.DataType == "hash" {
				hashLens[len(o.Data)] = true
			}
			if o.DataType == "file" && (o.Data != "" || len(o.Attachment) == 0) {
				t.Errorf("file observable %+v", o)
			}
			if o.DataType != "file" && o.Data == "" {
				t.Errorf("observable without data: %+v", o)
			}
			if o.IOC {
				ioc++
			}
			if o.Sighted {
				sighted++
			}
		}
	}
	for _, dt := range []string{"ip", "domain", "fqdn", "url", "hash", "mail", "filename", "other", "file"} {
		if types[dt] == 0 {
			t.Errorf("no %s observable in %v", dt, types)
		}
	}
	if !hashLens[32] || !hashLens[40] || !hashLens[64] {
		t.Errorf("hash lengths %v", hashLens)
	}
	if total != 2000 || len(obsIDs) != total || ioc == 0 || ioc == total || sighted == 0 || sighted == total {
		t.Errorf("%d observables, %d ids, %d ioc, %d sighted", total, len(obsIDs), ioc, sighted)
	}
}

func TestMutations(t *testing.T) {
	s := thehivetest.NewServer(t, thehivetest.Options{Cases: 50, Seed: 1, APIKey: key})
	fixed := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s.Clock = func() time.Time { return fixed }
	first, err := s.UpdateCase("3", func(c *thehive.Case) { c.Title = "one"; c.ID = "~hijack" })
	if err != nil {
		t.Fatal(err)
	}
	second, _ := s.UpdateCase("5", func(c *thehive.Case) { c.Title = "two" })
	if first.ID != s.Cases()[2].ID || first.UpdatedAt != fixed.UnixMilli() || second.UpdatedAt <= first.UpdatedAt {
		t.Errorf("updates stamped %d then %d (id %s)", first.UpdatedAt, second.UpdatedAt, first.ID)
	}
	added := s.AddCase(thehive.Case{Title: "fresh"})
	if added.Number != 51 || added.CreatedAt <= second.UpdatedAt || added.UpdatedAt != 0 {
		t.Errorf("added %+v", added)
	}
	if _, err := s.UpdateCase("~1", func(*thehive.Case) {}); err == nil {
		t.Error("update of unknown case accepted")
	}
	// Both updated cases come last in an _updatedAt listing, in order.
	got := queryCases(t, s,
		map[string]any{"_name": "listCase"},
		map[string]any{"_name": "filter", "_gte": map[string]any{"_field": "_updatedAt", "_value": 0}},
		map[string]any{"_name": "sort", "_fields": []any{map[string]string{"_updatedAt": "asc"}}})
	if n := len(got); n < 2 || got[n-2].Title != "one" || got[n-1].Title != "two" {
		t.Errorf("tail of _updatedAt listing: %v", ids(got[max(0, len(got)-3):]))
	}
	o, err := s.AddObservable(added.ID, thehive.Observable{DataType: "ip", Data: "10.0.0.1"})
	if err != nil || o.CreatedAt <= added.CreatedAt {
		t.Fatalf("AddObservable: %+v %v", o, err)
	}
	if obs := s.Observables(added.ID); len(obs) != 1 || obs[0].ID != o.ID {
		t.Errorf("observables of added case: %+v", obs)
	}
	c, ok := s.Case(added.ID)
	if !ok || c.Title != "fresh" {
		t.Errorf("Case(%s) = %+v, %v", added.ID, c, ok)
	}
}

func TestStartAndClose(t *testing.T) {
	s := thehivetest.New(thehivetest.Options{Cases: 2})
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp, err := http.Get(s.URL + "/api/v1/case/2")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c thehive.Case
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || c.Number != 2 || resp.Header.Get("Date") == "" {
		t.Errorf("GET case 2: %+v %v", c, err)
	}
}

// TestMemory200k reports the heap a 200,000-case × 5-observable fake holds
// and checks a pager page stays an index lookup away.
func TestMemory200k(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 200,000 cases")
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := thehivetest.NewServer(t, thehivetest.Options{Cases: 200000, ObservablesPerCase: 5, Seed: 1, APIKey: key})
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap held by a 200,000 x 5 fake: %.1f MiB", float64(heap)/(1<<20))
	if heap > 64<<20 {
		t.Errorf("fake holds %d MiB", heap>>20)
	}
	last := s.Cases()[199990]
	got := queryCases(t, s,
		map[string]any{"_name": "listCase"},
		map[string]any{"_name": "filter", "_gte": map[string]any{"_field": "_createdAt", "_value": last.CreatedAt}},
		map[string]any{"_name": "sort", "_fields": []any{map[string]string{"_createdAt": "asc"}}},
		map[string]any{"_name": "page", "from": 0, "to": 100})
	if len(got) != 10 || got[0].ID != last.ID {
		t.Errorf("tail page: %d cases", len(got))
	}
	runtime.KeepAlive(s)
}

func BenchmarkKeysetPage200k(b *testing.B) {
	s := thehivetest.NewServer(b, thehivetest.Options{Cases: 200000, ObservablesPerCase: 5, Seed: 1, APIKey: key})
	mid := s.Cases()[100000].CreatedAt
	body := fmt.Sprintf(`{"query":[{"_name":"listCase"},{"_name":"filter","_gte":{"_field":"_createdAt","_value":%d}},{"_name":"sort","_fields":[{"_createdAt":"asc"}]},{"_name":"page","from":0,"to":100}]}`, mid)
	b.ResetTimer()
	for b.Loop() {
		if code, _, _ := post(b, s, body); code != 200 {
			b.Fatal(code)
		}
	}
}

// FuzzQuery feeds arbitrary bodies to the query endpoint: the fake must
// answer every one with a result or a TheHive error, never panic.
func FuzzQuery(f *testing.F) {
	for _, seed := range []string{
		`{"query":[{"_name":"listCase"},{"_name":"filter","_or":[{"_gt":{"_field":"_createdAt","_value":5}},{"_and":[{"_eq":{"_field":"_createdAt","_value":5}},{"_not":{"_in":{"_field":"_id","_values":["~4096000"]}}}]}]},{"_name":"sort","_fields":[{"_createdAt":"asc"}]},{"_name":"page","from":0,"to":3}]}`,
		`{"query":[{"_name":"getCase","idOrName":"2"},{"_name":"observables"},{"_name":"filter","_between":{"_field":"_createdAt","_from":0,"_to":1e13}},{"_name":"count"}]}`,
		`{"query":[{"_name":"listObservable"},{"_name":"case"},{"_name":"sort","_fields":[{"tags":"desc"}]},{"_name":"limitedCount"}]}`,
		`{"query":[{"_name":"listCase"},{"_name":"filter","_like":{"_field":"title","_value":"*("}}]}`,
		`{"query":[]}`, `[]`, `{"query":[{"_name":"page","from":-1}]}`,
	} {
		f.Add(seed)
	}
	s := thehivetest.New(thehivetest.Options{Cases: 20, ObservablesPerCase: 2, Seed: 3})
	f.Fuzz(func(t *testing.T, body string) {
		req, _ := http.NewRequest(http.MethodPost, "/api/v1/query", strings.NewReader(body))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		switch rec.Code {
		case 200:
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("200 with invalid JSON: %s", rec.Body)
			}
		case 400, 404:
			var e struct{ Type, Message string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Type == "" {
				t.Fatalf("%d without a TheHive error body: %s", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	})
}
