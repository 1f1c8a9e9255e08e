// Package retry holds what the ThreatQ and TheHive clients share of their
// go-retryablehttp policy: the backoff (with Retry-After) and an slog
// adapter for its logger.
package retry

// retryablehttp logs every failed attempt at error level, even the ones it
// is about to retry. Those are expected during an outage and the caller
// reports the final failure itself (the worker, with rate limiting), so the
// adapter logs attempts at debug and "giving up" at warn: an outage does
// not flood the log with one error per retry.

import (
	"log/slog"
	"strings"
)

// Logger is an slog-backed retryablehttp.LeveledLogger.
type Logger struct{ L *slog.Logger }

// New returns an adapter, or nil (retryablehttp's "no logging") for a nil
// logger.
func New(l *slog.Logger) *Logger {
	if l == nil {
		return nil
	}
	return &Logger{L: l}
}

func (l *Logger) Error(msg string, kv ...any) {
	if strings.HasPrefix(msg, "giving up") {
		l.L.Warn(msg, redact(kv)...)
		return
	}
	l.L.Debug(msg, redact(kv)...)
}
func (l *Logger) Warn(msg string, kv ...any)  { l.L.Debug(msg, redact(kv)...) }
func (l *Logger) Info(msg string, kv ...any)  { l.L.Debug(msg, redact(kv)...) }
func (l *Logger) Debug(msg string, kv ...any) { l.L.Debug(msg, redact(kv)...) }

// redact drops the query string of logged URLs: ThreatQ's token refresh
// and lookups carry values there that do not belong in a log.
func redact(kv []any) []any {
	out := make([]any, len(kv))
	copy(out, kv)
	for i := 0; i+1 < len(out); i += 2 {
		if k, _ := out[i].(string); k == "url" {
			if s, ok := out[i+1].(string); ok {
				if j := strings.IndexByte(s, '?'); j >= 0 {
					out[i+1] = s[:j]
				}
			}
		}
	}
	return out
}
