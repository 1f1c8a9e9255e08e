package threatq

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/tqlabs/tq-mw-thehive/internal/retry"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DateFormat is how ThreatQ writes and expects date-times (UTC).
const DateFormat = "2006-01-02 15:04:05"

// TheHiveIDAttribute is the attribute that ties an Event or Incident to its
// TheHive case; a lookup only accepts a hit that carries the right one.
const TheHiveIDAttribute = "TheHive Id"

// defaultEventType is used when Event.Type is empty; "Incident" is a
// default event type on every instance (threatq.md §2).
const defaultEventType = "Incident"

// defaultStatus is the indicator status for new indicators without one.
const defaultStatus = "Review"

// flexString decodes a JSON string, number or null into a string: attribute
// values are not always strings.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = ""
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexString(s)
		return nil
	}
	*f = flexString(strings.Trim(string(b), `"`))
	return nil
}

type wireAttr struct {
	ID    int        `json:"id"`
	Name  string     `json:"name"`
	Value flexString `json:"value"`
}

type wireSource struct {
	Name  string `json:"name"`
	TLPID int    `json:"tlp_id,omitempty"`
}

type wireTag struct {
	Name string `json:"name"`
}

type wireObject struct {
	ID          int          `json:"id"`
	Title       flexString   `json:"title"`
	Value       flexString   `json:"value"`
	TypeID      int          `json:"type_id"`
	Description flexString   `json:"description"`
	HappenedAt  flexString   `json:"happened_at"`
	Attributes  []wireAttr   `json:"attributes"`
	Sources     []wireSource `json:"sources"`
	Tags        []wireTag    `json:"tags"`
}

type relRef struct {
	ID int `json:"id"`
}

const withAll = "attributes,sources,tags"

// UpsertEvent makes sure the Event (or Incident, by ev.Kind) exists with
// ev's title, description, attributes, tags and source. knownID is the id
// stored for it last time, or 0; a stale knownID (404) falls back to the
// lookup. A create is only sent when the lookup by title and TheHive Id
// finds nothing, so a lost link or a replay never duplicates the object.
func (c *Client) UpsertEvent(ctx context.Context, ev Event, knownID int) (id int, created bool, err error) {
	id, created, err = c.upsertEvent(ctx, ev, knownID)
	if err != nil {
		return 0, false, fmt.Errorf("threatq: upsert %s %q: %w", kindName(ev.Kind), ev.Title, err)
	}
	return id, created, nil
}

func kindName(k Kind) string {
	if k == KindIncident {
		return "incident"
	}
	return "event"
}

func (c *Client) upsertEvent(ctx context.Context, ev Event, knownID int) (int, bool, error) {
	if strings.TrimSpace(ev.Title) == "" {
		return 0, false, fmt.Errorf("%w: empty title", ErrInvalid)
	}
	incident := ev.Kind == KindIncident
	if ev.Kind != "" && ev.Kind != KindEvent && !incident {
		return 0, false, fmt.Errorf("%w: kind %q", ErrInvalid, ev.Kind)
	}
	src, err := source(ev.Source)
	if err != nil {
		return 0, false, err
	}
	coll := string(KindEvent)
	var typeID int
	var typeName string
	if incident {
		coll = string(KindIncident)
	} else {
		tn := ev.Type
		if tn == "" {
			tn = defaultEventType
		}
		if typeID, typeName, err = c.typeID(ctx, true, tn); err != nil {
			return 0, false, err
		}
	}
	attrs := ev.Attributes
	if ev.TheHiveID != "" {
		attrs = append([]Attribute{{Name: TheHiveIDAttribute, Value: ev.TheHiveID}}, attrs...)
	}
	attrs = dedupAttrs(attrs)
	happened := ""
	if !incident && !ev.HappenedAt.IsZero() {
		happened = ev.HappenedAt.UTC().Format(DateFormat)
	}

	var created bool
	id := knownID
	settleKey := coll + "\x00" + cmp.Or(ev.TheHiveID, ev.Title)
	ctx = withSettleKey(ctx, settleKey)
	err = c.retryOp(ctx, func() error {
		cur, err := c.currentEvent(ctx, coll, incident, &id, ev)
		if err != nil {
			return err
		}
		if cur == nil {
			body := map[string]any{"description": ev.Description, "sources": []wireSource{src}, "attributes": attrs}
			if incident {
				body["value"] = ev.Title
			} else {
				body["title"] = ev.Title
				body["type"] = typeName
				body["type_id"] = typeID
				at := happened
				if at == "" {
					// ThreatQ requires happened_at on an event.
					at = c.now().UTC().Format(DateFormat)
				}
				body["happened_at"] = at
			}
			var obj wireObject
			if err := c.do(unsafeWrite(ctx), http.MethodPost, "/api/"+coll, nil, body, &obj); err != nil {
				return err
			}
			if obj.ID <= 0 {
				return &transportError{Method: http.MethodPost, Path: "/api/" + coll, Err: errors.New("response has no id")}
			}
			id, created = obj.ID, true
			return c.addTags(ctx, coll, id, nil, ev.Tags)
		}
		id = cur.ID
		fields := map[string]any{}
		if incident {
			if string(cur.Value) != ev.Title {
				fields["value"] = ev.Title
			}
		} else {
			if string(cur.Title) != ev.Title {
				fields["title"] = ev.Title
			}
			if happened != "" && string(cur.HappenedAt) != happened {
				fields["happened_at"] = happened
			}
			if cur.TypeID != 0 && cur.TypeID != typeID {
				fields["type_id"] = typeID
			}
		}
		if string(cur.Description) != ev.Description {
			fields["description"] = ev.Description
		}
		if len(fields) > 0 {
			if err := c.do(ctx, http.MethodPut, objPath(coll, id), nil, fields, nil); err != nil {
				return err
			}
		}
		return c.reconcile(ctx, coll, cur, attrs, nil, ev.Tags, src)
	})
	if err != nil {
		return 0, false, err
	}
	if err := c.settleLater(ctx, settleKey, func() error {
		if ev.TheHiveID != "" {
			// A create that went unanswered may have made a twin.
			if _, err := c.lookupEvent(ctx, coll, incident, ev, id); err != nil {
				return err
			}
		}
		cur, err := c.getObject(ctx, coll, id)
		if err != nil {
			return err
		}
		return c.reconcile(ctx, coll, cur, attrs, nil, ev.Tags, src)
	}); err != nil {
		return 0, false, err
	}
	return id, created, nil
}

// markUnsettled records that a write to the object named key got no answer
// (timeout, dropped connection, 5xx): ThreatQ may still apply it later,
// after a retry has already done the same, leaving a second object or a
// second attribute value.
func (c *Client) markUnsettled(key string) {
	c.unsettled.Store(key, c.now()) // the latest unanswered write counts
}

// settleLater runs fix once the object named key has no unanswered write
// that ThreatQ could still apply: it waits until settle() after the first
// such write, then repeats the reconcile so that a late write's effect (a
// twin, a second value) is undone. Without such a write it does nothing.
func (c *Client) settleLater(ctx context.Context, key string, fix func() error) error {
	v, ok := c.unsettled.Load(key)
	if !ok {
		return nil
	}
	if wait := v.(time.Time).Add(c.settle()).Sub(c.now()); wait > 0 && !retry.Sleep(ctx, wait) {
		return ctx.Err()
	}
	// Failing here fails the upsert (transiently): the caller's next try
	// comes back to this check, so the mark is never forgotten.
	if err := c.retryOp(ctx, fix); err != nil {
		return fmt.Errorf("re-check after an unanswered write: %w", err)
	}
	c.unsettled.Delete(key)
	return nil
}

// settle is how long a request that got no answer may still be applied by
// ThreatQ (Config.SettleTime).
func (c *Client) settle() time.Duration {
	if c.cfg.SettleTime > 0 {
		return c.cfg.SettleTime
	}
	return 2 * c.cfg.Timeout
}

// currentEvent returns the stored object to update, or nil to create. It
// reads *id first; a 404 clears it and falls back to the lookup.
func (c *Client) currentEvent(ctx context.Context, coll string, incident bool, id *int, ev Event) (*wireObject, error) {
	if *id > 0 {
		obj, err := c.getObject(ctx, coll, *id)
		if err == nil {
			return obj, nil
		}
		if !isNotFound(err) {
			return nil, err
		}
		c.log.Info("stored threatq id not found, looking up", "collection", coll, "id", *id)
		*id = 0
	}
	return c.lookupEvent(ctx, coll, incident, ev, 0)
}

// lookupEvent finds the Event/Incident of ev by title (value) and TheHive
// Id. Two of them can exist only after a create that went unanswered was
// applied late; the oldest is kept (or keep, when non-zero) and the others
// are deleted, since they are the agent's own duplicates.
func (c *Client) lookupEvent(ctx context.Context, coll string, incident bool, ev Event, keep int) (*wireObject, error) {
	key := "title"
	if incident {
		key = "value"
	}
	q := url.Values{key: {ev.Title}, "with": {withAll}, "limit": {"100"}}
	var hits []wireObject
	if err := c.do(ctx, http.MethodGet, "/api/"+coll, q, nil, &hits); err != nil {
		return nil, err
	}
	var matches []*wireObject
	for i := range hits {
		h := &hits[i]
		name := string(h.Title)
		if incident {
			name = string(h.Value)
		}
		if name != ev.Title {
			continue // the filter may be a LIKE
		}
		if ev.TheHiveID == "" || hasAttr(h.Attributes, TheHiveIDAttribute, ev.TheHiveID) {
			matches = append(matches, h)
		}
	}
	if len(matches) == 0 {
		return nil, nil
	}
	best := matches[0]
	for _, m := range matches {
		if (keep != 0 && m.ID == keep) || (keep == 0 && m.ID < best.ID) {
			best = m
		}
	}
	if ev.TheHiveID == "" {
		return best, nil
	}
	for _, m := range matches {
		if m.ID == best.ID {
			continue
		}
		c.log.Warn("removing a duplicate left by an unanswered create", "collection", coll, "id", m.ID, "kept", best.ID, "thehive_id", ev.TheHiveID)
		if err := c.do(ctx, http.MethodDelete, objPath(coll, m.ID), nil, nil, nil); err != nil && !isNotFound(err) {
			return nil, err
		}
	}
	return best, nil
}

// UpsertIndicator makes sure the indicator (value + type) exists with ind's
// description, attributes, tags, source and relation. A new indicator goes
// through /api/indicators/consume, but only after a lookup found nothing:
// consume appends attribute values to an existing indicator, which would
// break the one-value-per-name rule. relatedKnown says the relation to
// ind.Related is already stored, so it is not posted again.
func (c *Client) UpsertIndicator(ctx context.Context, ind Indicator, knownID int, relatedKnown bool) (id int, created bool, err error) {
	id, created, err = c.upsertIndicator(ctx, ind, knownID, relatedKnown)
	if err != nil {
		return 0, false, fmt.Errorf("threatq: upsert indicator %q: %w", ind.Value, err)
	}
	return id, created, nil
}

func (c *Client) upsertIndicator(ctx context.Context, ind Indicator, knownID int, relatedKnown bool) (int, bool, error) {
	if ind.Value == "" {
		return 0, false, fmt.Errorf("%w: empty value", ErrInvalid)
	}
	if ind.Type == "" {
		return 0, false, fmt.Errorf("%w: empty type", ErrInvalid)
	}
	src, err := source(ind.Source)
	if err != nil {
		return 0, false, err
	}
	var relColl string
	if r := ind.Related; r != nil {
		switch r.Kind {
		case KindEvent, "":
			relColl = string(KindEvent)
		case KindIncident:
			relColl = string(KindIncident)
		default:
			return 0, false, fmt.Errorf("%w: related kind %q", ErrInvalid, r.Kind)
		}
		if r.ID <= 0 {
			return 0, false, fmt.Errorf("%w: related id %d", ErrInvalid, r.ID)
		}
	}
	typeID, typeName, err := c.typeID(ctx, false, ind.Type)
	if err != nil {
		return 0, false, err
	}
	attrs := dedupAttrs(ind.Attributes)
	status := ind.Status
	if status == "" {
		status = defaultStatus
	}

	const coll = string(KindIndicator)
	settleKey := coll + "\x00" + typeName + "\x00" + ind.Value
	ctx = withSettleKey(ctx, settleKey)
	// Observables of different cases can share a value and type, and so an
	// Indicator: two concurrent upserts would both find nothing and both
	// consume, the second appending its attribute values to the first's.
	defer c.objectLocks.Lock(settleKey)()
	var created bool
	id := knownID
	err = c.retryOp(ctx, func() error {
		cur, err := c.currentIndicator(ctx, &id, ind.Value, typeID)
		if err != nil {
			return err
		}
		if cur == nil {
			elem := map[string]any{
				"value":      ind.Value,
				"type":       map[string]string{"name": typeName},
				"status":     map[string]string{"name": status},
				"sources":    []wireSource{src},
				"attributes": attrs,
			}
			if ind.Description != "" {
				elem["description"] = ind.Description
			}
			if relColl != "" {
				elem[relColl] = []relRef{{ID: ind.Related.ID}}
			}
			var objs []wireObject
			if err := c.do(unsafeWrite(ctx), http.MethodPost, "/api/indicators/consume", nil, []any{elem}, &objs); err != nil {
				return err
			}
			for _, o := range objs {
				if string(o.Value) == ind.Value || len(objs) == 1 {
					id = o.ID
					break
				}
			}
			if id <= 0 {
				return &transportError{Method: http.MethodPost, Path: "/api/indicators/consume", Err: errors.New("response has no id")}
			}
			created = true
			return c.addTags(ctx, coll, id, nil, ind.Tags)
		}
		id = cur.ID
		if ind.Description != "" && string(cur.Description) != ind.Description {
			if err := c.do(ctx, http.MethodPut, objPath(coll, id), nil, map[string]string{"description": ind.Description}, nil); err != nil {
				return err
			}
		}
		if err := c.reconcile(ctx, coll, cur, attrs, ind.RemoveAttributes, ind.Tags, src); err != nil {
			return err
		}
		if relColl != "" && !relatedKnown {
			// Relating is idempotent on ThreatQ's side (a pivot row).
			if err := c.do(ctx, http.MethodPost, objPath(coll, id)+"/"+relColl, nil, relRef{ID: ind.Related.ID}, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	if err := c.settleLater(ctx, settleKey, func() error {
		cur, err := c.getObject(ctx, coll, id)
		if err != nil {
			return err
		}
		return c.reconcile(ctx, coll, cur, attrs, ind.RemoveAttributes, ind.Tags, src)
	}); err != nil {
		return 0, false, err
	}
	return id, created, nil
}

func (c *Client) currentIndicator(ctx context.Context, id *int, value string, typeID int) (*wireObject, error) {
	if *id > 0 {
		obj, err := c.getObject(ctx, string(KindIndicator), *id)
		if err == nil {
			return obj, nil
		}
		if !isNotFound(err) {
			return nil, err
		}
		c.log.Info("stored threatq id not found, looking up", "collection", "indicators", "id", *id)
		*id = 0
	}
	q := url.Values{"value": {value}, "type_id": {strconv.Itoa(typeID)}, "with": {withAll}, "limit": {"100"}}
	var hits []wireObject
	if err := c.do(ctx, http.MethodGet, "/api/indicators", q, nil, &hits); err != nil {
		return nil, err
	}
	for i := range hits {
		if string(hits[i].Value) == value && (hits[i].TypeID == 0 || hits[i].TypeID == typeID) {
			return &hits[i], nil
		}
	}
	return nil, nil
}

func (c *Client) getObject(ctx context.Context, coll string, id int) (*wireObject, error) {
	var obj wireObject
	if err := c.do(ctx, http.MethodGet, objPath(coll, id), url.Values{"with": {withAll}}, nil, &obj); err != nil {
		return nil, err
	}
	if obj.ID == 0 {
		obj.ID = id
	}
	return &obj, nil
}

// reconcile brings attributes, tags and the TheHive source of a stored
// object to the wanted state with as few writes as possible: attributes are
// single-valued, so a changed value is PUT in place and extra values of the
// same name are deleted; nothing is sent for what is already right.
// reconcile brings cur's attributes, tags and source to the wanted state.
func (c *Client) reconcile(ctx context.Context, coll string, cur *wireObject, want []Attribute, remove []string, tags []string, src wireSource) error {
	base := objPath(coll, cur.ID)
	byName := map[string][]wireAttr{}
	for _, a := range cur.Attributes {
		k := strings.ToLower(a.Name)
		byName[k] = append(byName[k], a)
	}
	for _, a := range want {
		have := byName[strings.ToLower(a.Name)]
		if len(have) == 0 {
			// Not resent by the transport: a committed-but-unanswered POST
			// would add a second value. The re-run's GET sees it instead.
			if err := c.do(unsafeWrite(ctx), http.MethodPost, base+"/attributes", nil, map[string]string{"name": a.Name, "value": a.Value}, nil); err != nil {
				return err
			}
			continue
		}
		keep := 0
		for i, h := range have {
			if string(h.Value) == a.Value {
				keep = i
				break
			}
		}
		if string(have[keep].Value) != a.Value {
			if err := c.do(ctx, http.MethodPut, fmt.Sprintf("%s/attributes/%d", base, have[keep].ID), nil, map[string]string{"value": a.Value}, nil); err != nil {
				return err
			}
		}
		for i, h := range have {
			if i != keep {
				if err := c.deleteAttr(ctx, base, h.ID); err != nil {
					return err
				}
			}
		}
	}
	for _, name := range remove {
		for _, h := range byName[strings.ToLower(name)] {
			if err := c.deleteAttr(ctx, base, h.ID); err != nil {
				return err
			}
		}
	}
	if err := c.addTags(ctx, coll, cur.ID, cur.Tags, tags); err != nil {
		return err
	}
	for _, s := range cur.Sources {
		if strings.EqualFold(s.Name, src.Name) && (src.TLPID == 0 || s.TLPID == src.TLPID) {
			return nil
		}
	}
	return c.do(ctx, http.MethodPost, base+"/sources", nil, src, nil)
}

func (c *Client) deleteAttr(ctx context.Context, base string, aid int) error {
	err := c.do(ctx, http.MethodDelete, fmt.Sprintf("%s/attributes/%d", base, aid), nil, nil, nil)
	if isNotFound(err) {
		return nil // already gone, e.g. a retried delete
	}
	return err
}

// addTags posts the tags in want that have is missing, in one request.
func (c *Client) addTags(ctx context.Context, coll string, id int, have []wireTag, want []string) error {
	seen := map[string]bool{}
	for _, t := range have {
		seen[strings.ToLower(t.Name)] = true
	}
	var add []wireTag
	for _, t := range want {
		k := strings.ToLower(strings.TrimSpace(t))
		if k == "" || seen[k] {
			continue
		}
		seen[k] = true
		add = append(add, wireTag{Name: strings.TrimSpace(t)})
	}
	if len(add) == 0 {
		return nil
	}
	return c.do(ctx, http.MethodPost, objPath(coll, id)+"/tags", nil, add, nil)
}

func objPath(coll string, id int) string { return "/api/" + coll + "/" + strconv.Itoa(id) }

func isNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusNotFound
}

func hasAttr(attrs []wireAttr, name, value string) bool {
	for _, a := range attrs {
		if strings.EqualFold(a.Name, name) && string(a.Value) == value {
			return true
		}
	}
	return false
}

// dedupAttrs keeps the last value of each name, in first-seen order.
func dedupAttrs(in []Attribute) []Attribute {
	idx := map[string]int{}
	var out []Attribute
	for _, a := range in {
		k := strings.ToLower(a.Name)
		if i, ok := idx[k]; ok {
			out[i].Value = a.Value
			continue
		}
		idx[k] = len(out)
		out = append(out, a)
	}
	return out
}

func source(s Source) (wireSource, error) {
	id, err := tlpID(s.TLP)
	if err != nil {
		return wireSource{}, err
	}
	name := s.Name
	if name == "" {
		name = SourceName
	}
	return wireSource{Name: name, TLPID: id}, nil
}
