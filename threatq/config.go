package threatq

import (
	"log/slog"
	"net/http"
	"time"
)

// Config configures a Client.
type Config struct {
	// BaseURL is the ThreatQ host as a URL, e.g. "https://tq.example.com" or
	// "https://10.0.0.5:8443". The API lives under BaseURL + "/api".
	BaseURL  string
	ClientID string
	Email    string
	Password string

	InsecureSkipVerify bool   // --disable-ssl
	ProxyURL           string // --external-proxy: "" = no proxy
	// HTTPClient, when set, is used as it is: it overrides InsecureSkipVerify,
	// ProxyURL, Timeout and WrapTransport.
	HTTPClient *http.Client
	// WrapTransport, when set, wraps the transport of every request (the
	// agent records its request metrics with it).
	WrapTransport func(http.RoundTripper) http.RoundTripper
	Timeout       time.Duration // per request; default 30s

	// RetryMax is how many times one request is retried on 5xx, 429,
	// timeouts and connection errors before the error reaches the caller
	// (the outbox worker then retries later, without bound). Default 4.
	RetryMax     int
	RetryWaitMin time.Duration // default 200ms
	RetryWaitMax time.Duration // default 10s

	// SettleTime is how long a write that got no answer (timeout, dropped
	// connection, 5xx) may still be applied by ThreatQ: before an upsert
	// that had one returns, it waits that long after it and checks the
	// object once more, removing a twin or a second attribute value that
	// the late write left. Default twice Timeout.
	SettleTime time.Duration

	Logger *slog.Logger

	// Now is the clock used for token expiry; nil means time.Now. Tests
	// move it forward to force a refresh without waiting.
	Now func() time.Time
}
