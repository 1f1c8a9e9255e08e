package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"testing"
)

// The demo runs end to end (short: few cases) and what it prints matches
// the fakes' own state.
func TestDemoEndToEnd(t *testing.T) {
	cases, webhooks := 120, 20
	if testing.Short() {
		cases, webhooks = 30, 5
	}
	var out bytes.Buffer
	res, err := runDemo(t.Context(), &out, demoOptions{Cases: cases, Webhooks: webhooks, FaultRate: 0.1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	text := out.String()
	if !res.OK {
		t.Fatalf("demo reported a mismatch:\n%s", text)
	}
	snap := res.ThreatQ.Snapshot()
	for _, row := range []struct {
		label string
		want  int
	}{
		{"events", len(snap.Events)},
		{"indicators", len(snap.Indicators)},
		{"dead letters", 0},
		{"duplicate objects or attribute values", 0},
	} {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(row.label) + `\s+(\d+)`)
		m := re.FindStringSubmatch(text)
		if m == nil {
			t.Errorf("no %q row in the output:\n%s", row.label, text)
			continue
		}
		if got, _ := strconv.Atoi(m[1]); got != row.want {
			t.Errorf("%s printed %d, the fake ThreatQ holds %d", row.label, got, row.want)
		}
	}
	byType := map[string]int{}
	for _, ind := range snap.Indicators {
		byType[ind.Type]++
	}
	for typ, n := range byType {
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(typ) + `\s+` + strconv.Itoa(n) + `\b`).MatchString(text) {
			t.Errorf("indicator type %s: want a row with %d", typ, n)
		}
	}
	faults := 0
	for _, r := range res.ThreatQ.Requests() {
		if r.Fault != "" {
			faults++
		}
	}
	if faults == 0 {
		t.Error("the demo injected no ThreatQ faults")
	}
	if !bytes.Contains(out.Bytes(), []byte(fmt.Sprintf("injected ThreatQ faults (all retried)  %d", faults))) &&
		!regexp.MustCompile(`injected ThreatQ faults \(all retried\)\s+`+strconv.Itoa(faults)+`\b`).MatchString(text) {
		t.Errorf("printed fault count does not match the fake's %d:\n%s", faults, text)
	}
	if !bytes.Contains(out.Bytes(), []byte("Hive Case #~43872472 Hamsters Test")) {
		t.Error("the manual's sample case is not shown")
	}
}
