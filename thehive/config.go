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
	HTTPClient         *http.Client  // optional; overrides InsecureSkipVerify/ProxyURL
	Timeout            time.Duration // per request; default 60s (queries are heavy)

	RetryMax     int           // default 5
	RetryWaitMin time.Duration // default 500ms
	RetryWaitMax time.Duration // default 30s

	Logger *slog.Logger
}
