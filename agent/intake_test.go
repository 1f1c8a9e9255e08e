package agent_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/tqlabs/tq-mw-thehive/agent"
)

func TestIntakeRejects(t *testing.T) {
	caseBody := readFile(t, "webhook-case-update.json")
	const limit = 4096
	// A valid webhook padded with whitespace to exactly limit+1 bytes.
	overLimit := append(bytes.TrimSpace(append([]byte(nil), caseBody...)), bytes.Repeat([]byte(" "), limit)...)[:limit+1]
	atLimit := append(bytes.TrimSpace(append([]byte(nil), caseBody...)), bytes.Repeat([]byte(" "), limit)...)[:limit]

	tests := []struct {
		name   string
		method string
		path   string
		body   []byte
		hdr    map[string]string
		want   int
	}{
		{"one byte over the limit", "POST", "/cases", overLimit, nil, http.StatusRequestEntityTooLarge},
		{"truncated JSON", "POST", "/cases", caseBody[:len(caseBody)/2], nil, http.StatusBadRequest},
		{"JSON array", "POST", "/cases", []byte(`[` + string(caseBody) + `]`), nil, http.StatusBadRequest},
		{"JSON null", "POST", "/cases", []byte(`null`), nil, http.StatusBadRequest},
		{"empty body", "POST", "/cases", nil, nil, http.StatusBadRequest},
		{"missing objectType", "POST", "/cases", without(t, caseBody, "objectType"), nil, http.StatusBadRequest},
		{"missing object id", "POST", "/cases", without(t, without(t, caseBody, "objectId"), "object._id"), nil, http.StatusBadRequest},
		{"missing action", "POST", "/cases", without(t, caseBody, "action"), nil, http.StatusBadRequest},
		{"update without object", "POST", "/cases", without(t, caseBody, "object"), nil, http.StatusBadRequest},
		{"wrong content type", "POST", "/cases", caseBody, map[string]string{"Content-Type": "text/plain"}, http.StatusUnsupportedMediaType},
		{"form content type", "POST", "/cases", caseBody, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"no content type", "POST", "/cases", caseBody, map[string]string{"Content-Type": ""}, http.StatusUnsupportedMediaType},
		{"wrong bearer", "POST", "/cases", caseBody, map[string]string{"Authorization": "Bearer nope"}, http.StatusUnauthorized},
		{"no credentials", "POST", "/cases", caseBody, map[string]string{"Authorization": ""}, http.StatusUnauthorized},
		{"basic instead of bearer", "POST", "/cases", caseBody, map[string]string{"Authorization": "Basic dXNlcjpwdw=="}, http.StatusUnauthorized},
		{"GET /cases", "GET", "/cases", nil, nil, http.StatusMethodNotAllowed},
		{"unknown path", "POST", "/case", caseBody, nil, http.StatusNotFound},
	}
	cfg := baseConfig(t)
	cfg.Intake = agent.IntakeConfig{MaxBodyBytes: limit, AuthType: "bearer", Token: "s3cret"}
	ta := startAgent(t, cfg)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"Authorization": "Bearer s3cret"}
			for k, v := range tt.hdr {
				hdr[k] = v
			}
			code, out := ta.do(t, tt.method, tt.path, tt.body, hdr)
			if code != tt.want {
				t.Fatalf("status = %d, want %d (body %v)", code, tt.want, out)
			}
			if msg, _ := out["error"].(string); msg == "" {
				t.Errorf("response %v has no \"error\" message", out)
			}
			if n := ta.pending(t); n != 0 {
				t.Errorf("store holds %d messages after a rejected request, want 0", n)
			}
		})
	}
	// The same body exactly at the limit is accepted: the check is not off by one.
	if code, out := ta.do(t, "POST", "/cases", atLimit, map[string]string{"Authorization": "Bearer s3cret"}); code != http.StatusOK {
		t.Fatalf("body at the limit: status %d %v, want 200", code, out)
	}
}

func TestIntakeBasicAuth(t *testing.T) {
	cfg := baseConfig(t)
	cfg.Intake = agent.IntakeConfig{AuthType: "basic", Username: "thehive", Password: "pw"}
	ta := startAgent(t, cfg)
	body := readFile(t, "webhook-case-update.json")
	for _, tc := range []struct {
		user, pass string
		want       int
	}{{"thehive", "wrong", 401}, {"other", "pw", 401}, {"", "", 401}, {"thehive", "pw", 200}} {
		req, _ := http.NewRequest("POST", ta.URL+"/cases", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s/%s: status %d, want %d", tc.user, tc.pass, resp.StatusCode, tc.want)
		}
	}
	if n := ta.pending(t); n != 1 {
		t.Errorf("stored %d messages, want 1", n)
	}
}

func TestIntakeStoresAndDedupes(t *testing.T) {
	ta := startAgent(t, baseConfig(t))
	caseBody := readFile(t, "webhook-case-update.json")
	obsBody := readFile(t, "webhook-observable-update.json")

	for i, tc := range []struct {
		body   []byte
		code   int
		status string
		count  int
	}{
		{caseBody, 200, "stored", 1},
		{obsBody, 200, "stored", 2},
		{caseBody, 200, "duplicate", 2}, // same audit _id delivered twice
		{withField(t, caseBody, "objectType", "Alert"), 202, "ignored", 2},
		{withField(t, withField(t, caseBody, "_id", "~other"), "objectType", "Task"), 202, "ignored", 2},
		{without(t, withField(t, withField(t, caseBody, "_id", "~del"), "action", "delete"), "object"), 200, "stored", 3},
	} {
		code, out := ta.post(t, "/cases", tc.body, nil)
		if code != tc.code || out["status"] != tc.status {
			t.Fatalf("step %d: got %d %v, want %d %q", i, code, out, tc.code, tc.status)
		}
		if n := ta.pending(t); n != tc.count {
			t.Fatalf("step %d: store holds %d, want %d", i, n, tc.count)
		}
	}
}

func TestIntakeTheHive3Shape(t *testing.T) {
	ta := startAgent(t, baseConfig(t))
	body := []byte(`{"_type":"audit","operation":"Creation","objectType":"case_artifact","objectId":"~1","rootId":"~9",
	  "base":true,"startDate":1683360734678,"requestId":"r1",
	  "object":{"_id":"~1","id":"~1","dataType":"ip","data":"10.0.0.1","tlp":2,"ioc":true,"sighted":false,"tags":["x"],"createdAt":1683360734000},
	  "organisationId":"~4","organisation":"sample-org"}`)
	code, out := ta.post(t, "/cases", body, nil)
	if code != 200 || out["status"] != "stored" {
		t.Fatalf("got %d %v", code, out)
	}
	msgs, err := ta.Outbox().List("", 0, 10)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("list: %v %d", err, len(msgs))
	}
	if m := msgs[0]; m.ObjectType != "Observable" || m.Action != "create" || m.RootID != "~9" || m.ObjectID != "~1" {
		t.Errorf("stored message not normalised: %+v", m)
	}
}

// Concurrent posts share commits; every 200 is in the store exactly once.
func TestIntakeConcurrent(t *testing.T) {
	ta := startAgent(t, baseConfig(t))
	base := readFile(t, "webhook-observable-update.json")
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := withField(t, withField(t, base, "_id", fmt.Sprintf("~a%d", i)), "objectId", "~85033200")
			// Every tenth audit id is posted twice: stored once.
			for range 1 + boolInt(i%10 == 0) {
				resp, err := http.Post(ta.URL+"/cases", "application/json", bytes.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := ta.pending(t); got != n {
		t.Fatalf("store holds %d, want %d", got, n)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (ta *testAgent) do(t testing.TB, method, path string, body []byte, hdr map[string]string) (int, map[string]any) {
	t.Helper()
	if method == "POST" {
		return ta.post(t, path, body, hdr)
	}
	req, _ := http.NewRequest(method, ta.URL+path, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// editJSON decodes a JSON object, applies set to the map holding the last
// element of a dotted path, and encodes it again.
func editJSON(t testing.TB, body []byte, path string, set func(m map[string]any, key string)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	keys := strings.Split(path, ".")
	cur := m
	for _, k := range keys[:len(keys)-1] {
		cur = cur[k].(map[string]any)
	}
	set(cur, keys[len(keys)-1])
	b, _ := json.Marshal(m)
	return b
}

// without deletes a (dotted) key from a JSON object.
func without(t testing.TB, body []byte, path string) []byte {
	return editJSON(t, body, path, func(m map[string]any, k string) { delete(m, k) })
}

// withField sets a (dotted) key of a JSON object.
func withField(t testing.TB, body []byte, path string, v any) []byte {
	return editJSON(t, body, path, func(m map[string]any, k string) { m[k] = v })
}
