package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/tqlabs/tq-mw-thehive/internal/retry"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tqlabs/tq-mw-thehive/store"
	"github.com/tqlabs/tq-mw-thehive/thehive"
	"github.com/tqlabs/tq-mw-thehive/threatq"
)

// Checkpoint names in the store.
const (
	CheckpointBackfill  = "backfill"  // full backfill, keyset on _createdAt
	CheckpointReconcile = "reconcile" // periodic reconcile, keyset on _updatedAt
)

// checkpointName keeps walks apart that must not resume each other: each
// TheHive organisation has its own cases, and a --since walk covers only
// part of them (its cursor must not stand in for the full backfill's).
func checkpointName(base, organisation string, since time.Time) string {
	if !since.IsZero() {
		base += "-since"
	}
	if organisation != "" {
		base += ":" + organisation
	}
	return base
}

// reconcileOverlap is re-read before the incremental checkpoint: TheHive's
// commit lag and clock skew can make a change visible after a later one.
const reconcileOverlap = 5 * time.Second

// BackfillOptions configure one reconcile run.
type BackfillOptions struct {
	Checkpoint string        // CheckpointBackfill or CheckpointReconcile
	Since      time.Time     // zero: from the checkpoint (or the beginning)
	Restart    bool          // ignore and overwrite the checkpoint
	DryRun     bool          // read and map, write nothing to ThreatQ or the checkpoint
	PageSize   int           // cases per page; default 100
	Parallel   int           // cases delivered in parallel; default 8
	Attempts   int           // tries per object on transient ThreatQ failures; default 8
	RetryBase  time.Duration // backoff between those tries; default 500ms
	Progress   func(Progress)
	Total      func(cases int64) // called once with the case count, for a progress bar
}

// Progress is reported after every page.
type Progress struct {
	Cases       int64
	Observables int64
	Cursor      time.Time
}

// Summary is what a reconcile run did.
type Summary struct {
	Cases       int64 `json:"cases"`
	Observables int64 `json:"observables"`
	Created     int64 `json:"created"`
	Updated     int64 `json:"updated"`
	Unchanged   int64 `json:"unchanged"`
	Skipped     int64 `json:"skipped"`
	Failed      int64 `json:"failed"`
	Pages       int64 `json:"pages"`
}

// ErrFailures is returned (wrapped) by a run that finished paging but could
// not deliver some objects.
var ErrFailures = errors.New("some objects could not be synced")

type reconciler struct {
	db      *store.DB
	th      *thehive.Client
	deliver *deliverer
	metrics *metrics
	logger  *slog.Logger

	// running keeps the periodic reconcile and a backfill from walking the
	// same checkpoint at once.
	mu sync.Mutex
}

// loadCursor decides where a run starts: an unfinished walk resumes from
// its checkpoint; after a finished one, the next fetches only what was
// created or updated since the finished one started (minus an overlap);
// Restart walks every case again.
func (r *reconciler) loadCursor(opts BackfillOptions) (thehive.Cursor, error) {
	fresh := thehive.BackfillCursor()
	if strings.HasPrefix(opts.Checkpoint, CheckpointReconcile) {
		fresh = thehive.SyncCursor(0)
	}
	if !opts.Since.IsZero() {
		// --since means "cases created or updated since": an incremental walk.
		fresh = thehive.SyncCursor(opts.Since.UnixMilli())
	}
	if opts.Restart {
		return fresh, nil
	}
	b, ok, err := r.db.Checkpoint(opts.Checkpoint)
	if err != nil {
		return fresh, fmt.Errorf("read checkpoint: %w", err)
	}
	if !ok {
		return fresh, nil
	}
	var cur thehive.Cursor
	if err := json.Unmarshal(b, &cur); err != nil {
		return fresh, fmt.Errorf("decode checkpoint %q (use --restart): %w", opts.Checkpoint, err)
	}
	if !opts.Since.IsZero() && (cur.Field != fresh.Field || cur.Since != fresh.Since) {
		return fresh, nil // a checkpoint of another walk
	}
	if cur.Done {
		// The last walk finished: this one only fetches what was created
		// or updated since it started.
		return cur.NextSync(reconcileOverlap), nil
	}
	return cur, nil
}

// run walks TheHive's cases from the checkpoint and syncs each with its
// observables, one page at a time: memory is bounded by one page of cases
// and one page of observables per worker, however large TheHive is. The
// checkpoint is saved only after every case of a page has been applied, so
// a killed run repeats at most one page.
func (r *reconciler) run(ctx context.Context, opts BackfillOptions) (Summary, error) {
	if !r.mu.TryLock() {
		return Summary{}, errors.New("a reconcile run is already in progress")
	}
	defer r.mu.Unlock()
	if opts.PageSize <= 0 {
		opts.PageSize = 100
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 8
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = 500 * time.Millisecond
	}
	cur, err := r.loadCursor(opts)
	if err != nil {
		return Summary{}, err
	}
	if opts.Restart && !opts.DryRun {
		if err := r.db.DeleteCheckpoint(ctx, opts.Checkpoint); err != nil {
			return Summary{}, fmt.Errorf("reset checkpoint: %w", err)
		}
	}
	d := r.deliver
	if opts.DryRun {
		dry := &deliverer{db: r.db, cases: d.cases, dryRun: true}
		dry.opts.Store(d.opts.Load())
		d = dry
	}
	var sum summaryCounter
	for page, err := range r.th.Cases(ctx, cur, opts.PageSize) {
		if err != nil {
			return sum.snapshot(), fmt.Errorf("thehive: list cases after %s: %w (checkpoint kept; rerun to resume)", time.UnixMilli(cur.Value).UTC().Format(time.RFC3339), err)
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(opts.Parallel)
		for i := range page.Cases {
			c := &page.Cases[i]
			g.Go(func() error { return r.syncCase(gctx, d, c, opts, &sum) })
		}
		if err := g.Wait(); err != nil {
			return sum.snapshot(), err
		}
		cur = page.Cursor
		sum.pages.Add(1)
		if !opts.DryRun {
			b, _ := json.Marshal(cur)
			if err := r.db.PutCheckpoint(ctx, opts.Checkpoint, b); err != nil {
				return sum.snapshot(), fmt.Errorf("save checkpoint: %w", err)
			}
		}
		if cur.Field == thehive.FieldUpdatedAt || cur.Field == thehive.FieldCreatedAt {
			r.metrics.reconcileCursor.Set(float64(cur.Value) / 1000)
		}
		if opts.Progress != nil {
			opts.Progress(Progress{Cases: sum.cases.Load(), Observables: sum.observables.Load(), Cursor: time.UnixMilli(cur.Value)})
		}
	}
	if err := ctx.Err(); err != nil {
		return sum.snapshot(), err
	}
	s := sum.snapshot()
	if s.Failed > 0 {
		return s, fmt.Errorf("%d of %d cases and observables failed: %w", s.Failed, s.Cases+s.Observables, ErrFailures)
	}
	r.metrics.reconcileLast.Set(float64(time.Now().Unix()))
	return s, nil
}

type summaryCounter struct {
	cases, observables, created, updated, unchanged, skipped, failed, pages atomic.Int64
}

func (s *summaryCounter) snapshot() Summary {
	return Summary{Cases: s.cases.Load(), Observables: s.observables.Load(), Created: s.created.Load(),
		Updated: s.updated.Load(), Unchanged: s.unchanged.Load(), Skipped: s.skipped.Load(),
		Failed: s.failed.Load(), Pages: s.pages.Load()}
}

func (s *summaryCounter) add(out outcome) {
	if out.Skipped != "" && len(out.Results) == 0 {
		s.skipped.Add(1)
	}
	for _, res := range out.Results {
		switch res.Action {
		case "created":
			s.created.Add(1)
		case "updated", "would-write":
			s.updated.Add(1)
		case "unchanged":
			s.unchanged.Add(1)
		}
	}
}

// syncCase applies one case and all its observables. The observables go
// first: the first syncable one creates the case's Event from the copy in
// hand, so the case itself then costs nothing (its state is what the Event
// was made from), and only cases left without an Event store their state
// for later webhooks. A failure of one object is counted and logged, and
// the run goes on; only shutdown or TheHive failing to list observables
// stops the page.
func (r *reconciler) syncCase(ctx context.Context, d *deliverer, c *thehive.Case, opts BackfillOptions, sum *summaryCounter) error {
	sum.cases.Add(1)
	for obs, err := range r.th.CaseObservables(ctx, c.ID, opts.PageSize) {
		if err != nil {
			return fmt.Errorf("thehive: observables of case %s: %w (checkpoint kept; rerun to resume)", c.ID, err)
		}
		for i := range obs {
			o := &obs[i]
			sum.observables.Add(1)
			out, err := r.withRetry(ctx, opts, func() (outcome, error) { return d.deliverObservable(ctx, c.ID, o, c) })
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if !isPermanent(err) {
					return stopPage(c.ID, err)
				}
				sum.failed.Add(1)
				r.logger.Error("backfill: observable not synced", "case_id", c.ID, "observable_id", o.ID, "error", err)
				continue
			}
			sum.add(out)
		}
	}
	out, err := r.withRetry(ctx, opts, func() (outcome, error) { return d.deliverCase(ctx, c) })
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !isPermanent(err) {
			return stopPage(c.ID, err)
		}
		sum.failed.Add(1)
		r.metrics.reconcileCases.WithLabelValues("failed").Inc()
		r.logger.Error("backfill: case not synced", "case_id", c.ID, "error", err)
		return nil
	}
	sum.add(out)
	r.metrics.reconcileCases.WithLabelValues("synced").Inc()
	return nil
}

func isPermanent(err error) bool {
	return errors.Is(err, errPermanent) || threatq.IsPermanent(err)
}

// stopPage ends the run when ThreatQ stays unavailable (or refuses our
// credentials) for an object: the page's checkpoint is not saved, so the
// next run walks the page again instead of passing over what failed.
// Objects that fail for good (a mapping ThreatQ rejects) are counted and
// skipped instead; they are in the log and the summary.
func stopPage(caseID string, err error) error {
	return fmt.Errorf("case %s: %w (ThreatQ kept failing; checkpoint kept, rerun to resume)", caseID, err)
}

// withRetry retries transient ThreatQ failures a bounded number of times;
// after that the page stops (see stopPage).
func (r *reconciler) withRetry(ctx context.Context, opts BackfillOptions, f func() (outcome, error)) (outcome, error) {
	wait := opts.RetryBase
	for attempt := 1; ; attempt++ {
		out, err := f()
		if err == nil || attempt >= opts.Attempts || isPermanent(err) || ctx.Err() != nil {
			return out, err
		}
		if !retry.Sleep(ctx, wait) {
			return out, ctx.Err()
		}
		wait = min(wait*2, 30*time.Second)
	}
}

// Backfill runs one reconcile walk over TheHive (the backfill command): the
// same delivery path as the agent, without the listener and the worker. It
// opens the outbox database, so the agent must not be running on it.
func Backfill(ctx context.Context, cfg Config, opts BackfillOptions) (Summary, error) {
	if cfg.TheHive.URL == "" {
		return Summary{}, errors.New("backfill: thehive.url is not configured")
	}
	opts.Checkpoint = checkpointName(cmp.Or(opts.Checkpoint, CheckpointBackfill), cfg.TheHive.Organisation, opts.Since)
	a, err := New(cfg)
	if err != nil {
		return Summary{}, err
	}
	db, th, err := a.open(ctx, !opts.DryRun)
	if errors.Is(err, store.ErrLocked) {
		return Summary{}, fmt.Errorf("backfill: %w; stop the agent first (its periodic reconcile, reconcile_interval, does the same work while it runs)", err)
	}
	if err != nil {
		return Summary{}, fmt.Errorf("backfill: %w", err)
	}
	defer db.Close()
	if opts.Total != nil {
		var filter map[string]any
		if !opts.Since.IsZero() {
			ms := opts.Since.UnixMilli()
			filter = thehive.Or(thehive.Gte(thehive.FieldUpdatedAt, ms), thehive.Gte(thehive.FieldCreatedAt, ms))
		}
		if n, err := th.CountCases(ctx, filter); err == nil {
			opts.Total(n)
		} else {
			a.logger.Warn("could not count cases for the progress bar", "error", err)
		}
	}
	return a.recon.run(ctx, opts)
}

// Backfill runs one reconcile walk inside the running agent (Run must have
// started; see Ready), sharing its outbox and delivery path. The demo uses
// it; the backfill command uses the package-level Backfill.
func (a *Agent) Backfill(ctx context.Context, opts BackfillOptions) (Summary, error) {
	if a.recon == nil || a.recon.th == nil {
		return Summary{}, errors.New("backfill: agent not running or thehive.url not configured")
	}
	opts.Checkpoint = checkpointName(cmp.Or(opts.Checkpoint, CheckpointBackfill), a.cfg.TheHive.Organisation, opts.Since)
	return a.recon.run(ctx, opts)
}
