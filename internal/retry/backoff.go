package retry

import (
	"log/slog"

	"context"
	"github.com/hashicorp/go-retryablehttp"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Backoff is the wait before retry number attempt+1: what Retry-After asks
// on a 429/503 (clamped to [lo, hi]: a proxy asking for an hour must not
// stall a run silently), otherwise exponential from lo with full jitter,
// capped at hi. It has the shape of retryablehttp.Backoff.
func Backoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if d, ok := RetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return min(max(d, lo), hi)
		}
	}
	upper := hi
	if attempt < 30 {
		if u := lo << uint(attempt+1); u > 0 && u < hi {
			upper = u
		}
	}
	if upper <= lo {
		return lo
	}
	return lo + rand.N(upper-lo+1)
}

// RetryAfter parses a Retry-After value: delay seconds or an HTTP date.
func RetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now)), true
	}
	return 0, false
}

// Normalize fills unset retry settings with the given defaults: a zero
// count becomes def, a negative one means no retries; non-positive waits
// take their defaults, and the upper wait is never below the lower.
func Normalize(count *int, lo, hi *time.Duration, def int, defLo, defHi time.Duration) {
	switch {
	case *count == 0:
		*count = def
	case *count < 0:
		*count = 0
	}
	if *lo <= 0 {
		*lo = defLo
	}
	if *hi <= 0 {
		*hi = defHi
	}
	*hi = max(*hi, *lo)
}

// Sleep waits d, or until ctx ends; it reports whether d elapsed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// NewClient is the go-retryablehttp client both API clients use: their own
// CheckRetry, this package's Backoff, the final response passed through to
// the caller's error handling (so it sees ThreatQ's or TheHive's status and
// message), and logging through logger (nil: none).
func NewClient(hc *http.Client, logger *slog.Logger, count int, lo, hi time.Duration, check retryablehttp.CheckRetry) *retryablehttp.Client {
	rc := &retryablehttp.Client{
		HTTPClient:   hc,
		RetryWaitMin: lo,
		RetryWaitMax: hi,
		RetryMax:     count,
		CheckRetry:   check,
		Backoff:      Backoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	if logger != nil {
		rc.Logger = New(logger)
	}
	return rc
}
