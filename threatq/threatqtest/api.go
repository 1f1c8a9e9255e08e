package threatqtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

const dateFormat = "2006-01-02 15:04:05"

type attr struct {
	ID    int
	Name  string
	Value string
}

type source struct {
	ID    int
	Name  string
	TLPID int
}

type tag struct {
	ID   int
	Name string
}

type object struct {
	ID          int
	Title       string // events
	Value       string // incident, indicators
	TypeID      int    // events, indicators
	StatusID    int    // indicators
	Description string
	HappenedAt  string
	CreatedAt   string
	UpdatedAt   string
	Attributes  []attr
	Tags        []tag
	Sources     []source
	Related     map[string][]int // collection → ids
}

type collection struct {
	name    string
	next    int
	byID    map[int]*object
	ordered []int
	// byKey indexes ids by lower-cased title (events) or value, so exact
	// lookups stay O(1) when a benchmark stores 100,000s of objects.
	byKey map[string][]int
}

func newCollection(name string) *collection {
	return &collection{name: name, byID: map[int]*object{}, byKey: map[string][]int{}}
}

func lookupKey(o *object) string {
	if o.Title != "" {
		return strings.ToLower(o.Title)
	}
	return strings.ToLower(o.Value)
}

func (c *collection) add(o *object) {
	c.next++
	o.ID = c.next
	c.byID[o.ID] = o
	c.ordered = append(c.ordered, o.ID)
	k := lookupKey(o)
	c.byKey[k] = append(c.byKey[k], o.ID)
}

// remove deletes o and every relation that points at it.
func (s *Server) remove(c *collection, o *object) {
	delete(c.byID, o.ID)
	if i := slices.Index(c.ordered, o.ID); i >= 0 {
		c.ordered = slices.Delete(c.ordered, i, i+1)
	}
	k := lookupKey(o)
	if ids := c.byKey[k]; ids != nil {
		if i := slices.Index(ids, o.ID); i >= 0 {
			c.byKey[k] = slices.Delete(ids, i, i+1)
		}
	}
	for coll2, ids := range o.Related {
		for _, id := range ids {
			if o2 := s.colls[coll2].byID[id]; o2 != nil {
				o2.Related[c.name] = slices.DeleteFunc(o2.Related[c.name], func(x int) bool { return x == o.ID })
			}
		}
	}
}

// rekey moves o in the index after its title or value changed from old.
func (c *collection) rekey(o *object, old string) {
	k := lookupKey(o)
	if k == old || c.byID[o.ID] != o {
		return
	}
	ids := c.byKey[old]
	if i := slices.Index(ids, o.ID); i >= 0 {
		ids = slices.Delete(ids, i, i+1)
		if len(ids) == 0 {
			delete(c.byKey, old)
		} else {
			c.byKey[old] = ids
		}
	}
	ids = c.byKey[k]
	i, _ := slices.BinarySearch(ids, o.ID)
	c.byKey[k] = slices.Insert(ids, i, o.ID)
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, pattern string) {
	if r.URL.Path == "/api/token" {
		if r.Method != http.MethodPost {
			notFound(w)
			return
		}
		s.handleToken(w, r)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		notFound(w)
		return
	}
	if !s.authorized(r) {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "Unauthenticated.", "message": "Unauthenticated."})
		return
	}
	segs := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/api/"), "/"), "/")
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(io.LimitReader(r.Body, 16<<20)); err != nil {
			validationError(w, "body", "unreadable body")
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := r.Method
	switch {
	case len(segs) == 2 && segs[0] == "indicator" && segs[1] == "types" && m == http.MethodGet:
		writeNamed(w, s.cfg.IndicatorTypes)
	case len(segs) == 2 && segs[0] == "indicator" && segs[1] == "statuses" && m == http.MethodGet:
		writeNamed(w, defaultStatuses)
	case len(segs) == 2 && segs[0] == "event" && segs[1] == "types" && m == http.MethodGet:
		writeNamed(w, s.cfg.EventTypes)
	case len(segs) == 2 && segs[0] == "indicators" && segs[1] == "consume" && m == http.MethodPost:
		s.consume(w, body)
	default:
		c := s.colls[segs[0]]
		if c == nil {
			notFound(w)
			return
		}
		switch {
		case len(segs) == 1 && m == http.MethodGet:
			s.list(w, c, r.URL.Query())
		case len(segs) == 1 && m == http.MethodPost && c.name != "indicators":
			s.create(w, c, body)
		default:
			if len(segs) < 2 {
				notFound(w)
				return
			}
			id, err := strconv.Atoi(segs[1])
			o := c.byID[id]
			if err != nil || o == nil {
				notFound(w)
				return
			}
			s.objectRoute(w, r, c, o, segs[2:], body)
		}
	}
}

func (s *Server) objectRoute(w http.ResponseWriter, r *http.Request, c *collection, o *object, rest []string, body []byte) {
	m := r.Method
	switch {
	case len(rest) == 0 && m == http.MethodGet:
		writeData(w, 200, s.render(c, o, r.URL.Query().Get("with")))
	case len(rest) == 0 && m == http.MethodPut:
		s.update(w, c, o, body, r.URL.Query().Get("with"))
	case len(rest) == 0 && m == http.MethodDelete:
		s.remove(c, o)
		w.WriteHeader(http.StatusNoContent)
	case len(rest) == 1 && rest[0] == "attributes" && m == http.MethodGet:
		writeList(w, renderAttrs(o.Attributes), len(o.Attributes), len(o.Attributes), 0)
	case len(rest) == 1 && rest[0] == "attributes" && m == http.MethodPost:
		var in struct {
			Name  *string `json:"name"`
			Value any     `json:"value"`
		}
		if !decode(w, body, &in) {
			return
		}
		if in.Name == nil || *in.Name == "" || in.Value == nil {
			validationError(w, "name", "The name and value fields are required.")
			return
		}
		a := s.addAttr(o, *in.Name, fmt.Sprint(in.Value))
		touch(o)
		writeData(w, http.StatusCreated, []map[string]any{{"id": a.ID, "attribute_id": a.ID, "name": a.Name, "value": a.Value}})
	case len(rest) == 2 && rest[0] == "attributes" && (m == http.MethodPut || m == http.MethodDelete):
		aid, _ := strconv.Atoi(rest[1])
		i := slices.IndexFunc(o.Attributes, func(a attr) bool { return a.ID == aid })
		if i < 0 {
			notFound(w)
			return
		}
		if m == http.MethodDelete {
			o.Attributes = slices.Delete(o.Attributes, i, i+1)
			touch(o)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		var in struct {
			Value any `json:"value"`
		}
		if !decode(w, body, &in) {
			return
		}
		if in.Value == nil {
			validationError(w, "value", "The value field is required.")
			return
		}
		o.Attributes[i].Value = fmt.Sprint(in.Value)
		touch(o)
		writeData(w, 200, renderAttrs(o.Attributes[i : i+1])[0])
	case len(rest) == 1 && rest[0] == "tags" && m == http.MethodGet:
		writeList(w, renderTags(o.Tags), len(o.Tags), len(o.Tags), 0)
	case len(rest) == 1 && rest[0] == "tags" && m == http.MethodPost:
		var names []string
		var arr []struct {
			Name string `json:"name"`
		}
		var one struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(body, &arr) == nil {
			for _, t := range arr {
				names = append(names, t.Name)
			}
		} else if json.Unmarshal(body, &one) == nil {
			names = []string{one.Name}
		} else {
			validationError(w, "body", "Malformed JSON.")
			return
		}
		for _, n := range names {
			if strings.TrimSpace(n) == "" {
				validationError(w, "name", "The name field is required.")
				return
			}
		}
		for _, n := range names {
			s.addTag(o, n)
		}
		touch(o)
		writeData(w, http.StatusCreated, renderTags(o.Tags))
	case len(rest) == 1 && rest[0] == "sources" && m == http.MethodGet:
		writeList(w, renderSources(o.Sources), len(o.Sources), len(o.Sources), 0)
	case len(rest) == 1 && rest[0] == "sources" && m == http.MethodPost:
		var in wireSource
		if !decode(w, body, &in) {
			return
		}
		if in.Name == "" {
			validationError(w, "name", "The name field is required.")
			return
		}
		if !validTLP(in.TLPID) {
			validationError(w, "tlp_id", "The selected tlp id is invalid.")
			return
		}
		s.mergeSource(o, in)
		touch(o)
		writeData(w, http.StatusCreated, renderSources(o.Sources))
	case len(rest) == 1 && s.colls[rest[0]] != nil && m == http.MethodGet:
		tc := s.colls[rest[0]]
		var out []map[string]any
		for _, id := range o.Related[rest[0]] {
			item := s.render(tc, tc.byID[id], "")
			item["pivot"] = map[string]any{"id": id}
			out = append(out, item)
		}
		writeList(w, out, len(out), len(out), 0)
	case len(rest) == 1 && s.colls[rest[0]] != nil && m == http.MethodPost:
		var ids []relRef
		var one relRef
		if json.Unmarshal(body, &ids) != nil {
			if json.Unmarshal(body, &one) != nil {
				validationError(w, "body", "Malformed JSON.")
				return
			}
			ids = []relRef{one}
		}
		tc := s.colls[rest[0]]
		for _, ref := range ids {
			if tc.byID[ref.ID] == nil {
				validationError(w, "id", fmt.Sprintf("The selected id %d is invalid.", ref.ID))
				return
			}
		}
		var out []map[string]any
		for _, ref := range ids {
			s.relate(c.name, o, rest[0], tc.byID[ref.ID])
			out = append(out, map[string]any{"id": ref.ID, "pivot": map[string]any{"id": ref.ID}})
		}
		writeData(w, http.StatusCreated, out)
	default:
		notFound(w)
	}
}

type relRef struct {
	ID int `json:"id"`
}

type wireSource struct {
	Name  string `json:"name"`
	TLPID int    `json:"tlp_id"`
}

// named accepts "Name", {"name":"Name"} or {"id":N}.
type named struct {
	Name string
	ID   int
}

func (n *named) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		n.Name = s
		return nil
	}
	var o struct {
		Name string `json:"name"`
		ID   int    `json:"id"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return err
	}
	n.Name, n.ID = o.Name, o.ID
	return nil
}

type wireAttrIn struct {
	Name  string `json:"name"`
	Value any    `json:"value"`
}

type objectIn struct {
	Title       *string      `json:"title"`
	Value       *string      `json:"value"`
	Description *string      `json:"description"`
	HappenedAt  *string      `json:"happened_at"`
	Type        *named       `json:"type"`
	TypeID      *int         `json:"type_id"`
	Status      *named       `json:"status"`
	StatusID    *int         `json:"status_id"`
	Sources     []wireSource `json:"sources"`
	Attributes  []wireAttrIn `json:"attributes"`
	Tags        []named      `json:"tags"`
	Events      []relRef     `json:"events"`
	Incident    []relRef     `json:"incident"`
	Indicators  []relRef     `json:"indicators"`
}

func decode(w http.ResponseWriter, body []byte, v any) bool {
	if err := json.Unmarshal(body, v); err != nil {
		validationError(w, "body", "Malformed JSON.")
		return false
	}
	return true
}

func validTLP(id int) bool { return id >= 0 && id <= 4 }

func lookupName(names []string, n *named, id *int) (int, bool) {
	if id != nil {
		if *id >= 1 && *id <= len(names) {
			return *id, true
		}
		return 0, false
	}
	if n == nil {
		return 0, false
	}
	if n.ID != 0 {
		return n.ID, n.ID >= 1 && n.ID <= len(names)
	}
	for i, nm := range names {
		if strings.EqualFold(nm, n.Name) {
			return i + 1, true
		}
	}
	return 0, false
}

// validate checks what ThreatQ would reject and returns (field, message).
func (s *Server) validate(coll string, in *objectIn, create bool) (string, string) {
	switch coll {
	case "events":
		if create && (in.Title == nil || strings.TrimSpace(*in.Title) == "") {
			return "title", "The title field is required."
		}
		if create || in.Type != nil || in.TypeID != nil {
			if _, ok := lookupName(s.cfg.EventTypes, in.Type, in.TypeID); !ok {
				return "type", "The selected type is invalid."
			}
		}
		if create && in.HappenedAt == nil {
			return "happened_at", "The happened at field is required."
		}
	case "incident", "indicators":
		if create && (in.Value == nil || strings.TrimSpace(*in.Value) == "") {
			return "value", "The value field is required."
		}
	}
	if coll == "indicators" {
		if create || in.Type != nil || in.TypeID != nil {
			if _, ok := lookupName(s.cfg.IndicatorTypes, in.Type, in.TypeID); !ok {
				return "type", "The selected type is invalid."
			}
		}
		if in.Status != nil || in.StatusID != nil {
			if _, ok := lookupName(defaultStatuses, in.Status, in.StatusID); !ok {
				return "status", "The selected status is invalid."
			}
		}
	}
	if in.HappenedAt != nil {
		if _, err := time.Parse(dateFormat, *in.HappenedAt); err != nil {
			return "happened_at", "The happened at does not match the format Y-m-d H:i:s."
		}
	}
	for _, src := range in.Sources {
		if src.Name == "" {
			return "sources", "The source name field is required."
		}
		if !validTLP(src.TLPID) {
			return "tlp_id", "The selected tlp id is invalid."
		}
	}
	for _, a := range in.Attributes {
		if a.Name == "" || a.Value == nil {
			return "attributes", "The attribute name and value fields are required."
		}
	}
	for rc, refs := range map[string][]relRef{"events": in.Events, "incident": in.Incident, "indicators": in.Indicators} {
		for _, ref := range refs {
			if s.colls[rc].byID[ref.ID] == nil {
				return rc, fmt.Sprintf("The selected %s id %d is invalid.", rc, ref.ID)
			}
		}
	}
	return "", ""
}

// apply writes in's fields onto o. Attributes are appended unless the same
// name/value pair is already there, as ThreatQ's consume does.
func (s *Server) apply(coll string, o *object, in *objectIn) {
	old := lookupKey(o)
	defer s.colls[coll].rekey(o, old)
	if in.Title != nil {
		o.Title = *in.Title
	}
	if in.Value != nil {
		o.Value = *in.Value
	}
	if in.Description != nil {
		o.Description = *in.Description
	}
	if in.HappenedAt != nil {
		o.HappenedAt = *in.HappenedAt
	}
	names := s.cfg.EventTypes
	if coll == "indicators" {
		names = s.cfg.IndicatorTypes
	}
	if in.Type != nil || in.TypeID != nil {
		o.TypeID, _ = lookupName(names, in.Type, in.TypeID)
	}
	if (in.Status != nil || in.StatusID != nil) && (o.StatusID == 0 || o.StatusID == 4) {
		// Protected statuses (all but the default Review) are retained.
		o.StatusID, _ = lookupName(defaultStatuses, in.Status, in.StatusID)
	}
	for _, src := range in.Sources {
		s.mergeSource(o, src)
	}
	for _, a := range in.Attributes {
		v := fmt.Sprint(a.Value)
		if !slices.ContainsFunc(o.Attributes, func(x attr) bool { return x.Name == a.Name && x.Value == v }) {
			s.addAttr(o, a.Name, v)
		}
	}
	for _, t := range in.Tags {
		s.addTag(o, t.Name)
	}
	for rc, refs := range map[string][]relRef{"events": in.Events, "incident": in.Incident, "indicators": in.Indicators} {
		for _, ref := range refs {
			s.relate(coll, o, rc, s.colls[rc].byID[ref.ID])
		}
	}
	touch(o)
}

func touch(o *object) {
	o.UpdatedAt = time.Now().UTC().Format(dateFormat)
	if o.CreatedAt == "" {
		o.CreatedAt = o.UpdatedAt
	}
}

func (s *Server) addAttr(o *object, name, value string) attr {
	s.nextAttr++
	a := attr{ID: s.nextAttr, Name: name, Value: value}
	o.Attributes = append(o.Attributes, a)
	return a
}

func (s *Server) addTag(o *object, name string) {
	name = strings.TrimSpace(name)
	if slices.ContainsFunc(o.Tags, func(t tag) bool { return strings.EqualFold(t.Name, name) }) {
		return
	}
	id, ok := s.tagIDs[strings.ToLower(name)]
	if !ok {
		s.nextTag++
		id = s.nextTag
		s.tagIDs[strings.ToLower(name)] = id
	}
	o.Tags = append(o.Tags, tag{ID: id, Name: name})
}

// mergeSource adds a source or, for a name already there, sets its TLP.
func (s *Server) mergeSource(o *object, in wireSource) {
	for i := range o.Sources {
		if strings.EqualFold(o.Sources[i].Name, in.Name) {
			if in.TLPID != 0 {
				o.Sources[i].TLPID = in.TLPID
			}
			return
		}
	}
	s.nextSrc++
	o.Sources = append(o.Sources, source{ID: s.nextSrc, Name: in.Name, TLPID: in.TLPID})
}

// relate links both ways; linking twice is a no-op.
func (s *Server) relate(coll string, o *object, coll2 string, o2 *object) {
	if o.Related == nil {
		o.Related = map[string][]int{}
	}
	if o2.Related == nil {
		o2.Related = map[string][]int{}
	}
	if !slices.Contains(o.Related[coll2], o2.ID) {
		o.Related[coll2] = append(o.Related[coll2], o2.ID)
	}
	if !slices.Contains(o2.Related[coll], o.ID) {
		o2.Related[coll] = append(o2.Related[coll], o.ID)
	}
}

func (s *Server) create(w http.ResponseWriter, c *collection, body []byte) {
	var in objectIn
	if !decode(w, body, &in) {
		return
	}
	if f, msg := s.validate(c.name, &in, true); f != "" {
		validationError(w, f, msg)
		return
	}
	o := &object{}
	c.add(o)
	s.apply(c.name, o, &in)
	writeData(w, http.StatusCreated, s.render(c, o, "attributes,sources,tags"))
}

func (s *Server) update(w http.ResponseWriter, c *collection, o *object, body []byte, with string) {
	var in objectIn
	if !decode(w, body, &in) {
		return
	}
	if in.Title != nil && strings.TrimSpace(*in.Title) == "" {
		validationError(w, "title", "The title field is required.")
		return
	}
	if in.Value != nil && strings.TrimSpace(*in.Value) == "" {
		validationError(w, "value", "The value field is required.")
		return
	}
	if f, msg := s.validate(c.name, &in, false); f != "" {
		validationError(w, f, msg)
		return
	}
	// PUT edits scalar fields only, like ThreatQ's edit endpoint.
	in.Attributes, in.Sources, in.Tags, in.Events, in.Incident, in.Indicators = nil, nil, nil, nil, nil, nil
	s.apply(c.name, o, &in)
	writeData(w, 200, s.render(c, o, with))
}

// consume is POST /api/indicators/consume: an array, upserted by value and
// type. The whole batch is validated before anything is written.
func (s *Server) consume(w http.ResponseWriter, body []byte) {
	var ins []objectIn
	if !decode(w, body, &ins) {
		return
	}
	c := s.colls["indicators"]
	for i := range ins {
		if f, msg := s.validate("indicators", &ins[i], true); f != "" {
			validationError(w, f, msg)
			return
		}
	}
	out := make([]map[string]any, 0, len(ins))
	for i := range ins {
		in := &ins[i]
		typeID, _ := lookupName(s.cfg.IndicatorTypes, in.Type, in.TypeID)
		var o *object
		for _, id := range c.byKey[strings.ToLower(*in.Value)] { // the index narrows; the test below stays exact
			if x := c.byID[id]; x != nil && x.Value == *in.Value && x.TypeID == typeID {
				o = x
				break
			}
		}
		if o == nil {
			o = &object{StatusID: 0}
			c.add(o)
			if in.Status == nil && in.StatusID == nil {
				in.Status = &named{Name: "Review"}
			}
		}
		s.apply("indicators", o, in)
		out = append(out, s.render(c, o, ""))
	}
	writeData(w, http.StatusCreated, out)
}

func (s *Server) list(w http.ResponseWriter, c *collection, q url.Values) {
	limit, offset := 500, 0
	if v, err := strconv.Atoi(q.Get("limit")); err == nil && v > 0 {
		limit = v
	}
	if v, err := strconv.Atoi(q.Get("offset")); err == nil && v >= 0 {
		offset = v
	}
	var hits []*object
	candidates := c.ordered
	for _, field := range []string{"title", "value"} {
		if v, ok := q[field]; ok && !strings.Contains(v[0], "%") {
			candidates = c.byKey[strings.ToLower(v[0])]
		}
	}
	for _, id := range candidates {
		o := c.byID[id]
		if t, ok := q["title"]; ok && !likeMatch(o.Title, t[0]) {
			continue
		}
		if v, ok := q["value"]; ok && !likeMatch(o.Value, v[0]) {
			continue
		}
		if v := q.Get("type_id"); v != "" && strconv.Itoa(o.TypeID) != v {
			continue
		}
		hits = append(hits, o)
	}
	items := []map[string]any{}
	for i := offset; i < len(hits) && i < offset+limit; i++ {
		items = append(items, s.render(c, hits[i], q.Get("with")))
	}
	writeList(w, items, len(hits), limit, offset)
}

// likeMatch is ThreatQ's filter: exact, or a LIKE when it holds "%".
func likeMatch(v, pattern string) bool {
	if !strings.Contains(pattern, "%") {
		return strings.EqualFold(v, pattern)
	}
	parts := strings.Split(strings.ToLower(pattern), "%")
	v = strings.ToLower(v)
	if !strings.HasPrefix(v, parts[0]) {
		return false
	}
	v = v[len(parts[0]):]
	for _, p := range parts[1:] {
		i := strings.Index(v, p)
		if i < 0 {
			return false
		}
		v = v[i+len(p):]
	}
	return parts[len(parts)-1] == "" || v == ""
}

func (s *Server) render(c *collection, o *object, with string) map[string]any {
	m := map[string]any{
		"id":          o.ID,
		"description": o.Description,
		"created_at":  o.CreatedAt,
		"updated_at":  o.UpdatedAt,
	}
	switch c.name {
	case "events":
		m["title"] = o.Title
		m["happened_at"] = o.HappenedAt
		m["type_id"] = o.TypeID
		m["type"] = map[string]any{"id": o.TypeID, "name": nameOf(s.cfg.EventTypes, o.TypeID)}
	case "incident":
		m["value"] = o.Value
	case "indicators":
		m["value"] = o.Value
		m["type_id"] = o.TypeID
		m["status_id"] = o.StatusID
		m["type"] = map[string]any{"id": o.TypeID, "name": nameOf(s.cfg.IndicatorTypes, o.TypeID)}
		m["status"] = map[string]any{"id": o.StatusID, "name": nameOf(defaultStatuses, o.StatusID)}
	}
	for _, w := range strings.Split(with, ",") {
		switch strings.TrimSpace(w) {
		case "attributes":
			m["attributes"] = renderAttrs(o.Attributes)
		case "sources":
			m["sources"] = renderSources(o.Sources)
		case "tags":
			m["tags"] = renderTags(o.Tags)
		}
	}
	return m
}

func nameOf(names []string, id int) string {
	if id >= 1 && id <= len(names) {
		return names[id-1]
	}
	return ""
}

func renderAttrs(as []attr) []map[string]any {
	out := make([]map[string]any, len(as))
	for i, a := range as {
		out[i] = map[string]any{"id": a.ID, "attribute_id": a.ID, "name": a.Name, "value": a.Value}
	}
	return out
}

func renderSources(ss []source) []map[string]any {
	out := make([]map[string]any, len(ss))
	for i, s := range ss {
		m := map[string]any{"id": s.ID, "name": s.Name, "pivot": map[string]any{"id": s.ID}}
		if s.TLPID != 0 {
			m["tlp_id"] = s.TLPID
		}
		out[i] = m
	}
	return out
}

func renderTags(ts []tag) []map[string]any {
	out := make([]map[string]any, len(ts))
	for i, t := range ts {
		out[i] = map[string]any{"id": t.ID, "name": t.Name}
	}
	return out
}

func writeNamed(w http.ResponseWriter, names []string) {
	items := make([]map[string]any, len(names))
	for i, n := range names {
		items[i] = map[string]any{"id": i + 1, "name": n}
	}
	writeList(w, items, len(items), len(items), 0)
}
