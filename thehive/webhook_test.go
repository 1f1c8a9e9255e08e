package thehive_test

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tqlabs/tq-mw-thehive/thehive"
)

// The -update flag may be registered by another test file of this package
// too; register it only once, and read it through the flag set.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files under testdata/golden")
	}
}

func updateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// webhookInputs are the sample bodies with a golden normalised Message: the
// manual's two examples (shared with the other packages under the module's
// testdata/) and this package's own v0/delete/other-type samples.
func webhookInputs(tb testing.TB) []string {
	tb.Helper()
	files := []string{
		filepath.Join("..", "testdata", "webhook-case-update.json"),
		filepath.Join("..", "testdata", "webhook-observable-update.json"),
	}
	own, err := filepath.Glob(filepath.Join("testdata", "webhooks", "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(own) == 0 {
		tb.Fatal("no webhook samples under testdata/webhooks")
	}
	return append(files, own...)
}

func readFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestParseWebhook_Golden(t *testing.T) {
	for _, in := range webhookInputs(t) {
		name := filepath.Base(in)
		t.Run(name, func(t *testing.T) {
			m, err := thehive.ParseWebhook(readFile(t, in))
			if err != nil {
				t.Fatalf("ParseWebhook: %v", err)
			}
			got, err := json.MarshalIndent(m, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", "golden", name)
			if updateGolden() {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want := readFile(t, golden)
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("normalised message differs from %s (-want +got; rerun with -update if intended):\n%s", golden, diff)
			}
		})
	}
}

// TestParseWebhook_Manual pins the facts the mapping relies on, so that a
// golden file rewritten by mistake cannot hide a regression.
func TestParseWebhook_Manual(t *testing.T) {
	m, err := thehive.ParseWebhook(readFile(t, filepath.Join("..", "testdata", "webhook-case-update.json")))
	if err != nil {
		t.Fatal(err)
	}
	want := &thehive.Message{
		AuditID: "~43528360", Action: thehive.ActionUpdate, ObjectType: thehive.TypeCase,
		ObjectID: "~43872472", RootID: "~43872472", CreatedAt: 1751886507808,
		Organisation: "demo", OrganisationID: "~4980800",
		Case: &thehive.Case{
			ID: "~43872472", Type: "Case", CreatedBy: "thehive@thehive.local", UpdatedBy: "thehive@thehive.local",
			CreatedAt: 1751457012174, UpdatedAt: 1751886507804, Number: 5984, Title: "Hamsters Test",
			Description: "Test integration with ThreatQ", Severity: 3, SeverityLabel: "HIGH",
			StartDate: 1751456989469, EndDate: 1751885565331, Tags: []string{"utility"}, Flag: false,
			TLP: 1, TLPLabel: "GREEN", PAP: 1, PAPLabel: "GREEN", Status: "New", Stage: "New",
			Assignee: "thehive@thehive.local",
		},
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("case message (-want +got):\n%s", diff)
	}

	m, err = thehive.ParseWebhook(readFile(t, filepath.Join("..", "testdata", "webhook-observable-update.json")))
	if err != nil {
		t.Fatal(err)
	}
	wantObs := &thehive.Observable{
		ID: "~85033200", Type: "Observable", CreatedBy: "thehive@thehive.local", UpdatedBy: "thehive@thehive.local",
		CreatedAt: 1751876750526, UpdatedAt: 1751887430161, DataType: "hash",
		Data: "ff7b2c3938306261881c42e78d0df51d9bcdd574", StartDate: 1751876750526,
		TLP: 2, TLPLabel: "AMBER", PAP: 2, PAPLabel: "AMBER", Tags: []string{"ioc"},
		IOC: false, Sighted: true, Message: "unknown signature",
	}
	if m.Case != nil || m.ObjectType != thehive.TypeObservable || m.RootID != "~43872472" {
		t.Errorf("got type %q root %q case %v, want Observable of case ~43872472 without case", m.ObjectType, m.RootID, m.Case)
	}
	if diff := cmp.Diff(wantObs, m.Observable); diff != "" {
		t.Errorf("observable (-want +got):\n%s", diff)
	}
}

func TestParseWebhook_Valid(t *testing.T) {
	tests := []struct {
		name string
		body string
		want *thehive.Message
	}{
		{
			name: "v1 case create minimal",
			body: `{"_id":"~1","_type":"Audit","action":"create","objectType":"Case","objectId":"~10","rootId":"~10",
				"_createdAt":5,"object":{"_id":"~10","number":7,"title":"t","severity":2,"tlp":3,"pap":0,"flag":true}}`,
			want: &thehive.Message{AuditID: "~1", Action: "create", ObjectType: "Case", ObjectID: "~10", RootID: "~10", CreatedAt: 5,
				Case: &thehive.Case{ID: "~10", Type: "Case", Number: 7, Title: "t", Severity: 2, TLP: 3, Flag: true}},
		},
		{
			name: "objectId taken from object._id, rootId from the case id",
			body: `{"_type":"Audit","action":"update","objectType":"Case","object":{"_id":"~10"}}`,
			want: &thehive.Message{Action: "update", ObjectType: "Case", ObjectID: "~10", RootID: "~10",
				Case: &thehive.Case{ID: "~10", Type: "Case"}},
		},
		{
			name: "object id taken from objectId",
			body: `{"_type":"Audit","action":"update","objectType":"Case","objectId":"~10","object":{"title":"x"}}`,
			want: &thehive.Message{Action: "update", ObjectType: "Case", ObjectID: "~10", RootID: "~10",
				Case: &thehive.Case{ID: "~10", Type: "Case", Title: "x"}},
		},
		{
			name: "v0 object.id and flat organisation",
			body: `{"operation":"Update","objectType":"case","organisationId":"~9","organisation":"org",
				"object":{"id":"~10","caseId":4,"owner":"bob","status":"Open","createdAt":1,"updatedAt":2}}`,
			want: &thehive.Message{Action: "update", ObjectType: "Case", ObjectID: "~10", RootID: "~10",
				Organisation: "org", OrganisationID: "~9",
				Case: &thehive.Case{ID: "~10", Type: "Case", Number: 4, Assignee: "bob", Status: "Open", CreatedAt: 1, UpdatedAt: 2}},
		},
		{
			name: "raw action names in operation, any case",
			body: `{"_type":"audit","operation":"MERGE","objectType":"CASE","objectId":"~10","object":{"_id":"~10"}}`,
			want: &thehive.Message{Action: "merge", ObjectType: "Case", ObjectID: "~10", RootID: "~10",
				Case: &thehive.Case{ID: "~10", Type: "Case"}},
		},
		{
			name: "integral numbers in other spellings",
			body: `{"action":"update","objectType":"Case","objectId":"~10","_createdAt":1.751e12,"object":{"tlp":2.0,"number":1E2}}`,
			want: &thehive.Message{Action: "update", ObjectType: "Case", ObjectID: "~10", RootID: "~10", CreatedAt: 1751000000000,
				Case: &thehive.Case{ID: "~10", Type: "Case", TLP: 2, Number: 100}},
		},
		{
			name: "observable case from object.case",
			body: `{"action":"create","objectType":"Observable","objectId":"~5","object":{"_id":"~5","dataType":"ip","data":"1.2.3.4","case":{"_id":"~10"}}}`,
			want: &thehive.Message{Action: "create", ObjectType: "Observable", ObjectID: "~5", RootID: "~10",
				Observable: &thehive.Observable{ID: "~5", Type: "Observable", DataType: "ip", Data: "1.2.3.4"}},
		},
		{
			name: "rootId wins over the embedded case",
			body: `{"action":"create","objectType":"Observable","objectId":"~5","rootId":"~11","object":{"_id":"~5","case":{"_id":"~10"}}}`,
			want: &thehive.Message{Action: "create", ObjectType: "Observable", ObjectID: "~5", RootID: "~11",
				Observable: &thehive.Observable{ID: "~5", Type: "Observable"}},
		},
		{
			name: "file observable keeps its attachment",
			body: `{"action":"create","objectType":"Observable","objectId":"~5","rootId":"~10","object":{"_id":"~5","dataType":"file","attachment":{"name":"a.exe"}}}`,
			want: &thehive.Message{Action: "create", ObjectType: "Observable", ObjectID: "~5", RootID: "~10",
				Observable: &thehive.Observable{ID: "~5", Type: "Observable", DataType: "file", Attachment: json.RawMessage(`{"name":"a.exe"}`)}},
		},
		{
			name: "delete ignores a stray object",
			body: `{"action":"delete","objectType":"Case","objectId":"~10","rootId":"~9","object":"whatever"}`,
			want: &thehive.Message{Action: "delete", ObjectType: "Case", ObjectID: "~10", RootID: "~9"},
		},
		{
			name: "invoke without object",
			body: `{"action":"invoke","objectType":"Case","objectId":"~10"}`,
			want: &thehive.Message{Action: "invoke", ObjectType: "Case", ObjectID: "~10"},
		},
		{
			name: "null object on delete",
			body: `{"action":"delete","objectType":"Observable","objectId":"~5","object":null}`,
			want: &thehive.Message{Action: "delete", ObjectType: "Observable", ObjectID: "~5"},
		},
		{
			name: "unknown type is returned, not refused",
			body: `{"action":"frobnicate","objectType":"widget","objectId":"~3","object":[1]}`,
			want: &thehive.Message{Action: "frobnicate", ObjectType: "Widget", ObjectID: "~3"},
		},
		{
			name: "unknown type id from its object",
			body: `{"action":"create","objectType":"case_task","object":{"_id":"~3","title":1}}`,
			want: &thehive.Message{Action: "create", ObjectType: "Task", ObjectID: "~3"},
		},
		{
			name: "v0 job",
			body: `{"operation":"Creation","objectType":"case_artifact_job","objectId":"~3"}`,
			want: &thehive.Message{Action: "create", ObjectType: "Job", ObjectID: "~3"},
		},
		{
			name: "v0 alert",
			body: `{"operation":"Update","objectType":"alert","objectId":"~3"}`,
			want: &thehive.Message{Action: "update", ObjectType: "Alert", ObjectID: "~3"},
		},
		{
			name: "nulls read as absent",
			body: `{"_id":null,"action":"update","objectType":"Case","objectId":"~10","rootId":null,"object":{"_id":"~10","endDate":null,"tags":null,"flag":null,"tlp":null}}`,
			want: &thehive.Message{Action: "update", ObjectType: "Case", ObjectID: "~10", RootID: "~10",
				Case: &thehive.Case{ID: "~10", Type: "Case"}},
		},
		{
			name: "surrounding whitespace",
			body: "\n\t {\"action\":\"delete\",\"objectType\":\"Case\",\"objectId\":\"~10\"} \r\n",
			want: &thehive.Message{Action: "delete", ObjectType: "Case", ObjectID: "~10"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := thehive.ParseWebhook([]byte(tt.body))
			if err != nil {
				t.Fatalf("ParseWebhook: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseWebhook_Invalid(t *testing.T) {
	caseUpdate := string(readFile(t, filepath.Join("..", "testdata", "webhook-case-update.json")))
	huge := strings.Repeat("A", 10000)
	tests := []struct {
		name string
		body string
		want string // the exact error, as the HTTP 400 body will carry it
	}{
		{"empty", "", "body is empty"},
		{"blank", " \n ", "body is empty"},
		{"truncated", caseUpdate[:200], "invalid JSON at offset 200: unexpected end of JSON input"},
		{"bad token", `{"action": x}`, "invalid JSON at offset 11: invalid character 'x' looking for beginning of value"},
		{"offset counts leading space", `  {"a":}`, "invalid JSON at offset 7: invalid character '}' looking for beginning of value"},
		{"trailing data", `{"action":"update"} {}`, "invalid JSON at offset 20: invalid character '{' after top-level value"},
		{"trailing garbage", `{"action":"update"}x`, "invalid JSON at offset 19: invalid character 'x' after top-level value"},
		{"array", `[{"action":"update"}]`, "body is not a JSON object (got array)"},
		{"null", `null`, "body is not a JSON object (got null)"},
		{"string", `"hello"`, "body is not a JSON object (got string)"},
		{"number", `42`, "body is not a JSON object (got number)"},
		{"boolean", `true`, "body is not a JSON object (got boolean)"},
		{"not an audit", `{"_type":"Case","_id":"~1","title":"x"}`, `_type "Case" is not an audit message`},
		{"missing objectType", `{"action":"update","objectId":"~1"}`, "objectType is missing"},
		{"empty objectType", `{"action":"update","objectType":"","objectId":"~1"}`, "objectType is missing"},
		{"missing action", `{"objectType":"Case","objectId":"~1","object":{}}`, "action is missing (neither action nor operation is set)"},
		{"unknown action of a case", `{"action":"explode","objectType":"Case","objectId":"~1"}`,
			`action "explode" of a Case is not one of create, update, delete, merge, invoke`},
		{"missing object id on delete", `{"action":"delete","objectType":"Case"}`, "objectId is missing"},
		{"missing object id of a task", `{"action":"update","objectType":"Task"}`, "objectId is missing"},
		{"missing object id everywhere", `{"action":"update","objectType":"Case","object":{"title":"x"}}`,
			"objectId is missing (and the object has no _id)"},
		{"update without object", `{"action":"update","objectType":"Case","objectId":"~1"}`, "object is required for an update of a Case"},
		{"create without object", `{"action":"create","objectType":"Observable","objectId":"~1"}`, "object is required for a create of an Observable"},
		{"v0 creation without object", `{"operation":"Creation","objectType":"case_artifact","objectId":"~1"}`, "object is required for a create of an Observable"},
		{"merge with null object", `{"action":"merge","objectType":"Case","objectId":"~1","object":null}`, "object is required for a merge of a Case"},
		{"object not an object", `{"action":"update","objectType":"Case","objectId":"~1","object":[]}`, "object must be a JSON object (got array)"},
		{"id mismatch", `{"action":"update","objectType":"Case","objectId":"~1","object":{"_id":"~2"}}`,
			`objectId "~1" does not match object._id "~2"`},
		{"v0 id mismatch", `{"operation":"Update","objectType":"case","objectId":"~1","object":{"id":"~2"}}`,
			`objectId "~1" does not match object._id "~2"`},
		{"observable without case", `{"action":"update","objectType":"Observable","objectId":"~1","object":{"_id":"~1"}}`,
			"rootId (the observable's case id) is missing and the object names no case"},
		{"objectType not a string", `{"action":"update","objectType":3,"objectId":"~1"}`, "objectType must be a string (got number)"},
		{"action not a string", `{"action":true,"objectType":"Case","objectId":"~1"}`, "action must be a string (got boolean)"},
		{"objectId not a string", `{"action":"delete","objectType":"Case","objectId":12}`, "objectId must be a string (got number)"},
		{"createdAt not a number", `{"action":"delete","objectType":"Case","objectId":"~1","_createdAt":"now"}`, "_createdAt must be an integer (got string)"},
		{"organisation wrong", `{"action":"delete","objectType":"Case","objectId":"~1","organisation":[]}`, "organisation must be an object or a string (got array)"},
		{"organisation id wrong", `{"action":"delete","objectType":"Case","objectId":"~1","organisation":{"organisationId":1}}`,
			"organisation.organisationId must be a string (got number)"},
		{"tags not an array", `{"action":"update","objectType":"Case","objectId":"~1","object":{"tags":"a,b"}}`,
			"object.tags must be an array of strings (got string)"},
		{"tags not strings", `{"action":"update","objectType":"Case","objectId":"~1","object":{"tags":["a",2]}}`,
			"object.tags must be an array of strings (got array)"},
		{"tlp not a number", `{"action":"update","objectType":"Case","objectId":"~1","object":{"tlp":"AMBER"}}`,
			"object.tlp must be an integer (got string)"},
		{"tlp fractional", `{"action":"update","objectType":"Case","objectId":"~1","object":{"tlp":1.5}}`,
			"object.tlp must be an integer (got number)"},
		{"severity too large", `{"action":"update","objectType":"Case","objectId":"~1","object":{"severity":1e300}}`,
			"object.severity must be an integer (got number)"},
		{"flag not a boolean", `{"action":"update","objectType":"Case","objectId":"~1","object":{"flag":"false"}}`,
			"object.flag must be a boolean (got string)"},
		{"v0 caseId wrong", `{"operation":"Update","objectType":"case","objectId":"~1","object":{"caseId":"3"}}`,
			"object.caseId must be an integer (got string)"},
		{"v0 owner wrong", `{"operation":"Update","objectType":"case","objectId":"~1","object":{"owner":{}}}`,
			"object.owner must be a string (got object)"},
		{"title wrong", `{"action":"update","objectType":"Case","objectId":"~1","object":{"title":["x"]}}`,
			"object.title must be a string (got array)"},
		{"data wrong", `{"action":"update","objectType":"Observable","objectId":"~1","rootId":"~2","object":{"data":1}}`,
			"object.data must be a string (got number)"},
		{"ioc wrong", `{"action":"update","objectType":"Observable","objectId":"~1","rootId":"~2","object":{"ioc":1}}`,
			"object.ioc must be a boolean (got number)"},
		{"sighted wrong", `{"action":"update","objectType":"Observable","objectId":"~1","rootId":"~2","object":{"sighted":"yes"}}`,
			"object.sighted must be a boolean (got string)"},
		{"huge action is not echoed", `{"action":"` + huge + `","objectType":"Case","objectId":"~1"}`,
			`action "` + strings.Repeat("A", 64) + `…" of a Case is not one of create, update, delete, merge, invoke`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := thehive.ParseWebhook([]byte(tt.body))
			if err == nil {
				t.Fatalf("ParseWebhook accepted the body: %+v", m)
			}
			var we *thehive.WebhookError
			if !errors.As(err, &we) {
				t.Fatalf("error %v is %T, want *thehive.WebhookError", err, err)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n got %q\nwant %q", got, tt.want)
			}
			if m != nil {
				t.Errorf("got message %+v with an error", m)
			}
		})
	}
}

func TestIsStored(t *testing.T) {
	for typ, want := range map[string]bool{
		"Case": true, "Observable": true, "Alert": false, "Task": false, "case": false, "": false,
	} {
		if got := thehive.IsStored(typ); got != want {
			t.Errorf("IsStored(%q) = %v, want %v", typ, got, want)
		}
	}
}

func FuzzParseWebhook(f *testing.F) {
	for _, in := range webhookInputs(f) {
		f.Add(readFile(f, in))
	}
	for _, s := range []string{
		``, `null`, `[]`, `{}`, `{"action":"delete","objectType":"Case","objectId":"~1"}`,
		`{"operation":"Update","objectType":"case_artifact","object":{"id":"~1","_parent":"~2","tags":[]}}`,
		`{"action":"create","objectType":"Observable","objectId":"~5","object":{"case":{"_id":"~10"}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := thehive.ParseWebhook(body)
		if err != nil {
			var we *thehive.WebhookError
			if !errors.As(err, &we) {
				t.Fatalf("error %v is %T, want *thehive.WebhookError", err, err)
			}
			if m != nil {
				t.Fatal("message returned with an error")
			}
			// Error bodies are bounded whatever the input size.
			if len(err.Error()) > 400 {
				t.Fatalf("error of %d bytes: %.100q", len(err.Error()), err.Error())
			}
			return
		}
		if m.ObjectType == "" || m.Action == "" || m.ObjectID == "" {
			t.Fatalf("accepted message lacks type, action or id: %+v", m)
		}
		if m.Case != nil && m.Observable != nil {
			t.Fatal("both Case and Observable set")
		}
		if m.Action == thehive.ActionDelete && (m.Case != nil || m.Observable != nil) {
			t.Fatal("delete message carries an object")
		}
		if thehive.IsStored(m.ObjectType) {
			switch m.Action {
			case thehive.ActionCreate, thehive.ActionUpdate, thehive.ActionMerge:
				if m.Case == nil && m.Observable == nil {
					t.Fatalf("%s of %s without object", m.Action, m.ObjectType)
				}
			}
		}
		if m.Case != nil && (m.ObjectType != thehive.TypeCase || m.Case.ID != m.ObjectID) {
			t.Fatalf("case %q in a %s message of %q", m.Case.ID, m.ObjectType, m.ObjectID)
		}
		if m.Observable != nil && (m.ObjectType != thehive.TypeObservable || m.Observable.ID != m.ObjectID || m.RootID == "") {
			t.Fatalf("observable %q in a %s message of %q (root %q)", m.Observable.ID, m.ObjectType, m.ObjectID, m.RootID)
		}
		// A normalised message re-encodes (the outbox may store it).
		if _, err := json.Marshal(m); err != nil {
			t.Fatalf("marshal: %v", err)
		}
	})
}

func BenchmarkParseWebhook(b *testing.B) {
	body := readFile(b, filepath.Join("..", "testdata", "webhook-case-update.json"))
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := thehive.ParseWebhook(body); err != nil {
			b.Fatal(err)
		}
	}
}
