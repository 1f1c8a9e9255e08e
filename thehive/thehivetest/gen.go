package thehivetest

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/tqlabs/tq-mw-thehive/thehive"
)

// Generated objects are pure functions of (Seed, case index, observable
// index): nothing but two timestamps per case is stored, so 200,000 cases
// with their observables cost a few MB. A case or observable is only stored
// in full once a test adds or changes it.

const (
	caseIDBase = 4096000      // case i has _id "~<caseIDBase+i>" and number i+1
	obsIDBase  = 800000000    // generated observable (i, j): "~<obsIDBase + i*perCase + j>"
	addIDBase  = 1900000000   // observables added through AddObservable
	dayMS      = 86400 * 1000 // one day in ms
)

// splitmix64 is the mixing step of SplitMix64: a cheap, well-distributed
// hash for deriving every generated field from a few integers.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func hash3(seed int64, a, b uint64) uint64 {
	return splitmix64(splitmix64(splitmix64(uint64(seed))^a) ^ b)
}

// rng is a tiny deterministic stream for one generated object.
type rng struct{ s uint64 }

func (r *rng) next() uint64   { r.s = splitmix64(r.s); return r.s }
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }
func (r *rng) pct(p int) bool { return r.intn(100) < p }
func pick[T any](r *rng, xs []T) T {
	return xs[r.intn(len(xs))]
}

var (
	titleVerbs = []string{"Phishing campaign", "Malware infection", "Suspicious login", "Data exfiltration", "Ransomware alert", "Brute force", "C2 beaconing", "Privilege escalation", "Web shell", "Credential stuffing"}
	titleHosts = []string{"finance-ws-12", "mail gateway", "VPN concentrator", "dc01", "hr-laptop-7", "build server", "CRM portal", "payroll app", "edge router", "jump host"}
	tagPool    = []string{"phishing", "malware", "apt", "ransomware", "insider", "tlp:amber", "mitre:T1566", "mitre:T1059", "customer:acme", "priority", "false-positive-candidate", "vip"}
	analysts   = []string{"alice@thehive.local", "bob@thehive.local", "carol@thehive.local", "dave@thehive.local"}
	closedAs   = []string{"TruePositive", "FalsePositive", "Indeterminate", "Other", "Duplicated"}
	tlds       = []string{"com", "net", "org", "io", "ru", "xyz", "info"}
	words      = []string{"update", "secure", "login", "portal", "cdn", "mail", "files", "account", "verify", "static", "api", "docs"}
	fileNames  = []string{"invoice.pdf.exe", "report.docm", "setup.msi", "payload.dll", "readme.lnk", "photo.scr", "archive.zip"}
	otherVals  = []string{"HKLM\\Software\\Run\\updater", "Mozilla/5.0 (compatible; evilbot/1.0)", "AS64500", "CVE-2024-3400", "\\\\fileserver\\share$"}
)

// caseFields fills the stored-nowhere part of generated case i.
func (s *Server) genCase(i int, createdAt, updatedAt int64) thehive.Case {
	r := rng{hash3(s.opts.Seed, 1, uint64(i))}
	c := thehive.Case{
		ID:          caseID(i),
		Type:        thehive.TypeCase,
		CreatedBy:   pick(&r, analysts),
		CreatedAt:   createdAt,
		UpdatedAt:   updatedAt,
		Number:      int64(i + 1),
		Title:       fmt.Sprintf("%s on %s", pick(&r, titleVerbs), pick(&r, titleHosts)),
		Severity:    1 + r.intn(4),
		StartDate:   createdAt - int64(r.intn(3600))*1000,
		TLP:         r.intn(5),
		PAP:         r.intn(4),
		Flag:        r.pct(10),
		Description: "",
	}
	c.Description = fmt.Sprintf("Generated case %d. Reported by %s; see the observables for indicators.", i+1, c.CreatedBy)
	if updatedAt != 0 {
		c.UpdatedBy = pick(&r, analysts)
	}
	switch n := r.intn(10); {
	case n < 3:
		c.Status, c.Stage = "New", "New"
	case n < 6:
		c.Status, c.Stage = "InProgress", "InProgress"
		c.Assignee = pick(&r, analysts)
	default:
		c.Status, c.Stage = pick(&r, closedAs), "Closed"
		c.Assignee = pick(&r, analysts)
		c.EndDate = max(createdAt, updatedAt) + 1000
	}
	for range r.intn(4) {
		t := pick(&r, tagPool)
		if !contains(c.Tags, t) {
			c.Tags = append(c.Tags, t)
		}
	}
	return c
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func caseID(i int) string { return "~" + strconv.Itoa(caseIDBase+i) }

// dataTypes is the generated mix: weights roughly as seen on real instances
// (addresses, domains and hashes dominate; files carry no data).
var dataTypes = []struct {
	name   string
	weight int
}{
	{"ip", 20}, {"domain", 12}, {"fqdn", 8}, {"url", 12}, {"hash", 18}, {"mail", 8},
	{"filename", 6}, {"other", 4}, {"file", 5}, {"hostname", 3}, {"user-agent", 2}, {"registry", 2},
}

var dataTypeTotal = func() int {
	n := 0
	for _, d := range dataTypes {
		n += d.weight
	}
	return n
}()

func hexOf(r *rng, n int) string {
	b := make([]byte, (n+1)/2)
	for k := range b {
		b[k] = byte(r.next())
	}
	return hex.EncodeToString(b)[:n]
}

func (r *rng) domain() string {
	return pick(r, words) + "-" + pick(r, words) + strconv.Itoa(r.intn(100)) + "." + pick(r, tlds)
}

// genObservable builds observable j of generated case i.
func (s *Server) genObservable(i, j int, caseCreatedAt int64) thehive.Observable {
	r := rng{hash3(s.opts.Seed, 2+uint64(j)<<8, uint64(i))}
	// Pairs of observables share a _createdAt (they arrive together from an
	// alert), so the observable pager meets equal timestamps too.
	created := caseCreatedAt + int64(j/2)*1000 + 500
	o := thehive.Observable{
		ID:        "~" + strconv.Itoa(obsIDBase+i*s.opts.ObservablesPerCase+j),
		Type:      thehive.TypeObservable,
		CreatedBy: pick(&r, analysts),
		CreatedAt: created,
		StartDate: created,
		TLP:       r.intn(5),
		PAP:       r.intn(4),
		IOC:       r.pct(40),
		Sighted:   r.pct(25),
	}
	if r.pct(20) {
		o.UpdatedAt = created + 1 + int64(r.intn(7*dayMS))
		o.UpdatedBy = pick(&r, analysts)
	}
	w := r.intn(dataTypeTotal)
	for _, d := range dataTypes {
		if w < d.weight {
			o.DataType = d.name
			break
		}
		w -= d.weight
	}
	switch o.DataType {
	case "ip":
		if r.pct(15) {
			o.Data = fmt.Sprintf("2001:db8:%x::%x", r.intn(65536), r.intn(65536))
		} else {
			o.Data = fmt.Sprintf("%d.%d.%d.%d", 1+r.intn(223), r.intn(256), r.intn(256), 1+r.intn(254))
		}
	case "domain":
		o.Data = r.domain()
	case "fqdn", "hostname":
		o.Data = pick(&r, words) + strconv.Itoa(r.intn(50)) + "." + r.domain()
	case "url":
		o.Data = "https://" + r.domain() + "/" + pick(&r, words) + "/" + hexOf(&r, 8) + ".php?id=" + strconv.Itoa(r.intn(10000))
	case "hash":
		o.Data = hexOf(&r, pick(&r, []int{32, 40, 64}))
	case "mail":
		o.Data = pick(&r, words) + "." + pick(&r, words) + "@" + r.domain()
	case "filename":
		o.Data = pick(&r, fileNames)
	case "user-agent", "registry", "other":
		o.Data = pick(&r, otherVals)
	case "file":
		name := strings.TrimSuffix(pick(&r, fileNames), ".exe") + ".bin"
		att, _ := json.Marshal(map[string]any{
			"_id":         "~" + strconv.Itoa(obsIDBase/2+i*s.opts.ObservablesPerCase+j),
			"name":        name,
			"hashes":      []string{hexOf(&r, 64), hexOf(&r, 40), hexOf(&r, 32)},
			"size":        1024 + r.intn(1<<20),
			"contentType": "application/octet-stream",
			"id":          hexOf(&r, 64),
		})
		o.Attachment = att
	}
	for range r.intn(3) {
		t := pick(&r, tagPool)
		if !contains(o.Tags, t) {
			o.Tags = append(o.Tags, t)
		}
	}
	if r.pct(30) {
		o.Message = "seen in " + pick(&r, titleHosts) + " logs"
	}
	return o
}

// Labels as TheHive >= 5.2 renders them (thehive.md §2.7).
var (
	tlpLabels      = []string{"CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"}
	papLabels      = []string{"CLEAR", "GREEN", "AMBER", "RED"}
	severityLabels = []string{"", "LOW", "MEDIUM", "HIGH", "CRITICAL"}
)

func label(xs []string, n int) string {
	if n >= 0 && n < len(xs) {
		return xs[n]
	}
	return ""
}
