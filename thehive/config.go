package thehive

import (
	"log/slog"
	"net/http"
	"time"
)

// Config configures a Client.
type Config struct {
	URL          string // e.g. "https://thehive.example.com:9000"
	APIKey       string
	Organisation string // sent as X-Organisation when set

	InsecureSkipVerify bool
	ProxyURL           string
	// HTTPClient, when set, is used as it is: it overrides InsecureSkipVerify,
	// ProxyURL, Timeout, MaxInFlight and WrapTransport.
	HTTPClient *http.Client
	// MaxInFlight bounds concurrent requests to TheHive (SPEC §7: 1–4).
	// Default 4.
	MaxInFlight int
	// WrapTransport, when set, wraps the transport of every request (the
	// agent records its request metrics with it).
	WrapTransport func(http.RoundTripper) http.RoundTripper
	Timeout       time.Duration // per request; default 60s (queries are heavy)

	RetryMax     int           // default 5
	RetryWaitMin time.Duration // default 500ms
	RetryWaitMax time.Duration // default 30s

	Logger *slog.Logger
}
