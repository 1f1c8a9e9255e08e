package mapping

import "strings"

// YesNo is how the manual writes booleans as attribute values.
func YesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

// TheHive 5.2 renumbered TLP: RED moved from 3 to 4 and 3 became
// AMBER+STRICT. A number alone is therefore ambiguous; scheme says which
// numbering the server uses (api/thehive.md §2.7).
var (
	tlpPre52  = []string{"WHITE", "GREEN", "AMBER", "RED"}
	tlpPost52 = []string{"CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"}
	papLabels = []string{"CLEAR", "GREEN", "AMBER", "RED"}
	// Severity starts at 1; index 0 has no label.
	severityLabels = []string{"", "LOW", "MEDIUM", "HIGH", "CRITICAL"}
)

func label(table []string, n int) string {
	if n < 0 || n >= len(table) {
		return ""
	}
	return table[n]
}

// TLPLabel names TheHive TLP number n under scheme ("pre52", or
// "post52"/"auto"/"" for TheHive 5.2+); "" when n is out of range.
func TLPLabel(n int, scheme string) string {
	if scheme == TLPSchemePre52 {
		return label(tlpPre52, n)
	}
	return label(tlpPost52, n)
}

// PAPLabel names TheHive PAP number n; "" when out of range.
func PAPLabel(n int) string { return label(papLabels, n) }

// SeverityLabel names TheHive severity n (1 LOW .. 4 CRITICAL); "" otherwise.
func SeverityLabel(n int) string { return label(severityLabels, n) }

// ThreatQTLP converts a TheHive TLP label to the four TLP names ThreatQ
// knows (RED, AMBER, GREEN, WHITE); "" for anything else, which callers
// write as no TLP rather than guess.
func ThreatQTLP(label string) string {
	l := strings.ToUpper(strings.TrimSpace(label))
	l = strings.TrimSpace(strings.TrimPrefix(l, "TLP:"))
	switch l {
	case "CLEAR", "WHITE":
		return "WHITE"
	case "AMBER+STRICT", "AMBER":
		// ThreatQ has no AMBER+STRICT; AMBER is the nearest level it has.
		return "AMBER"
	case "GREEN", "RED":
		return l
	}
	return ""
}

// orDerive prefers the label TheHive sent; TheHive 5.0/5.1 send only the
// number.
func orDerive(label string, derive func() string) string {
	if label != "" {
		return label
	}
	return derive()
}
