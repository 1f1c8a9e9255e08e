package thehive

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"slices"
	"time"
)

// Cursor fields: the keys a run pages on.
const (
	FieldCreatedAt = "_createdAt"
	FieldUpdatedAt = "_updatedAt"
)

// phaseUpdated is the second pass of an incremental run (see Cursor).
const phaseUpdated = "updated"

// Cursor is a resume point of a case listing, stored as the checkpoint after
// every page. Everything before it has been yielded.
//
// Paging is keyset paging with from:0 always (thehive.md §2.5): each request
// asks for rows whose key is >= Value, minus the ids already yielded at
// exactly Value:
//
//	_or(_gt key Value, _and(_eq key Value, _not(_in _id SeenIDs)))
//
// sorted on the key ascending. A full page therefore either moves Value
// forward or adds at least one id to SeenIDs, so a run of any number of cases
// sharing one timestamp still makes progress, however it straddles pages,
// without relying on a secondary sort on _id (unverified on TheHive's
// index). The cost is a filter that lists every id seen at one timestamp,
// which stays small unless a bulk import gave thousands of cases one
// millisecond.
//
// Field selects the kind of run:
//
//   - FieldCreatedAt, a full backfill: one pass on _createdAt, which never
//     changes, so every case is yielded exactly once.
//   - FieldUpdatedAt, an incremental run over cases changed since Since.
//     TheHive sorts on one field and omits _updatedAt on never-updated
//     cases, where a sort puts them is undocumented. So the run makes two
//     passes: first the never-updated cases created since Since, keyed on
//     _createdAt (filter _not(_has _updatedAt)); then (Phase "updated") the
//     updated cases, keyed on _updatedAt. A case updated while the run goes
//     on gets an _updatedAt later than any yet consumed, so the second pass
//     still reaches it and yields it at its latest state (possibly a second
//     time): nothing is skipped, repeats are possible.
//
// Changes racing the end of a pass (a case created during the second pass)
// belong to the next run: when Done, StartedAt is the server time at the
// run's first answer, and NextSync starts the next run from there.
type Cursor struct {
	Field   string   `json:"field"`
	Value   int64    `json:"value"`    // key of the last row yielded (ms), or where the pass starts
	SeenIDs []string `json:"seen_ids"` // ids already yielded with key == Value
	Done    bool     `json:"done"`

	Since     int64  `json:"since,omitempty"`      // incremental runs: the lower bound of both passes
	Phase     string `json:"phase,omitempty"`      // incremental runs: "" (never-updated pass) or "updated"
	StartedAt int64  `json:"started_at,omitempty"` // server time (ms, from the Date header) of the run's first answer
}

// BackfillCursor starts a full backfill of every case.
func BackfillCursor() Cursor { return Cursor{Field: FieldCreatedAt} }

// SyncCursor starts an incremental run over cases created or updated at or
// after since (ms since epoch).
func SyncCursor(since int64) Cursor {
	return Cursor{Field: FieldUpdatedAt, Value: since, Since: since}
}

// NextSync is the start of the incremental run that follows a finished one:
// from the time the finished run started, minus overlap for clock skew
// between TheHive nodes and commit lag.
func (c Cursor) NextSync(overlap time.Duration) Cursor {
	since := c.StartedAt - overlap.Milliseconds()
	if c.StartedAt == 0 {
		since = c.Since
	}
	return SyncCursor(max(0, since))
}

// CasePage is one page of cases and the cursor that resumes after it.
type CasePage struct {
	Cases  []Case
	Cursor Cursor
}

// pass is the keyset in effect for the cursor's current pass.
func (c Cursor) pass() (key string, base Expr) {
	if c.Field == FieldUpdatedAt && c.Phase != phaseUpdated {
		return FieldCreatedAt, Not(Has(FieldUpdatedAt))
	}
	return c.Field, nil
}

// keysetFilter is the filter of one page request (see Cursor).
func keysetFilter(key string, value int64, seen []string, base Expr) Expr {
	var f Expr
	if len(seen) == 0 {
		f = Gte(key, value)
	} else {
		ids := make([]any, len(seen))
		for i, id := range seen {
			ids[i] = id
		}
		f = Or(Gt(key, value), And(Eq(key, value), Not(In("_id", ids...))))
	}
	if base != nil {
		f = And(base, f)
	}
	return f
}

// advance moves a keyset position past rows whose keys are given.
func advance(value int64, seen []string, ids []string, keys []int64) (int64, []string) {
	top := value
	for _, k := range keys {
		top = max(top, k)
	}
	var next []string
	if top == value {
		next = slices.Clone(seen)
	}
	for i, k := range keys {
		if k == top && !slices.Contains(next, ids[i]) {
			next = append(next, ids[i])
		}
	}
	return top, next
}

// serverTime reads the Date header, truncated to the second by HTTP, which
// errs on the early (safe) side for a "since" bound.
func serverTime(h http.Header) int64 {
	if t, err := http.ParseTime(h.Get("Date")); err == nil {
		return t.UnixMilli()
	}
	return time.Now().UnixMilli()
}

const defaultPageSize = 100

// Cases lists cases from cur, one page of pageSize per request, without
// holding more than one page. Each yielded page carries the cursor that
// resumes right after it; the last page (possibly empty) has Cursor.Done.
// A page shorter than pageSize ends a pass: TheHive's X-Total is capped and
// never used. On error the yielded page is empty, its Cursor is the last
// good position, and the sequence ends. A Done cursor yields nothing.
func (c *Client) Cases(ctx context.Context, cur Cursor, pageSize int) iter.Seq2[CasePage, error] {
	return func(yield func(CasePage, error) bool) {
		if cur.Done {
			return
		}
		if pageSize <= 0 {
			pageSize = defaultPageSize
		}
		if cur.Field != FieldCreatedAt && cur.Field != FieldUpdatedAt {
			yield(CasePage{Cursor: cur}, fmt.Errorf("thehive: list cases: invalid cursor field %q", cur.Field))
			return
		}
		for {
			key, base := cur.pass()
			ops := []Op{
				ListCase(),
				Filter(keysetFilter(key, cur.Value, cur.SeenIDs, base)),
				Sort(key, "asc"),
				Page(0, pageSize),
			}
			var cases []Case
			hdr, err := c.query(ctx, "agent-cases", ops, &cases)
			if err != nil {
				yield(CasePage{Cursor: cur}, fmt.Errorf("thehive: list cases from %s %d: %w", key, cur.Value, err))
				return
			}
			next := cur
			if next.StartedAt == 0 {
				next.StartedAt = serverTime(hdr)
			}
			ids := make([]string, 0, len(cases))
			keys := make([]int64, 0, len(cases))
			for i := range cases {
				k := cases[i].CreatedAt
				if key == FieldUpdatedAt {
					k = cases[i].UpdatedAt
				}
				ids, keys = append(ids, cases[i].ID), append(keys, k)
			}
			next.Value, next.SeenIDs = advance(cur.Value, cur.SeenIDs, ids, keys)
			if len(cases) < pageSize {
				if cur.Field == FieldUpdatedAt && cur.Phase != phaseUpdated {
					next.Phase, next.Value, next.SeenIDs = phaseUpdated, cur.Since, nil
				} else {
					next.Done, next.SeenIDs = true, nil
				}
			}
			if len(cases) > 0 || next.Done {
				if !yield(CasePage{Cases: cases, Cursor: next}, nil) {
					return
				}
			}
			if next.Done {
				return
			}
			cur = next
		}
	}
}

// CaseObservables lists a case's observables a page at a time, keyset-paged
// on _createdAt the same way as Cases. It ends after the first short page;
// an empty case yields nothing. An unknown case yields an error for which
// IsNotFound holds.
func (c *Client) CaseObservables(ctx context.Context, caseID string, pageSize int) iter.Seq2[[]Observable, error] {
	return func(yield func([]Observable, error) bool) {
		if caseID == "" {
			yield(nil, errors.New("thehive: list observables: empty case id"))
			return
		}
		if pageSize <= 0 {
			pageSize = defaultPageSize
		}
		var value int64
		var seen []string
		for {
			ops := []Op{
				GetCase(caseID),
				Observables(),
				Filter(keysetFilter(FieldCreatedAt, value, seen, nil)),
				Sort(FieldCreatedAt, "asc"),
				Page(0, pageSize),
			}
			var obs []Observable
			if _, err := c.query(ctx, "agent-case-observables", ops, &obs); err != nil {
				yield(nil, fmt.Errorf("thehive: list observables of case %q: %w", caseID, err))
				return
			}
			if len(obs) > 0 && !yield(obs, nil) {
				return
			}
			if len(obs) < pageSize {
				return
			}
			ids := make([]string, len(obs))
			keys := make([]int64, len(obs))
			for i := range obs {
				ids[i], keys[i] = obs[i].ID, obs[i].CreatedAt
			}
			value, seen = advance(value, seen, ids, keys)
		}
	}
}
