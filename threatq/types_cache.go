package threatq

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// IndicatorType is one entry of GET /api/indicator/types.
type IndicatorType struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

// EventType is one entry of GET /api/event/types.
type EventType struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

type namedID struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

// IndicatorTypes lists the indicator types of this instance.
func (c *Client) IndicatorTypes(ctx context.Context) ([]IndicatorType, error) {
	items, err := c.listNamed(ctx, "/api/indicator/types")
	if err != nil {
		return nil, fmt.Errorf("threatq: list indicator types: %w", err)
	}
	out := make([]IndicatorType, len(items))
	for i, it := range items {
		out[i] = IndicatorType(it)
	}
	return out, nil
}

// EventTypes lists the event types of this instance.
func (c *Client) EventTypes(ctx context.Context) ([]EventType, error) {
	items, err := c.listNamed(ctx, "/api/event/types")
	if err != nil {
		return nil, fmt.Errorf("threatq: list event types: %w", err)
	}
	out := make([]EventType, len(items))
	for i, it := range items {
		out[i] = EventType(it)
	}
	return out, nil
}

// listNamed pages through a {id,name} collection.
func (c *Client) listNamed(ctx context.Context, path string) ([]namedID, error) {
	const limit = 500
	var all []namedID
	for offset := 0; ; offset += limit {
		var page []namedID
		q := url.Values{"limit": {strconv.Itoa(limit)}, "offset": {strconv.Itoa(offset)}}
		if err := c.do(ctx, http.MethodGet, path, q, nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < limit {
			return all, nil
		}
	}
}

// typeID resolves a type name to this instance's id. Ids differ between
// instances, so the whole table is fetched once and cached; a failed fetch
// is not cached.
func (c *Client) typeID(ctx context.Context, event bool, name string) (int, string, error) {
	c.typesMu.Lock()
	defer c.typesMu.Unlock()
	m := &c.indicatorTypes
	kind := "indicator"
	if event {
		m = &c.eventTypes
		kind = "event"
	}
	if *m == nil {
		var items []namedID
		var err error
		if event {
			items, err = c.listNamed(ctx, "/api/event/types")
		} else {
			items, err = c.listNamed(ctx, "/api/indicator/types")
		}
		if err != nil {
			return 0, "", fmt.Errorf("list %s types: %w", kind, err)
		}
		tbl := make(map[string]int, len(items))
		for _, it := range items {
			tbl[strings.ToLower(it.Name)] = it.ID
		}
		*m = tbl
		if event {
			c.eventNames = namesOf(items)
		} else {
			c.indicatorNames = namesOf(items)
		}
	}
	id, ok := (*m)[strings.ToLower(name)]
	if !ok {
		return 0, "", fmt.Errorf("%w: %s type %q is not defined in ThreatQ", ErrUnknownType, kind, name)
	}
	names := c.indicatorNames
	if event {
		names = c.eventNames
	}
	return id, names[id], nil
}

func namesOf(items []namedID) map[int]string {
	m := make(map[int]string, len(items))
	for _, it := range items {
		m[it.ID] = it.Name
	}
	return m
}

// tlpID maps a TLP name to ThreatQ's tlp_id; 0 means no TLP. CLEAR and
// AMBER+STRICT (TheHive 5.2+) are accepted as WHITE and AMBER.
func tlpID(name string) (int, error) {
	switch strings.ToUpper(strings.TrimSpace(name)) {
	case "":
		return 0, nil
	case "RED":
		return 1, nil
	case "AMBER", "AMBER+STRICT":
		return 2, nil
	case "GREEN":
		return 3, nil
	case "WHITE", "CLEAR":
		return 4, nil
	}
	return 0, fmt.Errorf("%w: TLP %q", ErrInvalid, name)
}
