package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/tqlabs/tq-mw-thehive/internal/keylock"
	"sync/atomic"

	"github.com/tqlabs/tq-mw-thehive/mapping"
	"github.com/tqlabs/tq-mw-thehive/store"
	"github.com/tqlabs/tq-mw-thehive/thehive"
	"github.com/tqlabs/tq-mw-thehive/threatq"
)

// ThreatQ is what delivery needs from ThreatQ; *threatq.Client implements it.
type ThreatQ interface {
	UpsertEvent(ctx context.Context, ev threatq.Event, knownID int) (id int, created bool, err error)
	UpsertIndicator(ctx context.Context, ind threatq.Indicator, knownID int, relatedKnown bool) (id int, created bool, err error)
}

// CaseSource fetches a case TheHive never told us about by webhook; it is
// needed when an observable arrives for an unknown case. *thehive.Client
// implements it.
type CaseSource interface {
	Case(ctx context.Context, idOrNumber string) (*thehive.Case, error)
}

// errPermanent marks failures that no retry can fix (bad mapping, a message
// that cannot be applied): the worker dead-letters them.
var errPermanent = errors.New("permanent")

func permanent(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errPermanent, fmt.Sprintf(format, args...))
}

// deliverer applies TheHive objects to ThreatQ. It is the one code path to
// ThreatQ: the outbox worker and the reconciler both call it, so a case seen
// by webhook and by backfill lands once.
//
// Idempotency rests on two things. The links bucket records, per TheHive
// object, the ThreatQ id, the TheHive modification time and a hash of the
// mapped object last applied; an unchanged or older object costs no request.
// And when no link exists the ThreatQ client looks the object up before it
// creates one, so a crash between "created in ThreatQ" and "link saved"
// repeats an update, never a create.
type deliverer struct {
	db *store.DB
	// tq is swapped by Reload when the ThreatQ settings change.
	tq     atomic.Pointer[threatQRef]
	cases  CaseSource
	opts   atomic.Pointer[mapping.Options]
	dryRun bool

	// locks serialise work on one case across the worker and the
	// reconciler, which would otherwise race to create its Event.
	locks keylock.Set
}

type threatQRef struct{ ThreatQ }

func (d *deliverer) threatQ() ThreatQ {
	if r := d.tq.Load(); r != nil {
		return r.ThreatQ
	}
	return nil
}

func (d *deliverer) setThreatQ(tq ThreatQ) { d.tq.Store(&threatQRef{tq}) }

func (d *deliverer) lock(caseID string) func() { return d.locks.Lock(caseID) }

func (d *deliverer) options() mapping.Options { return *d.opts.Load() }

func caseKind(opts mapping.Options) threatq.Kind {
	if opts.CasesAsIncidents {
		return threatq.KindIncident
	}
	return threatq.KindEvent
}

func caseLinkKey(kind threatq.Kind, caseID string) string {
	return "case:" + string(kind) + ":" + caseID
}
func observableLinkKey(obsID string) string { return "obs:" + obsID }

func hashOf(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

func resultAction(created bool) string {
	if created {
		return "created"
	}
	return "updated"
}

// outcome describes what one delivery did, for the outbox history and the
// backfill summary.
type outcome struct {
	Results []store.Result
	Skipped string // non-empty: nothing was written, and why
}

// deliverMessage applies one parsed webhook message.
func (d *deliverer) deliverMessage(ctx context.Context, m *thehive.Message) (outcome, error) {
	if m.Action == thehive.ActionDelete {
		// Deletions are recorded, not propagated: intelligence stays in ThreatQ.
		return outcome{Skipped: "delete recorded, not propagated"}, nil
	}
	switch {
	case m.ObjectType == thehive.TypeCase && m.Case != nil:
		return d.deliverCase(ctx, m.Case)
	case m.ObjectType == thehive.TypeObservable && m.Observable != nil:
		if m.RootID == "" {
			return outcome{}, permanent("observable %s has no case id (rootId)", m.ObjectID)
		}
		return d.deliverObservable(ctx, m.RootID, m.Observable, nil)
	default:
		return outcome{}, permanent("%s %s message without an object", m.ObjectType, m.Action)
	}
}

// deliverCase records the latest case state and, if the case is synced (it
// has an Event already, or cases without observables are included), brings
// its Event/Incident up to date.
func (d *deliverer) deliverCase(ctx context.Context, c *thehive.Case) (outcome, error) {
	defer d.lock(c.ID)()
	opts := d.options()
	kind := caseKind(opts)
	key := caseLinkKey(kind, c.ID)
	link, linked, err := d.db.Link(key)
	if err != nil {
		return outcome{}, fmt.Errorf("read link: %w", err)
	}
	if !linked && !opts.IncludeCasesWithoutObservables {
		// Deferred: the first syncable observable creates the Event from
		// this state. (A linked case needs no stored state: its observables
		// find the link.)
		if !d.dryRun {
			if err := d.recordCase(ctx, c); err != nil {
				return outcome{}, err
			}
		}
		return outcome{Skipped: "case has no synced observable yet (include_cases_without_observables is off)"}, nil
	}
	if linked && c.Modified() < link.Modified {
		return outcome{Results: []store.Result{{Kind: link.Kind, ID: link.ID, Action: "unchanged"}},
			Skipped: "older than the state already applied"}, nil
	}
	ev := mapping.Event(c, opts)
	h := hashOf(ev)
	if linked && h == link.Hash {
		return outcome{Results: []store.Result{{Kind: link.Kind, ID: link.ID, Action: "unchanged"}}}, nil
	}
	if d.dryRun {
		return outcome{Results: []store.Result{{Kind: string(kind), ID: link.ID, Action: "would-write"}}}, nil
	}
	id, created, err := d.threatQ().UpsertEvent(ctx, ev, link.ID)
	if err != nil {
		return outcome{}, err
	}
	if err := d.db.PutLink(ctx, key, store.Link{Kind: string(kind), ID: id, Modified: c.Modified(), Hash: h}); err != nil {
		return outcome{}, fmt.Errorf("store link: %w", err)
	}
	return outcome{Results: []store.Result{{Kind: string(kind), ID: id, Action: resultAction(created)}}}, nil
}

// recordCase stores the case as the latest known state (an older one is
// ignored by the store), for observables that arrive before their case's
// Event exists.
func (d *deliverer) recordCase(ctx context.Context, c *thehive.Case) error {
	body, err := json.Marshal(c)
	if err != nil {
		return permanent("encode case %s: %v", c.ID, err)
	}
	if err := d.db.PutCase(ctx, c.ID, c.Modified(), body); err != nil {
		return fmt.Errorf("store case state: %w", err)
	}
	return nil
}

// ensureEvent returns the Event/Incident of a case, creating it from the
// latest stored case state (or, if the store never saw the case, from
// TheHive) when it does not exist yet. The caller holds the case lock.
func (d *deliverer) ensureEvent(ctx context.Context, caseID string, known *thehive.Case, opts mapping.Options) (threatq.Ref, *store.Result, error) {
	kind := caseKind(opts)
	key := caseLinkKey(kind, caseID)
	link, linked, err := d.db.Link(key)
	if err != nil {
		return threatq.Ref{}, nil, fmt.Errorf("read link: %w", err)
	}
	if linked {
		return threatq.Ref{Kind: kind, ID: link.ID}, nil, nil
	}
	if d.dryRun {
		return threatq.Ref{Kind: kind}, &store.Result{Kind: string(kind), Action: "would-write"}, nil
	}
	var c thehive.Case
	body, _, ok, err := d.db.Case(caseID)
	if err != nil {
		return threatq.Ref{}, nil, fmt.Errorf("read case state: %w", err)
	}
	if ok {
		if err := json.Unmarshal(body, &c); err != nil {
			return threatq.Ref{}, nil, permanent("decode stored case %s: %v", caseID, err)
		}
	}
	switch {
	case known != nil && (!ok || known.Modified() >= c.Modified()):
		c = *known // the backfill's own copy, as new as anything stored
	case ok:
	default:
		if d.cases == nil {
			return threatq.Ref{}, nil, permanent("case %s is unknown and no TheHive client is configured", caseID)
		}
		fetched, err := d.cases.Case(ctx, caseID)
		if err != nil {
			if thehive.IsNotFound(err) {
				return threatq.Ref{}, nil, permanent("case %s not found in TheHive: %v", caseID, err)
			}
			return threatq.Ref{}, nil, fmt.Errorf("fetch case %s from TheHive: %w", caseID, err)
		}
		c = *fetched
		if err := d.recordCase(ctx, &c); err != nil {
			return threatq.Ref{}, nil, err
		}
	}
	ev := mapping.Event(&c, opts)
	id, created, err := d.threatQ().UpsertEvent(ctx, ev, 0)
	if err != nil {
		return threatq.Ref{}, nil, err
	}
	if err := d.db.PutLink(ctx, key, store.Link{Kind: string(kind), ID: id, Modified: c.Modified(), Hash: hashOf(ev)}); err != nil {
		return threatq.Ref{}, nil, fmt.Errorf("store link: %w", err)
	}
	return threatq.Ref{Kind: kind, ID: id}, &store.Result{Kind: string(kind), ID: id, Action: resultAction(created)}, nil
}

// deliverObservable upserts the Indicator of an observable of case caseID
// and relates it to the case's Event/Incident.
//
// known is the case as the caller has it (the backfill reads the case with
// its observables), or nil; the Event is created from it or from the stored
// state, whichever is newer.
func (d *deliverer) deliverObservable(ctx context.Context, caseID string, o *thehive.Observable, known *thehive.Case) (outcome, error) {
	opts := d.options()
	ind, skip := mapping.Indicator(o, opts)
	if skip != nil {
		return outcome{Skipped: skip.Reason}, nil
	}
	defer d.lock(caseID)()
	key := observableLinkKey(o.ID)
	link, linked, err := d.db.Link(key)
	if err != nil {
		return outcome{}, fmt.Errorf("read link: %w", err)
	}
	if linked && o.Modified() < link.Modified {
		return outcome{Results: []store.Result{{Kind: link.Kind, ID: link.ID, Action: "unchanged"}},
			Skipped: "older than the state already applied"}, nil
	}
	ref, evResult, err := d.ensureEvent(ctx, caseID, known, opts)
	if err != nil {
		return outcome{}, err
	}
	var out outcome
	if evResult != nil {
		out.Results = append(out.Results, *evResult)
	}
	ind.Related = &ref
	h := hashOf(ind)
	relatedKnown := linked && link.RelatedID == ref.ID
	if linked && relatedKnown && h == link.Hash {
		out.Results = append(out.Results, store.Result{Kind: link.Kind, ID: link.ID, Action: "unchanged"})
		return out, nil
	}
	if d.dryRun {
		out.Results = append(out.Results, store.Result{Kind: string(threatq.KindIndicator), ID: link.ID, Action: "would-write"})
		return out, nil
	}
	id, created, err := d.threatQ().UpsertIndicator(ctx, ind, link.ID, relatedKnown)
	if err != nil {
		return out, err
	}
	if err := d.db.PutLink(ctx, key, store.Link{Kind: string(threatq.KindIndicator), ID: id, Modified: o.Modified(), Hash: h, RelatedID: ref.ID}); err != nil {
		return out, fmt.Errorf("store link: %w", err)
	}
	out.Results = append(out.Results, store.Result{Kind: string(threatq.KindIndicator), ID: id, Action: resultAction(created)})
	return out, nil
}
