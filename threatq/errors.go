package threatq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// Error is a ThreatQ answer that is not a success: a non-2xx status, or a
// 2xx whose body still carries "errors" (ThreatQ's own SDK treats that as a
// failure too). Path never includes the query string, which can hold
// refresh tokens.
type Error struct {
	StatusCode int
	Method     string
	Path       string
	Message    string // ThreatQ's message, flattened; may be empty
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s %s: status %d", e.Method, e.Path, e.StatusCode)
	if e.StatusCode >= 200 && e.StatusCode < 300 {
		s += " with errors"
	} else if t := http.StatusText(e.StatusCode); t != "" {
		s += " " + t
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// ErrUnknownType means an indicator or event type name is not defined on
// this ThreatQ instance. It is a configuration or mapping problem that a
// retry cannot fix.
var ErrUnknownType = errors.New("unknown type")

// ErrInvalid marks input the client refuses to send (bad TLP, empty value).
var ErrInvalid = errors.New("invalid input")

// authError marks a rejected login; the wrapped error says how.
type authError struct{ err error }

func (e *authError) Error() string { return "login rejected: " + e.err.Error() }
func (e *authError) Unwrap() error { return e.err }

// IsPermanent reports whether retrying err cannot succeed: ThreatQ rejected
// the request (4xx other than 401, 408, 429; or "errors" in a 2xx) or the
// input could not be mapped (unknown type, bad TLP). Network errors, 5xx,
// 429 and context errors are not permanent. Authentication failures are not
// permanent either (see IsAuth): they are fixed by correcting the
// credentials, after which every pending write should still go through.
func IsPermanent(err error) bool {
	if err == nil || IsAuth(err) {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, ErrUnknownType) || errors.Is(err, ErrInvalid) {
		return true
	}
	var e *Error
	if errors.As(err, &e) {
		switch {
		case e.StatusCode >= 200 && e.StatusCode < 300:
			return true
		case e.StatusCode == http.StatusUnauthorized,
			e.StatusCode == http.StatusRequestTimeout,
			e.StatusCode == http.StatusTooManyRequests:
			return false
		case e.StatusCode >= 400 && e.StatusCode < 500:
			return true
		}
	}
	return false
}

// IsAuth reports whether err is an authentication failure: the login was
// rejected, or a request was answered 401 even after a fresh login.
func IsAuth(err error) bool {
	var ae *authError
	if errors.As(err, &ae) {
		return true
	}
	// 403 too: a user who lost a permission (or a proxy refusing us) is a
	// credentials problem to pause for, not a reason to dead-letter every
	// message.
	var e *Error
	return errors.As(err, &e) && (e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden)
}

// maxMessage bounds how much of a ThreatQ error body reaches an error string
// (and so the dead-letter record and the logs).
const maxMessage = 500

// parseErrorMessage extracts ThreatQ's message from the error shapes seen in
// the wild (threatq.md §5):
//
//	{"data":{"errors":{"name":["…"]}}}
//	{"errors":["First", ["part 1","part 2"]]}
//	{"name":"…","message":"…"} / {"error":"…","message":"…"}
//
// ok is false when the body has none of them.
func parseErrorMessage(body []byte) (msg string, ok bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return "", false
	}
	if raw, found := top["errors"]; found {
		return truncate(flatten(raw)), true
	}
	if raw, found := top["data"]; found {
		var data map[string]json.RawMessage
		if json.Unmarshal(raw, &data) == nil {
			if errs, found := data["errors"]; found {
				return truncate(flatten(errs)), true
			}
		}
	}
	var parts []string
	for _, k := range []string{"error", "name", "message", "error_description"} {
		var s string
		if raw, found := top[k]; found && json.Unmarshal(raw, &s) == nil && s != "" {
			parts = append(parts, s)
		}
	}
	if len(parts) > 0 {
		return truncate(strings.Join(parts, ": ")), false
	}
	return "", false
}

// flatten renders any JSON errors value as "field: a; b; c".
func flatten(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	var out []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch t := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(k, t[k])
			}
		case []any:
			for _, x := range t {
				walk(prefix, x)
			}
		case nil:
		default:
			s := fmt.Sprint(t)
			if prefix != "" {
				s = prefix + ": " + s
			}
			out = append(out, s)
		}
	}
	walk("", v)
	if len(out) == 0 {
		return "errors present"
	}
	return strings.Join(out, "; ")
}

func truncate(s string) string {
	if len(s) > maxMessage {
		return s[:maxMessage] + "…"
	}
	return s
}
