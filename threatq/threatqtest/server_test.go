package threatqtest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tqlabs/tq-mw-thehive/threatq/threatqtest"
)

type fixture struct {
	t   *testing.T
	s   *threatqtest.Server
	tok string
}

func newFixture(t *testing.T) *fixture {
	s := threatqtest.NewServer(t)
	f := &fixture{t: t, s: s}
	code, body := f.token(url.Values{"grant_type": {"password"}, "client_id": {s.ClientID}}, map[string]string{"email": s.Email, "password": s.Password})
	if code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	var tr struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int    `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" || tr.RefreshToken == "" || tr.ExpiresIn != 3600 {
		t.Fatalf("token response %s", body)
	}
	f.tok = tr.AccessToken
	return f
}

func (f *fixture) token(q url.Values, body any) (int, []byte) {
	b, _ := json.Marshal(body)
	resp, err := http.Post(f.s.URL+"/api/token?"+q.Encode(), "application/json", bytes.NewReader(b))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (f *fixture) do(method, path, body string) (int, string) {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, f.s.URL+path, rd)
	if f.tok != "" {
		req.Header.Set("Authorization", "Bearer "+f.tok)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func TestRejections(t *testing.T) {
	f := newFixture(t)
	if code, body := f.do("POST", "/api/events", `{"title":"e1","type":"Incident","happened_at":"2025-01-01 00:00:00"}`); code != 201 {
		t.Fatalf("create event: %d %s", code, body)
	}
	tests := []struct {
		name, method, path, body string
		wantCode                 int
		wantBody                 string
	}{
		{"unknown indicator type", "POST", "/api/indicators/consume", `[{"value":"x","type":{"name":"Nope"}}]`, 400, `{"data":{"errors":{"type":["The selected type is invalid."]}}}`},
		{"missing value", "POST", "/api/indicators/consume", `[{"type":{"name":"FQDN"}}]`, 400, `"value"`},
		{"missing title", "POST", "/api/events", `{"type":"Incident","happened_at":"2025-01-01 00:00:00"}`, 400, `"title"`},
		{"unknown event type", "POST", "/api/events", `{"title":"t","type":"Nope","happened_at":"2025-01-01 00:00:00"}`, 400, `"type"`},
		{"bad date", "POST", "/api/events", `{"title":"t","type":"Incident","happened_at":"2025-01-01T00:00:00Z"}`, 400, `"happened_at"`},
		{"bad tlp_id", "POST", "/api/incident", `{"value":"i","sources":[{"name":"TheHive","tlp_id":9}]}`, 400, `"tlp_id"`},
		{"bad tlp_id on source", "POST", "/api/events/1/sources", `{"name":"TheHive","tlp_id":7}`, 400, `"tlp_id"`},
		{"malformed JSON", "POST", "/api/events", `{"title":`, 400, `Malformed JSON`},
		{"consume wants an array", "POST", "/api/indicators/consume", `{"value":"x","type":"FQDN"}`, 400, `Malformed JSON`},
		{"unknown path", "GET", "/api/nope", ``, 404, `Not Found`},
		{"unknown sub-resource", "GET", "/api/events/1/nope", ``, 404, ``},
		{"unknown id", "GET", "/api/events/99", ``, 404, ``},
		{"unknown relation target", "POST", "/api/events/1/indicators", `{"id":42}`, 400, `"id"`},
		{"plain POST /api/indicators unsupported", "POST", "/api/indicators", `{}`, 404, ``},
		{"missing attribute value", "POST", "/api/events/1/attributes", `{"name":"x"}`, 400, `"name"`},
		{"outside /api", "GET", "/", ``, 404, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := f.do(tt.method, tt.path, tt.body)
			if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Errorf("%s %s = %d %s, want %d containing %s", tt.method, tt.path, code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
	// Nothing rejected was stored.
	snap := f.s.Snapshot()
	if len(snap.Events) != 1 || len(snap.Indicators) != 0 || len(snap.Incidents) != 0 || len(snap.Events[0].Attributes) != 0 {
		t.Errorf("rejected writes were applied: %+v", snap)
	}
}

func TestAuth(t *testing.T) {
	f := newFixture(t)
	s := f.s
	if code, _ := f.token(url.Values{"grant_type": {"password"}, "client_id": {s.ClientID}}, map[string]string{"email": s.Email, "password": "bad"}); code != 400 {
		t.Errorf("bad password: %d", code)
	}
	if code, _ := f.token(url.Values{"grant_type": {"password"}, "client_id": {"other"}}, map[string]string{"email": s.Email, "password": s.Password}); code != 401 {
		t.Errorf("bad client id: %d", code)
	}
	if code, _ := f.do("GET", "/api/indicator/types", ""); code != 200 {
		t.Errorf("with token: %d", code)
	}
	good := f.tok
	f.tok = "forged"
	if code, _ := f.do("GET", "/api/indicator/types", ""); code != 401 {
		t.Errorf("forged token: %d", code)
	}
	f.tok = ""
	if code, _ := f.do("GET", "/api/events", ""); code != 401 {
		t.Errorf("no token: %d", code)
	}
	f.tok = good
	s.ExpireTokens()
	if code, _ := f.do("GET", "/api/event/types", ""); code != 401 {
		t.Errorf("expired token: %d", code)
	}
	// A form-encoded password grant (XSOAR style) also works.
	form := url.Values{"grant_type": {"password"}, "client_id": {s.ClientID}, "email": {s.Email}, "password": {s.Password}}
	resp, err := http.PostForm(s.URL+"/api/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		RefreshToken string `json:"refresh_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("form login: %d", resp.StatusCode)
	}
	// Refresh rotates: the old refresh token works once.
	q := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}}
	if code, body := f.token(q, map[string]string{}); code != 200 {
		t.Errorf("refresh: %d %s", code, body)
	}
	if code, _ := f.token(q, map[string]string{}); code != 400 {
		t.Errorf("reused refresh token: %d", code)
	}
}

func TestConsumeMergesLikeThreatQ(t *testing.T) {
	f := newFixture(t)
	f.do("POST", "/api/events", `{"title":"e","type_id":13,"happened_at":"2025-01-01 00:00:00"}`)
	code, body := f.do("POST", "/api/indicators/consume", `[{"value":"a.example","type":{"name":"FQDN"},"status":{"name":"Active"},"sources":[{"name":"TheHive","tlp_id":2}],"attributes":[{"name":"PAP","value":"GREEN"}],"events":[{"id":1}]}]`)
	if code != 201 || !strings.Contains(body, `"data":[{`) {
		t.Fatalf("consume: %d %s", code, body)
	}
	// Again, with a new PAP value: the value is appended, the relation and
	// the same source are not duplicated, the status is kept.
	f.do("POST", "/api/indicators/consume", `[{"value":"a.example","type":"FQDN","status":"Review","sources":[{"name":"TheHive","tlp_id":2}],"attributes":[{"name":"PAP","value":"GREEN"},{"name":"PAP","value":"AMBER"}],"events":[{"id":1}]}]`)
	f.do("POST", "/api/indicators/1/events", `[{"id":1}]`)
	f.do("POST", "/api/indicators/1/tags", `[{"name":"x"},{"name":"y"}]`)
	f.do("POST", "/api/indicators/1/tags", `{"name":"x"}`)
	snap := f.s.Snapshot()
	if len(snap.Indicators) != 1 {
		t.Fatalf("indicators = %d", len(snap.Indicators))
	}
	ind := snap.Indicators[0]
	if got := ind.Values("PAP"); len(got) != 2 || got[0] != "GREEN" || got[1] != "AMBER" {
		t.Errorf("PAP = %q, want [GREEN AMBER]", got)
	}
	if ind.Status != "Active" || len(ind.Sources) != 1 || len(ind.Related["events"]) != 1 || len(ind.Tags) != 2 {
		t.Errorf("indicator = %+v", ind)
	}
	if got := snap.Events[0].Related["indicators"]; len(got) != 1 || got[0] != 1 {
		t.Errorf("event relations = %v", got)
	}
	code, body = f.do("GET", "/api/indicators?value=a.example&type_id=11&with=attributes", "")
	if code != 200 || !strings.Contains(body, `"total":1`) || !strings.Contains(body, `"attributes":[`) {
		t.Errorf("lookup: %d %s", code, body)
	}
	if _, body := f.do("GET", "/api/indicators?value=a.example&type_id=1", ""); !strings.Contains(body, `"total":0`) {
		t.Errorf("lookup with other type: %s", body)
	}
	counts, total := f.s.Counts()
	if counts["POST /api/indicators/consume"] != 2 || counts["POST /api/indicators/{id}/tags"] != 2 || total < 8 {
		t.Errorf("counts = %v total %d", counts, total)
	}
}

func TestAttributesCRUD(t *testing.T) {
	f := newFixture(t)
	f.do("POST", "/api/incident", `{"value":"inc","attributes":[{"name":"Status","value":"New"}]}`)
	_, body := f.do("GET", "/api/incident/1/attributes", "")
	var list struct {
		Data []struct {
			ID int `json:"id"`
		} `json:"data"`
	}
	json.Unmarshal([]byte(body), &list)
	if len(list.Data) != 1 {
		t.Fatalf("attributes: %s", body)
	}
	aid := list.Data[0].ID
	path := "/api/incident/1/attributes/" + itoa(aid)
	if code, _ := f.do("PUT", path, `{"value":"Closed"}`); code != 200 {
		t.Errorf("put: %d", code)
	}
	if got := f.s.Snapshot().Incidents[0].Values("Status"); len(got) != 1 || got[0] != "Closed" {
		t.Errorf("Status = %q", got)
	}
	if code, _ := f.do("DELETE", path, ""); code != 204 {
		t.Errorf("delete: %d", code)
	}
	if code, _ := f.do("DELETE", path, ""); code != 404 {
		t.Errorf("second delete: %d", code)
	}
	if code, _ := f.do("PUT", "/api/incident/1", `{"description":"d"}`); code != 200 || f.s.Snapshot().Incidents[0].Description != "d" {
		t.Errorf("put incident: %d", code)
	}
}

func TestFaults(t *testing.T) {
	f := newFixture(t)
	f.s.InjectNext("GET /api/event/types", threatqtest.Fault503, 1)
	if code, _ := f.do("GET", "/api/event/types", ""); code != 503 {
		t.Errorf("injected 503: %d", code)
	}
	f.s.InjectNext("GET /api/event/types", threatqtest.Fault429, 1)
	req, _ := http.NewRequest("GET", f.s.URL+"/api/event/types", nil)
	req.Header.Set("Authorization", "Bearer "+f.tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("429: %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Drop after commit: the client sees an error, the write is stored.
	f.s.InjectNext("POST /api/incident", threatqtest.FaultDropAfterCommit, 1)
	req, _ = http.NewRequest("POST", f.s.URL+"/api/incident", strings.NewReader(`{"value":"dropped"}`))
	req.Header.Set("Authorization", "Bearer "+f.tok)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Error("drop-after-commit: got a response")
	}
	if got := f.s.Snapshot().Incidents; len(got) != 1 || got[0].Value != "dropped" {
		t.Errorf("incidents = %+v", got)
	}
	// A plain drop does not apply the write.
	f.s.InjectNext("POST /api/incident", threatqtest.FaultDrop, 1)
	req, _ = http.NewRequest("POST", f.s.URL+"/api/incident", strings.NewReader(`{"value":"lost"}`))
	req.Header.Set("Authorization", "Bearer "+f.tok)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Error("drop: got a response")
	}
	if got := len(f.s.Snapshot().Incidents); got != 1 {
		t.Errorf("dropped write applied: %d incidents", got)
	}
	f.s.SetFaults(threatqtest.Faults{PermanentWrites: true})
	if code, _ := f.do("POST", "/api/incident", `{"value":"nope"}`); code != 400 {
		t.Errorf("permanent: %d", code)
	}
	if code, _ := f.do("GET", "/api/incident", ""); code != 200 {
		t.Errorf("permanent mode blocks reads: %d", code)
	}
	f.s.SetFaults(threatqtest.Faults{})
	f.s.SetDown(true)
	if _, err := http.Get(f.s.URL + "/api/incident"); err == nil {
		t.Error("down: got a response")
	}
	f.s.SetDown(false)
	if code, _ := f.do("GET", "/api/incident", ""); code != 200 {
		t.Errorf("up again: %d", code)
	}
}

func TestFaultRatesDeterministic(t *testing.T) {
	run := func() []string {
		s := threatqtest.New(threatqtest.Config{Seed: 7})
		if err := s.Start(""); err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.SetFaults(threatqtest.Faults{Rate500: 0.3, Rate503: 0.3, IncludeToken: true})
		for range 20 {
			resp, err := http.Get(s.URL + "/api/nope")
			if err == nil {
				resp.Body.Close()
			}
		}
		var out []string
		for _, r := range s.Requests() {
			out = append(out, r.Fault)
		}
		return out
	}
	a, b := run(), run()
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Errorf("fault sequence differs between runs with one seed:\n%v\n%v", a, b)
	}
	n := 0
	for _, x := range a {
		if x != "" {
			n++
		}
	}
	if n == 0 || n == len(a) {
		t.Errorf("faults = %d of %d", n, len(a))
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
