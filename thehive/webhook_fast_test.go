package thehive

// White-box: the fast path and the slow path are unexported, and the
// property under test is that they agree.

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fastSlowSamples are the sample bodies, each of which the fast path must
// take: they are what TheHive sends, so declining them would lose the
// speed-up without any test noticing.
func fastSlowSamples(tb testing.TB) []string {
	tb.Helper()
	own, err := filepath.Glob(filepath.Join("testdata", "webhooks", "*.json"))
	if err != nil || len(own) == 0 {
		tb.Fatalf("no webhook samples under testdata/webhooks (%v)", err)
	}
	return append([]string{
		filepath.Join("..", "testdata", "webhook-case-update.json"),
		filepath.Join("..", "testdata", "webhook-observable-update.json"),
	}, own...)
}

// tableBodies returns every string literal of webhook_test.go, which holds
// the bodies of the table tests, so the seeds follow those tables as they
// grow. Expected values and names come along; as inputs they do no harm.
func tableBodies(tb testing.TB) []string {
	tb.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), "webhook_test.go", nil, parser.SkipObjectResolution)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	ast.Inspect(file, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				tb.Fatalf("unquote %s: %v", lit.Value, err)
			}
			out = append(out, s)
		}
		return true
	})
	if len(out) < 50 {
		tb.Fatalf("only %d string literals in webhook_test.go; has it moved?", len(out))
	}
	return out
}

// trickyBodies probe what the fast path must get exactly right or decline:
// duplicate members (the last wins), names differing only in case (distinct
// members), escaped names, nulls, precedence between v1 and TheHive 3
// names, unusual strings and numbers.
var trickyBodies = []string{
	`{"action":"update","action":"delete","objectType":"Case","objectId":"~1"}`,
	`{"action":"delete","action":"update","objectType":"Case","objectId":"~1","object":{"_id":"~1"}}`,
	`{"action":"delete","Action":"update","objectType":"Case","objectId":"~1"}`,
	`{"ACTION":"delete","operation":"Deletion","objectType":"Case","objectId":"~1"}`,
	`{"\u0061ction":"delete","objectType":"Case","objectId":"~1"}`,
	`{"action":"delete","objectType":"Case","objectId":"~1","\u005fid":"~9"}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"\u0074itle":"x"}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"Title":"x","title":"y","TITLE":"z"}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"title":"y"},"object":{"title":"z"}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"title":"y"},"object":null}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"title":"y"},"object":"x"}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":"x","object":{"title":"y"}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"status":"Open","extendedStatus":"New"}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"status":"Open","extendedStatus":null}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"status":"Open","extendedStatus":1}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"_id":null,"id":"~1","owner":"o","assignee":null}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"_id":"~1","id":"~2","number":null,"caseId":3}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"_id":"","id":"~2"}}`,
	`{"action":"update","objectType":"Case","objectId":"","object":{"_id":"~2"}}`,
	`{"action":"update","objectType":"Case","objectId":null,"object":{"id":"~2"}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"title":"a\u00e9\n\"b\"","description":"caf\u00e9 \ud83d\ude00 \ud800"}}`,
	"{\"action\":\"update\",\"objectType\":\"Case\",\"objectId\":\"~1\",\"object\":{\"title\":\"bad \xff utf8\",\"tags\":[\"\xc3\",\"ok\"]}}",
	"{\"action\":\"update\",\"objectType\":\"Case\",\"objectId\":\"~1\",\"\xffobject\":{},\"object\":{\"title\":\"été\"}}",
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"tags":["a",null,"b"]}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"tags":["a\"b","c"]}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"tags":[ "a" , "b" ]}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"tags":[]}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"tags":[["a"]]}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"tlp":-0,"pap":1e0,"severity":-2147483648,"number":9223372036854775807}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"severity":2147483648}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"number":9223372036854775808}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"number":-9.2233720368547758e18,"endDate":1.5E+3}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"number":01}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"number":1.}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"number":-}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"flag":true,"flag":null}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"flag":True}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"flag":nul}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"x":"\x"}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"x":"\u12G4"}}`,
	"{\"action\":\"update\",\"objectType\":\"Case\",\"objectId\":\"~1\",\"object\":{\"x\":\"tab\there\"}}",
	"\v{\"action\":\"delete\",\"objectType\":\"Case\",\"objectId\":\"~1\"}\u00a0",
	"{\"action\":\"delete\",\"objectType\":\"Case\",\"objectId\":\"~1\"}\v",
	"{\"action\":\"delete\",\"objectType\":\"Case\",\"objectId\":\"~1\"\v}",
	`{"action":"delete","objectType":"Case","objectId":"~1"}{}`,
	`{"action":"delete","objectType":"Case","objectId":"~1",}`,
	`{"action":"delete","objectType":"Case","objectId":"~1" "x":1}`,
	`{"action":"delete","objectType":"Case","objectId":"~1","x":[1,]}`,
	`{"action":"delete","objectType":"Case","objectId":"~1","x":[1 2]}`,
	`{"action":"delete","objectType":"Case","objectId":"~1","x":{"a" 1}}`,
	`{"action" : "delete" , "objectType" :"Case", "objectId": "~1" , "x" : [ ] , "y" : { } }`,
	`{"_type":"AUDIT","action":"delete","objectType":"Case","objectId":"~1"}`,
	`{"_type":"Auditing","action":"delete","objectType":"Case","objectId":"~1"}`,
	`{"_type":null,"action":"delete","objectType":"Case","objectId":"~1"}`,
	`{"_id":"~a","id":"~b","action":"delete","objectType":"Case","objectId":"~1"}`,
	`{"_id":"","id":"~b","action":"delete","objectType":"Case","objectId":"~1"}`,
	`{"_createdAt":null,"createdAt":2,"startDate":3,"action":"delete","objectType":"Case","objectId":"~1"}`,
	`{"startDate":3,"action":"delete","objectType":"Case","objectId":"~1"}`,
	`{"organisationId":"~o","organisation":{"_id":"~p","name":"n"},"action":"delete","objectType":"Case","objectId":"~1"}`,
	`{"organisationId":"~o","organisation":{"organisationId":"","organisation":"x","name":"n"},"action":"delete","objectType":"Case","objectId":"~1"}`,
	`{"organisationId":"~o","organisation":{"organisationId":null,"_id":"~q"},"action":"delete","objectType":"Case","objectId":"~1"}`,
	`{"organisation":{"organisation":"a"},"organisation":"b","action":"delete","objectType":"Case","objectId":"~1"}`,
	`{"organisation":"b","organisation":{"organisation":"a"},"action":"delete","objectType":"Case","objectId":"~1"}`,
	`{"organisation":{"Organisation":"a","\u006eame":"b"},"action":"delete","objectType":"Case","objectId":"~1"}`,
	`{"organisation":{"organisation":1},"action":"delete","objectType":"Case","objectId":"~1"}`,
	`{"organisation":true,"action":"delete","objectType":"Case","objectId":"~1"}`,
	`{"action":"create","objectType":"Observable","objectId":"~5","object":{"_id":"~5","_parent":"~p"}}`,
	`{"action":"create","objectType":"Observable","objectId":"~5","object":{"_id":"~5","_parent":"~p","case":{"_id":""}}}`,
	`{"action":"create","objectType":"Observable","objectId":"~5","object":{"_id":"~5","case":{"ID":"~c"}}}`,
	`{"action":"create","objectType":"Observable","objectId":"~5","object":{"_id":"~5","case":{"_ID":"~c","id":"~d"}}}`,
	`{"action":"create","objectType":"Observable","objectId":"~5","object":{"_id":"~5","case":{"_id":1,"id":"~d"}}}`,
	`{"action":"create","objectType":"Observable","objectId":"~5","object":{"_id":"~5","case":"~c"}}`,
	`{"action":"create","objectType":"Observable","objectId":"~5","object":{"_id":"~5","case":null,"_parent":"~p"}}`,
	`{"action":"create","objectType":"Observable","objectId":"~5","rootId":"~r","object":{"_id":"~5","attachment":null}}`,
	`{"action":"create","objectType":"Observable","objectId":"~5","rootId":"~r","object":{"_id":"~5","attachment":"x","attachment":[1, 2]}}`,
	`{"action":"create","objectType":"Observable","objectId":"~5","rootId":"~r","object":{"_id":"~5","ioc":true,"sighted":false,"message":"m","data":"d"}}`,
	`{"action":"delete","objectType":"Observable","objectId":"~5","object":{"_id":"~6"}}`,
	`{"action":"delete","objectType":"Observable","object":{"_id":"~6"}}`,
	`{"action":"Frob","objectType":"task","object":{"id":"~t"}}`,
	`{"action":"Frob","objectType":"task","object":{"iD":"~t"}}`,
	`{"action":"Frob","objectType":"task","object":[{"_id":"~t"}]}`,
	`{"action":"create","objectType":"ÉTÉ","objectId":"~t"}`,
	"{\"action\":\"create\",\"objectType\":\"\xff\",\"objectId\":\"~t\"}",
	`{"action":"create","objectType":"case_artifact","objectId":"~t","rootId":"~c","object":{}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"a":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"a":` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + `}}`,
	`{"action":"update","objectType":"Case","objectId":"~1","object":{"a":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}}`,
	`{"a":"`,
	`{"a"`,
	`{"a":`,
	`{`,
	`{"a":1`,
	`{"a":[`,
	`{"a":"\`,
	`{"a":"\u00`,
}

func allSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, p := range fastSlowSamples(tb) {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	for _, s := range tableBodies(tb) {
		out = append(out, []byte(s))
	}
	for _, s := range trickyBodies {
		out = append(out, []byte(s))
	}
	// The table tests' computed inputs.
	caseUpdate := out[0]
	out = append(out, caseUpdate[:200],
		[]byte(`{"action":"`+strings.Repeat("A", 10000)+`","objectType":"Case","objectId":"~1"}`))
	return out
}

// checkFastSlow fails unless the fast path declines body or returns what
// the slow path returns, and unless ParseWebhook returns what the slow path
// returns, errors included. It reports whether the fast path took body.
func checkFastSlow(t *testing.T, body []byte) bool {
	t.Helper()
	in := append([]byte(nil), body...)
	want, wantErr := parseWebhookSlow(in)
	fast, ok := parseWebhookFast(in)
	if ok {
		if wantErr != nil {
			t.Fatalf("fast path accepted %.200q, which the slow path refuses: %v\nfast: %+v", body, wantErr, fast)
		}
		if diff := cmp.Diff(want, fast); diff != "" {
			t.Fatalf("fast path differs from the slow path on %.200q (-slow +fast):\n%s", body, diff)
		}
	} else if fast != nil {
		t.Fatalf("fast path declined %.200q but returned %+v", body, fast)
	}
	got, gotErr := ParseWebhook(in)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("ParseWebhook differs from the slow path on %.200q (-slow +ParseWebhook):\n%s", body, diff)
	}
	switch {
	case (wantErr == nil) != (gotErr == nil):
		t.Fatalf("ParseWebhook(%.200q) error %v, slow path %v", body, gotErr, wantErr)
	case wantErr != nil:
		var we *WebhookError
		if !errors.As(gotErr, &we) || gotErr.Error() != wantErr.Error() {
			t.Fatalf("ParseWebhook(%.200q) error %T %q, slow path %T %q", body, gotErr, gotErr, wantErr, wantErr)
		}
	}
	if string(in) != string(body) {
		t.Fatalf("input modified")
	}
	return ok
}

func TestParseWebhookFastSlow(t *testing.T) {
	valid, taken := 0, 0
	for _, body := range allSeeds(t) {
		if checkFastSlow(t, body) {
			taken++
		}
		if _, err := parseWebhookSlow(body); err == nil {
			valid++
		}
	}
	// Equivalence alone would pass with a fast path that always declines.
	if taken < valid*9/10 {
		t.Errorf("fast path took only %d of %d valid seeds", taken, valid)
	}
	t.Logf("fast path took %d of %d valid seeds", taken, valid)

	for _, p := range fastSlowSamples(t) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := parseWebhookFast(b); !ok {
			t.Errorf("fast path declined sample %s", p)
		}
	}
}

// TestParseWebhookFastDeclines pins bodies the fast path must leave to the
// slow path although they are valid, because reading them right needs
// what only the slow path does.
func TestParseWebhookFastDeclines(t *testing.T) {
	for _, body := range []string{
		`{"\u0061ction":"delete","objectType":"Case","objectId":"~1"}`,
		`{"action":"update","objectType":"Case","objectId":"~1","object":{"\u0074itle":"x"}}`,
		`{"organisation":{"\u006eame":"b"},"action":"delete","objectType":"Case","objectId":"~1"}`,
	} {
		if _, err := parseWebhookSlow([]byte(body)); err != nil {
			t.Fatalf("slow path refuses %s: %v", body, err)
		}
		if m, ok := parseWebhookFast([]byte(body)); ok {
			t.Errorf("fast path took %s: %+v", body, m)
		}
	}
}

func FuzzParseWebhookFastSlow(f *testing.F) {
	for _, b := range allSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFastSlow(t, body)
	})
}

func BenchmarkParseWebhookSlow(b *testing.B) {
	for _, p := range fastSlowSamples(b)[:2] {
		body, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(filepath.Base(p), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := parseWebhookSlow(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseWebhookFast(b *testing.B) {
	for _, p := range fastSlowSamples(b)[:2] {
		body, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(filepath.Base(p), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, ok := parseWebhookFast(body); !ok {
					b.Fatal("declined")
				}
			}
		})
	}
}
