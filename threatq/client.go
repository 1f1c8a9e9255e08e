package threatq

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/tqlabs/tq-mw-thehive/internal/keylock"
	"github.com/tqlabs/tq-mw-thehive/internal/retry"
	"github.com/tqlabs/tq-mw-thehive/internal/transport"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Client talks to one ThreatQ instance. It is safe for concurrent use; all
// goroutines share one token.
type Client struct {
	base     *url.URL // scheme://host[:port], no trailing slash
	cfg      Config
	http     *retryablehttp.Client // API calls, logs through cfg.Logger
	tokenRTC *retryablehttp.Client // /api/token only: no logger, it carries secrets
	log      *slog.Logger
	// unsettled holds, per Event/Incident (collection + TheHive id), when
	// a create of it went unanswered; see UpsertEvent.
	unsettled sync.Map
	// objectLocks serialise upserts of one Indicator (see UpsertIndicator).
	objectLocks keylock.Set
	now         func() time.Time
	requests    atomic.Int64

	mu  sync.Mutex // guards tok
	tok token
	// loginSem admits one login at a time; a channel so waiters honour ctx.
	loginSem chan struct{}

	typesMu        sync.Mutex
	indicatorTypes map[string]int // lower-cased name → id
	eventTypes     map[string]int
	indicatorNames map[int]string // id → name as ThreatQ spells it
	eventNames     map[int]string
}

// NewClient validates cfg and builds the HTTP machinery. It does no I/O.
func NewClient(cfg Config) (*Client, error) {
	base, err := transport.BaseURL(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("threatq: %w", err)
	}
	if cfg.ClientID == "" || cfg.Email == "" || cfg.Password == "" {
		return nil, errors.New("threatq: client id, email and password are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	retry.Normalize(&cfg.RetryMax, &cfg.RetryWaitMin, &cfg.RetryWaitMax, 4, 200*time.Millisecond, 10*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default().With("component", "threatq")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}

	c := &Client{base: base, cfg: cfg, log: cfg.Logger, now: now, loginSem: make(chan struct{}, 1)}

	var hc *http.Client
	if cfg.HTTPClient != nil {
		cp := *cfg.HTTPClient
		hc = &cp
	} else {
		tr, err := transport.New(cfg.InsecureSkipVerify, cfg.ProxyURL)
		if err != nil {
			return nil, fmt.Errorf("threatq: %w", err)
		}
		tr.MaxIdleConnsPerHost = 64 // the worker runs up to worker.concurrency requests at once
		var rt http.RoundTripper = tr
		if cfg.WrapTransport != nil {
			rt = cfg.WrapTransport(rt)
		}
		hc = &http.Client{Transport: rt, Timeout: cfg.Timeout}
	}
	inner := hc.Transport
	if inner == nil {
		inner = http.DefaultTransport
	}
	hc.Transport = countingTransport{next: inner, n: &c.requests}
	// ThreatQ answers in place; a redirect usually means a login page or a
	// wrong scheme, and following it would resend the bearer token.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	c.http = retry.NewClient(hc, cfg.Logger, cfg.RetryMax, cfg.RetryWaitMin, cfg.RetryWaitMax, checkRetry)
	// Logins log nothing: their URL and body are the credentials.
	c.tokenRTC = retry.NewClient(hc, nil, cfg.RetryMax, cfg.RetryWaitMin, cfg.RetryWaitMax, checkRetry)
	return c, nil
}

// Requests is the number of HTTP requests sent so far, retries included.
func (c *Client) Requests() int64 { return c.requests.Load() }

type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.n.Add(1)
	return t.next.RoundTrip(r)
}

type ctxKey int

const (
	unsafeKey ctxKey = 1
	markKey   ctxKey = 2 // func() that flags an unanswered write, see checkRetry
)

// unsafeWrite marks ctx so that a request is not resent after an ambiguous
// failure (connection dropped, timeout, 500/504): the server may have
// committed it, and resending a create would duplicate the object. The
// caller re-runs the whole upsert instead, whose lookup finds what was
// committed.
func unsafeWrite(ctx context.Context) context.Context {
	return context.WithValue(ctx, unsafeKey, true)
}

// checkRetry is the retry policy: 5xx, 429, 408 and transport failures are
// retried, other 4xx never; ctx cancellation stops at once.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	// A write attempt that got no answer from ThreatQ (timeout, dropped
	// connection, or a proxy's 502/504 while ThreatQ may still be working)
	// may still be applied later, even after a resend or a re-run
	// succeeded: flag its object for settleLater. ThreatQ's own 500 needs
	// no flag: what it did, if anything, is visible to the re-run's lookup.
	if mark, ok := ctx.Value(markKey).(func()); ok &&
		(err != nil || resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout) {
		mark()
	}
	unsafe, _ := ctx.Value(unsafeKey).(bool)
	if err != nil {
		if !retryableTransportError(err) {
			return false, nil
		}
		return !unsafe, nil
	}
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests, code == http.StatusServiceUnavailable, code == http.StatusRequestTimeout:
		// The request was turned away before it was processed.
		return true, nil
	case code == http.StatusBadGateway:
		// A proxy's 502 may come after ThreatQ did the work.
		return !unsafe, nil
	case code == http.StatusNotImplemented:
		return false, nil
	case code >= 500:
		return !unsafe, nil
	}
	return false, nil
}

func retryableTransportError(err error) bool {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &certErr):
		return false
	case strings.Contains(err.Error(), "unsupported protocol scheme"),
		strings.Contains(err.Error(), "stopped after"),
		strings.Contains(err.Error(), "certificate"):
		return false
	}
	return true
}

// envelope is ThreatQ's {"data": …} wrapper.
type envelope struct {
	Data   json.RawMessage `json:"data"`
	Total  int             `json:"total"`
	Limit  int             `json:"limit"`
	Offset int             `json:"offset"`
}

// do sends an authenticated API request. path starts with "/api/"; query
// may be nil. body, if not nil, is JSON-encoded once and replayed on
// retries. On a 401 it logs in again and resends once. out, if not nil,
// receives the envelope's data.
// settleKeyCtx carries the name of the object an upsert works on, so that
// its unanswered writes can be flagged (see checkRetry and settleLater).
type settleKeyCtx struct{}

func withSettleKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, settleKeyCtx{}, key)
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
	}
	for attempt := 0; ; attempt++ {
		tok, err := c.token(ctx)
		if err != nil {
			return err
		}
		resp, err := c.send(ctx, c.http, method, path, query, raw, "Bearer "+tok)
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
			drain(resp)
			c.dropToken(tok)
			continue
		}
		return c.decode(resp, method, path, out)
	}
}

func (c *Client) send(ctx context.Context, rc *retryablehttp.Client, method, path string, query url.Values, raw []byte, auth string) (*http.Response, error) {
	u := *c.base
	u.Path += path
	if query != nil {
		u.RawQuery = query.Encode()
	}
	var body any
	if raw != nil {
		body = raw
	}
	if key, ok := ctx.Value(settleKeyCtx{}).(string); ok && method != http.MethodGet && path != "/api/token" {
		ctx = context.WithValue(ctx, markKey, func() { c.markUnsettled(key) })
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := rc.Do(req)
	if err != nil {
		if resp != nil {
			drain(resp)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// *url.Error prints the full URL, query included; keep only the path.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &transportError{Method: method, Path: path, Err: err}
	}
	return resp, nil
}

// transportError is a request that got no HTTP answer.
type transportError struct {
	Method, Path string
	Err          error
}

func (e *transportError) Error() string { return e.Method + " " + e.Path + ": " + e.Err.Error() }
func (e *transportError) Unwrap() error { return e.Err }

const maxBody = 32 << 20

func (c *Client) decode(resp *http.Response, method, path string, out any) error {
	defer drain(resp)
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return &transportError{Method: method, Path: path, Err: fmt.Errorf("read response: %w", err)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg, _ := parseErrorMessage(b)
		if msg == "" && resp.StatusCode == http.StatusNotFound {
			msg = "object does not exist"
		}
		return &Error{StatusCode: resp.StatusCode, Method: method, Path: path, Message: msg}
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if msg, isErr := parseErrorMessage(b); isErr {
		return &Error{StatusCode: resp.StatusCode, Method: method, Path: path, Message: msg}
	}
	if out == nil {
		return nil
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return &transportError{Method: method, Path: path, Err: fmt.Errorf("decode response: %w", err)}
	}
	if len(env.Data) == 0 || string(env.Data) == "null" {
		return nil
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return &transportError{Method: method, Path: path, Err: fmt.Errorf("decode response data: %w", err)}
	}
	return nil
}

func drain(resp *http.Response) {
	if resp == nil || resp.Body == nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	_ = resp.Body.Close()
}

// isTransient reports whether an operation that failed with err may succeed
// when run again from the start.
func isTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	// A request that ran into the client's own timeout (http.Client.Timeout)
	// is an unanswered request like a dropped connection. The caller's own
	// context running out looks the same from here (both are timeouts), so
	// the callers check ctx themselves: retryOp before each wait, the
	// worker before it classifies an error.
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if IsPermanent(err) || IsAuth(err) {
		return false
	}
	var te *transportError
	if errors.As(err, &te) {
		return retryableTransportError(te.Err)
	}
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusRequestTimeout
	}
	return false
}

// retryOp runs op until it succeeds, fails for good, or RetryMax extra runs
// are used up. It exists for writes marked unsafeWrite: those are not
// resent by the transport, so the whole idempotent upsert is re-run.
func (c *Client) retryOp(ctx context.Context, op func() error) error {
	for attempt := 0; ; attempt++ {
		err := op()
		if err == nil || !isTransient(err) || attempt >= c.cfg.RetryMax {
			return err
		}
		wait := retry.Backoff(c.cfg.RetryWaitMin, c.cfg.RetryWaitMax, attempt, nil)
		c.log.Debug("retrying upsert", "error", err, "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
