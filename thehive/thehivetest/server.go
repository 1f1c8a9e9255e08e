// Package thehivetest is an in-memory TheHive 5 for tests and the demo: the
// v1 query API (listCase, getCase, observables, filter, sort, page, count)
// over deterministic generated cases, GET /api/v1/case/{id} and
// /api/v1/status, mutations while a client pages, and fault injection.
package thehivetest

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tqlabs/tq-mw-thehive/thehive"
)

// Options shape the generated data and the server's behaviour.
type Options struct {
	Cases              int    // generated cases
	ObservablesPerCase int    // generated observables per case
	Seed               int64  // same seed, same data
	APIKey             string // required as "Authorization: Bearer <key>" when set
	Organisation       string // when set, an X-Organisation naming another organisation gets 403

	// StartTime is the _createdAt of the first case (default 2024-01-01
	// UTC); later cases follow at random gaps of up to a minute.
	StartTime time.Time
	// SameTimestampEvery > 1 gives runs of that many consecutive cases one
	// _createdAt, to exercise keyset page boundaries.
	SameTimestampEvery int
	// UpdatedPercent of generated cases carry an _updatedAt (default 40;
	// negative for none).
	UpdatedPercent int

	Version        string // reported by /api/v1/status (default "5.2.16-1")
	NoStatus       bool   // /api/v1/status answers 404, like a proxy hiding it
	NoLabels       bool   // omit *Label fields, like TheHive 5.0/5.1
	TotalThreshold int    // cap of X-Total and limitedCount (default 1000, like query.limitedCountThreshold; negative: uncapped)
	RecordQueries  bool   // keep every query body for Queries()
}

// Faults are injected into API requests, each with the given probability
// (0–1), drawn from a generator seeded with Options.Seed.
type Faults struct {
	ErrorRate     float64       // 500 InternalError
	RateLimitRate float64       // 429 with Retry-After
	RetryAfter    time.Duration // Retry-After on 429, rounded up to seconds (0 sends "0")
	SlowRate      float64       // answer after SlowDelay (or when the client gives up)
	SlowDelay     time.Duration
	TruncateRate  float64 // 200 whose JSON body ends half-way, cleanly
	DropRate      float64 // 200 whose connection drops half-way through the body
}

// Stats counts requests by outcome.
type Stats struct {
	Requests     int64 // every request, faulted or not
	Queries      int64 // POST /api/v1/query answered normally
	CaseGets     int64
	Unauthorized int64
	BadRequests  int64
	Errors       int64 // injected 500s
	RateLimited  int64
	Slowed       int64
	Truncated    int64
	Dropped      int64
}

type caseRec struct {
	createdAt, updatedAt int64
	c                    *thehive.Case // set once stored in full (added or updated)
}

// Server is a fake TheHive 5. Its methods are safe for concurrent use with
// the requests it serves.
type Server struct {
	URL string

	// Clock is the time source for timestamps of mutations and the Date
	// header; set it before the first request or mutation.
	Clock func() time.Time

	opts Options

	mu        sync.RWMutex
	cases     []caseRec
	byCreated []int32 // case indices by (_createdAt, index)
	byUpdated []int32 // indices of cases with _updatedAt, by (_updatedAt, index)
	extraObs  map[int32][]thehive.Observable
	obsSeq    int
	lastTS    int64 // every mutation stamps strictly later than this
	queries   []string

	fmu    sync.Mutex
	faults Faults
	frng   *rand.Rand

	stats struct {
		requests, queries, caseGets, unauthorized, badRequests atomic.Int64
		errors, rateLimited, slowed, truncated, dropped        atomic.Int64
	}

	ts *httptest.Server
	hs *http.Server
}

// New builds a server without starting it; serve it with Start, or use it
// as an http.Handler.
func New(opts Options) *Server {
	if opts.StartTime.IsZero() {
		opts.StartTime = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if opts.UpdatedPercent == 0 {
		opts.UpdatedPercent = 40
	}
	if opts.Version == "" {
		opts.Version = "5.2.16-1"
	}
	if opts.TotalThreshold == 0 {
		opts.TotalThreshold = 1000
	}
	s := &Server{
		Clock:    time.Now,
		opts:     opts,
		extraObs: map[int32][]thehive.Observable{},
		frng:     rand.New(rand.NewPCG(uint64(opts.Seed), 0x7468656869766520)),
	}
	s.cases = make([]caseRec, opts.Cases)
	s.byCreated = make([]int32, opts.Cases)
	t := opts.StartTime.UnixMilli()
	for i := range s.cases {
		r := rng{hash3(opts.Seed, 0, uint64(i))}
		// Runs of SameTimestampEvery cases share a timestamp; otherwise
		// every case gets its own.
		if i > 0 && (opts.SameTimestampEvery <= 1 || i%opts.SameTimestampEvery == 0) {
			t += 1 + int64(r.intn(60000))
		}
		rec := caseRec{createdAt: t}
		if r.pct(opts.UpdatedPercent) {
			rec.updatedAt = t + 1 + int64(r.intn(30*dayMS))
			s.byUpdated = append(s.byUpdated, int32(i))
		}
		s.lastTS = max(s.lastTS, rec.createdAt, rec.updatedAt)
		s.cases[i] = rec
		s.byCreated[i] = int32(i)
	}
	sort.Slice(s.byUpdated, func(a, b int) bool { return s.lessUpdated(s.byUpdated[a], s.byUpdated[b]) })
	return s
}

// NewServer starts a server on loopback for the test's duration.
func NewServer(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := New(opts)
	s.ts = httptest.NewServer(s)
	s.URL = s.ts.URL
	tb.Cleanup(s.Close)
	return s
}

// Start serves on addr ("127.0.0.1:0" for any free port) until Close.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("thehivetest: %w", err)
	}
	s.hs = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.URL = "http://" + ln.Addr().String()
	go s.hs.Serve(ln) //nolint:errcheck // ends with ErrServerClosed on Close
	return nil
}

// Close stops the server and closes its connections.
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.Close()
	}
	if s.hs != nil {
		s.hs.Close()
	}
}

// SetFaults replaces the injected faults; the zero value turns them off.
func (s *Server) SetFaults(f Faults) {
	s.fmu.Lock()
	s.faults = f
	s.fmu.Unlock()
}

// Stats returns the request counters.
func (s *Server) Stats() Stats {
	st := &s.stats
	return Stats{
		Requests: st.requests.Load(), Queries: st.queries.Load(), CaseGets: st.caseGets.Load(),
		Unauthorized: st.unauthorized.Load(), BadRequests: st.badRequests.Load(), Errors: st.errors.Load(),
		RateLimited: st.rateLimited.Load(), Slowed: st.slowed.Load(), Truncated: st.truncated.Load(), Dropped: st.dropped.Load(),
	}
}

// Queries returns the bodies of the queries received (Options.RecordQueries).
func (s *Server) Queries() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.queries)
}

func (s *Server) lessCreated(a, b int32) bool {
	ca, cb := s.cases[a].createdAt, s.cases[b].createdAt
	return ca < cb || ca == cb && a < b
}

func (s *Server) lessUpdated(a, b int32) bool {
	ua, ub := s.cases[a].updatedAt, s.cases[b].updatedAt
	return ua < ub || ua == ub && a < b
}

// tick returns a mutation timestamp: the clock, but strictly later than any
// timestamp held, as TheHive's own writes are. Callers hold mu.
func (s *Server) tick() int64 {
	t := s.Clock().UnixMilli()
	if t <= s.lastTS {
		t = s.lastTS + 1
	}
	s.lastTS = t
	return t
}

// caseIndex resolves "~id" or a case number. Callers hold mu.
func (s *Server) caseIndex(idOrNumber string) (int, bool) {
	if rest, ok := strings.CutPrefix(idOrNumber, "~"); ok {
		n, err := strconv.Atoi(rest)
		if err != nil {
			return 0, false
		}
		i := n - caseIDBase
		return i, i >= 0 && i < len(s.cases)
	}
	n, err := strconv.Atoi(idOrNumber)
	if err != nil {
		return 0, false
	}
	return n - 1, n >= 1 && n <= len(s.cases)
}

// caseAt materialises case i. Callers hold mu.
func (s *Server) caseAt(i int) thehive.Case {
	rec := &s.cases[i]
	if rec.c != nil {
		c := *rec.c
		c.Tags = slices.Clone(c.Tags)
		return c
	}
	return s.genCase(i, rec.createdAt, rec.updatedAt)
}

// observablesOf materialises the observables of case i. Callers hold mu.
func (s *Server) observablesOf(i int) []thehive.Observable {
	extra := s.extraObs[int32(i)]
	out := make([]thehive.Observable, 0, s.opts.ObservablesPerCase+len(extra))
	if i < s.opts.Cases {
		for j := range s.opts.ObservablesPerCase {
			out = append(out, s.genObservable(i, j, s.cases[i].createdAt))
		}
	}
	return append(out, extra...)
}

// Len is the number of cases.
func (s *Server) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.cases)
}

// Case returns the current state of a case, by id or number.
func (s *Server) Case(idOrNumber string) (thehive.Case, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, ok := s.caseIndex(idOrNumber)
	if !ok {
		return thehive.Case{}, false
	}
	return s.caseAt(i), true
}

// Cases returns every case in _createdAt order; for assertions on small sets.
func (s *Server) Cases() []thehive.Case {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]thehive.Case, 0, len(s.cases))
	for _, i := range s.byCreated {
		out = append(out, s.caseAt(int(i)))
	}
	return out
}

// Observables returns the observables of a case (nil for an unknown case).
func (s *Server) Observables(caseID string) []thehive.Observable {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, ok := s.caseIndex(caseID)
	if !ok {
		return nil
	}
	return s.observablesOf(i)
}

// AddCase stores a new case created now and returns it as stored: _id,
// number, _createdAt (when zero) and _type are assigned, _updatedAt cleared.
func (s *Server) AddCase(c thehive.Case) thehive.Case {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := len(s.cases)
	now := s.tick()
	c.ID, c.Number, c.Type, c.UpdatedAt, c.UpdatedBy = caseID(i), int64(i+1), thehive.TypeCase, 0, ""
	if c.CreatedAt == 0 {
		c.CreatedAt = now
	}
	if c.CreatedBy == "" {
		c.CreatedBy = "api@thehive.local"
	}
	if c.Status == "" {
		c.Status, c.Stage = "New", "New"
	}
	if c.StartDate == 0 {
		c.StartDate = c.CreatedAt
	}
	c.Tags = slices.Clone(c.Tags)
	s.cases = append(s.cases, caseRec{createdAt: c.CreatedAt, c: &c})
	pos, _ := slices.BinarySearchFunc(s.byCreated, int32(i), func(e, t int32) int {
		if s.lessCreated(e, t) {
			return -1
		}
		return 1
	})
	s.byCreated = slices.Insert(s.byCreated, pos, int32(i))
	return c
}

// ErrNotFound is returned by mutations of an unknown case.
var ErrNotFound = errors.New("thehivetest: case not found")

// UpdateCase applies fn to a case and stamps _updatedAt with a time later
// than any timestamp the server holds, so the case moves to the end of an
// _updatedAt listing. fn cannot change _id, number or _createdAt.
func (s *Server) UpdateCase(idOrNumber string, fn func(*thehive.Case)) (thehive.Case, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.caseIndex(idOrNumber)
	if !ok {
		return thehive.Case{}, ErrNotFound
	}
	c := s.caseAt(i)
	fn(&c)
	old := s.cases[i]
	c.ID, c.Number, c.CreatedAt, c.Type = caseID(i), int64(i+1), old.createdAt, thehive.TypeCase
	c.UpdatedAt = s.tick()
	if c.UpdatedBy == "" {
		c.UpdatedBy = "api@thehive.local"
	}
	if old.updatedAt != 0 {
		if pos, found := slices.BinarySearchFunc(s.byUpdated, int32(i), s.cmpUpdated); found {
			s.byUpdated = slices.Delete(s.byUpdated, pos, pos+1)
		}
	}
	s.cases[i] = caseRec{createdAt: old.createdAt, updatedAt: c.UpdatedAt, c: &c}
	// The new stamp is the latest held, so the case goes last.
	s.byUpdated = append(s.byUpdated, int32(i))
	return c, nil
}

func (s *Server) cmpUpdated(e, t int32) int {
	switch {
	case s.lessUpdated(e, t):
		return -1
	case s.lessUpdated(t, e):
		return 1
	}
	return 0
}

// AddObservable adds an observable created now to a case and returns it as
// stored.
func (s *Server) AddObservable(caseID string, o thehive.Observable) (thehive.Observable, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.caseIndex(caseID)
	if !ok {
		return thehive.Observable{}, ErrNotFound
	}
	s.obsSeq++
	o.ID, o.Type, o.UpdatedAt = "~"+strconv.Itoa(addIDBase+s.obsSeq), thehive.TypeObservable, 0
	o.CreatedAt = s.tick()
	if o.StartDate == 0 {
		o.StartDate = o.CreatedAt
	}
	if o.CreatedBy == "" {
		o.CreatedBy = "api@thehive.local"
	}
	o.Tags = slices.Clone(o.Tags)
	s.extraObs[int32(i)] = append(s.extraObs[int32(i)], o)
	return o, nil
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.stats.requests.Add(1)
	w.Header().Set("Date", s.Clock().UTC().Format(http.TimeFormat))
	// Reading the body first lets net/http notice a client that hangs up
	// (it only watches the connection once the body is consumed), so a
	// slowed answer ends with the client's timeout.
	raw, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "cannot read body")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	if s.injectBefore(w, r) {
		return
	}
	rec := httptest.NewRecorder()
	s.route(rec, r)
	s.writeOut(w, rec)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if path == "/api/v1/status" || path == "/api/status" {
		if r.Method != http.MethodGet {
			writeError(w, http.StatusMethodNotAllowed, "BadRequest", "method not allowed")
			return
		}
		if s.opts.NoStatus {
			writeError(w, http.StatusNotFound, "NotFound", "no such resource")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"versions": map[string]string{"Scalligraph": s.opts.Version, "TheHive": s.opts.Version, "Play": "2.9.x"},
			"config":   map[string]any{"protectDownloadsWith": "malware", "authType": []string{"session", "local", "key"}, "capabilities": []string{"changePassword", "setPassword", "authByKey"}},
		})
		return
	}
	if !s.authorised(w, r) {
		return
	}
	switch {
	case path == "/api/v1/query":
		if r.Method != http.MethodPost {
			writeError(w, http.StatusMethodNotAllowed, "BadRequest", "method not allowed")
			return
		}
		s.serveQuery(w, r)
	case strings.HasPrefix(path, "/api/v1/case/") && !strings.Contains(path[len("/api/v1/case/"):], "/"):
		if r.Method != http.MethodGet {
			writeError(w, http.StatusMethodNotAllowed, "BadRequest", "method not allowed")
			return
		}
		s.stats.caseGets.Add(1)
		id := path[len("/api/v1/case/"):]
		s.mu.RLock()
		i, ok := s.caseIndex(id)
		var out any
		if ok {
			out = s.renderCase(s.caseAt(i))
		}
		s.mu.RUnlock()
		if !ok {
			writeError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("Case %s not found", id))
			return
		}
		writeJSON(w, http.StatusOK, out)
	default:
		writeError(w, http.StatusNotFound, "NotFound", "no such resource: "+path)
	}
}

func (s *Server) authorised(w http.ResponseWriter, r *http.Request) bool {
	if s.opts.APIKey != "" {
		got := r.Header.Get("Authorization")
		want := "Bearer " + s.opts.APIKey
		if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			s.stats.unauthorized.Add(1)
			writeError(w, http.StatusUnauthorized, "AuthenticationError", "Authentication failure")
			return false
		}
	}
	if org := r.Header.Get("X-Organisation"); s.opts.Organisation != "" && org != "" && org != s.opts.Organisation {
		writeError(w, http.StatusForbidden, "AuthorizationError", "organisation "+org+" not found or not visible")
		return false
	}
	return true
}

type fault int

const (
	faultNone fault = iota
	faultTruncate
	faultDrop
)

// injectBefore applies the faults decided before the request is served
// (500, 429, slowness) and reports whether it answered.
func (s *Server) injectBefore(w http.ResponseWriter, r *http.Request) bool {
	s.fmu.Lock()
	f := s.faults
	e, l, sl := s.frng.Float64(), s.frng.Float64(), s.frng.Float64()
	s.fmu.Unlock()
	switch {
	case e < f.ErrorRate:
		s.stats.errors.Add(1)
		writeError(w, http.StatusInternalServerError, "InternalError", "injected failure")
		return true
	case l < f.RateLimitRate:
		s.stats.rateLimited.Add(1)
		secs := int((f.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, http.StatusTooManyRequests, "TooManyRequests", "slow down")
		return true
	case sl < f.SlowRate:
		s.stats.slowed.Add(1)
		t := time.NewTimer(f.SlowDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return true
		}
	}
	return false
}

// writeOut sends a recorded answer, possibly cut short (see Faults).
func (s *Server) writeOut(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	body := rec.Body.Bytes()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	ft := faultNone
	if rec.Code >= 200 && rec.Code < 300 && len(body) > 1 {
		s.fmu.Lock()
		f := s.faults
		tr, dr := s.frng.Float64(), s.frng.Float64()
		s.fmu.Unlock()
		switch {
		case tr < f.TruncateRate:
			ft = faultTruncate
		case dr < f.DropRate:
			ft = faultDrop
		}
	}
	switch ft {
	case faultTruncate:
		// No Content-Length: the chunked body ends cleanly, only the JSON is
		// incomplete, as when TheHive's streamed result fails part-way.
		s.stats.truncated.Add(1)
		w.WriteHeader(rec.Code)
		w.Write(body[:len(body)/2]) //nolint:errcheck
	case faultDrop:
		s.stats.dropped.Add(1)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.Code)
		w.Write(body[:len(body)/2]) //nolint:errcheck
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		// net/http closes the connection without logging for this value.
		panic(http.ErrAbortHandler)
	default:
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.Code)
		w.Write(body) //nolint:errcheck
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	if err := jsonEncode(&buf, v); err != nil {
		writeError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(buf.Bytes()) //nolint:errcheck
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	var buf bytes.Buffer
	jsonEncode(&buf, map[string]string{"type": typ, "message": msg}) //nolint:errcheck
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(buf.Bytes()) //nolint:errcheck
}
