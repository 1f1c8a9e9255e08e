package agent

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/tqlabs/tq-mw-thehive/mapping"
)

// resolveTLPScheme turns tlp_scheme "auto" into the numbering the TheHive
// server uses: 5.2 renumbered TLP (3 became AMBER+STRICT, RED moved to 4).
// It only matters for payloads without tlpLabel (TheHive 5.0/5.1 send none),
// so when the version cannot be read the post-5.2 numbering stays.
func resolveTLPScheme(ctx context.Context, scheme string, status func(context.Context) (string, error)) (string, string) {
	if scheme != "" && scheme != mapping.TLPSchemeAuto {
		return scheme, ""
	}
	if status == nil {
		return mapping.TLPSchemePost52, ""
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := status(ctx)
	if err != nil || v == "" {
		return mapping.TLPSchemePost52, v
	}
	if versionBefore52(v) {
		return mapping.TLPSchemePre52, v
	}
	return mapping.TLPSchemePost52, v
}

// versionBefore52 reads "5.1.8-1", "4.1.24" and the like.
func versionBefore52(v string) bool {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return false
	}
	return major < 5 || (major == 5 && minor < 2)
}
