package threatq_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tqlabs/tq-mw-thehive/threatq"
	"github.com/tqlabs/tq-mw-thehive/threatq/threatqtest"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newClient(tb testing.TB, s *threatqtest.Server, mods ...func(*threatq.Config)) *threatq.Client {
	tb.Helper()
	cfg := threatq.Config{
		BaseURL:      s.URL,
		ClientID:     s.ClientID,
		Email:        s.Email,
		Password:     s.Password,
		RetryWaitMin: time.Millisecond,
		RetryWaitMax: 5 * time.Millisecond,
		Timeout:      5 * time.Second,
		SettleTime:   20 * time.Millisecond, // the fake applies a write at once or never
		Logger:       quietLogger(),
	}
	for _, m := range mods {
		m(&cfg)
	}
	c, err := threatq.NewClient(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// countWhere counts recorded requests matching pattern (and query substring).
func countWhere(s *threatqtest.Server, method, pattern, query string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Method == method && r.Pattern == pattern && strings.Contains(r.Query, query) {
			n++
		}
	}
	return n
}

func TestNewClientBaseURL(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "tq.example.com", want: "https://tq.example.com"},
		{in: "tq.example.com:8443", want: "https://tq.example.com:8443"},
		{in: "10.0.0.5", want: "https://10.0.0.5"},
		{in: "https://tq.example.com/", want: "https://tq.example.com"},
		{in: "https://tq.example.com:8443/api", want: "https://tq.example.com:8443"},
		{in: "http://127.0.0.1:9999", want: "http://127.0.0.1:9999"},
		{in: "", wantErr: true},
		{in: "ftp://tq.example.com", wantErr: true},
		{in: "https://user:pw@tq.example.com", wantErr: true},
		{in: "tq.example.com:99999", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c, err := threatq.NewClient(threatq.Config{BaseURL: tt.in, ClientID: "id", Email: "e", Password: "pw"})
			if tt.wantErr {
				if err == nil {
					t.Fatalf("NewClient(%q): want error, got none", tt.in)
				}
				if strings.Contains(err.Error(), "pw@") {
					t.Errorf("error leaks credentials: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.BaseURL(); got != tt.want {
				t.Errorf("base = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLogin(t *testing.T) {
	s := threatqtest.NewServer(t)
	c := newClient(t, s)
	if err := c.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := countWhere(s, "POST", "/api/token", "grant_type=password"); got != 1 {
		t.Errorf("password logins = %d, want 1", got)
	}
	types, err := c.IndicatorTypes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(types) != len(threatqtest.DefaultIndicatorTypes) || types[0].Name != "ASN" || types[0].ID != 1 {
		t.Errorf("indicator types = %v", types[:1])
	}
	et, err := c.EventTypes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if et[12] != (threatq.EventType{ID: 13, Name: "Incident"}) {
		t.Errorf("event type 13 = %+v", et[12])
	}
	if got := countWhere(s, "POST", "/api/token", ""); got != 1 {
		t.Errorf("token requests = %d, want 1 (token cached)", got)
	}
}

func TestLoginRejected(t *testing.T) {
	s := threatqtest.NewServer(t)
	c := newClient(t, s, func(c *threatq.Config) { c.Password = "wrong-horse-battery" })
	err := c.Login(context.Background())
	if err == nil {
		t.Fatal("want error")
	}
	if !threatq.IsAuth(err) || threatq.IsPermanent(err) {
		t.Errorf("IsAuth=%v IsPermanent=%v, want true/false: %v", threatq.IsAuth(err), threatq.IsPermanent(err), err)
	}
	if strings.Contains(err.Error(), "wrong-horse-battery") {
		t.Errorf("error leaks the password: %v", err)
	}
	if !strings.Contains(err.Error(), "credentials were incorrect") {
		t.Errorf("error lacks ThreatQ's message: %v", err)
	}
	// An API call fails the same way and does not hammer the token endpoint.
	_, err = c.IndicatorTypes(context.Background())
	if !threatq.IsAuth(err) {
		t.Errorf("IndicatorTypes: want auth error, got %v", err)
	}
	if got := countWhere(s, "POST", "/api/token", ""); got != 2 {
		t.Errorf("token requests = %d, want 2 (no retries of a rejected login)", got)
	}
}

func TestTokenRefreshBeforeExpiry(t *testing.T) {
	s := threatqtest.NewServer(t, threatqtest.WithTokenLifetime(time.Hour))
	var now atomic.Int64
	now.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	c := newClient(t, s, func(c *threatq.Config) {
		c.Now = func() time.Time { return time.Unix(0, now.Load()) }
	})
	ctx := context.Background()
	if _, err := c.IndicatorTypes(ctx); err != nil {
		t.Fatal(err)
	}
	// expires_in is 3600 s but capped at 30 min; renewal is 60 s before.
	now.Add(int64(28 * time.Minute))
	if _, err := c.EventTypes(ctx); err != nil {
		t.Fatal(err)
	}
	if got := countWhere(s, "POST", "/api/token", "refresh_token"); got != 0 {
		t.Errorf("refreshed after 28 min: %d", got)
	}
	now.Add(int64(2 * time.Minute))
	if _, err := c.EventTypes(ctx); err != nil {
		t.Fatal(err)
	}
	if got := countWhere(s, "POST", "/api/token", "grant_type=refresh_token"); got != 1 {
		t.Errorf("refresh grants = %d, want 1", got)
	}
	if got := countWhere(s, "POST", "/api/token", "grant_type=password"); got != 1 {
		t.Errorf("password logins = %d, want 1", got)
	}
}

func TestReloginOn401(t *testing.T) {
	s := threatqtest.NewServer(t)
	c := newClient(t, s)
	ctx := context.Background()
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	s.ExpireTokens()
	if _, err := c.IndicatorTypes(ctx); err != nil {
		t.Fatalf("after ExpireTokens: %v", err)
	}
	if got := countWhere(s, "POST", "/api/token", "grant_type=password"); got != 2 {
		t.Errorf("password logins = %d, want 2", got)
	}
	if got := countWhere(s, "GET", "/api/indicator/types", ""); got != 2 {
		t.Errorf("GET types = %d, want 2 (401 then retry)", got)
	}

	// A 401 right after a fresh login is a real error, and is not retried
	// again.
	s.ResetRequests()
	s.InjectNext("GET /api/event/types", threatqtest.Fault401, 5)
	_, err := c.EventTypes(ctx)
	if !threatq.IsAuth(err) || threatq.IsPermanent(err) {
		t.Fatalf("want auth error, got %v", err)
	}
	var e *threatq.Error
	if !errors.As(err, &e) || e.StatusCode != 401 || e.Path != "/api/event/types" {
		t.Errorf("error = %#v", err)
	}
	if got := countWhere(s, "GET", "/api/event/types", ""); got != 2 {
		t.Errorf("GET event types = %d, want 2", got)
	}
}

func TestExpiredTokenMidRunLogsInOnce(t *testing.T) {
	s := threatqtest.NewServer(t)
	c := newClient(t, s)
	ctx := context.Background()
	if err := c.Login(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	start := make(chan struct{})
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if i == 20 {
				s.ExpireTokens()
			}
			_, _, err := c.UpsertIndicator(ctx, threatq.Indicator{Value: "10.0.0." + string(rune('a'+i%26)) + strings.Repeat("x", i/26), Type: "IP Address"}, 0, false)
			if err != nil {
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := countWhere(s, "POST", "/api/token", "grant_type=password"); got > 2 {
		t.Errorf("password logins = %d, want ≤ 2 (one initial, one after expiry)", got)
	}
	if got := len(s.Snapshot().Indicators); got != 40 {
		t.Errorf("indicators = %d, want 40", got)
	}
}

func TestErrorMessages(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		body     string
		wantMsg  string
		wantPerm bool
	}{
		{"data errors", 400, `{"data":{"errors":{"name":["The name has already been taken."],"test":["e1","e2"]}}}`, "name: The name has already been taken.; test: e1; test: e2", true},
		{"errors list", 422, `{"errors":["First Error",["Second error - part 1","Second error - part 2"]]}`, "First Error; Second error - part 1; Second error - part 2", true},
		{"name message", 403, `{"name":"Forbidden","message":"no access"}`, "Forbidden: no access", false}, // 403 is an auth problem (IsAuth): delivery pauses, nothing is dead-lettered
		{"errors on 200", 200, `{"data":{"errors":{"value":["bad"]}}}`, "value: bad", true},
		{"404", 404, ``, "object does not exist", true},
		{"500", 500, `{"errors":["boom"]}`, "boom", false},
		{"429", 429, `{}`, "", false},
		{"408", 408, `{}`, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("POST /api/token", func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"access_token":"tok-abc","expires_in":1800,"refresh_token":"rt-xyz"}`)
			})
			mux.HandleFunc("GET /api/event/types", func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.code)
				io.WriteString(w, tt.body)
			})
			hs := httptest.NewServer(mux)
			defer hs.Close()
			c, err := threatq.NewClient(threatq.Config{BaseURL: hs.URL, ClientID: "id", Email: "e", Password: "pw-secret",
				RetryMax: 1, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.EventTypes(context.Background())
			var e *threatq.Error
			if !errors.As(err, &e) {
				t.Fatalf("want *threatq.Error, got %v", err)
			}
			if e.StatusCode != tt.code || e.Message != tt.wantMsg || e.Method != "GET" || e.Path != "/api/event/types" {
				t.Errorf("got %+v, want code %d message %q", e, tt.code, tt.wantMsg)
			}
			if got := threatq.IsPermanent(err); got != tt.wantPerm {
				t.Errorf("IsPermanent = %v, want %v", got, tt.wantPerm)
			}
			if got, want := threatq.IsAuth(err), tt.code == 401 || tt.code == 403; got != want {
				t.Errorf("IsAuth = %v, want %v", got, want)
			}
			for _, secret := range []string{"pw-secret", "tok-abc", "rt-xyz"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks %q: %v", secret, err)
				}
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	resp := func(code int, ra string) *http.Response {
		h := http.Header{}
		if ra != "" {
			h.Set("Retry-After", ra)
		}
		return &http.Response{StatusCode: code, Header: h}
	}
	min, max := 100*time.Millisecond, 10*time.Second
	if got := threatq.Backoff(min, max, 0, resp(429, "3")); got != 3*time.Second {
		t.Errorf("Retry-After 3 → %v", got)
	}
	if got := threatq.Backoff(min, 2*time.Second, 0, resp(429, "30")); got != 2*time.Second {
		t.Errorf("Retry-After capped → %v, want 2s", got)
	}
	date := time.Now().Add(5 * time.Second).UTC().Format(http.TimeFormat)
	if got := threatq.Backoff(min, max, 0, resp(503, date)); got < 3*time.Second || got > 5*time.Second {
		t.Errorf("Retry-After date → %v, want ~4-5s", got)
	}
	for attempt := range 10 {
		got := threatq.Backoff(min, max, attempt, resp(500, ""))
		upper := min << (attempt + 1)
		if upper > max {
			upper = max
		}
		if got < min || got > upper {
			t.Errorf("attempt %d: %v not in [%v, %v]", attempt, got, min, upper)
		}
	}
}

func TestCheckRetry(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		code int
		want bool
	}{{500, true}, {502, true}, {503, true}, {504, true}, {429, true}, {408, true}, {400, false}, {401, false}, {403, false}, {404, false}, {422, false}, {501, false}, {200, false}}
	for _, tt := range tests {
		got, _ := threatq.CheckRetry(ctx, &http.Response{StatusCode: tt.code}, nil)
		if got != tt.want {
			t.Errorf("status %d: retry = %v, want %v", tt.code, got, tt.want)
		}
	}
	if got, _ := threatq.CheckRetry(ctx, nil, io.ErrUnexpectedEOF); !got {
		t.Error("EOF not retried")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if got, err := threatq.CheckRetry(cctx, &http.Response{StatusCode: 503}, nil); got || err == nil {
		t.Errorf("cancelled ctx: retry=%v err=%v", got, err)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	s := threatqtest.NewServer(t)
	c := newClient(t, s, func(c *threatq.Config) { c.RetryWaitMax = 3 * time.Second })
	s.InjectNext("GET /api/indicator/types", threatqtest.Fault429, 1)
	if _, err := c.IndicatorTypes(context.Background()); err != nil {
		t.Fatal(err)
	}
	var times []time.Time
	for _, r := range s.Requests() {
		if r.Pattern == "/api/indicator/types" {
			times = append(times, r.Time)
		}
	}
	if len(times) != 2 {
		t.Fatalf("requests = %d, want 2", len(times))
	}
	// A lower bound only: the client must have waited the Retry-After second.
	if gap := times[1].Sub(times[0]); gap < 950*time.Millisecond {
		t.Errorf("retry came %v after the 429, want ≥ 1s", gap)
	}
}

func TestUnreachableAndDown(t *testing.T) {
	s := threatqtest.NewServer(t)
	c := newClient(t, s, func(c *threatq.Config) { c.RetryMax = 2 })
	s.SetDown(true)
	_, err := c.IndicatorTypes(context.Background())
	if err == nil || threatq.IsPermanent(err) || threatq.IsAuth(err) {
		t.Fatalf("down: want transient error, got %v", err)
	}
	if strings.Contains(err.Error(), s.Password) {
		t.Errorf("error leaks password: %v", err)
	}
	s.SetDown(false)
	if _, err := c.IndicatorTypes(context.Background()); err != nil {
		t.Fatalf("back up: %v", err)
	}
}

func TestContextCancelled(t *testing.T) {
	s := threatqtest.NewServer(t)
	c := newClient(t, s, func(c *threatq.Config) { c.RetryWaitMin, c.RetryWaitMax = time.Second, 5*time.Second })
	s.SetFaults(threatqtest.Faults{Rate503: 1, IncludeToken: true})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.IndicatorTypes(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || threatq.IsPermanent(err) {
		t.Fatalf("want deadline exceeded, got %v", err)
	}
}

func TestTLS(t *testing.T) {
	s := threatqtest.NewServer(t, threatqtest.WithTLS())
	bad := newClient(t, s)
	_, err := bad.IndicatorTypes(context.Background())
	if err == nil {
		t.Fatal("self-signed certificate accepted without InsecureSkipVerify")
	}
	if got := bad.Requests(); got != 1 {
		t.Errorf("certificate error retried: %d requests", got)
	}
	good := newClient(t, s, func(c *threatq.Config) { c.InsecureSkipVerify = true })
	if _, err := good.IndicatorTypes(context.Background()); err != nil {
		t.Fatal(err)
	}
}
