package thehive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// WebhookError is returned by ParseWebhook for every body it refuses. Its
// message is written for the sender: the intake answers 400 with it verbatim,
// so it names the offending field and never echoes more than a short excerpt
// of the input.
type WebhookError struct{ Reason string }

func (e *WebhookError) Error() string { return e.Reason }

func webhookErrorf(format string, args ...any) error {
	return &WebhookError{Reason: fmt.Sprintf(format, args...)}
}

// IsStored reports whether messages of objectType (as normalised by
// ParseWebhook) are stored and synced; all other types are acknowledged and
// dropped.
func IsStored(objectType string) bool {
	return objectType == TypeCase || objectType == TypeObservable
}

// objectTypes maps every spelling of an object type we know, lower-cased, to
// its v1 name: the v1 names themselves and the TheHive 3 names the
// compatible ("version 0") webhook sends.
var objectTypes = map[string]string{
	"case":              TypeCase,
	"observable":        TypeObservable,
	"case_artifact":     TypeObservable,
	"alert":             "Alert",
	"task":              "Task",
	"case_task":         "Task",
	"log":               "Log",
	"case_task_log":     "Log",
	"job":               "Job",
	"case_artifact_job": "Job",
	"comment":           "Comment",
	"page":              "Page",
	"procedure":         "Procedure",
	"casetemplate":      "CaseTemplate",
	"case_template":     "CaseTemplate",
	"action":            "Action",
	"dashboard":         "Dashboard",
	"user":              "User",
	"organisation":      "Organisation",
	"share":             "Share",
}

func normaliseObjectType(s string) string {
	if t, ok := objectTypes[strings.ToLower(s)]; ok {
		return t
	}
	r, n := utf8.DecodeRuneInString(s)
	return strings.ToUpper(string(r)) + s[n:]
}

// actions maps the v1 action names and the v0 operation names, lower-cased,
// to the Action* constants.
var actions = map[string]string{
	"create":   ActionCreate,
	"creation": ActionCreate,
	"update":   ActionUpdate,
	"delete":   ActionDelete,
	"deletion": ActionDelete,
	"merge":    ActionMerge,
	"invoke":   ActionInvoke,
}

// ParseWebhook validates one webhook body and normalises it into a Message.
//
// Both shapes TheHive sends are accepted: the v1 audit shape (`_type:
// "Audit"`, `action`, `objectType: "Case"`, v1 field names inside `object`)
// and the TheHive 3-compatible shape (`_type: "audit"`, `operation:
// "Creation"`, `objectType: "case_artifact"`, TheHive 3 field names such as
// `caseId` and `owner`). Rather than detect the shape and decode twice,
// every field is read under its v1 name first and its TheHive 3 name
// second, so a mixed or future shape still decodes.
//
// A message of a type that is not stored (IsStored) is returned without its
// object decoded. A delete message never has its object read: TheHive sends
// none, and rootId then holds the organisation id for a case.
//
// The observable's case is rootId; when rootId is absent, the case embedded
// in the object (`object.case._id`, or TheHive 3's `object._parent`) is used.
// A case message without rootId gets the case id.
//
// AuditID is the audit `_id` (or `id`), which TheHive 4's compatible shape
// does not send: it may be empty, and callers must not deduplicate on an
// empty id.
func ParseWebhook(body []byte) (*Message, error) {
	// Intake parses every delivery, and building maps of every member is
	// most of its cost; the fast path decodes well-formed bodies in one
	// pass and declines anything it is not sure of, which then takes the
	// path below, the reference for behaviour and every error message.
	if m, ok := parseWebhookFast(body); ok {
		return m, nil
	}
	return parseWebhookSlow(body)
}

// parseWebhookSlow is ParseWebhook without the fast path.
func parseWebhookSlow(body []byte) (*Message, error) {
	top, err := decodeTop(body)
	if err != nil {
		return nil, err
	}
	f := fields{m: top}

	if t := f.str("_type"); t != "" && !strings.EqualFold(t, "audit") {
		return nil, webhookErrorf("_type %s is not an audit message", quote(t))
	}
	m := &Message{}
	m.AuditID = f.str("_id", "id")
	rawAction := f.str("action", "operation")
	rawType := f.str("objectType")
	m.ObjectID = f.str("objectId")
	m.RootID = f.str("rootId")
	m.CreatedAt = f.int("_createdAt", "createdAt", "startDate")
	m.OrganisationID = f.str("organisationId")
	m.Organisation = f.org("organisation", &m.OrganisationID)
	if f.err != nil {
		return nil, f.err
	}

	if rawType == "" {
		return nil, webhookErrorf("objectType is missing")
	}
	m.ObjectType = normaliseObjectType(rawType)
	if rawAction == "" {
		return nil, webhookErrorf("action is missing (neither action nor operation is set)")
	}
	if a, ok := actions[strings.ToLower(rawAction)]; ok {
		m.Action = a
	} else if IsStored(m.ObjectType) {
		return nil, webhookErrorf("action %s of %s is not one of create, update, delete, merge, invoke", quote(rawAction), article(m.ObjectType))
	} else {
		// Types we ignore may grow actions we have never seen; they are
		// acknowledged either way, so do not refuse them over it.
		m.Action = strings.ToLower(rawAction)
	}

	rawObj, hasObj := top["object"]
	if hasObj && isNull(rawObj) {
		hasObj = false
	}
	if m.Action == ActionDelete {
		hasObj = false
	}

	if !IsStored(m.ObjectType) {
		if m.ObjectID == "" && hasObj {
			m.ObjectID = objectIDOf(rawObj)
		}
		if m.ObjectID == "" {
			return nil, webhookErrorf("objectId is missing")
		}
		return m, nil
	}

	needObj := m.Action == ActionCreate || m.Action == ActionUpdate || m.Action == ActionMerge
	if !hasObj {
		if needObj {
			return nil, webhookErrorf("object is required for %s of %s", article(m.Action), article(m.ObjectType))
		}
		if m.ObjectID == "" {
			return nil, webhookErrorf("objectId is missing")
		}
		return m, nil
	}

	obj, err := objectFields(rawObj)
	if err != nil {
		return nil, err
	}
	var id, caseID string
	switch m.ObjectType {
	case TypeCase:
		m.Case = decodeCase(obj)
		id = m.Case.ID
	case TypeObservable:
		m.Observable, caseID = decodeObservable(obj)
		id = m.Observable.ID
	}
	if obj.err != nil {
		return nil, obj.err
	}

	switch {
	case m.ObjectID == "" && id == "":
		return nil, webhookErrorf("objectId is missing (and the object has no _id)")
	case m.ObjectID == "":
		m.ObjectID = id
	case id == "":
		// TheHive always sends the object's id, but the audit's objectId
		// is authoritative; keep the object consistent with it.
		if m.Case != nil {
			m.Case.ID = m.ObjectID
		}
		if m.Observable != nil {
			m.Observable.ID = m.ObjectID
		}
	case id != m.ObjectID:
		return nil, webhookErrorf("objectId %s does not match object._id %s", quote(m.ObjectID), quote(id))
	}

	if m.RootID == "" {
		switch m.ObjectType {
		case TypeCase:
			m.RootID = m.ObjectID
		case TypeObservable:
			m.RootID = caseID
		}
	}
	if m.ObjectType == TypeObservable && m.RootID == "" && m.Action != ActionDelete {
		return nil, webhookErrorf("rootId (the observable's case id) is missing and the object names no case")
	}
	return m, nil
}

// article prefixes a word with "a" or "an", for readable error messages.
func article(w string) string {
	if w != "" && strings.ContainsRune("aeiouAEIOU", rune(w[0])) {
		return "an " + w
	}
	return "a " + w
}

// decodeTop checks that body is exactly one JSON object and returns its
// members undecoded.
func decodeTop(body []byte) (map[string]json.RawMessage, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, webhookErrorf("body is empty")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &top); err != nil {
		// json.Unmarshal validates the whole input (trailing data
		// included) before decoding, so a syntax error is reported even
		// when the first value is an object.
		var se *json.SyntaxError
		if errors.As(err, &se) {
			// Offset counts the bytes read, the bad one included; report
			// the bad byte's own index in the body as sent.
			off := se.Offset + int64(len(body)-len(bytes.TrimLeft(body, " \t\r\n")))
			if strings.HasPrefix(se.Error(), "invalid character") {
				off--
			}
			return nil, webhookErrorf("invalid JSON at offset %d: %s", off, capString(se.Error(), 120))
		}
		return nil, webhookErrorf("body is not a JSON object (got %s)", kindOf(trimmed))
	}
	if top == nil {
		return nil, webhookErrorf("body is not a JSON object (got null)")
	}
	return top, nil
}

func objectFields(raw json.RawMessage) (*fields, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, webhookErrorf("object must be a JSON object (got %s)", kindOf(raw))
	}
	return &fields{m: m, prefix: "object."}, nil
}

// objectIDOf returns the id of an object we do not otherwise decode, or "".
func objectIDOf(raw json.RawMessage) string {
	var v struct {
		ID  any `json:"_id"`
		ID0 any `json:"id"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	for _, id := range []any{v.ID, v.ID0} {
		if s, ok := id.(string); ok && s != "" {
			return s
		}
	}
	return ""
}

func decodeCase(f *fields) *Case {
	c := &Case{Type: TypeCase}
	c.ID = f.str("_id", "id")
	c.CreatedBy = f.str("_createdBy", "createdBy")
	c.UpdatedBy = f.str("_updatedBy", "updatedBy")
	c.CreatedAt = f.int("_createdAt", "createdAt")
	c.UpdatedAt = f.int("_updatedAt", "updatedAt")
	c.Number = f.int("number", "caseId")
	c.Title = f.str("title")
	c.Description = f.str("description")
	c.Severity = f.small("severity")
	c.SeverityLabel = f.str("severityLabel")
	c.StartDate = f.int("startDate")
	c.EndDate = f.int("endDate")
	c.Tags = f.strs("tags")
	c.Flag = f.bool("flag")
	c.TLP = f.small("tlp")
	c.TLPLabel = f.str("tlpLabel")
	c.PAP = f.small("pap")
	c.PAPLabel = f.str("papLabel")
	// TheHive 5's compatible shape keeps TheHive 3's Open/Resolved in
	// status and puts the TheHive 5 status (New, InProgress, ...) in
	// extendedStatus; the latter is what the v1 shape calls status.
	c.Status = f.str("extendedStatus", "status")
	c.Stage = f.str("stage")
	c.Assignee = f.str("assignee", "owner")
	return c
}

// decodeObservable also returns the id of the case embedded in the object,
// if any.
func decodeObservable(f *fields) (*Observable, string) {
	o := &Observable{Type: TypeObservable}
	o.ID = f.str("_id", "id")
	o.CreatedBy = f.str("_createdBy", "createdBy")
	o.UpdatedBy = f.str("_updatedBy", "updatedBy")
	o.CreatedAt = f.int("_createdAt", "createdAt")
	o.UpdatedAt = f.int("_updatedAt", "updatedAt")
	o.DataType = f.str("dataType")
	o.Data = f.str("data")
	o.StartDate = f.int("startDate")
	if raw, ok := f.m["attachment"]; ok && !isNull(raw) {
		o.Attachment = append(json.RawMessage(nil), raw...)
	}
	o.TLP = f.small("tlp")
	o.TLPLabel = f.str("tlpLabel")
	o.PAP = f.small("pap")
	o.PAPLabel = f.str("papLabel")
	o.Tags = f.strs("tags")
	o.IOC = f.bool("ioc")
	o.Sighted = f.bool("sighted")
	o.Message = f.str("message")

	caseID := f.str("_parent")
	if raw, ok := f.m["case"]; ok && !isNull(raw) {
		if id := objectIDOf(raw); id != "" {
			caseID = id
		}
	}
	return o, caseID
}

// fields reads typed members of a JSON object, keeping the first type error
// so decoders can read every field and check once. A member that is absent
// or null reads as the zero value: TheHive 3's shape sends null for unset
// fields (endDate, updatedAt, ...).
type fields struct {
	m      map[string]json.RawMessage
	prefix string // "object." inside the object, for error messages
	err    error
}

// lookup returns the first of keys present and not null.
func (f *fields) lookup(keys []string) (string, json.RawMessage, bool) {
	if f.err != nil {
		return "", nil, false
	}
	for _, k := range keys {
		if raw, ok := f.m[k]; ok && !isNull(raw) {
			return k, raw, true
		}
	}
	return "", nil, false
}

func (f *fields) fail(key, want string, raw json.RawMessage) {
	f.err = webhookErrorf("%s%s must be %s (got %s)", f.prefix, key, want, kindOf(raw))
}

func (f *fields) str(keys ...string) string {
	k, raw, ok := f.lookup(keys)
	if !ok {
		return ""
	}
	// Fast path for the common string without escapes: raw is already
	// valid JSON (it came out of the decoder), so it holds no bare quote
	// or control character, and only escapes and invalid UTF-8 need the
	// decoder's rewriting. Intake parses every webhook; this is its hot spot.
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' {
		if inner := raw[1 : n-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
			return string(inner)
		}
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		f.fail(k, "a string", raw)
	}
	return s
}

func (f *fields) int(keys ...string) int64 {
	k, raw, ok := f.lookup(keys)
	if !ok {
		return 0
	}
	n, ok := parseInt(raw)
	if !ok {
		f.fail(k, "an integer", raw)
	}
	return n
}

// small reads a level (TLP, PAP, severity): an integer, bounded so that a
// hostile value cannot overflow int on any platform.
func (f *fields) small(keys ...string) int {
	k, raw, ok := f.lookup(keys)
	if !ok {
		return 0
	}
	n, ok := parseInt(raw)
	if !ok || n < math.MinInt32 || n > math.MaxInt32 {
		f.fail(k, "an integer", raw)
		return 0
	}
	return int(n)
}

func (f *fields) bool(keys ...string) bool {
	k, raw, ok := f.lookup(keys)
	if !ok {
		return false
	}
	switch string(raw) {
	case "true":
		return true
	case "false":
		return false
	}
	f.fail(k, "a boolean", raw)
	return false
}

func (f *fields) strs(keys ...string) []string {
	k, raw, ok := f.lookup(keys)
	if !ok {
		return nil
	}
	var ss []string
	if raw[0] != '[' || json.Unmarshal(raw, &ss) != nil {
		f.fail(k, "an array of strings", raw)
		return nil
	}
	if len(ss) == 0 {
		return nil
	}
	return ss
}

// org reads the organisation: an object {organisationId, organisation} in
// the v1 shape, or a flat string beside a flat organisationId in TheHive 4's
// compatible shape. An id found in the object overrides *id.
func (f *fields) org(key string, id *string) string {
	_, raw, ok := f.lookup([]string{key})
	if !ok {
		return ""
	}
	if raw[0] == '"' {
		return f.str(key)
	}
	var m map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
		f.fail(key, "an object or a string", raw)
		return ""
	}
	sub := fields{m: m, prefix: f.prefix + key + "."}
	name := sub.str("organisation", "name")
	if oid := sub.str("organisationId", "_id"); oid != "" {
		*id = oid
	}
	if sub.err != nil {
		f.err = sub.err
	}
	return name
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}

// parseInt accepts a JSON number with an integral value, including forms
// like 3.0 or 1e3 that other encoders produce.
func parseInt(raw json.RawMessage) (int64, bool) {
	s := string(raw)
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return 0, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	x, err := strconv.ParseFloat(s, 64)
	if err != nil || x != math.Trunc(x) || x < math.MinInt64 || x >= math.MaxInt64 {
		return 0, false
	}
	return int64(x), true
}

// kindOf names the JSON type of a valid JSON value.
func kindOf(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// quote quotes a value for an error message, cut short so that a huge
// field is never echoed back to the sender or into the logs.
func quote(s string) string {
	return strconv.Quote(capString(s, 64))
}

func capString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
