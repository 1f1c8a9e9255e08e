package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNormaliseArgs(t *testing.T) {
	for _, tt := range []struct {
		in, want []string
	}{
		{[]string{"x", "-ll", "/l", "-c", "/c", "-v3"}, []string{"x", "-ll", "/l", "-c", "/c", "-v=3"}},
		{[]string{"x", "-v1", "run"}, []string{"x", "-v=1", "run"}},
		{[]string{"x", "-v", "3"}, []string{"x", "-v", "3"}},
		{[]string{"x", "--", "-v9"}, []string{"x", "--", "-v9"}},
		{[]string{"x", "outbox", "show", "5", "-c", "/c", "--json"}, []string{"x", "outbox", "show", "-c", "/c", "--json", "5"}},
		{[]string{"x", "-c", "/c", "outbox", "requeue", "7", "-v2"}, []string{"x", "-c", "/c", "outbox", "requeue", "-v=2", "7"}},
		{[]string{"x", "outbox", "list", "-c", "/c"}, []string{"x", "outbox", "list", "-c", "/c"}},
	} {
		got, err := normaliseArgs(tt.in)
		if err != nil {
			t.Errorf("normaliseArgs(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("normaliseArgs(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
	for _, bad := range []string{"-v4", "-v0", "-v33"} {
		if _, err := normaliseArgs([]string{"x", bad}); err == nil {
			t.Errorf("normaliseArgs(%q): no error", bad)
		}
	}
}

func TestLoggerLevelsAndFile(t *testing.T) {
	for _, tt := range []struct {
		verbosity int
		want      []string
	}{
		{1, []string{"W"}},
		{2, []string{"I", "W"}},
		{3, []string{"D", "I", "W"}},
	} {
		dir := filepath.Join(t.TempDir(), "logs")
		var console bytes.Buffer
		logger, closer, err := newLogger(tt.verbosity, dir, &console)
		if err != nil {
			t.Fatal(err)
		}
		l := logger.With("component", "test")
		l.Debug("D")
		l.Info("I")
		l.Warn("W")
		closer.Close()
		file := mustRead(t, filepath.Join(dir, logFileName))
		for name, out := range map[string][]byte{"console": console.Bytes(), "file": file} {
			var got []string
			for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
				var rec struct{ Msg, Component string }
				if err := json.Unmarshal(line, &rec); err != nil {
					t.Fatalf("-v%d %s: not JSON: %q", tt.verbosity, name, line)
				}
				if rec.Component != "test" {
					t.Errorf("-v%d %s: attrs lost: %q", tt.verbosity, name, line)
				}
				got = append(got, rec.Msg)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("-v%d %s (-want +got):\n%s", tt.verbosity, name, diff)
			}
		}
	}
	if levelFor(3) != slog.LevelDebug || levelFor(1) != slog.LevelWarn {
		t.Error("levelFor")
	}
}

// SIGHUP with a broken config keeps the agent running and logs the key at
// fault; with a fixed config it reloads.
func TestSIGHUPReload(t *testing.T) {
	text := agentConfig(t)
	confDir, path := writeConfig(t, text)
	logDir := t.TempDir()
	logFile := filepath.Join(logDir, logFileName)
	cmd := exec.Command(binPath, "-c", confDir, "-ll", logDir, "-p", strconv.Itoa(freePort(t)))
	cmd.Env = childEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	waitLog := func(what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(string(mustReadOrEmpty(logFile)), what) {
			if time.Now().After(deadline) {
				t.Fatalf("log never said %q:\n%s\nstderr:\n%s", what, mustReadOrEmpty(logFile), stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitLog(`"msg":"agent started"`)

	broken := strings.Replace(text, "reconcile_interval: 0", "reconcile_interval: soon", 1)
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	waitLog(`reconcile_interval: invalid duration \"soon\"`)

	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	waitLog(`"msg":"config reloaded"`)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
	if log := string(mustReadOrEmpty(logFile)); strings.Contains(log, "hunter2") || strings.Contains(log, "key-s3cr3t") {
		t.Errorf("log leaks a secret:\n%s", log)
	}
}

func mustReadOrEmpty(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}
