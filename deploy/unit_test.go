package deploy_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestServiceUnitKeys(t *testing.T) {
	f, err := os.Open("tq-mw-thehive.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("malformed line %q", line)
		}
		got[k] = v
	}
	want := map[string]string{
		"Restart":         "always",
		"User":            "tq-thehive",
		"NoNewPrivileges": "yes",
		"ProtectSystem":   "strict",
		"ReadWritePaths":  "/etc/tq_labs /var/log/tq_labs",
		"WantedBy":        "multi-user.target",
		"ExecReload":      "/bin/kill -HUP $MAINPID",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for _, arg := range []string{"-c /etc/tq_labs", "-ll /var/log/tq_labs", " run"} {
		if !strings.Contains(got["ExecStart"], arg) {
			t.Errorf("ExecStart %q lacks %q", got["ExecStart"], arg)
		}
	}
}

// systemd-analyze verify checks the unit as systemd would, where it is
// installed (Debian ships it with systemd).
func TestServiceUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed; TestServiceUnitKeys checked the keys")
	}
	b, err := os.ReadFile("tq-mw-thehive.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify insists that ExecStart exists; point it at a binary that does.
	unit := strings.ReplaceAll(string(b), "/usr/local/bin/tq-mw-thehive", "/bin/true")
	path := filepath.Join(t.TempDir(), "tq-mw-thehive.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Logf("systemd-analyze says:\n%s", s)
	}
}
