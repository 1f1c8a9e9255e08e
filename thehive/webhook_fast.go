package thehive

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"unicode/utf8"
)

// The fast path of ParseWebhook. It validates the body and records where
// the members the slow path reads lie, in a single pass and without copying
// them, then applies the slow path's rules to those raw values through the
// slow path's own helpers (parseInt, objectIDOf, normaliseObjectType, ...).
//
// It returns ok only when it is certain the slow path would return the very
// same Message. Anything else declines, and the slow path runs: bodies the
// slow path refuses (so every error message comes from one place), member
// names written with escapes (the slow path would match them once
// unescaped), nesting deeper than fastMaxDepth.
//
// The slow path looks members up in maps, which the JSON decoder fills
// case-sensitively with the last of duplicate names winning; the slots
// below are filled the same way: exact names, the last value overwriting.

// fastMaxDepth bounds the nesting the fast path follows; encoding/json
// refuses more than 10000, and no webhook nests more than a few levels.
const fastMaxDepth = 256

// Which members of which object a parse records.
const (
	kindSkip = iota // validate only
	kindTop         // the audit message
	kindObj         // its object
	kindOrg         // its organisation, when an object
)

// Slots of the audit message's members.
const (
	topType = iota
	topID
	topID0
	topAction
	topOperation
	topObjectType
	topObjectID
	topRootID
	topCreatedAt
	topCreatedAt0
	topStartDate
	topOrganisationID
	topOrganisation
	topObject
	numTop
)

func topSlot(k []byte) int {
	switch string(k) {
	case "_type":
		return topType
	case "_id":
		return topID
	case "id":
		return topID0
	case "action":
		return topAction
	case "operation":
		return topOperation
	case "objectType":
		return topObjectType
	case "objectId":
		return topObjectID
	case "rootId":
		return topRootID
	case "_createdAt":
		return topCreatedAt
	case "createdAt":
		return topCreatedAt0
	case "startDate":
		return topStartDate
	case "organisationId":
		return topOrganisationID
	case "organisation":
		return topOrganisation
	case "object":
		return topObject
	}
	return -1
}

// Slots of the object's members: the union of what decodeCase and
// decodeObservable read.
const (
	objID = iota
	objID0
	objCreatedBy
	objCreatedBy0
	objUpdatedBy
	objUpdatedBy0
	objCreatedAt
	objCreatedAt0
	objUpdatedAt
	objUpdatedAt0
	objNumber
	objCaseID
	objTitle
	objDescription
	objSeverity
	objSeverityLabel
	objStartDate
	objEndDate
	objTags
	objFlag
	objTLP
	objTLPLabel
	objPAP
	objPAPLabel
	objExtendedStatus
	objStatus
	objStage
	objAssignee
	objOwner
	objDataType
	objData
	objAttachment
	objIOC
	objSighted
	objMessage
	objParent
	objCase
	numObj
)

func objSlot(k []byte) int {
	switch string(k) {
	case "_id":
		return objID
	case "id":
		return objID0
	case "_createdBy":
		return objCreatedBy
	case "createdBy":
		return objCreatedBy0
	case "_updatedBy":
		return objUpdatedBy
	case "updatedBy":
		return objUpdatedBy0
	case "_createdAt":
		return objCreatedAt
	case "createdAt":
		return objCreatedAt0
	case "_updatedAt":
		return objUpdatedAt
	case "updatedAt":
		return objUpdatedAt0
	case "number":
		return objNumber
	case "caseId":
		return objCaseID
	case "title":
		return objTitle
	case "description":
		return objDescription
	case "severity":
		return objSeverity
	case "severityLabel":
		return objSeverityLabel
	case "startDate":
		return objStartDate
	case "endDate":
		return objEndDate
	case "tags":
		return objTags
	case "flag":
		return objFlag
	case "tlp":
		return objTLP
	case "tlpLabel":
		return objTLPLabel
	case "pap":
		return objPAP
	case "papLabel":
		return objPAPLabel
	case "extendedStatus":
		return objExtendedStatus
	case "status":
		return objStatus
	case "stage":
		return objStage
	case "assignee":
		return objAssignee
	case "owner":
		return objOwner
	case "dataType":
		return objDataType
	case "data":
		return objData
	case "attachment":
		return objAttachment
	case "ioc":
		return objIOC
	case "sighted":
		return objSighted
	case "message":
		return objMessage
	case "_parent":
		return objParent
	case "case":
		return objCase
	}
	return -1
}

// Slots of the organisation object's members (see fields.org).
const (
	orgName = iota
	orgName0
	orgID
	orgID0
	numOrg
)

func orgSlot(k []byte) int {
	switch string(k) {
	case "organisation":
		return orgName
	case "name":
		return orgName0
	case "organisationId":
		return orgID
	case "_id":
		return orgID0
	}
	return -1
}

// fastScan is a strict JSON validator (the grammar encoding/json accepts)
// that records the raw values of the members it is asked for. A nil slot
// is an absent member.
type fastScan struct {
	data []byte
	pos  int
	top  [numTop]json.RawMessage
	obj  [numObj]json.RawMessage
	org  [numOrg]json.RawMessage
}

func (s *fastScan) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// value scans one value starting at s.pos (whitespace already skipped).
func (s *fastScan) value(depth int) bool {
	if s.pos >= len(s.data) {
		return false
	}
	switch c := s.data[s.pos]; c {
	case '{':
		return s.object(kindSkip, depth+1)
	case '[':
		return s.array(depth + 1)
	case '"':
		_, ok := s.string()
		return ok
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if c == '-' || ('0' <= c && c <= '9') {
			return s.number()
		}
		return false
	}
}

func (s *fastScan) literal(lit string) bool {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(lit)) {
		return false
	}
	s.pos += len(lit)
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?; what follows
// is checked by the enclosing object or array.
func (s *fastScan) number() bool {
	d, i := s.data, s.pos
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		for i++; i < len(d) && isDigit(d[i]); i++ {
		}
	default:
		return false
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || !isDigit(d[i]) {
			return false
		}
		for i++; i < len(d) && isDigit(d[i]); i++ {
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDigit(d[i]) {
			return false
		}
		for i++; i < len(d) && isDigit(d[i]); i++ {
		}
	}
	s.pos = i
	return true
}

func isHex(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// string scans a string starting at its opening quote and reports whether
// it holds an escape. Bytes from 0x80 up are accepted whatever they encode,
// as encoding/json does.
func (s *fastScan) string() (escaped, ok bool) {
	d := s.data
	for i := s.pos + 1; i < len(d); {
		switch c := d[i]; {
		case c == '"':
			s.pos = i + 1
			return escaped, true
		case c == '\\':
			escaped = true
			if i+1 >= len(d) {
				return false, false
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) || !isHex(d[i+2]) || !isHex(d[i+3]) || !isHex(d[i+4]) || !isHex(d[i+5]) {
					return false, false
				}
				i += 6
			default:
				return false, false
			}
		case c < 0x20:
			return false, false
		default:
			i++
		}
	}
	return false, false
}

func (s *fastScan) array(depth int) bool {
	if depth > fastMaxDepth {
		return false
	}
	s.pos++ // '['
	s.ws()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return true
	}
	for {
		if !s.value(depth) {
			return false
		}
		s.ws()
		if s.pos >= len(s.data) {
			return false
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.ws()
		case ']':
			s.pos++
			return true
		default:
			return false
		}
	}
}

// object scans an object starting at its brace, recording the members of
// kind into their slots.
func (s *fastScan) object(kind, depth int) bool {
	if depth > fastMaxDepth {
		return false
	}
	s.pos++ // '{'
	s.ws()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return true
	}
	for {
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return false
		}
		keyStart := s.pos + 1
		escaped, ok := s.string()
		if !ok {
			return false
		}
		key := s.data[keyStart : s.pos-1]
		var slots []json.RawMessage
		slot := -1
		switch kind {
		case kindTop:
			slots, slot = s.top[:], topSlot(key)
		case kindObj:
			slots, slot = s.obj[:], objSlot(key)
		case kindOrg:
			slots, slot = s.org[:], orgSlot(key)
		}
		if kind != kindSkip && escaped {
			// Unescaped, it might name a member we read.
			return false
		}
		s.ws()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return false
		}
		s.pos++
		s.ws()
		start := s.pos
		switch {
		case s.pos >= len(s.data):
			return false
		case kind == kindTop && slot == topObject && s.data[s.pos] == '{':
			// Of duplicate objects the last is parsed last, so its
			// members are the ones left in the slots.
			s.obj = [numObj]json.RawMessage{}
			ok = s.object(kindObj, depth+1)
		case kind == kindTop && slot == topOrganisation && s.data[s.pos] == '{':
			s.org = [numOrg]json.RawMessage{}
			ok = s.object(kindOrg, depth+1)
		default:
			ok = s.value(depth)
		}
		if !ok {
			return false
		}
		if slot >= 0 {
			slots[slot] = s.data[start:s.pos:s.pos]
		}
		s.ws()
		if s.pos >= len(s.data) {
			return false
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.ws()
		case '}':
			s.pos++
			return true
		default:
			return false
		}
	}
}

// fastFields mirrors fields over recorded slots: it reads the first of the
// given members present and not null, and notes (bad) any read the slow
// path would refuse.
type fastFields struct {
	v   []json.RawMessage
	bad bool
}

func (f *fastFields) lookup(keys []int) json.RawMessage {
	for _, k := range keys {
		if raw := f.v[k]; raw != nil && !isNull(raw) {
			return raw
		}
	}
	return nil
}

func (f *fastFields) str(keys ...int) string {
	raw := f.lookup(keys)
	if raw == nil {
		return ""
	}
	if raw[0] != '"' {
		f.bad = true
		return ""
	}
	if inner := raw[1 : len(raw)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner)
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		f.bad = true
	}
	return s
}

func (f *fastFields) int(keys ...int) int64 {
	raw := f.lookup(keys)
	if raw == nil {
		return 0
	}
	n, ok := parseInt(raw)
	if !ok {
		f.bad = true
	}
	return n
}

func (f *fastFields) small(keys ...int) int {
	raw := f.lookup(keys)
	if raw == nil {
		return 0
	}
	n, ok := parseInt(raw)
	if !ok || n < math.MinInt32 || n > math.MaxInt32 {
		f.bad = true
		return 0
	}
	return int(n)
}

func (f *fastFields) bool(keys ...int) bool {
	raw := f.lookup(keys)
	if raw == nil {
		return false
	}
	switch string(raw) {
	case "true":
		return true
	case "false":
		return false
	}
	f.bad = true
	return false
}

func (f *fastFields) strs(keys ...int) []string {
	raw := f.lookup(keys)
	if raw == nil {
		return nil
	}
	if raw[0] != '[' {
		f.bad = true
		return nil
	}
	if ss, ok := simpleStrings(raw); ok {
		return ss
	}
	var ss []string
	if json.Unmarshal(raw, &ss) != nil {
		f.bad = true
		return nil
	}
	if len(ss) == 0 {
		return nil
	}
	return ss
}

// simpleStrings decodes a valid JSON array whose elements are all strings
// without escapes, in valid UTF-8; ok is false for any other array. An
// empty array is nil, as fields.strs returns it.
func simpleStrings(raw []byte) (ss []string, ok bool) {
	n := 0
	for pass := 0; pass < 2; pass++ {
		if pass == 1 {
			if n == 0 {
				return nil, true
			}
			ss = make([]string, 0, n)
		}
		for i := 1; ; {
			for raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r' || raw[i] == ',' {
				i++
			}
			if raw[i] == ']' {
				break
			}
			if raw[i] != '"' {
				return nil, false
			}
			end := bytes.IndexByte(raw[i+1:], '"')
			inner := raw[i+1 : i+1+end]
			if pass == 0 {
				if bytes.IndexByte(inner, '\\') >= 0 || !utf8.Valid(inner) {
					return nil, false
				}
				n++
			} else {
				ss = append(ss, string(inner))
			}
			i += end + 2
		}
	}
	return ss, true
}

// org mirrors fields.org: the organisation member is a string or an object
// whose members the scan recorded.
func (f *fastFields) org(s *fastScan, id *string) string {
	raw := f.lookup([]int{topOrganisation})
	if raw == nil {
		return ""
	}
	switch raw[0] {
	case '"':
		return f.str(topOrganisation)
	case '{':
		sub := fastFields{v: s.org[:]}
		name := sub.str(orgName, orgName0)
		if oid := sub.str(orgID, orgID0); oid != "" {
			*id = oid
		}
		if sub.bad {
			f.bad = true
		}
		return name
	}
	f.bad = true
	return ""
}

// parseWebhookFast is parseWebhookSlow for the bodies it accepts (ok), step
// by step; see there for the reasons of each rule.
func parseWebhookFast(body []byte) (m *Message, ok bool) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, false
	}
	var s fastScan
	s.data = trimmed
	if !s.object(kindTop, 1) || s.pos != len(trimmed) {
		return nil, false
	}
	f := fastFields{v: s.top[:]}

	if t := f.str(topType); t != "" && !strings.EqualFold(t, "audit") {
		return nil, false
	}
	m = &Message{}
	m.AuditID = f.str(topID, topID0)
	rawAction := f.str(topAction, topOperation)
	rawType := f.str(topObjectType)
	m.ObjectID = f.str(topObjectID)
	m.RootID = f.str(topRootID)
	m.CreatedAt = f.int(topCreatedAt, topCreatedAt0, topStartDate)
	m.OrganisationID = f.str(topOrganisationID)
	m.Organisation = f.org(&s, &m.OrganisationID)
	if f.bad || rawType == "" || rawAction == "" {
		return nil, false
	}
	m.ObjectType = normaliseObjectType(rawType)
	if a, ok := actions[strings.ToLower(rawAction)]; ok {
		m.Action = a
	} else if IsStored(m.ObjectType) {
		return nil, false
	} else {
		m.Action = strings.ToLower(rawAction)
	}

	rawObj := s.top[topObject]
	hasObj := rawObj != nil && !isNull(rawObj) && m.Action != ActionDelete

	if !IsStored(m.ObjectType) {
		if m.ObjectID == "" && hasObj {
			m.ObjectID = objectIDOf(rawObj)
		}
		if m.ObjectID == "" {
			return nil, false
		}
		return m, true
	}

	if !hasObj {
		if m.Action == ActionCreate || m.Action == ActionUpdate || m.Action == ActionMerge || m.ObjectID == "" {
			return nil, false
		}
		return m, true
	}
	if rawObj[0] != '{' {
		return nil, false
	}
	obj := fastFields{v: s.obj[:]}
	var id, caseID string
	switch m.ObjectType {
	case TypeCase:
		m.Case = fastCase(&obj)
		id = m.Case.ID
	case TypeObservable:
		m.Observable, caseID = fastObservable(&obj)
		id = m.Observable.ID
	}
	if obj.bad {
		return nil, false
	}

	switch {
	case m.ObjectID == "" && id == "":
		return nil, false
	case m.ObjectID == "":
		m.ObjectID = id
	case id == "":
		if m.Case != nil {
			m.Case.ID = m.ObjectID
		}
		if m.Observable != nil {
			m.Observable.ID = m.ObjectID
		}
	case id != m.ObjectID:
		return nil, false
	}

	if m.RootID == "" {
		switch m.ObjectType {
		case TypeCase:
			m.RootID = m.ObjectID
		case TypeObservable:
			m.RootID = caseID
		}
	}
	if m.ObjectType == TypeObservable && m.RootID == "" {
		// The action is not a delete here: deletes have no object.
		return nil, false
	}
	return m, true
}

// fastCase mirrors decodeCase.
func fastCase(f *fastFields) *Case {
	c := &Case{Type: TypeCase}
	c.ID = f.str(objID, objID0)
	c.CreatedBy = f.str(objCreatedBy, objCreatedBy0)
	c.UpdatedBy = f.str(objUpdatedBy, objUpdatedBy0)
	c.CreatedAt = f.int(objCreatedAt, objCreatedAt0)
	c.UpdatedAt = f.int(objUpdatedAt, objUpdatedAt0)
	c.Number = f.int(objNumber, objCaseID)
	c.Title = f.str(objTitle)
	c.Description = f.str(objDescription)
	c.Severity = f.small(objSeverity)
	c.SeverityLabel = f.str(objSeverityLabel)
	c.StartDate = f.int(objStartDate)
	c.EndDate = f.int(objEndDate)
	c.Tags = f.strs(objTags)
	c.Flag = f.bool(objFlag)
	c.TLP = f.small(objTLP)
	c.TLPLabel = f.str(objTLPLabel)
	c.PAP = f.small(objPAP)
	c.PAPLabel = f.str(objPAPLabel)
	c.Status = f.str(objExtendedStatus, objStatus)
	c.Stage = f.str(objStage)
	c.Assignee = f.str(objAssignee, objOwner)
	return c
}

// fastObservable mirrors decodeObservable.
func fastObservable(f *fastFields) (*Observable, string) {
	o := &Observable{Type: TypeObservable}
	o.ID = f.str(objID, objID0)
	o.CreatedBy = f.str(objCreatedBy, objCreatedBy0)
	o.UpdatedBy = f.str(objUpdatedBy, objUpdatedBy0)
	o.CreatedAt = f.int(objCreatedAt, objCreatedAt0)
	o.UpdatedAt = f.int(objUpdatedAt, objUpdatedAt0)
	o.DataType = f.str(objDataType)
	o.Data = f.str(objData)
	o.StartDate = f.int(objStartDate)
	if raw := f.v[objAttachment]; raw != nil && !isNull(raw) {
		o.Attachment = append(json.RawMessage(nil), raw...)
	}
	o.TLP = f.small(objTLP)
	o.TLPLabel = f.str(objTLPLabel)
	o.PAP = f.small(objPAP)
	o.PAPLabel = f.str(objPAPLabel)
	o.Tags = f.strs(objTags)
	o.IOC = f.bool(objIOC)
	o.Sighted = f.bool(objSighted)
	o.Message = f.str(objMessage)

	caseID := f.str(objParent)
	if raw := f.v[objCase]; raw != nil && !isNull(raw) {
		if id := objectIDOf(raw); id != "" {
			caseID = id
		}
	}
	return o, caseID
}
