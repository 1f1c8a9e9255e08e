package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tqlabs/tq-mw-thehive/agent"
)

// testAgent runs an Agent for the duration of a test.
type testAgent struct {
	*agent.Agent
	URL  string
	stop func()
}

func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// baseConfig is an agent on a random loopback port whose ThreatQ does not
// exist: intake must work regardless.
func baseConfig(t testing.TB) agent.Config {
	dir := t.TempDir()
	return agent.Config{
		DBPath:     filepath.Join(dir, "outbox.db"),
		ListenAddr: "127.0.0.1:0",
		Logger:     quietLogger(),
	}
}

func startAgent(t testing.TB, cfg agent.Config) *testAgent {
	t.Helper()
	if cfg.ThreatQ.BaseURL == "" {
		cfg.ThreatQ.BaseURL = "https://127.0.0.1:1"
		cfg.ThreatQ.ClientID, cfg.ThreatQ.Email, cfg.ThreatQ.Password = "id", "agent@example.com", "pw"
	}
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case <-a.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("agent.Run: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("agent did not become ready")
	}
	ta := &testAgent{Agent: a, URL: "http://" + a.Addr().String()}
	stopped := false
	ta.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent.Run returned %v", err)
		}
	}
	t.Cleanup(ta.stop)
	return ta
}

func (ta *testAgent) post(t testing.TB, path string, body []byte, hdr map[string]string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ta.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("POST %s: response is not JSON: %q", path, b)
		}
	}
	return resp.StatusCode, out
}

func (ta *testAgent) pending(t testing.TB) int {
	t.Helper()
	st, err := ta.Outbox().Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st.Pending + st.Done + st.Dead
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFor polls cond until it holds or the deadline passes; used for
// asynchronous delivery, never for timing assertions.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
