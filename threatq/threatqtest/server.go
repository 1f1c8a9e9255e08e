// Package threatqtest is an in-memory ThreatQ for tests and the demo: the
// REST paths and JSON shapes the threatq client uses (see
// shared/api/threatq.md), bearer-token auth, request recording and fault
// injection.
package threatqtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Config configures a Server. Zero values get defaults.
type Config struct {
	ClientID string // default "test-client"
	Email    string // default "agent@example.com"
	Password string // default "s3cret-password"

	// TokenLifetime is the expires_in of issued tokens; tokens stop working
	// after it. Default 1h.
	TokenLifetime time.Duration
	// Latency is added to every request (benchmarks use ~2ms).
	Latency time.Duration
	// Seed makes fault injection reproducible. Default 1.
	Seed uint64
	// TLS serves https with httptest's self-signed certificate.
	TLS bool
	// IndicatorTypes and EventTypes replace the default tables (names,
	// ids assigned from 1 in order).
	IndicatorTypes []string
	EventTypes     []string
}

// Option changes a Config.
type Option func(*Config)

func WithCredentials(clientID, email, password string) Option {
	return func(c *Config) { c.ClientID, c.Email, c.Password = clientID, email, password }
}
func WithTokenLifetime(d time.Duration) Option { return func(c *Config) { c.TokenLifetime = d } }
func WithLatency(d time.Duration) Option       { return func(c *Config) { c.Latency = d } }
func WithSeed(seed uint64) Option              { return func(c *Config) { c.Seed = seed } }
func WithTLS() Option                          { return func(c *Config) { c.TLS = true } }

// DefaultIndicatorTypes are ThreatQ's default indicator type names
// (threatq.md §2); ids are their 1-based positions.
var DefaultIndicatorTypes = []string{
	"ASN", "Binary String", "CIDR Block", "CVE", "Email Address", "Email Attachment",
	"Email Subject", "File Mapping", "File Path", "Filename", "FQDN", "Fuzzy Hash",
	"GOST Hash", "Hash ION", "IP Address", "IPv6 Address", "MAC Address", "MD5", "Mutex",
	"Password", "Registry Key", "Service Name", "SHA-1", "SHA-256", "SHA-384", "SHA-512",
	"String", "x509 Serial", "x509 Subject", "URL", "URL Path", "User-agent", "Username",
	"X-Mailer",
}

// DefaultEventTypes are ThreatQ's default event types, ids as on one real
// instance (Incident = 13).
var DefaultEventTypes = []string{
	"Spearphish", "Watering Hole", "SQL Injection Attack", "DoS Attack", "Malware",
	"Watchlist", "Command and Control", "Anonymization", "Exfiltration",
	"Host Characteristics", "Compromised PKI Certificate", "Login Compromise",
	"Incident", "Sighting",
}

var defaultStatuses = []string{"Active", "Expired", "Indirect", "Review", "Whitelisted"}

// Server is the fake. Its exported fields are set before it serves.
type Server struct {
	URL                       string
	ClientID, Email, Password string

	cfg Config
	hs  *httptest.Server

	mu       sync.Mutex
	tokens   map[string]time.Time // access token → expiry
	refresh  map[string]bool
	colls    map[string]*collection // "events", "incident", "indicators"
	nextAttr int
	nextSrc  int
	nextTag  int
	tagIDs   map[string]int
	counts   map[string]int
	total    int
	log      []Request

	faults faultState
}

// Request is one recorded request.
type Request struct {
	Time    time.Time
	Method  string
	Path    string
	Query   string // raw query
	Pattern string // e.g. "POST /api/events/{id}/attributes"
	Status  int    // 0 when the connection was dropped
	Fault   string // injected fault, "" for none
}

// maxLog bounds the request log so long benchmarks stay flat.
const maxLog = 100000

// New builds a Server without starting it; see Start. For tests use
// NewServer.
func New(cfg Config) *Server {
	if cfg.ClientID == "" {
		cfg.ClientID = "test-client"
	}
	if cfg.Email == "" {
		cfg.Email = "agent@example.com"
	}
	if cfg.Password == "" {
		cfg.Password = "s3cret-password"
	}
	if cfg.TokenLifetime <= 0 {
		cfg.TokenLifetime = time.Hour
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.IndicatorTypes == nil {
		cfg.IndicatorTypes = DefaultIndicatorTypes
	}
	if cfg.EventTypes == nil {
		cfg.EventTypes = DefaultEventTypes
	}
	s := &Server{
		ClientID: cfg.ClientID, Email: cfg.Email, Password: cfg.Password,
		cfg:     cfg,
		tokens:  map[string]time.Time{},
		refresh: map[string]bool{},
		colls: map[string]*collection{
			"events":     newCollection("events"),
			"incident":   newCollection("incident"),
			"indicators": newCollection("indicators"),
		},
		tagIDs: map[string]int{},
		counts: map[string]int{},
	}
	s.faults.init(cfg.Seed, cfg.Latency)
	return s
}

// NewServer starts a Server on a loopback port and closes it when tb ends.
func NewServer(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	var cfg Config
	for _, o := range opts {
		o(&cfg)
	}
	s := New(cfg)
	if err := s.Start(""); err != nil {
		tb.Fatalf("threatqtest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Start serves on addr ("" = 127.0.0.1:0) and sets URL.
func (s *Server) Start(addr string) error {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s.hs = httptest.NewUnstartedServer(s.Handler())
	_ = s.hs.Listener.Close()
	s.hs.Listener = ln
	if s.cfg.TLS {
		s.hs.StartTLS()
	} else {
		s.hs.Start()
	}
	s.URL = s.hs.URL
	return nil
}

// Client returns an *http.Client that trusts the server's certificate.
func (s *Server) Client() *http.Client { return s.hs.Client() }

// Close stops the server and drops open connections.
func (s *Server) Close() {
	if s.hs != nil {
		s.hs.CloseClientConnections()
		s.hs.Close()
	}
}

// ExpireTokens invalidates every access and refresh token: the next API
// call gets 401 and must log in again.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
	clear(s.refresh)
}

// Handler is the fake's HTTP handler, for mounting elsewhere.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	pattern := patternOf(r.Method, r.URL.Path)
	rec := Request{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Pattern: pattern}
	isToken := r.URL.Path == "/api/token"
	isWrite := r.Method != http.MethodGet && r.Method != http.MethodHead && !isToken

	f := s.faults.pick(r.Method+" "+pattern, isToken, isWrite)
	rec.Fault = f.kind.String()
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	cw := &codeWriter{ResponseWriter: w}
	switch f.kind {
	case FaultDown:
		s.record(rec)
		dropConn(w, dropNow)
		return
	case FaultDrop, FaultTruncate:
		s.record(rec)
		how := dropHeaders
		if f.kind == FaultTruncate {
			how = dropBody
		}
		dropConn(w, how)
		return
	case Fault500, Fault503, Fault429:
		code := map[FaultKind]int{Fault500: 500, Fault503: 503, Fault429: 429}[f.kind]
		if f.kind == Fault429 {
			w.Header().Set("Retry-After", "1")
		}
		writeJSON(cw, code, map[string]any{"errors": []string{"injected " + f.kind.String()}})
	case Fault401:
		writeJSON(cw, http.StatusUnauthorized, map[string]any{"error": "Unauthenticated.", "message": "Unauthenticated."})
	case FaultPermanent:
		writeJSON(cw, http.StatusBadRequest, map[string]any{"data": map[string]any{"errors": map[string][]string{"fault": {"injected permanent rejection"}}}})
	case FaultDropAfterCommit:
		// The write is applied; only the answer is lost.
		s.route(httptest.NewRecorder(), r, pattern)
		rec.Status = 0
		s.record(rec)
		dropConn(w, dropNow)
		return
	default:
		s.route(cw, r, pattern)
	}
	rec.Status = cw.code
	s.record(rec)
}

func (s *Server) record(rec Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[rec.Method+" "+rec.Pattern]++
	s.total++
	if len(s.log) < maxLog {
		s.log = append(s.log, rec)
	}
}

type codeWriter struct {
	http.ResponseWriter
	code int
}

func (c *codeWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *codeWriter) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	return c.ResponseWriter.Write(b)
}

type dropHow int

const (
	dropNow     dropHow = iota // close without a byte
	dropHeaders                // close halfway through the status/headers
	dropBody                   // close after headers, halfway through the body
)

// dropConn closes the connection so the client sees an EOF or a truncated
// answer rather than a clean one.
func dropConn(w http.ResponseWriter, how dropHow) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	switch how {
	case dropHeaders:
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: appl")
	case dropBody:
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{\"data\":{\"id\":")
	}
	_ = buf.Flush()
	_ = conn.Close()
}

// patternOf names the route of a path, with ids replaced: "/api/events/7/attributes/3"
// → "/api/events/{id}/attributes/{aid}".
func patternOf(method, path string) string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, sg := range segs {
		if _, err := strconv.Atoi(sg); err == nil && i > 0 {
			if i >= 4 {
				segs[i] = "{aid}"
			} else {
				segs[i] = "{id}"
			}
		}
	}
	return "/" + strings.Join(segs, "/")
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeData(w http.ResponseWriter, code int, data any) {
	writeJSON(w, code, map[string]any{"data": data})
}

func writeList(w http.ResponseWriter, items any, total, limit, offset int) {
	writeJSON(w, http.StatusOK, map[string]any{"data": items, "total": total, "limit": limit, "offset": offset})
}

// validationError answers 400 in ThreatQ's {"data":{"errors":{field:[msg]}}} shape.
func validationError(w http.ResponseWriter, field, msg string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"data": map[string]any{"errors": map[string][]string{field: {msg}}}})
}

func notFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, map[string]any{"errors": []string{"Not Found"}})
}

func randToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Counts returns requests per "METHOD pattern" and the total.
func (s *Server) Counts() (map[string]int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		m[k] = v
	}
	return m, s.total
}

// Requests returns the recorded requests in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// ResetRequests forgets recorded requests and counts (state is kept).
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
	clear(s.counts)
	s.total = 0
}
