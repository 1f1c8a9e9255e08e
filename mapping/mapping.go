package mapping

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tqlabs/tq-mw-thehive/thehive"
	"github.com/tqlabs/tq-mw-thehive/threatq"
)

// Attribute names written to ThreatQ. They are the manual's, and ThreatQ
// matches them by name, so they are part of the contract.
const (
	AttrTheHiveID = "TheHive Id"
	AttrStatus    = "Status"
	AttrOwner     = "Owner"
	AttrCaseID    = "Case Id"
	AttrSeverity  = "Severity"
	AttrPAP       = "PAP"
	AttrFlagged   = "Flagged"
	AttrSighted   = "Sighted?"
	AttrIOC       = "Indicator Of Compromise?"
)

// Defaults of Options.EventType and Options.IndicatorStatus.
const (
	DefaultEventType       = "Incident"
	DefaultIndicatorStatus = "Review"
)

// Title is the case's Event title (or Incident value):
// "Hive Case #<_id> <title>". There is no space after '#' (SPEC §6
// Decision); the title is also how ThreatQ finds the Event again.
func Title(c *thehive.Case) string {
	if c.Title == "" {
		return "Hive Case #" + c.ID
	}
	return "Hive Case #" + c.ID + " " + c.Title
}

// Event maps a case to a ThreatQ Event, or to an Incident when
// opts.CasesAsIncidents is set. HappenedAt is the case's startDate, or its
// creation time when TheHive sent no startDate; it is zero when neither is
// known, and the caller decides what to write then (mapping has no clock).
func Event(c *thehive.Case, opts Options) threatq.Event {
	e := threatq.Event{
		Kind:        threatq.KindEvent,
		Title:       Title(c),
		Description: c.Description,
		Tags:        cloneTags(c.Tags),
		Source:      source(c.TLPLabel, c.TLP, opts.TLPScheme),
		TheHiveID:   c.ID,
	}
	if opts.CasesAsIncidents {
		// An Incident has no event type: the title is its value.
		e.Kind = threatq.KindIncident
	} else {
		e.Type = opts.EventType
		if e.Type == "" {
			e.Type = DefaultEventType
		}
	}
	switch {
	case c.StartDate != 0:
		e.HappenedAt = time.UnixMilli(c.StartDate).UTC()
	case c.CreatedAt != 0:
		e.HappenedAt = time.UnixMilli(c.CreatedAt).UTC()
	}

	e.Attributes = attrs(
		AttrTheHiveID, c.ID,
		AttrStatus, c.Status,
		AttrOwner, c.Assignee,
		AttrCaseID, strconv.FormatInt(c.Number, 10),
		AttrSeverity, orDerive(c.SeverityLabel, func() string { return SeverityLabel(c.Severity) }),
		AttrPAP, orDerive(c.PAPLabel, func() string { return PAPLabel(c.PAP) }),
		AttrFlagged, YesNo(c.Flag),
	)
	return e
}

// Skip says why an observable is not synced. Skips are expected (a file
// observable, a type ThreatQ is not told about): callers count and log
// them, they are not errors and never dead-letter a message.
type Skip struct{ Reason string }

func (s *Skip) String() string { return s.Reason }

// Indicator maps an observable to a ThreatQ Indicator, or says why it is
// skipped. Related is left nil: the caller knows the case's ThreatQ object.
func Indicator(o *thehive.Observable, opts Options) (threatq.Indicator, *Skip) {
	mapping := opts.TypeMapping
	if mapping == nil {
		mapping = DefaultTypeMapping()
	}
	typ, ok := mapping[o.DataType]
	if !ok {
		return threatq.Indicator{}, &Skip{Reason: fmt.Sprintf("unmapped type %s", strconv.Quote(capped(o.DataType)))}
	}
	if o.Data == "" {
		return threatq.Indicator{}, &Skip{Reason: "no data (file observable)"}
	}
	if opts.IOCOnly && !o.IOC {
		return threatq.Indicator{}, &Skip{Reason: "not an IOC (ioc_only)"}
	}
	if strings.EqualFold(typ, HashTypeName) {
		if typ, ok = HashType(o.Data); !ok {
			return threatq.Indicator{}, &Skip{Reason: "hash of unknown length"}
		}
	}

	ind := threatq.Indicator{
		Value:       o.Data,
		Type:        typ,
		Status:      opts.IndicatorStatus,
		Description: o.Message,
		Tags:        cloneTags(o.Tags),
		Source:      source(o.TLPLabel, o.TLP, opts.TLPScheme),
		Attributes: attrs(
			AttrPAP, orDerive(o.PAPLabel, func() string { return PAPLabel(o.PAP) }),
			AttrSighted, YesNo(o.Sighted),
		),
	}
	if ind.Status == "" {
		ind.Status = DefaultIndicatorStatus
	}
	// The IOC attribute exists only while the flag is set, so a flag turned
	// off must remove it from ThreatQ rather than leave the old "Yes".
	if o.IOC {
		ind.Attributes = append(ind.Attributes, threatq.Attribute{Name: AttrIOC, Value: "Yes"})
	} else {
		ind.RemoveAttributes = []string{AttrIOC}
	}
	return ind, nil
}

func source(label string, n int, scheme string) threatq.Source {
	return threatq.Source{
		Name: threatq.SourceName,
		TLP:  ThreatQTLP(orDerive(label, func() string { return TLPLabel(n, scheme) })),
	}
}

// attrs builds attributes from name/value pairs, in order, leaving out empty
// values: ThreatQ attributes with no value carry nothing and some TheHive
// fields (assignee) are optional.
func attrs(pairs ...string) []threatq.Attribute {
	out := make([]threatq.Attribute, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			continue
		}
		out = append(out, threatq.Attribute{Name: pairs[i], Value: pairs[i+1]})
	}
	return out
}

func cloneTags(tags []string) []string {
	if len(tags) == 0 {
		return nil
	}
	return append([]string(nil), tags...)
}

func capped(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
