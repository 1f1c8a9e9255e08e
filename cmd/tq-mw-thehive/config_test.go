package main

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tqlabs/tq-mw-thehive/mapping"
)

// validYAML is a complete config; tests break one key at a time.
const validYAML = `threatq:
  host: tq.example.com
  client_id: client-1
  email: sync@example.com
  password: hunter2-secret
thehive:
  url: https://thehive.example.com:9000
  api_key: key-s3cr3t
`

func noEnv(string) (string, bool) { return "", false }

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// writeConfig writes text as the config file of a fresh dir, mode 0600.
func writeConfig(t *testing.T, text string) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, configFileName)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, path
}

func TestLoadConfigDefaults(t *testing.T) {
	_, path := writeConfig(t, validYAML)
	cfg, err := loadConfig(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.ThreatQ.BaseURL, "https://tq.example.com"; got != want {
		t.Errorf("threatq base url = %q, want %q", got, want)
	}
	if cfg.Workers != 16 || cfg.ReconcileInterval != time.Hour || cfg.Retention != 168*time.Hour {
		t.Errorf("defaults: workers %d, reconcile %v, retention %v", cfg.Workers, cfg.ReconcileInterval, cfg.Retention)
	}
	if cfg.Intake.MaxBodyBytes != 1<<20 || cfg.Intake.AuthType != "" {
		t.Errorf("intake defaults: %+v", cfg.Intake)
	}
	if diff := cmp.Diff(mapping.DefaultTypeMapping(), cfg.Sync.TypeMapping); diff != "" {
		t.Errorf("type mapping (-want +got):\n%s", diff)
	}
	if cfg.TheHive.TLPScheme != "auto" {
		t.Errorf("tlp scheme = %q, want auto", cfg.TheHive.TLPScheme)
	}
}

func TestThreatQHost(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"tq.example.com", "https://tq.example.com"},
		{"10.0.0.5", "https://10.0.0.5"},
		{"10.0.0.5:8443", "https://10.0.0.5:8443"},
		{"https://tq.example.com:8443/", "https://tq.example.com:8443"},
		{"http://tq.local", "http://tq.local"},
		{"fd00::5", "https://[fd00::5]"},
		{"[fd00::5]:8443", "https://[fd00::5]:8443"},
	} {
		got, err := threatqBaseURL(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("threatqBaseURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"ftp://x", "tq.example.com/path", "https://", "host:port"} {
		if got, err := threatqBaseURL(bad); err == nil {
			t.Errorf("threatqBaseURL(%q) = %q, want an error", bad, got)
		}
	}
}

// Every validation error names the key at fault.
func TestConfigValidation(t *testing.T) {
	replace := func(old, new string) string {
		if !strings.Contains(validYAML, old) {
			t.Fatalf("validYAML has no %q", old)
		}
		return strings.Replace(validYAML, old, new, 1)
	}
	for _, tt := range []struct {
		name, yaml, want string
	}{
		{"no host", replace("  host: tq.example.com\n", ""), "threatq.host is required"},
		{"bad host", replace("tq.example.com", "ftp://tq"), "threatq.host:"},
		{"no client id", replace("  client_id: client-1\n", ""), "threatq.client_id is required"},
		{"no email", replace("  email: sync@example.com\n", ""), "threatq.email is required"},
		{"no password", replace("  password: hunter2-secret\n", ""), "threatq.password is required"},
		{"password twice", replace("  password: hunter2-secret\n", "  password: hunter2-secret\n  password_file: /x\n"), "threatq.password and threatq.password_file are both set"},
		{"missing password file", replace("  password: hunter2-secret\n", "  password_file: /nonexistent/pw\n"), "threatq.password_file:"},
		{"bad proxy", replace("  password: hunter2-secret\n", "  password: hunter2-secret\n  proxy: nope\n"), "threatq.proxy:"},
		{"no thehive url", replace("  url: https://thehive.example.com:9000\n", ""), "thehive.url is required"},
		{"bad thehive url", replace("https://thehive.example.com:9000", "thehive.example.com"), "thehive.url:"},
		{"no api key", replace("  api_key: key-s3cr3t\n", ""), "thehive.api_key is required"},
		{"bad tlp scheme", validYAML + "  tlp_scheme: v4\n", "thehive.tlp_scheme:"},
		{"custom mapping empty", validYAML + "sync:\n  custom_ioc_mapping: true\n", "sync.ioc_type_mapping is required"},
		{"custom mapping bad line", validYAML + "sync:\n  custom_ioc_mapping: true\n  ioc_type_mapping: |\n    ip: IP Address\n    domain: FQDN\n    garbage\n", "sync.ioc_type_mapping: line 3"},
		{"bad auth type", validYAML + "intake:\n  auth:\n    type: digest\n", "intake.auth.type:"},
		{"bearer without token", validYAML + "intake:\n  auth:\n    type: bearer\n", "intake.auth.token is required"},
		{"basic without user", validYAML + "intake:\n  auth:\n    type: basic\n    password: pw-s3cr3t\n", "intake.auth.username is required"},
		{"basic without password", validYAML + "intake:\n  auth:\n    type: basic\n    username: u\n", "intake.auth.password is required"},
		{"negative body", validYAML + "intake:\n  max_body_bytes: -1\n", "intake.max_body_bytes:"},
		{"negative workers", validYAML + "worker:\n  concurrency: -2\n", "worker.concurrency:"},
		{"bad reconcile", validYAML + "reconcile_interval: x\n", `reconcile_interval: invalid duration "x"`},
		{"bad retention", validYAML + "retention: 7d\n", `retention: invalid duration "7d"`},
		{"unknown key", replace("client_id:", "clientid:"), "unknown key threatq.clientid"},
		{"unknown section", validYAML + "sink:\n  x: 1\n", "unknown key sink"},
		{"nested unknown key", validYAML + "intake:\n  auth:\n    tokn: x\n", "unknown key intake.auth.tokn"},
		{"type error", validYAML + "worker:\n  concurrency: many\n", "cannot unmarshal"},
		{"not a mapping", "- a\n- b\n", "must be a YAML mapping"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, path := writeConfig(t, tt.yaml)
			_, err := loadConfig(path, noEnv)
			if err == nil {
				t.Fatalf("loadConfig: no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			var ce *configError
			if !errors.As(err, &ce) {
				t.Errorf("error %T is not a configError (exit code 2)", err)
			}
			for _, secret := range []string{"hunter2-secret", "key-s3cr3t", "pw-s3cr3t"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q leaks a secret", err)
				}
			}
		})
	}
}

func TestConfigReportsAllErrors(t *testing.T) {
	_, path := writeConfig(t, "reconcile_interval: x\n")
	_, err := loadConfig(path, noEnv)
	if err == nil {
		t.Fatal("no error")
	}
	for _, key := range []string{"threatq.host", "threatq.client_id", "thehive.url", "thehive.api_key", "reconcile_interval"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
}

// yaml quotes scalar values in type errors; secrets must not come along.
func TestYAMLErrorsRedactSecrets(t *testing.T) {
	_, path := writeConfig(t, validYAML+"intake:\n  auth:\n    token: [tok-s3cr3t]\n")
	_, err := loadConfig(path, noEnv)
	if err == nil {
		t.Fatal("no error")
	}
	_, path = writeConfig(t, strings.Replace(validYAML, "password: hunter2-secret", "password: {a: hunter2-secret}", 1))
	_, err2 := loadConfig(path, noEnv)
	if err2 == nil {
		t.Fatal("no error")
	}
	for _, e := range []error{err, err2} {
		if strings.Contains(e.Error(), "s3cr3t") || strings.Contains(e.Error(), "hunter2") {
			t.Errorf("error %q leaks a secret", e)
		}
	}
	if got := redactYAMLError(errors.New("yaml: line 3: cannot unmarshal !!str `pw-s3cr3t` into int"),
		[]byte("intake:\n  auth:\n    password: pw-s3cr3t\n")).Error(); strings.Contains(got, "pw-s3cr3t") {
		t.Errorf("redactYAMLError kept the secret: %q", got)
	}
}

func TestEnvOverrides(t *testing.T) {
	_, path := writeConfig(t, strings.Replace(validYAML, "  password: hunter2-secret\n", "", 1))
	cfg, err := loadConfig(path, envMap(map[string]string{
		"TQ_THEHIVE_THREATQ_HOST":                           "https://10.1.1.1:8443",
		"TQ_THEHIVE_THREATQ_PASSWORD":                       "from-env",
		"TQ_THEHIVE_THEHIVE_API_KEY":                        "env-key",
		"TQ_THEHIVE_SYNC_IOC_ONLY":                          "true",
		"TQ_THEHIVE_SYNC_CASES_AS_INCIDENTS":                "1",
		"TQ_THEHIVE_WORKER_CONCURRENCY":                     "4",
		"TQ_THEHIVE_INTAKE_MAX_BODY_BYTES":                  "2048",
		"TQ_THEHIVE_INTAKE_AUTH_TYPE":                       "bearer",
		"TQ_THEHIVE_INTAKE_AUTH_TOKEN":                      "tok",
		"TQ_THEHIVE_RECONCILE_INTERVAL":                     "0",
		"TQ_THEHIVE_RETENTION":                              "24h",
		"TQ_THEHIVE_THEHIVE_ORGANISATION":                   "SOC",
		"TQ_THEHIVE_SYNC_CUSTOM_IOC_MAPPING":                "true",
		"TQ_THEHIVE_SYNC_IOC_TYPE_MAPPING":                  "ip: IP Address\nhostname: FQDN\n",
		"TQ_THEHIVE_THEHIVE_TLP_SCHEME":                     "pre52",
		"TQ_THEHIVE_SYNC_INDICATOR_STATUS":                  "Active",
		"TQ_THEHIVE_SYNC_EVENT_TYPE":                        "Case",
		"TQ_THEHIVE_SYNC_INCLUDE_CASES_WITHOUT_OBSERVABLES": "yes-not-a-bool",
	}))
	if err == nil || !strings.Contains(err.Error(), "TQ_THEHIVE_SYNC_INCLUDE_CASES_WITHOUT_OBSERVABLES") {
		t.Fatalf("bad boolean env: err = %v, want it named", err)
	}
	cfg, err = loadConfig(path, envMap(map[string]string{
		"TQ_THEHIVE_THREATQ_HOST":            "https://10.1.1.1:8443",
		"TQ_THEHIVE_THREATQ_PASSWORD":        "from-env",
		"TQ_THEHIVE_THEHIVE_API_KEY":         "env-key",
		"TQ_THEHIVE_SYNC_IOC_ONLY":           "true",
		"TQ_THEHIVE_SYNC_CASES_AS_INCIDENTS": "1",
		"TQ_THEHIVE_WORKER_CONCURRENCY":      "4",
		"TQ_THEHIVE_INTAKE_MAX_BODY_BYTES":   "2048",
		"TQ_THEHIVE_INTAKE_AUTH_TYPE":        "bearer",
		"TQ_THEHIVE_INTAKE_AUTH_TOKEN":       "tok",
		"TQ_THEHIVE_RECONCILE_INTERVAL":      "0",
		"TQ_THEHIVE_RETENTION":               "24h",
		"TQ_THEHIVE_THEHIVE_ORGANISATION":    "SOC",
		"TQ_THEHIVE_SYNC_CUSTOM_IOC_MAPPING": "true",
		"TQ_THEHIVE_SYNC_IOC_TYPE_MAPPING":   "ip: IP Address\nhostname: FQDN\n",
		"TQ_THEHIVE_THEHIVE_TLP_SCHEME":      "pre52",
		"TQ_THEHIVE_SYNC_INDICATOR_STATUS":   "Active",
		"TQ_THEHIVE_SYNC_EVENT_TYPE":         "Case",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := &config{
		Path:              path,
		Workers:           4,
		ReconcileInterval: 0,
		Retention:         24 * time.Hour,
		Sync: mapping.Options{
			IOCOnly: true, CasesAsIncidents: true, EventType: "Case", IndicatorStatus: "Active", TLPScheme: "pre52",
			TypeMapping: map[string]string{"ip": "IP Address", "hostname": "FQDN"},
		},
	}
	want.ThreatQ.BaseURL, want.ThreatQ.ClientID, want.ThreatQ.Email, want.ThreatQ.Password = "https://10.1.1.1:8443", "client-1", "sync@example.com", "from-env"
	want.TheHive.URL, want.TheHive.APIKey, want.TheHive.Organisation, want.TheHive.TLPScheme = "https://thehive.example.com:9000", "env-key", "SOC", "pre52"
	want.Intake.MaxBodyBytes, want.Intake.AuthType, want.Intake.Token = 2048, "bearer", "tok"
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pw, key, tok := write("pw", "file-pw\n"), write("key", "file-key"), write("tok", "file-tok\r\n")
	text := strings.NewReplacer(
		"  password: hunter2-secret\n", "  password_file: "+pw+"\n",
		"  api_key: key-s3cr3t\n", "  api_key_file: "+key+"\n",
	).Replace(validYAML) + "intake:\n  auth:\n    type: bearer\n    token_file: " + tok + "\n"
	_, path := writeConfig(t, text)
	cfg, err := loadConfig(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ThreatQ.Password != "file-pw" || cfg.TheHive.APIKey != "file-key" || cfg.Intake.Token != "file-tok" {
		t.Errorf("secrets from files: %q %q %q", cfg.ThreatQ.Password, cfg.TheHive.APIKey, cfg.Intake.Token)
	}
	// A secret file may be read by a group (e.g. a vault agent) when the
	// config itself holds no secret.
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(path, noEnv); err != nil {
		t.Errorf("group-readable config without inline secrets: %v", err)
	}
}

func TestGroupReadableConfigWithSecretRefused(t *testing.T) {
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		_, path := writeConfig(t, validYAML)
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := loadConfig(path, noEnv)
		if err == nil {
			t.Fatalf("mode %o: no error", mode)
		}
		if want := "chmod 600 " + path; !strings.Contains(err.Error(), want) {
			t.Errorf("mode %o: error %q does not say %q", mode, err, want)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error leaks the password: %q", err)
		}
	}
}

func TestMissingConfig(t *testing.T) {
	_, err := loadConfig(filepath.Join(t.TempDir(), configFileName), noEnv)
	if !errors.Is(err, errNoConfig) {
		t.Errorf("err = %v, want errNoConfig", err)
	}
}

func TestBuildAgentConfig(t *testing.T) {
	_, path := writeConfig(t, strings.Replace(validYAML, "  password: hunter2-secret\n", "  password: hunter2-secret\n  proxy: http://proxy.local:3128\n", 1))
	cfg, err := loadConfig(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	g := globalOptions{Verbosity: 2, ConfigDir: "/etc/tq_labs", Port: 5001, ListenerIP: "0.0.0.0"}

	got, err := buildAgentConfig(cfg, g, envMap(map[string]string{"HTTPS_PROXY": "http://env-proxy:8080"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.DBPath != "/etc/tq_labs/tq-mw-thehive.db" || got.AdminSocket != "/etc/tq_labs/tq-mw-thehive.sock" || got.ListenAddr != "0.0.0.0:5001" {
		t.Errorf("paths: db %q, socket %q, listen %q", got.DBPath, got.AdminSocket, got.ListenAddr)
	}
	if got.ThreatQ.ProxyURL != "" || got.TheHive.ProxyURL != "" {
		t.Errorf("proxy without --external-proxy: %q %q", got.ThreatQ.ProxyURL, got.TheHive.ProxyURL)
	}
	if got.ThreatQ.InsecureSkipVerify || got.TheHive.InsecureSkipVerify {
		t.Error("TLS verification off without --disable-ssl")
	}
	if got.ThreatQ.BaseURL != "https://tq.example.com" || got.ThreatQ.Password != "hunter2-secret" || got.TheHive.APIKey != "key-s3cr3t" {
		t.Errorf("clients: %+v / %+v", got.ThreatQ, got.TheHive)
	}
	if got.Workers != 16 || got.Retention != 168*time.Hour || got.ReconcileInterval != time.Hour || got.Intake.MaxBodyBytes != 1<<20 || got.Logger == nil {
		t.Errorf("defaults not carried: %+v", got)
	}

	g.ExternalProxy, g.DisableSSL = true, true
	got, err = buildAgentConfig(cfg, g, envMap(map[string]string{"HTTPS_PROXY": "http://env-proxy:8080"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.ThreatQ.ProxyURL != "http://proxy.local:3128" || got.TheHive.ProxyURL != "http://proxy.local:3128" {
		t.Errorf("config proxy: %q %q", got.ThreatQ.ProxyURL, got.TheHive.ProxyURL)
	}
	if !got.ThreatQ.InsecureSkipVerify || !got.TheHive.InsecureSkipVerify {
		t.Error("--disable-ssl not applied to both clients")
	}

	cfg.ThreatQ.Proxy = ""
	got, err = buildAgentConfig(cfg, g, envMap(map[string]string{"HTTPS_PROXY": "http://env-proxy:8080"}), nil)
	if err != nil || got.ThreatQ.ProxyURL != "http://env-proxy:8080" {
		t.Errorf("HTTPS_PROXY fallback: %q, %v", got.ThreatQ.ProxyURL, err)
	}
	if _, err := buildAgentConfig(cfg, g, noEnv, nil); err == nil {
		t.Error("--external-proxy with no proxy anywhere: no error")
	}
}

func TestWriteConfigFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "conf")
	path := configPath(dir)
	fc := &fileConfig{ThreatQ: threatqSection{Host: "h", Password: "p"}}
	if err := writeConfigFile(path, fc, false); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %o, want %o", p, got, want)
		}
	}
	if err := writeConfigFile(path, fc, false); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("overwrite without force: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeConfigFile(path, fc, true); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("forced overwrite left mode %o", fi.Mode().Perm())
	}
	// What init writes, run reads back.
	back, err := parseConfigFile(mustRead(t, path))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fc, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPrompter(t *testing.T) {
	answers := strings.Join([]string{
		"tq.example.com", "cid", "me@example.com", "", "pw-s3cr3t", // an empty answer to a required question is asked again
		"https://hive:9000", "key", "", "y", "maybe", "n", "", "y",
		"ip: IP Address", "fqdn: FQDN", "",
	}, "\n") + "\n"
	var out strings.Builder
	p := &prompter{in: newLineReader(answers), out: &out}
	fc, err := p.ask()
	if err != nil {
		t.Fatal(err)
	}
	want := &fileConfig{
		ThreatQ: threatqSection{Host: "tq.example.com", ClientID: "cid", Email: "me@example.com", Password: "pw-s3cr3t"},
		TheHive: thehiveSection{URL: "https://hive:9000", APIKey: "key"},
		Sync:    syncSection{IOCOnly: true, CasesAsIncidents: false, CustomIOCMapping: true, IOCTypeMapping: "ip: IP Address\nfqdn: FQDN\n"},
	}
	if diff := cmp.Diff(want, fc); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
	if _, err := fc.validate(); err != nil {
		t.Errorf("prompted config does not validate: %v", err)
	}
	if _, err := (&prompter{in: newLineReader("tq\n"), out: &out}).ask(); err == nil {
		t.Error("EOF in the middle of the prompts: no error")
	}
}

func newLineReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }
