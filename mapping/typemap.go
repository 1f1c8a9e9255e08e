package mapping

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// HashTypeName is the ThreatQ type of the mapping that means "pick the hash
// type from the value's length".
const HashTypeName = "hash"

// DefaultTypeMapping returns the manual's default observable type mapping
// (a fresh map: callers may modify it).
func DefaultTypeMapping() map[string]string {
	return map[string]string{
		"autonomous-system": "ASN",
		"domain":            "FQDN",
		"fqdn":              "FQDN",
		"ip":                "IP Address",
		"filename":          "Filename",
		"mail":              "Email Address",
		"mail-subject":      "Email Subject",
		"registry":          "Registry Key",
		"url":               "URL",
		"uri_path":          "URL Path",
		"user-agent":        "User-agent",
		"hash":              HashTypeName,
	}
}

// ParseTypeMapping parses the config's type mapping text: one
// "<observable type>: <ThreatQ type>" per line, blank lines and lines
// starting with # ignored. The first ':' splits a line, so ThreatQ type
// names may contain one. Errors name the line, as the text is typed by hand
// in a config file and a bad mapping is a start-up error.
func ParseTypeMapping(text string) (map[string]string, error) {
	text = strings.TrimPrefix(text, "\ufeff")
	m := make(map[string]string)
	firstLine := make(map[string]int)
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: missing ':' in %s", n, quoteLine(line))
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "" {
			return nil, fmt.Errorf("line %d: empty observable type in %s", n, quoteLine(line))
		}
		if v == "" {
			return nil, fmt.Errorf("line %d: empty ThreatQ type in %s", n, quoteLine(line))
		}
		if prev, dup := firstLine[k]; dup {
			return nil, fmt.Errorf("line %d: observable type %s is already mapped on line %d", n, quoteLine(k), prev)
		}
		firstLine[k] = n
		m[k] = v
	}
	if len(m) == 0 {
		// A nil or empty mapping would silently mean "skip everything"
		// (or, as Options.TypeMapping, "use the default").
		return nil, errors.New("the type mapping has no entries")
	}
	return m, nil
}

func quoteLine(s string) string {
	const max = 80
	if len(s) > max {
		n := max
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "…"
	}
	return strconv.Quote(s)
}

// hashTypes are the ThreatQ hash types by length in hex digits.
var hashTypes = map[int]string{
	32:  "MD5",
	40:  "SHA-1",
	64:  "SHA-256",
	96:  "SHA-384",
	128: "SHA-512",
}

// HashType names the ThreatQ hash type of a hex digest by its length. It
// reports false for non-hex values and other lengths: guessing would file
// the indicator under the wrong type.
func HashType(value string) (string, bool) {
	t, ok := hashTypes[len(value)]
	if !ok {
		return "", false
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return "", false
		}
	}
	return t, true
}
