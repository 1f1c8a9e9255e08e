// Package mapping turns TheHive objects into ThreatQ objects, table by table
// as the manual's "ThreatQ Mapping" chapter says. Pure functions: no I/O, no
// clock, no logger.
package mapping

import (
	"errors"
	"fmt"
	"strings"
)

// Options are the sync settings of the config file (section "sync").
type Options struct {
	IOCOnly                        bool
	CasesAsIncidents               bool
	IncludeCasesWithoutObservables bool
	// TypeMapping maps a TheHive observable dataType to a ThreatQ indicator
	// type name; the special value "hash" picks MD5/SHA-* by length. Nil
	// means DefaultTypeMapping().
	TypeMapping map[string]string
	// EventType is the ThreatQ event type of synced cases (Event mode).
	// Default "Incident".
	EventType string
	// IndicatorStatus is the ThreatQ status of new indicators. Default "Review".
	IndicatorStatus string
	// TLPScheme is how TheHive TLP numbers are read when no label is sent:
	// "post52" (5.2+: 3 = AMBER+STRICT, 4 = RED), "pre52" (3 = RED), or
	// "auto"/"" (post52 unless a label seen says otherwise; callers decide).
	TLPScheme string
}

// TLP schemes accepted in Options.TLPScheme.
const (
	TLPSchemeAuto   = "auto"
	TLPSchemePre52  = "pre52"
	TLPSchemePost52 = "post52"
)

// Validate reports settings that would make every mapping wrong, so that
// they fail at start-up rather than per message.
func (o Options) Validate() error {
	switch o.TLPScheme {
	case "", TLPSchemeAuto, TLPSchemePre52, TLPSchemePost52:
	default:
		return fmt.Errorf("mapping: unknown TLP scheme %q (want auto, pre52 or post52)", o.TLPScheme)
	}
	if o.TypeMapping != nil && len(o.TypeMapping) == 0 {
		return errors.New("mapping: the observable type mapping is empty")
	}
	for k, v := range o.TypeMapping {
		if strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" {
			return fmt.Errorf("mapping: type mapping %q: %q has an empty side", k, v)
		}
	}
	return nil
}
