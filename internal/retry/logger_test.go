package retry_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/tqlabs/tq-mw-thehive/internal/retry"
)

var _ retryablehttp.LeveledLogger = (*retry.Logger)(nil)

func TestLevelsAndRedaction(t *testing.T) {
	var buf bytes.Buffer
	l := retry.New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
	l.Error("request failed", "url", "https://tq/api/token?refresh_token=SECRET", "error", "EOF")
	if buf.Len() != 0 {
		t.Fatalf("a retried attempt was logged above debug: %s", buf.String())
	}
	l.Error("giving up after 5 attempt(s)", "url", "https://tq/api/x?value=SECRET")
	got := buf.String()
	if !strings.Contains(got, "level=WARN") || !strings.Contains(got, "giving up") {
		t.Fatalf("giving up not logged at warn: %q", got)
	}
	if strings.Contains(got, "SECRET") {
		t.Fatalf("query string leaked into the log: %q", got)
	}
	if retry.New(nil) != nil {
		t.Fatal("New(nil) must be nil so retryablehttp logs nothing")
	}
}
