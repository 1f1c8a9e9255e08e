package mapping_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tqlabs/tq-mw-thehive/mapping"
	"github.com/tqlabs/tq-mw-thehive/thehive"
	"github.com/tqlabs/tq-mw-thehive/threatq"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/golden")

// parseSample parses one of the manual's webhook bodies, kept once for the
// whole module under its testdata/.
func parseSample(tb testing.TB, name string) *thehive.Message {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	m, err := thehive.ParseWebhook(b)
	if err != nil {
		tb.Fatalf("ParseWebhook(%s): %v", name, err)
	}
	return m
}

func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got; rerun with -update if intended):\n%s", path, diff)
	}
}

// TestEvent_Manual checks the Event of the manual's case example against
// the expectations written down in testdata's README, independently of the
// golden file.
func TestEvent_Manual(t *testing.T) {
	m := parseSample(t, "webhook-case-update.json")
	got := mapping.Event(m.Case, mapping.Options{})
	golden(t, "event-case-update.json", got)

	want := threatq.Event{
		Kind:        threatq.KindEvent,
		Title:       "Hive Case #~43872472 Hamsters Test",
		Type:        "Incident",
		Description: "Test integration with ThreatQ",
		HappenedAt:  time.Date(2025, 7, 2, 11, 49, 49, 469e6, time.UTC),
		Tags:        []string{"utility"},
		Source:      threatq.Source{Name: "TheHive", TLP: "GREEN"},
		Attributes: []threatq.Attribute{
			{Name: "TheHive Id", Value: "~43872472"},
			{Name: "Status", Value: "New"},
			{Name: "Owner", Value: "thehive@thehive.local"},
			{Name: "Case Id", Value: "5984"},
			{Name: "Severity", Value: "HIGH"},
			{Name: "PAP", Value: "GREEN"},
			{Name: "Flagged", Value: "No"},
		},
		TheHiveID: "~43872472",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Event (-want +got):\n%s", diff)
	}
	if got.HappenedAt.UnixMilli() != 1751456989469 || got.HappenedAt.Location() != time.UTC {
		t.Errorf("HappenedAt = %v, want startDate 1751456989469 in UTC", got.HappenedAt)
	}
}

func TestIndicator_Manual(t *testing.T) {
	m := parseSample(t, "webhook-observable-update.json")
	got, skip := mapping.Indicator(m.Observable, mapping.Options{})
	if skip != nil {
		t.Fatalf("skipped: %s", skip.Reason)
	}
	golden(t, "indicator-observable-update.json", got)

	want := threatq.Indicator{
		Value:       "ff7b2c3938306261881c42e78d0df51d9bcdd574",
		Type:        "SHA-1",
		Status:      "Review",
		Description: "unknown signature",
		Tags:        []string{"ioc"},
		Source:      threatq.Source{Name: "TheHive", TLP: "AMBER"},
		Attributes: []threatq.Attribute{
			{Name: "PAP", Value: "AMBER"},
			{Name: "Sighted?", Value: "Yes"},
		},
		RemoveAttributes: []string{"Indicator Of Compromise?"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Indicator (-want +got):\n%s", diff)
	}
	for _, a := range got.Attributes {
		if a.Name == mapping.AttrIOC {
			t.Errorf("IOC attribute %q present although .ioc is false", a.Value)
		}
	}
	if got.Related != nil {
		t.Errorf("Related = %+v, want nil (the worker fills it)", got.Related)
	}
}

func TestEvent_Incident(t *testing.T) {
	m := parseSample(t, "webhook-case-update.json")
	got := mapping.Event(m.Case, mapping.Options{CasesAsIncidents: true, EventType: "ignored here"})
	golden(t, "incident-case-update.json", got)
	if got.Kind != threatq.KindIncident {
		t.Errorf("Kind = %q, want %q", got.Kind, threatq.KindIncident)
	}
	if got.Title != "Hive Case #~43872472 Hamsters Test" {
		t.Errorf("Title = %q", got.Title)
	}
	if got.Type != "" {
		t.Errorf("Type = %q, want none for an Incident", got.Type)
	}
}

func TestEvent(t *testing.T) {
	base := func() *thehive.Case {
		return &thehive.Case{ID: "~1", Number: 2, Title: "T", Status: "Open", Severity: 4, TLP: 3, PAP: 3, Flag: true,
			StartDate: 1000, CreatedAt: 2000}
	}
	tests := []struct {
		name   string
		modify func(*thehive.Case)
		opts   mapping.Options
		check  func(t *testing.T, e threatq.Event)
	}{
		{
			name: "labels derived post52, no owner",
			check: func(t *testing.T, e threatq.Event) {
				want := []threatq.Attribute{
					{Name: "TheHive Id", Value: "~1"}, {Name: "Status", Value: "Open"}, {Name: "Case Id", Value: "2"},
					{Name: "Severity", Value: "CRITICAL"}, {Name: "PAP", Value: "RED"}, {Name: "Flagged", Value: "Yes"},
				}
				if diff := cmp.Diff(want, e.Attributes); diff != "" {
					t.Errorf("attributes (-want +got):\n%s", diff)
				}
				if e.Source.TLP != "AMBER" { // AMBER+STRICT
					t.Errorf("TLP = %q, want AMBER", e.Source.TLP)
				}
			},
		},
		{
			name: "tlp 3 is RED before 5.2",
			opts: mapping.Options{TLPScheme: "pre52"},
			check: func(t *testing.T, e threatq.Event) {
				if e.Source.TLP != "RED" {
					t.Errorf("TLP = %q, want RED", e.Source.TLP)
				}
			},
		},
		{
			name:   "label wins over number",
			modify: func(c *thehive.Case) { c.TLPLabel = "CLEAR"; c.SeverityLabel = "LOW" },
			opts:   mapping.Options{TLPScheme: "pre52"},
			check: func(t *testing.T, e threatq.Event) {
				if e.Source.TLP != "WHITE" {
					t.Errorf("TLP = %q, want WHITE", e.Source.TLP)
				}
				if e.Attributes[3].Value != "LOW" {
					t.Errorf("Severity = %q, want LOW", e.Attributes[3].Value)
				}
			},
		},
		{
			name:   "unknown TLP number gives no TLP",
			modify: func(c *thehive.Case) { c.TLP = 9 },
			check: func(t *testing.T, e threatq.Event) {
				if e.Source != (threatq.Source{Name: "TheHive"}) {
					t.Errorf("Source = %+v", e.Source)
				}
			},
		},
		{
			name:   "happened at falls back to creation",
			modify: func(c *thehive.Case) { c.StartDate = 0 },
			check: func(t *testing.T, e threatq.Event) {
				if !e.HappenedAt.Equal(time.UnixMilli(2000)) {
					t.Errorf("HappenedAt = %v", e.HappenedAt)
				}
			},
		},
		{
			name: "custom event type",
			opts: mapping.Options{EventType: "Malware"},
			check: func(t *testing.T, e threatq.Event) {
				if e.Type != "Malware" || e.Kind != threatq.KindEvent {
					t.Errorf("Kind %q Type %q", e.Kind, e.Type)
				}
			},
		},
		{
			name:   "title without case title",
			modify: func(c *thehive.Case) { c.Title = "" },
			check: func(t *testing.T, e threatq.Event) {
				if e.Title != "Hive Case #~1" {
					t.Errorf("Title = %q", e.Title)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			if tt.modify != nil {
				tt.modify(c)
			}
			tt.check(t, mapping.Event(c, tt.opts))
		})
	}
}

func TestEvent_TagsNotAliased(t *testing.T) {
	c := &thehive.Case{ID: "~1", Tags: []string{"a"}}
	e := mapping.Event(c, mapping.Options{})
	e.Tags[0] = "changed"
	if c.Tags[0] != "a" {
		t.Error("Event shares its Tags with the case")
	}
}

func TestIndicator_Types(t *testing.T) {
	tests := []struct {
		dataType, data string
		want           string // ThreatQ type; "" = skipped
		skip           string
	}{
		{"autonomous-system", "AS64496", "ASN", ""},
		{"domain", "example.org", "FQDN", ""},
		{"fqdn", "www.example.org", "FQDN", ""},
		{"ip", "192.0.2.1", "IP Address", ""},
		{"filename", "evil.exe", "Filename", ""},
		{"mail", "a@example.org", "Email Address", ""},
		{"mail-subject", "Invoice", "Email Subject", ""},
		{"registry", `HKLM\Software\x`, "Registry Key", ""},
		{"url", "https://example.org/x", "URL", ""},
		{"uri_path", "/x/y", "URL Path", ""},
		{"user-agent", "curl/8", "User-agent", ""},
		{"hash", strings.Repeat("a", 32), "MD5", ""},
		{"hash", strings.Repeat("B", 40), "SHA-1", ""},
		{"hash", strings.Repeat("0", 64), "SHA-256", ""},
		{"hash", strings.Repeat("9", 96), "SHA-384", ""},
		{"hash", strings.Repeat("f", 128), "SHA-512", ""},
		{"hash", strings.Repeat("a", 31), "", "hash of unknown length"},
		{"hash", strings.Repeat("g", 32), "", "hash of unknown length"},
		{"hash", "not a hash", "", "hash of unknown length"},
		{"other", "x", "", `unmapped type "other"`},
		{"hostname", "x", "", `unmapped type "hostname"`},
		{"file", "", "", `unmapped type "file"`},
		{"IP", "192.0.2.1", "", `unmapped type "IP"`},
		{"domain", "", "", "no data (file observable)"},
	}
	for _, tt := range tests {
		t.Run(tt.dataType+"/"+tt.data, func(t *testing.T) {
			o := &thehive.Observable{ID: "~1", DataType: tt.dataType, Data: tt.data}
			got, skip := mapping.Indicator(o, mapping.Options{})
			if tt.skip != "" {
				if skip == nil || skip.Reason != tt.skip {
					t.Fatalf("skip = %v, want %q (indicator %+v)", skip, tt.skip, got)
				}
				return
			}
			if skip != nil {
				t.Fatalf("skipped: %s", skip.Reason)
			}
			if got.Type != tt.want || got.Value != tt.data {
				t.Errorf("got %q of type %q, want %q of type %q", got.Value, got.Type, tt.data, tt.want)
			}
		})
	}
}

func TestIndicator_Options(t *testing.T) {
	ioc := &thehive.Observable{ID: "~1", DataType: "ip", Data: "192.0.2.1", IOC: true, TLP: 4, PAP: 0}
	notIOC := &thehive.Observable{ID: "~2", DataType: "ip", Data: "192.0.2.2", TLP: 3, TLPLabel: "", PAP: 9}

	if _, skip := mapping.Indicator(notIOC, mapping.Options{IOCOnly: true}); skip == nil || skip.Reason != "not an IOC (ioc_only)" {
		t.Errorf("ioc_only on a non-IOC: skip = %v", skip)
	}
	got, skip := mapping.Indicator(ioc, mapping.Options{IOCOnly: true, IndicatorStatus: "Active"})
	if skip != nil {
		t.Fatalf("ioc_only on an IOC: skipped: %s", skip.Reason)
	}
	want := threatq.Indicator{
		Value: "192.0.2.1", Type: "IP Address", Status: "Active",
		Source: threatq.Source{Name: "TheHive", TLP: "RED"},
		Attributes: []threatq.Attribute{
			{Name: "PAP", Value: "CLEAR"}, {Name: "Sighted?", Value: "No"}, {Name: "Indicator Of Compromise?", Value: "Yes"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("IOC indicator (-want +got):\n%s", diff)
	}

	got, _ = mapping.Indicator(notIOC, mapping.Options{TLPScheme: "pre52"})
	if got.Source.TLP != "RED" {
		t.Errorf("pre52 tlp 3 = %q, want RED", got.Source.TLP)
	}
	if diff := cmp.Diff([]threatq.Attribute{{Name: "Sighted?", Value: "No"}}, got.Attributes); diff != "" {
		t.Errorf("unknown PAP should be left out (-want +got):\n%s", diff)
	}
	got, _ = mapping.Indicator(notIOC, mapping.Options{TLPScheme: "post52"})
	if got.Source.TLP != "AMBER" {
		t.Errorf("post52 tlp 3 = %q, want AMBER (AMBER+STRICT)", got.Source.TLP)
	}

	custom := mapping.Options{TypeMapping: map[string]string{"hostname": "FQDN", "ip": "IP Address"}}
	if got, skip := mapping.Indicator(&thehive.Observable{DataType: "hostname", Data: "h.example"}, custom); skip != nil || got.Type != "FQDN" {
		t.Errorf("custom mapping: %+v, %v", got, skip)
	}
	if _, skip := mapping.Indicator(&thehive.Observable{DataType: "hash", Data: strings.Repeat("a", 32)}, custom); skip == nil {
		t.Error("custom mapping without hash still maps hashes")
	}
}

func TestLabels(t *testing.T) {
	tests := []struct {
		n                            int
		pre52, post52, pap, severity string
	}{
		{-1, "", "", "", ""},
		{0, "WHITE", "CLEAR", "CLEAR", ""},
		{1, "GREEN", "GREEN", "GREEN", "LOW"},
		{2, "AMBER", "AMBER", "AMBER", "MEDIUM"},
		{3, "RED", "AMBER+STRICT", "RED", "HIGH"},
		{4, "", "RED", "", "CRITICAL"},
		{5, "", "", "", ""},
	}
	for _, tt := range tests {
		if got := mapping.TLPLabel(tt.n, "pre52"); got != tt.pre52 {
			t.Errorf("TLPLabel(%d, pre52) = %q, want %q", tt.n, got, tt.pre52)
		}
		for _, scheme := range []string{"post52", "auto", ""} {
			if got := mapping.TLPLabel(tt.n, scheme); got != tt.post52 {
				t.Errorf("TLPLabel(%d, %q) = %q, want %q", tt.n, scheme, got, tt.post52)
			}
		}
		if got := mapping.PAPLabel(tt.n); got != tt.pap {
			t.Errorf("PAPLabel(%d) = %q, want %q", tt.n, got, tt.pap)
		}
		if got := mapping.SeverityLabel(tt.n); got != tt.severity {
			t.Errorf("SeverityLabel(%d) = %q, want %q", tt.n, got, tt.severity)
		}
	}
}

func TestThreatQTLP(t *testing.T) {
	for in, want := range map[string]string{
		"CLEAR": "WHITE", "WHITE": "WHITE", "GREEN": "GREEN", "AMBER": "AMBER", "AMBER+STRICT": "AMBER", "RED": "RED",
		"amber+strict": "AMBER", "TLP:AMBER": "AMBER", "tlp:clear": "WHITE", " Red ": "RED", "TLP: GREEN": "GREEN",
		"": "", "PURPLE": "", "TLP:": "", "AMBERSTRICT": "",
	} {
		if got := mapping.ThreatQTLP(in); got != want {
			t.Errorf("ThreatQTLP(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestYesNo(t *testing.T) {
	if mapping.YesNo(true) != "Yes" || mapping.YesNo(false) != "No" {
		t.Errorf("YesNo: %q %q", mapping.YesNo(true), mapping.YesNo(false))
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts mapping.Options
		want string // "" = valid
	}{
		{"zero", mapping.Options{}, ""},
		{"schemes", mapping.Options{TLPScheme: "pre52"}, ""},
		{"auto", mapping.Options{TLPScheme: "auto"}, ""},
		{"post52", mapping.Options{TLPScheme: "post52"}, ""},
		{"unknown scheme", mapping.Options{TLPScheme: "5.2"}, `mapping: unknown TLP scheme "5.2" (want auto, pre52 or post52)`},
		{"empty mapping", mapping.Options{TypeMapping: map[string]string{}}, "mapping: the observable type mapping is empty"},
		{"empty side", mapping.Options{TypeMapping: map[string]string{"ip": " "}}, `mapping: type mapping "ip": " " has an empty side`},
		{"default mapping", mapping.Options{TypeMapping: mapping.DefaultTypeMapping()}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Errorf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestV0LabelsDerived runs a TheHive 5.0-style compatible ("version 0")
// webhook, which carries numbers but no labels, through parse and map.
func TestV0LabelsDerived(t *testing.T) {
	body := `{"_id":"~12376","_type":"audit","operation":"Creation","objectType":"case","objectId":"~40976512",
		"object":{"_id":"~40976512","_type":"case","caseId":3,"createdAt":1683314327257,"title":"Test 3",
		"extendedStatus":"New","status":"Open","owner":"user@thehive.local","severity":2,"tlp":3,"pap":2,
		"flag":false,"startDate":null,"tags":[]}}`
	m, err := thehive.ParseWebhook([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ scheme, tlp string }{{"pre52", "RED"}, {"post52", "AMBER"}, {"auto", "AMBER"}} {
		e := mapping.Event(m.Case, mapping.Options{TLPScheme: tt.scheme})
		want := threatq.Event{
			Kind: threatq.KindEvent, Title: "Hive Case #~40976512 Test 3", Type: "Incident",
			HappenedAt: time.UnixMilli(1683314327257).UTC(),
			Source:     threatq.Source{Name: "TheHive", TLP: tt.tlp},
			Attributes: []threatq.Attribute{
				{Name: "TheHive Id", Value: "~40976512"}, {Name: "Status", Value: "New"},
				{Name: "Owner", Value: "user@thehive.local"}, {Name: "Case Id", Value: "3"},
				{Name: "Severity", Value: "MEDIUM"}, {Name: "PAP", Value: "AMBER"}, {Name: "Flagged", Value: "No"},
			},
			TheHiveID: "~40976512",
		}
		if diff := cmp.Diff(want, e); diff != "" {
			t.Errorf("scheme %s (-want +got):\n%s", tt.scheme, diff)
		}
	}
}
