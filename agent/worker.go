package agent

import (
	"context"
	"errors"
	"github.com/tqlabs/tq-mw-thehive/internal/retry"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tqlabs/tq-mw-thehive/store"
	"github.com/tqlabs/tq-mw-thehive/thehive"
	"github.com/tqlabs/tq-mw-thehive/threatq"
)

// worker drains the outbox into ThreatQ.
//
// Ordering: messages of one case (one rootId) are applied in arrival order,
// one lane per case; different cases run in parallel up to concurrency. A
// message that fails transiently stays at the head of its lane with a
// backoff time, and store.NextBatch holds the rest of that lane behind it,
// so other cases are never blocked by one case's retries.
type worker struct {
	db          *store.DB
	deliver     *deliverer
	concurrency int
	batchSize   int
	retryBase   time.Duration // first backoff; doubles per attempt
	retryMax    time.Duration
	authPause   time.Duration // how long delivery pauses after an auth failure
	now         func() time.Time
	metrics     *metrics
	logger      *slog.Logger

	mu       sync.Mutex
	inflight map[string]bool
	laneDone chan struct{}

	// authFailedAt is the unix-nano time of the last ThreatQ auth failure, 0
	// when the last delivery authenticated fine.
	authFailedAt  atomic.Int64
	authLoggedAt  atomic.Int64
	authLastError atomic.Pointer[string]
	running       atomic.Bool

	// lastOK/lastFail (unix nanos) of deliveries, for /readyz.
	lastOK, lastFail atomic.Int64
	lastFailError    atomic.Pointer[string]
}

// upstreamFailing reports whether the most recent delivery failed with a
// transient error (ThreatQ down or unreachable) and none succeeded since.
func (w *worker) upstreamFailing() (bool, string) {
	if f := w.lastFail.Load(); f != 0 && f > w.lastOK.Load() {
		if p := w.lastFailError.Load(); p != nil {
			return true, *p
		}
		return true, "delivery failing"
	}
	return false, ""
}

func (w *worker) busy(root string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inflight[root]
}

func (w *worker) setBusy(root string, b bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if b {
		w.inflight[root] = true
	} else {
		delete(w.inflight, root)
	}
}

// authFailing reports whether ThreatQ rejected our credentials recently, and
// why; /readyz reports it.
func (w *worker) authFailing() (bool, string) {
	if w.authFailedAt.Load() == 0 {
		return false, ""
	}
	if p := w.authLastError.Load(); p != nil {
		return true, *p
	}
	return true, "ThreatQ authentication failed"
}

func (w *worker) run(ctx context.Context) error {
	w.inflight = map[string]bool{}
	w.laneDone = make(chan struct{}, 1)
	w.running.Store(true)
	defer w.running.Store(false)

	sem := make(chan struct{}, w.concurrency)
	emptyScans := 0
	var wg sync.WaitGroup
	defer wg.Wait()

	for {
		if err := ctx.Err(); err != nil {
			return nil
		}
		if t := w.authFailedAt.Load(); t != 0 {
			// Credentials are wrong or ThreatQ's auth is down: every message
			// would fail the same way, so wait instead of burning attempts.
			// Nothing is dead-lettered for this.
			wait := time.Until(time.Unix(0, t).Add(w.authPause))
			if wait > 0 {
				if !retry.Sleep(ctx, wait) {
					return nil
				}
			}
		}
		batch, err := w.db.NextBatch(w.now(), w.batchSize, w.busy)
		if err != nil {
			w.logger.Error("outbox read failed", "error", err)
			if !retry.Sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		if len(batch) == 0 {
			w.idle(ctx, emptyScans)
			emptyScans++
			continue
		}
		emptyScans = 0
		for _, lane := range lanes(batch) {
			root := lane[0].RootID
			w.setBusy(root, true)
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				w.setBusy(root, false)
				return nil
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				defer w.signalLaneDone()
				defer w.setBusy(root, false)
				w.processLane(ctx, lane)
			}()
		}
	}
}

func (w *worker) signalLaneDone() {
	select {
	case w.laneDone <- struct{}{}:
	default:
	}
}

// idle waits for something to do: a new message, a finished lane (whose
// case may have more), the next backoff expiry, or shutdown.
func (w *worker) idle(ctx context.Context, emptyScans int) {
	wait := time.Minute
	if due, err := w.db.NextDue(); err == nil && !due.IsZero() {
		if d := due.Sub(w.now()); d < wait {
			wait = max(d, time.Millisecond)
		}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-w.db.Notify():
		// Appends notify on every commit. When the backlog is all backed
		// off (ThreatQ down), rescanning it per commit would burn CPU that
		// intake needs, so the rescans back off while they keep finding
		// nothing: a new case then waits at most half a second.
		retry.Sleep(ctx, min(20*time.Millisecond<<min(emptyScans, 5), 500*time.Millisecond))
	case <-w.laneDone:
	case <-t.C:
	}
}

// lanes groups a batch (in ID order) by case, keeping order inside each.
func lanes(batch []store.Message) [][]store.Message {
	var out [][]store.Message
	idx := map[string]int{}
	for _, m := range batch {
		i, ok := idx[m.RootID]
		if !ok {
			i = len(out)
			idx[m.RootID] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], m)
	}
	return out
}

type parsedMessage struct {
	stored store.Message
	msg    *thehive.Message
	err    error
}

// processLane applies the messages of one case in order. It stops at the
// first transient failure: the rest of the lane waits behind it.
func (w *worker) processLane(ctx context.Context, lane []store.Message) {
	parsed := make([]parsedMessage, 0, len(lane))
	for _, m := range lane {
		// The batch was read before an earlier lane of this case marked
		// its messages; deliver only what is still pending now.
		if cur, err := w.db.Get(m.ID); err != nil || cur.State != store.StatePending {
			continue
		}
		msg, err := thehive.ParseWebhook(m.Body)
		parsed = append(parsed, parsedMessage{stored: m, msg: msg, err: err})
	}
	// Coalescing: of several pending updates of one object only the newest
	// state needs to reach ThreatQ; the others are marked done as coalesced.
	latest := map[string]int{}
	for i, p := range parsed {
		if p.err != nil || p.msg.Action == thehive.ActionDelete {
			continue
		}
		key := p.msg.ObjectType + "/" + p.msg.ObjectID
		if j, ok := latest[key]; !ok || modified(p.msg) >= modified(parsed[j].msg) {
			latest[key] = i
		}
	}
	for i, p := range parsed {
		if ctx.Err() != nil {
			return
		}
		m := p.stored
		if p.err != nil {
			w.markDead(ctx, m, "stored message no longer parses: "+p.err.Error())
			continue
		}
		if p.msg.Action != thehive.ActionDelete {
			if j := latest[p.msg.ObjectType+"/"+p.msg.ObjectID]; j != i {
				// A coalesced case update still records its state: an
				// observable between it and the newest update needs the
				// case to create its Event from.
				if p.msg.Case != nil {
					if err := w.deliver.recordCase(ctx, p.msg.Case); err != nil {
						w.markRetry(ctx, m, err, w.now().Add(w.backoff(m.Attempts)))
						return
					}
				}
				w.markDone(ctx, m, "coalesced", nil)
				continue
			}
		}
		out, err := w.deliver.deliverMessage(ctx, p.msg)
		if err == nil {
			w.authFailedAt.Store(0)
			w.lastOK.Store(w.now().UnixNano())
			result := "done"
			if out.Skipped != "" {
				result = "skipped"
				w.logger.Debug("message skipped", "id", m.ID, "object_type", m.ObjectType, "object_id", m.ObjectID, "reason", out.Skipped)
			}
			w.markDone(ctx, m, result, out.Results)
			continue
		}
		if ctx.Err() != nil {
			return // shutting down: the message stays pending, untouched
		}
		switch {
		case threatq.IsAuth(err):
			w.noteAuthFailure(err)
			w.markRetry(ctx, m, err, w.now().Add(w.authPause))
			return
		case errors.Is(err, errPermanent) || threatq.IsPermanent(err):
			w.markDead(ctx, m, err.Error())
			continue
		default:
			es := err.Error()
			w.lastFailError.Store(&es)
			w.lastFail.Store(w.now().UnixNano())
			w.markRetry(ctx, m, err, w.now().Add(w.backoff(m.Attempts)))
			return
		}
	}
}

func modified(m *thehive.Message) int64 {
	switch {
	case m.Case != nil:
		return m.Case.Modified()
	case m.Observable != nil:
		return m.Observable.Modified()
	}
	return 0
}

// backoff is capped exponential with ±20% jitter, so a ThreatQ outage is
// probed ever less often but never abandoned.
func (w *worker) backoff(attempts int) time.Duration {
	d := w.retryBase
	for i := 0; i < attempts && d < w.retryMax; i++ {
		d *= 2
	}
	d = min(d, w.retryMax)
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * jitter)
}

func (w *worker) noteAuthFailure(err error) {
	now := w.now()
	w.authFailedAt.Store(now.UnixNano())
	s := err.Error()
	w.authLastError.Store(&s)
	// Logged once a minute: an outage must not flood the log.
	if last := w.authLoggedAt.Load(); last == 0 || now.Sub(time.Unix(0, last)) >= time.Minute {
		w.authLoggedAt.Store(now.UnixNano())
		w.logger.Error("ThreatQ authentication failed; delivery paused, webhooks are still stored", "error", err, "retry_in", w.authPause)
	}
}

func (w *worker) markDone(ctx context.Context, m store.Message, result string, results []store.Result) {
	w.metrics.deliveries.WithLabelValues(result).Inc()
	if err := w.db.MarkDone(context.WithoutCancel(ctx), m.ID, w.now(), result, results); err != nil {
		w.logger.Error("outbox mark done failed", "id", m.ID, "error", err)
	}
}

func (w *worker) markRetry(ctx context.Context, m store.Message, cause error, next time.Time) {
	w.metrics.deliveries.WithLabelValues("retry").Inc()
	w.logger.Warn("delivery failed, will retry", "id", m.ID, "object_type", m.ObjectType, "object_id", m.ObjectID,
		"attempts", m.Attempts+1, "next_attempt", next, "error", cause)
	if err := w.db.MarkRetry(context.WithoutCancel(ctx), m.ID, w.now(), cause.Error(), next); err != nil {
		w.logger.Error("outbox mark retry failed", "id", m.ID, "error", err)
	}
}

func (w *worker) markDead(ctx context.Context, m store.Message, reason string) {
	w.metrics.deliveries.WithLabelValues("dead").Inc()
	w.logger.Error("message dead-lettered", "id", m.ID, "object_type", m.ObjectType, "object_id", m.ObjectID, "reason", reason)
	if err := w.db.MarkDead(context.WithoutCancel(ctx), m.ID, w.now(), reason); err != nil {
		w.logger.Error("outbox mark dead failed", "id", m.ID, "error", err)
	}
}
