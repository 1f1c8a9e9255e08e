package main

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// agentConfig is a valid config whose TheHive and ThreatQ are closed
// loopback ports: the agent starts, its outbound calls fail, which does not
// matter to these tests.
func agentConfig(t *testing.T) string {
	t.Helper()
	dead := freePort(t)
	return "threatq:\n  host: https://127.0.0.1:" + strconv.Itoa(dead) + "\n  client_id: c\n  email: e@x\n  password: hunter2-secret\n" +
		"thehive:\n  url: https://127.0.0.1:" + strconv.Itoa(dead) + "\n  api_key: key-s3cr3t\nreconcile_interval: 0\n"
}

// assertRunStarted checks that the manual's invocation got past flag
// parsing and config loading into the agent: -v3 took effect (the debug
// line), -ll wrote the log file, -c found the config. It then stops the
// agent with SIGTERM and expects exit 0.
func assertRunStarted(t *testing.T, cmd *exec.Cmd, logFile string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(logFile)
		if strings.Contains(string(b), `"msg":"config loaded"`) && strings.Contains(string(b), `"level":"DEBUG"`) &&
			strings.Contains(string(b), `"msg":"starting agent"`) {
			break
		}
		if cmd.ProcessState != nil || time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("agent did not start; log file:\n%s\nstderr:\n%s", b, cmd.Stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v; stderr:\n%s", err, cmd.Stderr)
	}
}

func TestManualInvocation(t *testing.T) {
	confDir, _ := writeConfig(t, agentConfig(t))
	logDir := filepath.Join(t.TempDir(), "logs", "nested")
	for _, v := range []string{"-v3", "-v=3", "--verbosity=3"} {
		t.Run(v, func(t *testing.T) {
			cmd := exec.Command(binPath, "-ll", logDir, "-c", confDir, v, "-p", strconv.Itoa(freePort(t)))
			cmd.Env = childEnv()
			var stderr strings.Builder
			cmd.Stderr = &stderr
			os.Remove(filepath.Join(logDir, logFileName))
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			assertRunStarted(t, cmd, filepath.Join(logDir, logFileName))
			if strings.Contains(stderr.String(), "hunter2") || strings.Contains(stderr.String(), "key-s3cr3t") {
				t.Errorf("stderr leaks a secret:\n%s", stderr.String())
			}
			b, _ := os.ReadFile(filepath.Join(logDir, logFileName))
			if strings.Contains(string(b), "hunter2") || strings.Contains(string(b), "key-s3cr3t") {
				t.Errorf("log file leaks a secret:\n%s", b)
			}
		})
	}
}

// "-v 3" and the flags after "run" reach the same code.
func TestRunSubcommandFlags(t *testing.T) {
	confDir, _ := writeConfig(t, agentConfig(t))
	logDir := t.TempDir()
	cmd := exec.Command(binPath, "run", "-c", confDir, "-v", "3", "--ll", logDir, "--port", strconv.Itoa(freePort(t)), "-ds")
	cmd.Env = childEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	assertRunStarted(t, cmd, filepath.Join(logDir, logFileName))
	b, _ := os.ReadFile(filepath.Join(logDir, logFileName))
	if !strings.Contains(string(b), "--disable-ssl") {
		t.Errorf("no --disable-ssl warning in the log:\n%s", b)
	}
}

func TestUsageErrors(t *testing.T) {
	confDir, _ := writeConfig(t, agentConfig(t))
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"v4", []string{"-v4"}, `invalid verbosity "-v4"`},
		{"v0", []string{"-v0"}, "invalid verbosity"},
		{"v=9", []string{"-v=9", "-c", confDir}, "--verbosity: want 1, 2 or 3"},
		{"v 7", []string{"-v", "7", "-c", confDir}, "--verbosity: want 1, 2 or 3"},
		{"v word", []string{"-v", "debug"}, "invalid value"},
		{"unknown flag", []string{"--bogus"}, "flag provided but not defined"},
		{"unknown command", []string{"-c", confDir, "frobnicate"}, `unknown command "frobnicate"`},
		{"bad port", []string{"-c", confDir, "-p", "70000"}, "--port"},
		{"bad listener ip", []string{"-c", confDir, "-li", "localhost"}, "--listener-ip"},
		{"outbox show no id", []string{"outbox", "show", "-c", confDir}, "want exactly one message ID"},
		{"outbox list bad state", []string{"outbox", "list", "--state", "stuck", "-c", confDir}, "--state"},
		{"outbox purge no duration", []string{"outbox", "purge", "-c", confDir}, "done-before"},
		{"outbox requeue both", []string{"outbox", "requeue", "--all-dead", "3", "-c", confDir}, "not both"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := runBin(t, nil, tt.args...)
			if res.code != exitUsage {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", res.code, exitUsage, res.stderr)
			}
			if !strings.Contains(res.stderr, tt.want) {
				t.Errorf("stderr %q does not contain %q", res.stderr, tt.want)
			}
			if !strings.HasPrefix(res.stderr, appName+": ") || strings.Count(strings.TrimSpace(res.stderr), "\n") != 0 {
				t.Errorf("want one line %q, got:\n%s", appName+": <error>", res.stderr)
			}
		})
	}
}

func TestNoConfigOnNonTTY(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"-c", dir}, {"run", "-c", dir}} {
		res := runBin(t, nil, args...)
		if res.code != exitUsage {
			t.Errorf("%v: exit code = %d, want 2; stderr:\n%s", args, res.code, res.stderr)
		}
		for _, want := range []string{"no config file", "init -c " + dir, "init --non-interactive"} {
			if !strings.Contains(res.stderr, want) {
				t.Errorf("%v: stderr %q does not contain %q", args, res.stderr, want)
			}
		}
	}
}

func TestInvalidConfigExit2(t *testing.T) {
	confDir, path := writeConfig(t, strings.Replace(agentConfig(t), "client_id: c", "client_id: \"\"", 1))
	res := runBin(t, nil, "-c", confDir)
	if res.code != exitUsage || !strings.Contains(res.stderr, "threatq.client_id is required") {
		t.Errorf("exit %d, stderr %q; want 2 naming threatq.client_id", res.code, res.stderr)
	}
	if strings.Contains(res.stderr, "hunter2") {
		t.Errorf("stderr leaks the password: %q", res.stderr)
	}
	if err := os.WriteFile(path, []byte(agentConfig(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	res = runBin(t, nil, "-c", confDir)
	if res.code != exitUsage || !strings.Contains(res.stderr, "chmod 600") {
		t.Errorf("world-readable config: exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestInitNonInteractive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "conf")
	args := []string{"init", "--non-interactive", "-c", dir,
		"--threatq-host", "tq.example.com", "--threatq-client-id", "cid", "--threatq-email", "e@example.com",
		"--thehive-url", "https://hive.example.com", "--ioc-only"}
	env := []string{"TQ_THEHIVE_THREATQ_PASSWORD=hunter2-secret", "TQ_THEHIVE_THEHIVE_API_KEY=key-s3cr3t"}

	res := runBin(t, env, args...)
	if res.code != 0 {
		t.Fatalf("init: exit %d, stderr:\n%s", res.code, res.stderr)
	}
	path := configPath(dir)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode = %o, want 600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
		t.Errorf("config dir mode = %o, want 700", di.Mode().Perm())
	}
	cfg, err := loadConfig(path, noEnv)
	if err != nil {
		t.Fatalf("written config does not load: %v", err)
	}
	if cfg.ThreatQ.Password != "hunter2-secret" || cfg.TheHive.APIKey != "key-s3cr3t" || !cfg.Sync.IOCOnly || cfg.ThreatQ.BaseURL != "https://tq.example.com" {
		t.Errorf("written config: %+v", cfg)
	}
	if strings.Contains(res.stderr+res.stdout, "hunter2") {
		t.Errorf("init output leaks the password")
	}

	before := mustRead(t, path)
	res = runBin(t, env, args...)
	if res.code != exitUsage || !strings.Contains(res.stderr, "--force") {
		t.Errorf("second init: exit %d, stderr %q; want 2 mentioning --force", res.code, res.stderr)
	}
	if string(mustRead(t, path)) != string(before) {
		t.Error("second init changed the file")
	}
	res = runBin(t, env, append(args, "--force", "--cases-as-incidents")...)
	if res.code != 0 {
		t.Errorf("init --force: exit %d, stderr %q", res.code, res.stderr)
	}
	if cfg, err := loadConfig(path, noEnv); err != nil || !cfg.Sync.CasesAsIncidents {
		t.Errorf("after --force: %v, %+v", err, cfg)
	}
}

func TestInitNonInteractiveMissing(t *testing.T) {
	dir := t.TempDir()
	res := runBin(t, nil, "init", "--non-interactive", "-c", dir, "--threatq-host", "tq")
	if res.code != exitUsage {
		t.Errorf("exit %d, want 2", res.code)
	}
	for _, flag := range []string{"--threatq-client-id", "--threatq-email", "--threatq-password", "--thehive-url", "--thehive-api-key"} {
		if !strings.Contains(res.stderr, flag) {
			t.Errorf("stderr %q does not name %s", res.stderr, flag)
		}
	}
	if _, err := os.Stat(configPath(dir)); err == nil {
		t.Error("a config file was written")
	}
	// Without a terminal and without --non-interactive, init cannot prompt.
	res = runBin(t, nil, "init", "-c", dir)
	if res.code != exitUsage || !strings.Contains(res.stderr, "--non-interactive") {
		t.Errorf("init on a non-TTY: exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestHelpListsFlags(t *testing.T) {
	secretEnv := []string{"TQ_THEHIVE_THREATQ_PASSWORD=hunter2-secret", "TQ_THEHIVE_THEHIVE_API_KEY=key-s3cr3t"}
	for _, tt := range []struct {
		args  []string
		flags []string
	}{
		{[]string{"--help"}, []string{"--verbosity", "-v", "--config", "-c", "--loglocation", " -ll DIR", "--external-proxy", " -ep", "--port", "-p", "--disable-ssl", " -ds", "--listener-ip", " -li IP",
			"run", "init", "backfill", "outbox", "demo", "version", "TQ_THEHIVE_VERBOSITY", "TQ_THEHIVE_THREATQ_PASSWORD"}},
		{[]string{"run", "--help"}, []string{"--verbosity", "--config", "--loglocation", "--external-proxy", "--port", "--disable-ssl", "--listener-ip", "(default: 5000)", `(default: "127.0.0.1")`}},
		{[]string{"init", "--help"}, []string{"--non-interactive", "--force", "--threatq-host", "--threatq-client-id", "--threatq-email", "--threatq-password", "--threatq-password-file", "--thehive-url", "--thehive-api-key", "--thehive-organisation", "--ioc-only", "--cases-as-incidents", "--include-cases-without-observables", "TQ_THEHIVE_THREATQ_HOST"}},
		{[]string{"outbox", "--help"}, []string{"stats", "list", "show", "requeue", "purge", "--config"}},
		{[]string{"outbox", "stats", "--help"}, []string{"--json", "--config"}},
		{[]string{"outbox", "list", "--help"}, []string{"--state", "--limit", "--after", "--json", "(default: 50)"}},
		{[]string{"outbox", "show", "--help"}, []string{"--json", "ID"}},
		{[]string{"outbox", "requeue", "--help"}, []string{"--all-dead", "--json"}},
		{[]string{"outbox", "purge", "--help"}, []string{"--done-before", "--json"}},
		{[]string{"backfill", "--help"}, []string{"--config"}},
		{[]string{"demo", "--help"}, []string{"demo"}},
		{[]string{"version", "--help"}, []string{"version"}},
	} {
		res := runBin(t, secretEnv, tt.args...)
		if res.code != 0 {
			t.Errorf("%v: exit %d, stderr %q", tt.args, res.code, res.stderr)
		}
		for _, f := range tt.flags {
			if !strings.Contains(res.stdout, f) {
				t.Errorf("%v does not list %q:\n%s", tt.args, f, res.stdout)
			}
		}
		if strings.Contains(res.stdout, "hunter2") || strings.Contains(res.stdout, "key-s3cr3t") {
			t.Errorf("%v shows a secret from the environment:\n%s", tt.args, res.stdout)
		}
		// Every flag line carries an explanation, not just a name.
		sc := bufio.NewScanner(strings.NewReader(res.stdout))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if strings.HasPrefix(line, "--") && !strings.Contains(line, "  ") {
				t.Errorf("%v: flag without usage: %q", tt.args, line)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	res := runBin(t, nil, "version")
	if res.code != 0 || !strings.HasPrefix(res.stdout, appName+" ") {
		t.Errorf("version: exit %d, stdout %q", res.code, res.stdout)
	}
}
