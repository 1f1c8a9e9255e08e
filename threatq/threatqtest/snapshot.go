package threatqtest

import (
	"maps"
	"slices"
)

// Object is a copy of one stored Event, Incident or Indicator.
type Object struct {
	ID          int
	Title       string // events
	Value       string // incidents, indicators
	Type        string // type name (events, indicators)
	Status      string // indicators
	Description string
	HappenedAt  string
	Attributes  []Attribute // every value, so a duplicate is visible
	Tags        []string
	Sources     []Source
	Related     map[string][]int // "events" / "incident" / "indicators" → ids
}

// Attribute is one stored attribute value.
type Attribute struct {
	ID    int
	Name  string
	Value string
}

// Source is one stored source.
type Source struct {
	Name  string
	TLPID int
}

// Values returns every value stored under the attribute name.
func (o Object) Values(name string) []string {
	var out []string
	for _, a := range o.Attributes {
		if a.Name == name {
			out = append(out, a.Value)
		}
	}
	return out
}

// Snapshot is a consistent copy of the fake's state.
type Snapshot struct {
	Events     []Object
	Incidents  []Object
	Indicators []Object
	Counts     map[string]int // "METHOD pattern" → requests
	Total      int
}

// Snapshot copies the state out under the lock.
func (s *Server) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Snapshot{
		Events:     s.copyColl("events"),
		Incidents:  s.copyColl("incident"),
		Indicators: s.copyColl("indicators"),
		Counts:     maps.Clone(s.counts),
		Total:      s.total,
	}
}

func (s *Server) copyColl(name string) []Object {
	c := s.colls[name]
	out := []Object{}
	for _, id := range c.ordered {
		o := c.byID[id]
		cp := Object{ID: o.ID, Title: o.Title, Value: o.Value, Description: o.Description, HappenedAt: o.HappenedAt}
		switch name {
		case "events":
			cp.Type = nameOf(s.cfg.EventTypes, o.TypeID)
		case "indicators":
			cp.Type = nameOf(s.cfg.IndicatorTypes, o.TypeID)
			cp.Status = nameOf(defaultStatuses, o.StatusID)
		}
		for _, a := range o.Attributes {
			cp.Attributes = append(cp.Attributes, Attribute(a))
		}
		for _, t := range o.Tags {
			cp.Tags = append(cp.Tags, t.Name)
		}
		for _, src := range o.Sources {
			cp.Sources = append(cp.Sources, Source{Name: src.Name, TLPID: src.TLPID})
		}
		if len(o.Related) > 0 {
			cp.Related = map[string][]int{}
			for k, v := range o.Related {
				cp.Related[k] = slices.Clone(v)
			}
		}
		out = append(out, cp)
	}
	return out
}
