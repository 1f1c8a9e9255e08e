package retry

import (
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
