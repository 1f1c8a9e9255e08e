package mapping_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tqlabs/tq-mw-thehive/mapping"
)

func TestDefaultTypeMapping(t *testing.T) {
	want := map[string]string{
		"autonomous-system": "ASN", "domain": "FQDN", "fqdn": "FQDN", "ip": "IP Address", "filename": "Filename",
		"mail": "Email Address", "mail-subject": "Email Subject", "registry": "Registry Key", "url": "URL",
		"uri_path": "URL Path", "user-agent": "User-agent", "hash": "hash",
	}
	got := mapping.DefaultTypeMapping()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	got["ip"] = "changed"
	if mapping.DefaultTypeMapping()["ip"] != "IP Address" {
		t.Error("DefaultTypeMapping returns a shared map")
	}
}

// The manual's default, written as a user would type it in the config,
// parses back to DefaultTypeMapping.
const defaultText = `# The Hive IoC Type Mapping
autonomous-system: ASN
domain: FQDN
fqdn: FQDN
ip: IP Address
filename: Filename
mail: Email Address
mail-subject: Email Subject
registry: Registry Key
url: URL
uri_path: URL Path
user-agent: User-agent
hash: hash
`

func TestParseTypeMapping(t *testing.T) {
	tests := []struct {
		name string
		text string
		want map[string]string
	}{
		{"default", defaultText, mapping.DefaultTypeMapping()},
		{"crlf, blanks, spaces, comments", "\ufeff\r\n  ip :  IP Address \r\n\r\n\t# hostname: FQDN\r\nhostname:FQDN", map[string]string{"ip": "IP Address", "hostname": "FQDN"}},
		{"value with a colon", "other: Custom: Thing", map[string]string{"other": "Custom: Thing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mapping.ParseTypeMapping(tt.text)
			if err != nil {
				t.Fatalf("ParseTypeMapping: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseTypeMapping_Errors(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"missing colon", "# types\ndomain: FQDN\nip IP Address\n", `line 3: missing ':' in "ip IP Address"`},
		{"empty key", "ip: IP Address\n: FQDN", `line 2: empty observable type in ": FQDN"`},
		{"empty value", "ip:   ", `line 1: empty ThreatQ type in "ip:"`},
		{"duplicate", "ip: IP Address\n\ndomain: FQDN\nip: FQDN", `line 4: observable type "ip" is already mapped on line 1`},
		{"duplicate after trimming", "ip: IP Address\n  ip  : IP Address", `line 2: observable type "ip" is already mapped on line 1`},
		{"long line is cut", "\n" + strings.Repeat("x", 500), `line 2: missing ':' in "` + strings.Repeat("x", 80) + `…"`},
		{"empty", "", "the type mapping has no entries"},
		{"only comments", "# nothing\n\n  # here\n", "the type mapping has no entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mapping.ParseTypeMapping(tt.text)
			if err == nil {
				t.Fatalf("ParseTypeMapping accepted it: %v", got)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %q\nwant %q", err.Error(), tt.want)
			}
		})
	}
}

func TestHashType(t *testing.T) {
	tests := []struct {
		value string
		want  string // "" = not a hash
	}{
		{"d41d8cd98f00b204e9800998ecf8427e", "MD5"},
		{"DA39A3EE5E6B4B0D3255BFEF95601890AFD80709", "SHA-1"},
		{strings.Repeat("e3", 32), "SHA-256"},
		{strings.Repeat("38", 48), "SHA-384"},
		{strings.Repeat("cf", 64), "SHA-512"},
		{"", ""},
		{strings.Repeat("a", 33), ""},
		{strings.Repeat("a", 256), ""},
		{strings.Repeat("z", 32), ""},
		{" " + strings.Repeat("a", 31), ""},
		{strings.Repeat("a", 39) + "é"[:1], ""},
	}
	for _, tt := range tests {
		got, ok := mapping.HashType(tt.value)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("HashType(%q) = %q, %v; want %q", tt.value, got, ok, tt.want)
		}
	}
}

func FuzzParseTypeMapping(f *testing.F) {
	for _, s := range []string{defaultText, "", "ip IP Address", "a:b\na:c", ": x", "x:", "# c\r\n a : b : c \r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		m, err := mapping.ParseTypeMapping(text)
		if err != nil {
			if m != nil {
				t.Fatal("map returned with an error")
			}
			if !strings.HasPrefix(err.Error(), "line ") && err.Error() != "the type mapping has no entries" {
				t.Fatalf("error does not name a line: %v", err)
			}
			return
		}
		if len(m) == 0 {
			t.Fatal("empty mapping accepted")
		}
		for k, v := range m {
			if k == "" || v == "" || strings.TrimSpace(k) != k || strings.TrimSpace(v) != v {
				t.Fatalf("bad entry %q: %q", k, v)
			}
			if strings.ContainsAny(k, ":\n") || strings.Contains(v, "\n") {
				t.Fatalf("entry %q: %q spans a separator", k, v)
			}
		}
		// Whatever parses is a valid Options.TypeMapping.
		if err := (mapping.Options{TypeMapping: m}).Validate(); err != nil {
			t.Fatalf("parsed mapping fails Validate: %v", err)
		}
	})
}
