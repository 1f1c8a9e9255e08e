package thehivetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/tqlabs/tq-mw-thehive/thehive"
)

// The query engine follows ScalliGraph's: a query is a list of operations
// applied in order to a starting set (listCase, getCase, listObservable,
// getObservable), then steps (observables, case), filter, sort, page and a
// final count. Results are JSON arrays; count is a bare number.
//
// The common shape a pager sends, listCase + filters + a single ascending
// sort on _createdAt or _updatedAt + page, runs off a sorted index starting
// at the lower bound the filters imply, so a page costs O(page), not a scan
// of every case.

type queryError struct {
	status   int
	typ, msg string
}

func badRequest(format string, args ...any) *queryError {
	return &queryError{http.StatusBadRequest, "BadRequest", fmt.Sprintf(format, args...)}
}

func (s *Server) serveQuery(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "cannot read body")
		return
	}
	var q struct {
		Query         []map[string]any `json:"query"`
		ExcludeFields []string         `json:"excludeFields"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&q); err != nil || q.Query == nil {
		s.stats.badRequests.Add(1)
		writeError(w, http.StatusBadRequest, "BadRequest", "Invalid query: a JSON object with a \"query\" array is expected")
		return
	}
	if s.opts.RecordQueries {
		s.mu.Lock()
		s.queries = append(s.queries, string(raw))
		s.mu.Unlock()
	}
	var buf bytes.Buffer
	s.mu.RLock()
	res, total, qerr := s.execute(q.Query)
	if qerr == nil {
		err = jsonEncode(&buf, res)
	}
	s.mu.RUnlock()
	if qerr != nil {
		if qerr.status == http.StatusBadRequest {
			s.stats.badRequests.Add(1)
		}
		writeError(w, qerr.status, qerr.typ, qerr.msg)
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	s.stats.queries.Add(1)
	if total >= 0 {
		w.Header().Set("X-Total", strconv.Itoa(total))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes()) //nolint:errcheck
}

func jsonEncode(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// view is one row of a query: a case or an observable.
type view interface {
	get(field string) (any, bool)
}

type caseView struct {
	s *Server
	i int
	c *thehive.Case // materialised on first use of a non-meta field
}

func (v *caseView) get(f string) (any, bool) {
	rec := &v.s.cases[v.i]
	switch f {
	case "_id":
		return caseID(v.i), true
	case "_createdAt":
		return rec.createdAt, true
	case "_updatedAt":
		return rec.updatedAt, rec.updatedAt != 0
	case "number":
		return int64(v.i + 1), true
	}
	return caseField(v.full(), f)
}

func (v *caseView) full() *thehive.Case {
	if v.c == nil {
		c := v.s.renderLabels(v.s.caseAt(v.i))
		v.c = &c
	}
	return v.c
}

type obsView struct {
	o  *thehive.Observable
	ci int
}

func (v *obsView) get(f string) (any, bool) { return obsField(v.o, f) }

func nonEmpty(s string) (any, bool) { return s, s != "" }

func caseField(c *thehive.Case, f string) (any, bool) {
	switch f {
	case "_id":
		return c.ID, true
	case "_type":
		return thehive.TypeCase, true
	case "_createdBy":
		return nonEmpty(c.CreatedBy)
	case "_updatedBy":
		return nonEmpty(c.UpdatedBy)
	case "_createdAt":
		return c.CreatedAt, true
	case "_updatedAt":
		return c.UpdatedAt, c.UpdatedAt != 0
	case "number":
		return c.Number, true
	case "title":
		return c.Title, true
	case "description":
		return c.Description, true
	case "severity":
		return int64(c.Severity), true
	case "severityLabel":
		return nonEmpty(c.SeverityLabel)
	case "startDate":
		return c.StartDate, true
	case "endDate":
		return c.EndDate, c.EndDate != 0
	case "tags":
		return c.Tags, len(c.Tags) > 0
	case "flag":
		return c.Flag, true
	case "tlp":
		return int64(c.TLP), true
	case "tlpLabel":
		return nonEmpty(c.TLPLabel)
	case "pap":
		return int64(c.PAP), true
	case "papLabel":
		return nonEmpty(c.PAPLabel)
	case "status":
		return c.Status, true
	case "stage":
		return nonEmpty(c.Stage)
	case "assignee":
		return nonEmpty(c.Assignee)
	}
	return nil, false
}

func obsField(o *thehive.Observable, f string) (any, bool) {
	switch f {
	case "_id":
		return o.ID, true
	case "_type":
		return thehive.TypeObservable, true
	case "_createdBy":
		return nonEmpty(o.CreatedBy)
	case "_updatedBy":
		return nonEmpty(o.UpdatedBy)
	case "_createdAt":
		return o.CreatedAt, true
	case "_updatedAt":
		return o.UpdatedAt, o.UpdatedAt != 0
	case "dataType":
		return o.DataType, true
	case "data":
		return nonEmpty(o.Data)
	case "startDate":
		return o.StartDate, true
	case "attachment":
		return string(o.Attachment), len(o.Attachment) > 0
	case "tlp":
		return int64(o.TLP), true
	case "tlpLabel":
		return nonEmpty(o.TLPLabel)
	case "pap":
		return int64(o.PAP), true
	case "papLabel":
		return nonEmpty(o.PAPLabel)
	case "tags":
		return o.Tags, len(o.Tags) > 0
	case "ioc":
		return o.IOC, true
	case "sighted":
		return o.Sighted, true
	case "message":
		return nonEmpty(o.Message)
	}
	return nil, false
}

func (s *Server) renderLabels(c thehive.Case) thehive.Case {
	if !s.opts.NoLabels {
		if c.TLPLabel == "" {
			c.TLPLabel = label(tlpLabels, c.TLP)
		}
		if c.PAPLabel == "" {
			c.PAPLabel = label(papLabels, c.PAP)
		}
		if c.SeverityLabel == "" {
			c.SeverityLabel = label(severityLabels, c.Severity)
		}
	}
	return c
}

// outCase adds the always-present fields of OutputCase that the agent does
// not decode, so clients meet a realistic body.
type outCase struct {
	thehive.Case
	ExtraData    map[string]any `json:"extraData"`
	NewDate      int64          `json:"newDate"`
	TimeToDetect int64          `json:"timeToDetect"`
}

func (s *Server) renderCase(c thehive.Case) outCase {
	c = s.renderLabels(c)
	return outCase{Case: c, ExtraData: map[string]any{}, NewDate: c.CreatedAt, TimeToDetect: 0}
}

type outObservable struct {
	thehive.Observable
	Reports          map[string]any `json:"reports"`
	ExtraData        map[string]any `json:"extraData"`
	IgnoreSimilarity bool           `json:"ignoreSimilarity"`
	External         bool           `json:"external"`
}

func (s *Server) renderObservable(o thehive.Observable) outObservable {
	if !s.opts.NoLabels {
		if o.TLPLabel == "" {
			o.TLPLabel = label(tlpLabels, o.TLP)
		}
		if o.PAPLabel == "" {
			o.PAPLabel = label(papLabels, o.PAP)
		}
	}
	return outObservable{Observable: o, Reports: map[string]any{}, ExtraData: map[string]any{}}
}

func opName(op map[string]any) string {
	n, _ := op["_name"].(string)
	return n
}

// execute runs a query. total is the X-Total value, or -1 when not asked.
// Callers hold mu for reading.
func (s *Server) execute(ops []map[string]any) (any, int, *queryError) {
	if len(ops) == 0 {
		return nil, -1, badRequest("Empty query")
	}
	if res, total, ok, qerr := s.fastCases(ops); ok || qerr != nil {
		return res, total, qerr
	}
	var rows []view
	kind := ""
	switch first := ops[0]; opName(first) {
	case "listCase":
		kind = thehive.TypeCase
		rows = make([]view, 0, len(s.byCreated))
		for _, i := range s.byCreated {
			rows = append(rows, &caseView{s: s, i: int(i)})
		}
	case "getCase":
		id, _ := first["idOrName"].(string)
		i, ok := s.caseIndex(id)
		if !ok {
			return nil, -1, &queryError{http.StatusNotFound, "NotFound", fmt.Sprintf("Case %s not found", id)}
		}
		kind, rows = thehive.TypeCase, []view{&caseView{s: s, i: i}}
	case "listObservable":
		kind = thehive.TypeObservable
		for _, i := range s.byCreated {
			rows = s.appendObservables(rows, int(i))
		}
	case "getObservable":
		id, _ := first["idOrName"].(string)
		v := s.findObservable(id)
		if v == nil {
			return nil, -1, &queryError{http.StatusNotFound, "NotFound", fmt.Sprintf("Observable %s not found", id)}
		}
		kind, rows = thehive.TypeObservable, []view{v}
	case "":
		return nil, -1, badRequest("Operation without _name")
	default:
		return nil, -1, badRequest("Query operation %q is unknown or cannot start a query", opName(first))
	}

	total := -1
	for n, op := range ops[1:] {
		last := n == len(ops)-2
		switch name := opName(op); name {
		case "observables":
			if kind != thehive.TypeCase {
				return nil, -1, badRequest("observables applies to cases")
			}
			var out []view
			for _, r := range rows {
				out = s.appendObservables(out, r.(*caseView).i)
			}
			kind, rows = thehive.TypeObservable, out
		case "case":
			if kind != thehive.TypeObservable {
				return nil, -1, badRequest("case applies to observables")
			}
			var out []view
			seen := map[int]bool{}
			for _, r := range rows {
				ci := r.(*obsView).ci
				if !seen[ci] {
					seen[ci] = true
					out = append(out, &caseView{s: s, i: ci})
				}
			}
			kind, rows = thehive.TypeCase, out
		case "filter":
			p, err := compileFilterOp(op)
			if err != nil {
				return nil, -1, badRequest("Invalid filter: %v", err)
			}
			out := rows[:0:0]
			for _, r := range rows {
				if p(r) {
					out = append(out, r)
				}
			}
			rows = out
		case "sort":
			keys, err := parseSort(op)
			if err != nil {
				return nil, -1, badRequest("Invalid sort: %v", err)
			}
			sort.SliceStable(rows, func(a, b int) bool { return lessRows(rows[a], rows[b], keys) })
		case "page":
			from, to, wantTotal, err := parsePage(op)
			if err != nil {
				return nil, -1, badRequest("Invalid page: %v", err)
			}
			if wantTotal {
				total = s.capTotal(len(rows))
			}
			from, to = min(from, len(rows)), min(to, len(rows))
			rows = rows[from:to]
		case "count", "limitedCount":
			if !last {
				return nil, -1, badRequest("%s must be the last operation", name)
			}
			if name == "limitedCount" {
				return int64(s.capTotal(len(rows))), total, nil
			}
			return int64(len(rows)), total, nil
		default:
			return nil, -1, badRequest("Query operation %q is unknown", name)
		}
	}
	return s.render(rows), total, nil
}

func (s *Server) capTotal(n int) int {
	if s.opts.TotalThreshold >= 0 && n > s.opts.TotalThreshold {
		return s.opts.TotalThreshold
	}
	return n
}

func (s *Server) render(rows []view) []any {
	out := make([]any, 0, len(rows))
	for _, r := range rows {
		switch v := r.(type) {
		case *caseView:
			out = append(out, s.renderCase(*v.full()))
		case *obsView:
			out = append(out, s.renderObservable(*v.o))
		}
	}
	return out
}

func (s *Server) appendObservables(rows []view, i int) []view {
	for _, o := range s.observablesOf(i) {
		rows = append(rows, &obsView{o: &o, ci: i})
	}
	return rows
}

func (s *Server) findObservable(id string) view {
	n, err := strconv.Atoi(strings.TrimPrefix(id, "~"))
	if err != nil {
		return nil
	}
	if per := s.opts.ObservablesPerCase; per > 0 && n >= obsIDBase && n < obsIDBase+s.opts.Cases*per {
		i, j := (n-obsIDBase)/per, (n-obsIDBase)%per
		o := s.genObservable(i, j, s.cases[i].createdAt)
		return &obsView{o: &o, ci: i}
	}
	for ci, list := range s.extraObs {
		for k := range list {
			if list[k].ID == id {
				o := list[k]
				return &obsView{o: &o, ci: int(ci)}
			}
		}
	}
	return nil
}

// fastCases serves listCase, filter..., sort(one timestamp key, asc)[, page]
// from the sorted index. ok is false when the query has another shape.
func (s *Server) fastCases(ops []map[string]any) (res any, total int, ok bool, qerr *queryError) {
	if opName(ops[0]) != "listCase" {
		return nil, -1, false, nil
	}
	n := 1
	var filters []map[string]any
	for n < len(ops) && opName(ops[n]) == "filter" {
		filters = append(filters, ops[n])
		n++
	}
	if n >= len(ops) || opName(ops[n]) != "sort" {
		return nil, -1, false, nil
	}
	keys, err := parseSort(ops[n])
	if err != nil || len(keys) != 1 || keys[0].desc || (keys[0].field != "_createdAt" && keys[0].field != "_updatedAt") {
		return nil, -1, false, nil
	}
	key := keys[0].field
	n++
	from, to, wantTotal := 0, -1, false
	if n < len(ops) {
		if opName(ops[n]) != "page" || n != len(ops)-1 {
			return nil, -1, false, nil
		}
		if from, to, wantTotal, err = parsePage(ops[n]); err != nil {
			return nil, -1, false, badRequest("Invalid page: %v", err)
		}
	}
	var preds []pred
	bound, bounded := int64(0), false
	for _, f := range filters {
		p, err := compileFilterOp(f)
		if err != nil {
			return nil, -1, false, badRequest("Invalid filter: %v", err)
		}
		preds = append(preds, p)
		if b, ok := lowerBound(filterExpr(f), key); ok && (!bounded || b > bound) {
			bound, bounded = b, true
		}
	}
	idx, keyOf := s.byCreated, func(i int32) int64 { return s.cases[i].createdAt }
	if key == "_updatedAt" {
		// Cases without _updatedAt sit outside this index; only a bound on
		// _updatedAt guarantees none of them can match.
		if !bounded {
			return nil, -1, false, nil
		}
		idx, keyOf = s.byUpdated, func(i int32) int64 { return s.cases[i].updatedAt }
	}
	start := 0
	if bounded {
		start = sort.Search(len(idx), func(k int) bool { return keyOf(idx[k]) >= bound })
	}
	limit := s.opts.TotalThreshold
	var rows []view
	matched := 0
	for _, i := range idx[start:] {
		v := &caseView{s: s, i: int(i)}
		okRow := true
		for _, p := range preds {
			if !p(v) {
				okRow = false
				break
			}
		}
		if !okRow {
			continue
		}
		if matched >= from && (to < 0 || matched < to) {
			rows = append(rows, v)
		}
		matched++
		if to >= 0 && matched >= to && (!wantTotal || limit >= 0 && matched >= limit) {
			break
		}
	}
	total = -1
	if wantTotal {
		total = s.capTotal(matched)
	}
	return s.render(rows), total, true, nil
}

// filterExpr is a filter operation without its _name.
func filterExpr(op map[string]any) map[string]any {
	e := make(map[string]any, len(op))
	for k, v := range op {
		if k != "_name" {
			e[k] = v
		}
	}
	return e
}

func compileFilterOp(op map[string]any) (pred, error) { return compileFilter(filterExpr(op)) }

type pred func(view) bool

func compileFilter(e any) (pred, error) {
	m, ok := e.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, fmt.Errorf("an expression is an object with one operator, got %s", brief(e))
	}
	for op, arg := range m {
		return compileOp(op, arg)
	}
	panic("unreachable")
}

func brief(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 80 {
		b = append(b[:80], "…"...)
	}
	return string(b)
}

func compileOp(op string, arg any) (pred, error) {
	switch op {
	case "_and", "_or":
		list, ok := arg.([]any)
		if !ok {
			return nil, fmt.Errorf("%s takes an array", op)
		}
		ps := make([]pred, len(list))
		for k, e := range list {
			p, err := compileFilter(e)
			if err != nil {
				return nil, err
			}
			ps[k] = p
		}
		if op == "_and" {
			return func(v view) bool {
				for _, p := range ps {
					if !p(v) {
						return false
					}
				}
				return true
			}, nil
		}
		return func(v view) bool {
			for _, p := range ps {
				if p(v) {
					return true
				}
			}
			return false
		}, nil
	case "_not":
		p, err := compileFilter(arg)
		if err != nil {
			return nil, err
		}
		return func(v view) bool { return !p(v) }, nil
	case "_any":
		return func(view) bool { return true }, nil
	case "_id":
		id, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("_id takes a string")
		}
		return func(v view) bool { got, _ := v.get("_id"); return got == id }, nil
	case "_has", "_contains":
		f, ok := arg.(string)
		if m, isMap := arg.(map[string]any); isMap {
			f, ok = m["_field"].(string)
		}
		if !ok || f == "" {
			return nil, fmt.Errorf("%s takes a field name", op)
		}
		return func(v view) bool { _, ok := v.get(f); return ok }, nil
	case "_lt", "_gt", "_lte", "_gte", "_eq", "_ne", "_is":
		f, lit, err := fieldValue(op, arg)
		if err != nil {
			return nil, err
		}
		return func(v view) bool {
			got, ok := v.get(f)
			if !ok {
				return false
			}
			return matchCmp(got, op, lit)
		}, nil
	case "_startsWith", "_endsWith", "_like", "_match":
		f, lit, err := fieldValue(op, arg)
		if err != nil {
			return nil, err
		}
		pat, ok := lit.(string)
		if !ok {
			return nil, fmt.Errorf("%s takes a string value", op)
		}
		var test func(string) bool
		switch op {
		case "_startsWith":
			test = func(s string) bool { return strings.HasPrefix(s, pat) }
		case "_endsWith":
			test = func(s string) bool { return strings.HasSuffix(s, pat) }
		case "_like":
			re := regexp.MustCompile("(?is)^" + strings.ReplaceAll(regexp.QuoteMeta(pat), `\*`, ".*") + "$")
			test = re.MatchString
		case "_match":
			lp := strings.ToLower(pat)
			test = func(s string) bool { return strings.Contains(strings.ToLower(s), lp) }
		}
		return func(v view) bool {
			got, ok := v.get(f)
			if !ok {
				return false
			}
			return anyString(got, test)
		}, nil
	case "_between":
		m, ok := arg.(map[string]any)
		f, _ := m["_field"].(string)
		lo, hasLo := m["_from"]
		hi, hasHi := m["_to"]
		if !ok || f == "" || !hasLo || !hasHi {
			return nil, fmt.Errorf("_between takes _field, _from and _to")
		}
		return func(v view) bool {
			got, ok := v.get(f)
			return ok && matchCmp(got, "_gte", lo) && matchCmp(got, "_lt", hi)
		}, nil
	case "_in":
		m, ok := arg.(map[string]any)
		f, _ := m["_field"].(string)
		vals, okv := m["_values"].([]any)
		if !ok || f == "" || !okv {
			return nil, fmt.Errorf("_in takes _field and _values")
		}
		// Ids and other strings go through a set: the pager sends every id
		// seen at a boundary timestamp.
		strs := map[string]bool{}
		var others []any
		for _, x := range vals {
			if sx, ok := x.(string); ok {
				strs[sx] = true
			} else {
				others = append(others, x)
			}
		}
		return func(v view) bool {
			got, ok := v.get(f)
			if !ok {
				return false
			}
			if anyString(got, func(s string) bool { return strs[s] }) {
				return true
			}
			for _, x := range others {
				if matchCmp(got, "_eq", x) {
					return true
				}
			}
			return false
		}, nil
	}
	return nil, fmt.Errorf("unknown operator %q", op)
}

// fieldValue reads {"_field": f, "_value": v}, or the deprecated {f: v}.
func fieldValue(op string, arg any) (string, any, error) {
	m, ok := arg.(map[string]any)
	if !ok {
		return "", nil, fmt.Errorf("%s takes an object", op)
	}
	if f, ok := m["_field"].(string); ok {
		v, has := m["_value"]
		if !has || f == "" {
			return "", nil, fmt.Errorf("%s needs _field and _value", op)
		}
		return f, v, nil
	}
	if len(m) == 1 {
		for f, v := range m {
			return f, v, nil
		}
	}
	return "", nil, fmt.Errorf("%s needs _field and _value", op)
}

func anyString(got any, test func(string) bool) bool {
	switch g := got.(type) {
	case string:
		return test(g)
	case []string:
		for _, x := range g {
			if test(x) {
				return true
			}
		}
	}
	return false
}

func matchCmp(got any, op string, lit any) bool {
	if list, ok := got.([]string); ok {
		if op == "_ne" {
			for _, x := range list {
				if c, ok := compareLit(x, lit); !ok || c == 0 {
					return false
				}
			}
			return true
		}
		for _, x := range list {
			if matchCmp(x, op, lit) {
				return true
			}
		}
		return false
	}
	c, ok := compareLit(got, lit)
	if !ok {
		return op == "_ne"
	}
	switch op {
	case "_lt":
		return c < 0
	case "_gt":
		return c > 0
	case "_lte":
		return c <= 0
	case "_gte":
		return c >= 0
	case "_ne":
		return c != 0
	}
	return c == 0 // _eq, _is
}

// compareLit compares a field value with a literal from the query.
func compareLit(got, lit any) (int, bool) {
	switch g := got.(type) {
	case int64:
		switch l := lit.(type) {
		case json.Number:
			if n, err := l.Int64(); err == nil {
				return cmpOrdered(g, n), true
			}
			if f, err := l.Float64(); err == nil {
				return cmpOrdered(float64(g), f), true
			}
		case float64:
			return cmpOrdered(float64(g), l), true
		}
	case string:
		if l, ok := lit.(string); ok {
			return strings.Compare(g, l), true
		}
	case bool:
		if l, ok := lit.(bool); ok {
			return cmpBool(g, l), true
		}
	}
	return 0, false
}

func cmpOrdered[T int64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// lowerBound is the smallest value of key that can satisfy e, if e implies
// one. Keys are integers (timestamps), so _gt v bounds at v (inclusive is
// looser, and the predicate still decides).
func lowerBound(e map[string]any, key string) (int64, bool) {
	if len(e) != 1 {
		return 0, false
	}
	for op, arg := range e {
		switch op {
		case "_gte", "_gt", "_eq", "_is":
			f, lit, err := fieldValue(op, arg)
			if err != nil || f != key {
				return 0, false
			}
			return litInt(lit)
		case "_between":
			m, _ := arg.(map[string]any)
			if f, _ := m["_field"].(string); f != key {
				return 0, false
			}
			return litInt(m["_from"])
		case "_and":
			list, _ := arg.([]any)
			best, found := int64(0), false
			for _, x := range list {
				sub, _ := x.(map[string]any)
				if b, ok := lowerBound(sub, key); ok && (!found || b > best) {
					best, found = b, true
				}
			}
			return best, found
		case "_or":
			list, _ := arg.([]any)
			if len(list) == 0 {
				return 0, false
			}
			var best int64
			for k, x := range list {
				sub, _ := x.(map[string]any)
				b, ok := lowerBound(sub, key)
				if !ok {
					return 0, false
				}
				if k == 0 || b < best {
					best = b
				}
			}
			return best, true
		}
	}
	return 0, false
}

func litInt(lit any) (int64, bool) {
	switch l := lit.(type) {
	case json.Number:
		if n, err := l.Int64(); err == nil {
			return n, true
		}
		if f, err := l.Float64(); err == nil {
			return int64(f), true // floor for positive timestamps: a looser bound
		}
	case float64:
		return int64(l), true
	}
	return 0, false
}

type sortKey struct {
	field string
	desc  bool
}

func parseSort(op map[string]any) ([]sortKey, error) {
	list, ok := op["_fields"].([]any)
	if !ok {
		return nil, fmt.Errorf("sort takes _fields, an array of {field: \"asc\"|\"desc\"}")
	}
	keys := make([]sortKey, 0, len(list))
	for _, x := range list {
		m, ok := x.(map[string]any)
		if !ok || len(m) != 1 {
			return nil, fmt.Errorf("each sort field is an object with one key")
		}
		for f, d := range m {
			dir, _ := d.(string)
			switch dir {
			case "asc", "desc":
			default:
				return nil, fmt.Errorf("sort direction of %s must be asc or desc", f)
			}
			keys = append(keys, sortKey{f, dir == "desc"})
		}
	}
	return keys, nil
}

// lessRows orders on keys; a row without the field sorts last either way
// (as Elasticsearch's default missing: _last).
func lessRows(a, b view, keys []sortKey) bool {
	for _, k := range keys {
		va, oka := a.get(k.field)
		vb, okb := b.get(k.field)
		switch {
		case !oka && !okb:
			continue
		case !oka:
			return false
		case !okb:
			return true
		}
		c := compareValues(va, vb)
		if c == 0 {
			continue
		}
		if k.desc {
			return c > 0
		}
		return c < 0
	}
	return false
}

func compareValues(a, b any) int {
	switch x := a.(type) {
	case int64:
		if y, ok := b.(int64); ok {
			return cmpOrdered(x, y)
		}
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y)
		}
	case bool:
		if y, ok := b.(bool); ok {
			return cmpBool(x, y)
		}
	case []string:
		if y, ok := b.([]string); ok {
			return strings.Compare(strings.Join(x, "\x00"), strings.Join(y, "\x00"))
		}
	}
	return 0
}

func parsePage(op map[string]any) (from, to int, total bool, err error) {
	f, okf := litInt(op["from"])
	t, okt := litInt(op["to"])
	if !okf || !okt || f < 0 || t < f {
		return 0, 0, false, fmt.Errorf("page takes from and to with 0 <= from <= to")
	}
	if xs, ok := op["extraData"].([]any); ok {
		for _, x := range xs {
			if x == "total" {
				total = true
			}
		}
	}
	return int(f), int(t), total, nil
}
