package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tqlabs/tq-mw-thehive/agent"
	"github.com/tqlabs/tq-mw-thehive/mapping"
	"github.com/tqlabs/tq-mw-thehive/thehive"
	"github.com/tqlabs/tq-mw-thehive/threatq"
)

// File names inside the config directory (-c).
const (
	configFileName = "tq-mw-thehive.yaml"
	dbFileName     = "tq-mw-thehive.db"
	socketFileName = "tq-mw-thehive.sock"
	logFileName    = "tq-mw-thehive.log"
)

// Defaults of the config file (SPEC §3).
const (
	defaultWorkers           = 16
	defaultReconcileInterval = time.Hour
	defaultRetention         = 7 * 24 * time.Hour
	defaultMaxBodyBytes      = 1 << 20
)

// envPrefix starts every environment variable of the agent. A config key
// maps to an env var by upper-casing its dotted path and replacing dots with
// underscores: threatq.password → TQ_THEHIVE_THREATQ_PASSWORD,
// intake.auth.token → TQ_THEHIVE_INTAKE_AUTH_TOKEN. Env vars win over the
// file.
const envPrefix = "TQ_THEHIVE_"

// fileConfig is the YAML file as written by users. Durations stay strings
// so that a bad value is reported with the key's name rather than as a YAML
// type error. Fields tagged secret:"true" are never logged, never quoted in
// errors and make a group/world-readable file a start-up error.
type fileConfig struct {
	ThreatQ           threatqSection `yaml:"threatq"`
	TheHive           thehiveSection `yaml:"thehive"`
	Sync              syncSection    `yaml:"sync"`
	Intake            intakeSection  `yaml:"intake,omitempty"`
	Worker            workerSection  `yaml:"worker,omitempty"`
	ReconcileInterval string         `yaml:"reconcile_interval,omitempty"`
	Retention         string         `yaml:"retention,omitempty"`
}

type threatqSection struct {
	Host         string `yaml:"host"`
	ClientID     string `yaml:"client_id"`
	Email        string `yaml:"email"`
	Password     string `yaml:"password,omitempty" secret:"true"`
	PasswordFile string `yaml:"password_file,omitempty"`
	Proxy        string `yaml:"proxy,omitempty"`
}

type thehiveSection struct {
	URL          string `yaml:"url"`
	APIKey       string `yaml:"api_key,omitempty" secret:"true"`
	APIKeyFile   string `yaml:"api_key_file,omitempty"`
	Organisation string `yaml:"organisation,omitempty"`
	TLPScheme    string `yaml:"tlp_scheme,omitempty"`
}

type syncSection struct {
	IOCOnly                        bool   `yaml:"ioc_only"`
	CasesAsIncidents               bool   `yaml:"cases_as_incidents"`
	IncludeCasesWithoutObservables bool   `yaml:"include_cases_without_observables"`
	CustomIOCMapping               bool   `yaml:"custom_ioc_mapping"`
	IOCTypeMapping                 string `yaml:"ioc_type_mapping,omitempty"`
	EventType                      string `yaml:"event_type,omitempty"`
	IndicatorStatus                string `yaml:"indicator_status,omitempty"`
}

type intakeSection struct {
	MaxBodyBytes int64       `yaml:"max_body_bytes,omitempty"`
	Auth         authSection `yaml:"auth,omitempty"`
}

type authSection struct {
	Type         string `yaml:"type,omitempty"`
	Token        string `yaml:"token,omitempty" secret:"true"`
	TokenFile    string `yaml:"token_file,omitempty"`
	Username     string `yaml:"username,omitempty"`
	Password     string `yaml:"password,omitempty" secret:"true"`
	PasswordFile string `yaml:"password_file,omitempty"`
}

type workerSection struct {
	Concurrency int `yaml:"concurrency,omitempty"`
}

// config is a loaded, validated configuration with secrets resolved and
// defaults applied.
type config struct {
	Path string // the file it came from

	ThreatQ struct {
		BaseURL, ClientID, Email, Password, Proxy string
	}
	TheHive struct {
		URL, APIKey, Organisation, TLPScheme string
	}
	Sync              mapping.Options
	Intake            agent.IntakeConfig
	Workers           int
	ReconcileInterval time.Duration
	Retention         time.Duration
}

// configError is a problem with the configuration or the command line:
// exit code 2.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func configErrorf(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

// errNoConfig is returned by loadConfig when the file does not exist, so
// that run can offer the init prompts.
var errNoConfig = errors.New("no config file")

func configPath(dir string) string { return filepath.Join(dir, configFileName) }

// loadConfig reads, overrides from env and validates the config file.
// lookupEnv is os.LookupEnv outside tests.
func loadConfig(path string, lookupEnv func(string) (string, bool)) (*config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, errNoConfig)
	}
	if err != nil {
		return nil, configErrorf("read config: %v", err)
	}
	fc, err := parseConfigFile(data)
	if err != nil {
		return nil, configErrorf("%s: %v", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, configErrorf("read config: %v", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if key := firstSecretKey(reflect.ValueOf(fc).Elem(), ""); key != "" {
			return nil, configErrorf("%s is readable by group/others (mode %04o) and holds a secret (%s); run: chmod 600 %s",
				path, perm, key, path)
		}
	}
	if err := applyEnv(reflect.ValueOf(fc).Elem(), "", lookupEnv); err != nil {
		return nil, configErrorf("%v", err)
	}
	cfg, err := fc.validate()
	if err != nil {
		return nil, configErrorf("%s: %v", path, err)
	}
	cfg.Path = path
	return cfg, nil
}

// parseConfigFile decodes YAML strictly. Unknown keys are found by walking
// the node tree first so that the error names the dotted key; yaml's own
// messages name Go types.
func parseConfigFile(data []byte) (*fileConfig, error) {
	fc := &fileConfig{}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, redactYAMLError(err, data)
	}
	if len(root.Content) == 0 {
		return fc, nil // empty file: validation reports the required keys
	}
	if err := checkKeys(root.Content[0], reflect.TypeOf(*fc), ""); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(fc); err != nil {
		return nil, redactYAMLError(err, data)
	}
	return fc, nil
}

// checkKeys reports the first key of node that has no field in t.
func checkKeys(node *yaml.Node, t reflect.Type, prefix string) error {
	if node.Kind != yaml.MappingNode {
		if prefix == "" {
			return fmt.Errorf("line %d: the file must be a YAML mapping", node.Line)
		}
		return nil // yaml's decoder reports the type mismatch
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], node.Content[i+1]
		f, ok := fieldByYAMLName(t, k.Value)
		if !ok {
			return fmt.Errorf("line %d: unknown key %s", k.Line, prefix+k.Value)
		}
		if f.Type.Kind() == reflect.Struct {
			if err := checkKeys(v, f.Type, prefix+k.Value+"."); err != nil {
				return err
			}
		}
	}
	return nil
}

func fieldByYAMLName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if yamlName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// redactYAMLError strips from a yaml error every scalar of the document
// that sits under a secret-looking key: yaml type errors quote values.
func redactYAMLError(err error, data []byte) error {
	msg := err.Error()
	for _, s := range secretScalars(data) {
		msg = strings.ReplaceAll(msg, s, "[REDACTED]")
	}
	return errors.New(strings.TrimPrefix(msg, "yaml: "))
}

func secretScalars(data []byte) []string {
	var out []string
	var walk func(n *yaml.Node, secret bool)
	walk = func(n *yaml.Node, secret bool) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, secret)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				walk(n.Content[i+1], secret || k == "password" || k == "api_key" || k == "token")
			}
		case yaml.ScalarNode:
			if secret && n.Value != "" {
				out = append(out, n.Value)
			}
		}
	}
	// A document too broken to parse into nodes cannot have had its values
	// quoted by yaml either, beyond the line scanner's own context.
	var root yaml.Node
	if yaml.Unmarshal(data, &root) == nil {
		walk(&root, false)
	}
	return out
}

// firstSecretKey returns the dotted key of the first non-empty secret field.
func firstSecretKey(v reflect.Value, prefix string) string {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f, fv := t.Field(i), v.Field(i)
		key := prefix + yamlName(f)
		if f.Type.Kind() == reflect.Struct {
			if k := firstSecretKey(fv, key+"."); k != "" {
				return k
			}
			continue
		}
		if f.Tag.Get("secret") == "true" && fv.String() != "" {
			return key
		}
	}
	return ""
}

// envName is the environment variable overriding a dotted config key.
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// applyEnv overrides every leaf of v from its env var (see envPrefix).
func applyEnv(v reflect.Value, prefix string, lookupEnv func(string) (string, bool)) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f, fv := t.Field(i), v.Field(i)
		key := prefix + yamlName(f)
		if f.Type.Kind() == reflect.Struct {
			if err := applyEnv(fv, key+".", lookupEnv); err != nil {
				return err
			}
			continue
		}
		name := envName(key)
		s, ok := lookupEnv(name)
		if !ok {
			continue
		}
		switch f.Type.Kind() {
		case reflect.String:
			fv.SetString(s)
		case reflect.Bool:
			b, err := strconv.ParseBool(s)
			if err != nil {
				return fmt.Errorf("%s (%s): invalid boolean %q", name, key, s)
			}
			fv.SetBool(b)
		case reflect.Int, reflect.Int64:
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return fmt.Errorf("%s (%s): invalid integer %q", name, key, s)
			}
			fv.SetInt(n)
		default:
			return fmt.Errorf("%s: unsupported type %s", name, f.Type)
		}
	}
	return nil
}

// validate resolves secrets, applies defaults and checks every key. All
// problems are reported at once, each naming its key; values of secrets are
// never part of a message.
func (fc *fileConfig) validate() (*config, error) {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	required := func(key, v string) {
		if strings.TrimSpace(v) == "" {
			fail("%s is required", key)
		}
	}
	secret := func(key, inline, file string) string {
		if inline != "" && file != "" {
			fail("%s and %s_file are both set; keep one", key, key)
			return ""
		}
		if file == "" {
			return inline
		}
		b, err := os.ReadFile(file)
		if err != nil {
			fail("%s_file: %v", key, err)
			return ""
		}
		s := strings.TrimRight(string(b), "\r\n")
		if s == "" {
			fail("%s_file: %s is empty", key, file)
		}
		return s
	}

	cfg := &config{}

	// threatq
	q := fc.ThreatQ
	required("threatq.host", q.Host)
	if q.Host != "" {
		u, err := threatqBaseURL(q.Host)
		if err != nil {
			fail("threatq.host: %v", err)
		}
		cfg.ThreatQ.BaseURL = u
	}
	required("threatq.client_id", q.ClientID)
	required("threatq.email", q.Email)
	cfg.ThreatQ.ClientID, cfg.ThreatQ.Email = q.ClientID, q.Email
	if pw := secret("threatq.password", q.Password, q.PasswordFile); pw == "" && q.PasswordFile == "" {
		required("threatq.password", pw)
	} else {
		cfg.ThreatQ.Password = pw
	}
	if q.Proxy != "" {
		if u, err := url.Parse(q.Proxy); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			fail("threatq.proxy: want http://host:port or https://host:port")
		}
		cfg.ThreatQ.Proxy = q.Proxy
	}

	// thehive
	h := fc.TheHive
	required("thehive.url", h.URL)
	if h.URL != "" {
		u, err := url.Parse(h.URL)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			fail("thehive.url: want https://host[:port], got %q", h.URL)
		}
		cfg.TheHive.URL = strings.TrimRight(h.URL, "/")
	}
	if key := secret("thehive.api_key", h.APIKey, h.APIKeyFile); key == "" && h.APIKeyFile == "" {
		required("thehive.api_key", key)
	} else {
		cfg.TheHive.APIKey = key
	}
	cfg.TheHive.Organisation = h.Organisation
	switch h.TLPScheme {
	case "", "auto", "pre52", "post52":
		cfg.TheHive.TLPScheme = cmpOr(h.TLPScheme, "auto")
	default:
		fail("thehive.tlp_scheme: want auto, pre52 or post52, got %q", h.TLPScheme)
	}

	// sync
	s := fc.Sync
	cfg.Sync = mapping.Options{
		IOCOnly:                        s.IOCOnly,
		CasesAsIncidents:               s.CasesAsIncidents,
		IncludeCasesWithoutObservables: s.IncludeCasesWithoutObservables,
		EventType:                      s.EventType,
		IndicatorStatus:                s.IndicatorStatus,
		TLPScheme:                      cfg.TheHive.TLPScheme,
	}
	if s.CustomIOCMapping {
		if strings.TrimSpace(s.IOCTypeMapping) == "" {
			fail("sync.ioc_type_mapping is required when sync.custom_ioc_mapping is true")
		} else if m, err := mapping.ParseTypeMapping(s.IOCTypeMapping); err != nil {
			fail("sync.ioc_type_mapping: %v", err)
		} else {
			cfg.Sync.TypeMapping = m
		}
	} else {
		cfg.Sync.TypeMapping = mapping.DefaultTypeMapping()
	}

	// intake
	in := fc.Intake
	cfg.Intake.MaxBodyBytes = in.MaxBodyBytes
	switch {
	case in.MaxBodyBytes < 0:
		fail("intake.max_body_bytes: must not be negative")
	case in.MaxBodyBytes == 0:
		cfg.Intake.MaxBodyBytes = defaultMaxBodyBytes
	}
	a := in.Auth
	switch a.Type {
	case "", "none":
		// Credentials of an unused auth type are not read: a stale
		// *_file path must not stop the agent.
	case "bearer":
		cfg.Intake.AuthType = "bearer"
		if tok := secret("intake.auth.token", a.Token, a.TokenFile); tok == "" && a.TokenFile == "" {
			fail("intake.auth.token is required when intake.auth.type is bearer")
		} else {
			cfg.Intake.Token = tok
		}
	case "basic":
		cfg.Intake.AuthType = "basic"
		required("intake.auth.username", a.Username)
		cfg.Intake.Username = a.Username
		if pw := secret("intake.auth.password", a.Password, a.PasswordFile); pw == "" && a.PasswordFile == "" {
			fail("intake.auth.password is required when intake.auth.type is basic")
		} else {
			cfg.Intake.Password = pw
		}
	default:
		fail("intake.auth.type: want none, bearer or basic, got %q", a.Type)
	}

	// worker and timing
	switch c := fc.Worker.Concurrency; {
	case c < 0:
		fail("worker.concurrency: must be positive")
	case c == 0:
		cfg.Workers = defaultWorkers
	default:
		cfg.Workers = c
	}
	duration := func(key, v string, def time.Duration) time.Duration {
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			fail("%s: invalid duration %q (want e.g. 1h, 30m, 0 = off)", key, v)
			return def
		}
		if d < 0 {
			fail("%s: must not be negative", key)
		}
		return d
	}
	cfg.ReconcileInterval = duration("reconcile_interval", fc.ReconcileInterval, defaultReconcileInterval)
	cfg.Retention = duration("retention", fc.Retention, defaultRetention)

	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "; "))
	}
	return cfg, nil
}

// threatqBaseURL accepts the manual's "host name or IP" as well as a full
// URL; https is assumed for bare hosts.
func threatqBaseURL(host string) (string, error) {
	host = strings.TrimSpace(host)
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		host = "[" + host + "]" // bare IPv6
	}
	if !strings.Contains(host, "://") {
		if strings.ContainsAny(host, "/?# ") {
			return "", fmt.Errorf("want a host name, an IP or https://host[:port], got %q", host)
		}
		host = "https://" + host
	}
	u, err := url.Parse(host)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("want a host name, an IP or https://host[:port], got %q", host)
	}
	if u.Port() != "" {
		if _, err := strconv.Atoi(u.Port()); err != nil {
			return "", fmt.Errorf("invalid port in %q", host)
		}
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// buildAgentConfig combines the validated file with the global flags. It
// does no I/O; lookupEnv supplies HTTPS_PROXY.
func buildAgentConfig(cfg *config, g globalOptions, lookupEnv func(string) (string, bool), logger *slog.Logger) (agent.Config, error) {
	var proxy string
	if g.ExternalProxy {
		proxy = cfg.ThreatQ.Proxy
		if proxy == "" {
			proxy, _ = lookupEnv("HTTPS_PROXY")
		}
		if proxy == "" {
			proxy, _ = lookupEnv("https_proxy")
		}
		if proxy == "" {
			return agent.Config{}, configErrorf("--external-proxy: no proxy configured: set threatq.proxy in %s or HTTPS_PROXY", cfg.Path)
		}
	}
	if logger == nil {
		logger = slog.Default()
	}
	return agent.Config{
		DBPath:      filepath.Join(g.ConfigDir, dbFileName),
		ListenAddr:  net.JoinHostPort(g.ListenerIP, strconv.Itoa(g.Port)),
		AdminSocket: filepath.Join(g.ConfigDir, socketFileName),
		Intake:      cfg.Intake,
		ThreatQ: threatq.Config{
			BaseURL:            cfg.ThreatQ.BaseURL,
			ClientID:           cfg.ThreatQ.ClientID,
			Email:              cfg.ThreatQ.Email,
			Password:           cfg.ThreatQ.Password,
			InsecureSkipVerify: g.DisableSSL,
			ProxyURL:           proxy,
			Logger:             logger.With("component", "threatq"),
		},
		TheHive: thehive.Config{
			URL:                cfg.TheHive.URL,
			APIKey:             cfg.TheHive.APIKey,
			Organisation:       cfg.TheHive.Organisation,
			InsecureSkipVerify: g.DisableSSL,
			ProxyURL:           proxy,
			Logger:             logger.With("component", "thehive"),
		},
		Sync:              cfg.Sync,
		ReconcileInterval: cfg.ReconcileInterval,
		Retention:         cfg.Retention,
		Workers:           cfg.Workers,
		Logger:            logger,
	}, nil
}

const configHeader = `# tq-mw-thehive configuration. Keep this file mode 0600: it holds secrets.
# Any key can be overridden by an env var: TQ_THEHIVE_ + the dotted key
# upper-cased with dots as underscores (threatq.password ->
# TQ_THEHIVE_THREATQ_PASSWORD). Secrets may also come from *_file keys.
# Edit and send SIGHUP to the agent to reload.
`

// writeConfigFile writes fc to path with mode 0600, creating the directory
// 0700. It refuses to replace an existing file unless force is set.
func writeConfigFile(path string, fc *fileConfig, force bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create config dir: %w", err)
	}
	body, err := yaml.Marshal(fc)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	data := append([]byte(configHeader), body...)
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return configErrorf("%s already exists; use --force to overwrite it", path)
	}
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	// O_TRUNC keeps an existing file's mode: tighten it.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write config: %w", err)
	}
	return f.Close()
}
