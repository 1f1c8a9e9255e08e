package thehive

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/tqlabs/tq-mw-thehive/internal/retry"
	"github.com/tqlabs/tq-mw-thehive/internal/transport"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Client talks to one TheHive 5 instance (one organisation) through its v1
// API. It is safe for concurrent use.
type Client struct {
	base *url.URL
	cfg  Config
	http *retryablehttp.Client
	log  *slog.Logger
}

// NewClient validates cfg and builds the HTTP machinery. It does no I/O.
func NewClient(cfg Config) (*Client, error) {
	base, err := transport.BaseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("thehive: %w", err)
	}
	if cfg.APIKey == "" {
		return nil, errors.New("thehive: API key is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 4
	}
	retry.Normalize(&cfg.RetryMax, &cfg.RetryWaitMin, &cfg.RetryWaitMax, 5, 500*time.Millisecond, 30*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default().With("component", "thehive")
	}

	var hc *http.Client
	if cfg.HTTPClient != nil {
		cp := *cfg.HTTPClient
		hc = &cp
	} else {
		tr, err := transport.New(cfg.InsecureSkipVerify, cfg.ProxyURL)
		if err != nil {
			return nil, fmt.Errorf("thehive: %w", err)
		}
		// TheHive's queries are heavy (each holds a database transaction):
		// however many cases the caller works on in parallel, at most this
		// many requests are in flight; the rest wait for a connection.
		tr.MaxConnsPerHost = cfg.MaxInFlight
		hc = &http.Client{Transport: wrap(cfg.WrapTransport, tr), Timeout: cfg.Timeout}
	}
	// A redirect usually means a login page or a wrong scheme; following it
	// would resend the API key to wherever it points.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	c := &Client{base: base, cfg: cfg, log: cfg.Logger}
	c.http = retry.NewClient(hc, cfg.Logger, cfg.RetryMax, cfg.RetryWaitMin, cfg.RetryWaitMax, checkRetry)
	return c, nil
}

func wrap(f func(http.RoundTripper) http.RoundTripper, rt http.RoundTripper) http.RoundTripper {
	if f == nil {
		return rt
	}
	return f(rt)
}

// Error is a non-2xx answer from TheHive. Type and Message come from its
// {"type","message"} error body; when the body is not that (a reverse proxy
// answered), Message holds the start of the raw text.
type Error struct {
	StatusCode int
	Type       string
	Message    string
}

func (e *Error) Error() string {
	s := "status " + strconv.Itoa(e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" {
		s += " " + t
	}
	if e.Type != "" {
		s += ": " + e.Type
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

func statusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// IsNotFound reports whether TheHive answered 404 (unknown case or id).
func IsNotFound(err error) bool { return statusOf(err) == http.StatusNotFound }

// IsAuth reports whether the API key was rejected (401) or lacks the
// permission or organisation asked for (403). Retrying cannot help; the
// configuration must change.
func IsAuth(err error) bool {
	s := statusOf(err)
	return s == http.StatusUnauthorized || s == http.StatusForbidden
}

// IsPermanent reports whether retrying err cannot succeed: TheHive rejected
// the request with a 4xx other than 408 and 429 (bad query, auth, not
// found). 5xx, 429, network and decode failures are transient.
func IsPermanent(err error) bool {
	s := statusOf(err)
	return s >= 400 && s < 500 && s != http.StatusRequestTimeout && s != http.StatusTooManyRequests
}

// checkRetry retries 5xx (except 501), 429, 408 and transport failures;
// never other 4xx. Every call the client makes is a read (queries included),
// so resending after an ambiguous failure is safe.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		return retryableTransportError(err), nil
	}
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests, code == http.StatusRequestTimeout:
		return true, nil
	case code == http.StatusNotImplemented:
		return false, nil
	case code >= 500:
		return true, nil
	}
	return false, nil
}

func retryableTransportError(err error) bool {
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return false
	}
	msg := err.Error()
	for _, s := range []string{"unsupported protocol scheme", "stopped after", "certificate", "invalid header"} {
		if strings.Contains(msg, s) {
			return false
		}
	}
	return true
}

// maxBody bounds what one answer may hold; a page of 500 cases is a few MB.
const maxBody = 256 << 20

// do sends one request and decodes a 2xx JSON body into out (when not nil).
// go-retryablehttp retries on status and transport errors but never sees the
// body: TheHive streams query results, and an error part-way cuts the array
// short after a 200 (thehive.md §2.4). So a body that cannot be read or is
// not complete JSON is retried here, with the same backoff and budget.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body []byte, out any) (http.Header, error) {
	u := *c.base
	u.Path += path
	if query != nil {
		u.RawQuery = query.Encode()
	}
	for attempt := 0; ; attempt++ {
		var rb any
		if body != nil {
			rb = body
		}
		req, err := retryablehttp.NewRequestWithContext(ctx, method, u.String(), rb)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if c.cfg.Organisation != "" {
			req.Header.Set("X-Organisation", c.cfg.Organisation)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		raw, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return resp.Header, errorFrom(resp.StatusCode, raw)
		}
		derr := rerr
		if derr == nil && out != nil {
			derr = json.Unmarshal(raw, out)
			var typeErr *json.UnmarshalTypeError
			if errors.As(derr, &typeErr) {
				// Complete JSON of the wrong shape: resending gets the same.
				return resp.Header, fmt.Errorf("decode response: %w", derr)
			}
		}
		if derr == nil {
			return resp.Header, nil
		}
		if attempt >= c.cfg.RetryMax {
			return resp.Header, fmt.Errorf("read response (after %d attempts): %w", attempt+1, derr)
		}
		wait := retry.Backoff(c.cfg.RetryWaitMin, c.cfg.RetryWaitMax, attempt, nil)
		c.log.Warn("incomplete response from TheHive, retrying", "path", path, "attempt", attempt+1, "wait", wait, "error", derr)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func errorFrom(status int, raw []byte) *Error {
	e := &Error{StatusCode: status}
	var body struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &body) == nil && (body.Type != "" || body.Message != "") {
		e.Type, e.Message = body.Type, body.Message
		return e
	}
	msg := strings.TrimSpace(string(bytes.ToValidUTF8(raw, nil)))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	e.Message = msg
	return e
}

// query POSTs ops to /api/v1/query and decodes the answer into v.
func (c *Client) query(ctx context.Context, name string, ops []Op, v any) (http.Header, error) {
	if ops == nil {
		ops = []Op{}
	}
	body, err := json.Marshal(struct {
		Query []Op `json:"query"`
	}{ops})
	if err != nil {
		return nil, fmt.Errorf("encode query: %w", err)
	}
	var q url.Values
	if name != "" {
		q = url.Values{"name": {name}}
	}
	return c.do(ctx, http.MethodPost, "/api/v1/query", q, body, v)
}

// Query runs a v1 query (POST /api/v1/query?name=<name>) and decodes the
// answer into v: a JSON array for list queries, a bare number after
// Count(). name only labels the request in TheHive's logs.
func (c *Client) Query(ctx context.Context, name string, ops []Op, v any) error {
	if _, err := c.query(ctx, name, ops, v); err != nil {
		return fmt.Errorf("thehive: query %s: %w", name, err)
	}
	return nil
}

// Case fetches one case by id ("~123") or number ("34").
func (c *Client) Case(ctx context.Context, idOrNumber string) (*Case, error) {
	if idOrNumber == "" {
		return nil, errors.New("thehive: get case: empty id")
	}
	var out Case
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/case/"+url.PathEscape(idOrNumber), nil, nil, &out); err != nil {
		return nil, fmt.Errorf("thehive: get case %q: %w", idOrNumber, err)
	}
	return &out, nil
}

// CountCases counts the visible cases matching filter (all when nil) with
// an exact count. Use it for progress display, never as a paging bound.
func (c *Client) CountCases(ctx context.Context, filter map[string]any) (int64, error) {
	ops := []Op{ListCase()}
	if len(filter) > 0 {
		ops = append(ops, Filter(filter))
	}
	ops = append(ops, Count())
	var n int64
	if _, err := c.query(ctx, "agent-cases.count", ops, &n); err != nil {
		return 0, fmt.Errorf("thehive: count cases: %w", err)
	}
	return n, nil
}

// Status returns TheHive's version from GET /api/v1/status, used to pick the
// TLP numbering (it changed in 5.2). An empty version with a nil error means
// the server did not say (no such endpoint, or no version in it); callers
// then fall back to the labels they see.
func (c *Client) Status(ctx context.Context) (string, error) {
	var out struct {
		Versions map[string]string `json:"versions"`
	}
	_, err := c.do(ctx, http.MethodGet, "/api/v1/status", nil, nil, &out)
	switch {
	case IsNotFound(err):
		return "", nil
	case err != nil:
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return "", nil
		}
		return "", fmt.Errorf("thehive: status: %w", err)
	}
	return out.Versions["TheHive"], nil
}
