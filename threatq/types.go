// Package threatq speaks to the ThreatQ REST API: OAuth login, indicator and
// event types, and idempotent upserts of Events, Incidents and Indicators.
package threatq

import "time"

// Kind says which ThreatQ collection a case is written to.
type Kind string

const (
	KindEvent     Kind = "events"     // /api/events, keyed by title
	KindIncident  Kind = "incident"   // /api/incident (custom object), keyed by value
	KindIndicator Kind = "indicators" // /api/indicators
)

// SourceName is the source every object the agent writes carries.
const SourceName = "TheHive"

// Source is an object's source; TLP is a ThreatQ TLP name (RED, AMBER, GREEN,
// WHITE) or empty for none. ThreatQ stores TLP on the source, not as an
// attribute.
type Source struct {
	Name string `json:"name"`
	TLP  string `json:"tlp,omitempty"`
}

// Attribute is a name/value attribute. The agent treats every attribute name
// as single-valued: an update replaces the value in place.
type Attribute struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Event is a ThreatQ Event, or an Incident when Kind is KindIncident (then
// Title is written as the Incident's value and Type is not used).
type Event struct {
	Kind        Kind        `json:"kind"`
	Title       string      `json:"title"`
	Type        string      `json:"type,omitempty"`
	Description string      `json:"description,omitempty"`
	HappenedAt  time.Time   `json:"happened_at"`
	Tags        []string    `json:"tags,omitempty"`
	Source      Source      `json:"source"`
	Attributes  []Attribute `json:"attributes,omitempty"`
	// TheHiveID is the case id, also written as the "TheHive Id" attribute;
	// a lookup before create matches on it so a lost link never duplicates.
	TheHiveID string `json:"thehive_id"`
}

// Ref names one stored ThreatQ object.
type Ref struct {
	Kind Kind `json:"kind"`
	ID   int  `json:"id"`
}

// Indicator is a ThreatQ Indicator, identified by Value and Type.
type Indicator struct {
	Value       string      `json:"value"`
	Type        string      `json:"type"`
	Status      string      `json:"status,omitempty"`
	Description string      `json:"description,omitempty"`
	Tags        []string    `json:"tags,omitempty"`
	Source      Source      `json:"source"`
	Attributes  []Attribute `json:"attributes,omitempty"`
	// RemoveAttributes names attributes to delete when present, e.g.
	// "Indicator Of Compromise?" once the observable's ioc flag is false.
	RemoveAttributes []string `json:"remove_attributes,omitempty"`
	// Related is the Event or Incident the indicator is related to.
	Related *Ref `json:"related,omitempty"`
}
