// Package agent wires the webhook intake, the outbox worker and the TheHive
// reconciler together and owns their goroutines.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/tqlabs/tq-mw-thehive/mapping"
	"github.com/tqlabs/tq-mw-thehive/store"
	"github.com/tqlabs/tq-mw-thehive/thehive"
	"github.com/tqlabs/tq-mw-thehive/threatq"
)

// MinProcs is the GOMAXPROCS the binary runs with at least (unless the
// GOMAXPROCS environment variable says otherwise). The outbox committer
// spends most of its time in fsync, and a goroutine in a syscall keeps its
// P until the runtime hands it off; on a 2-core host that leaves intake one
// P for long stretches. Measured here (make bench): with 4 Ps on 2 cores
// durable intake does ~17k req/s at p99 ~9 ms, with 2 Ps ~10k at ~15 ms.
const MinProcs = 4

// Config is everything the agent needs; cmd/ builds it from flags, the YAML
// file and the environment.
type Config struct {
	DBPath      string // the bbolt outbox file
	ListenAddr  string // webhook listener, e.g. "127.0.0.1:5000"
	AdminSocket string // unix socket serving the outbox API while running; "" = none

	Intake  IntakeConfig
	ThreatQ threatq.Config
	TheHive thehive.Config
	Sync    mapping.Options

	ReconcileInterval time.Duration // 0 = no periodic reconcile
	Retention         time.Duration // how long done messages are kept; default 7 days
	Workers           int           // cases delivered in parallel; default 16

	// MaxBacklogAge: /readyz reports degraded when the oldest pending
	// message is older than this. Default 15 minutes.
	MaxBacklogAge time.Duration
	// RetryBase and RetryMax bound the worker's backoff between delivery
	// attempts of one message. Defaults 2s and 5m.
	RetryBase, RetryMax time.Duration
	// AuthPause is how long delivery waits after ThreatQ rejects the
	// credentials. Default 30s.
	AuthPause time.Duration

	Logger *slog.Logger
}

// IntakeConfig configures POST /cases.
type IntakeConfig struct {
	MaxBodyBytes int64  // default 1 MiB
	AuthType     string // "", "bearer" or "basic"
	Token        string // bearer token
	Username     string // basic auth
	Password     string // basic auth
}

func (c *Config) setDefaults() {
	if c.Retention <= 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.Workers <= 0 {
		c.Workers = 16
	}
	if c.MaxBacklogAge <= 0 {
		c.MaxBacklogAge = 15 * time.Minute
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 2 * time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 5 * time.Minute
	}
	if c.AuthPause <= 0 {
		c.AuthPause = 30 * time.Second
	}
	if c.Intake.MaxBodyBytes <= 0 {
		c.Intake.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Agent is the long-running process: intake, worker and periodic reconcile
// over one outbox.
type Agent struct {
	cfg     Config
	logger  *slog.Logger
	metrics *metrics

	db      *store.DB
	intake  *intake
	worker  *worker
	deliver *deliverer
	recon   *reconciler

	listener net.Listener
	ready    chan struct{}
}

// New checks cfg and builds the clients; Run opens the database and the
// listener.
func New(cfg Config) (*Agent, error) {
	cfg.setDefaults()
	if cfg.DBPath == "" {
		return nil, errors.New("agent: no database path")
	}
	if err := cfg.Sync.Validate(); err != nil {
		return nil, fmt.Errorf("agent: sync options: %w", err)
	}
	a := &Agent{cfg: cfg, logger: cfg.Logger, metrics: newMetrics(), ready: make(chan struct{})}
	return a, nil
}

// Addr is the webhook listener's address once Run has started listening
// (see Ready); useful with port 0.
func (a *Agent) Addr() net.Addr {
	if a.listener == nil {
		return nil
	}
	return a.listener.Addr()
}

// Ready is closed once the database is open and the listener accepts.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Metrics serves the agent's Prometheus registry (for tests and embedding).
func (a *Agent) Metrics() http.Handler {
	return promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{})
}

// Run serves until ctx is cancelled, then shuts down cleanly: it stops
// accepting webhooks, lets in-flight requests finish their commits, stops
// the worker and the reconciler, and closes the database.
func (a *Agent) Run(ctx context.Context) error {
	db, th, err := a.open(ctx, true)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer db.Close()

	ln, err := net.Listen("tcp", a.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("agent: listen on %s: %w", a.cfg.ListenAddr, err)
	}
	a.listener = ln
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn),
	}
	var adminSrv *http.Server
	var adminLn net.Listener
	if a.cfg.AdminSocket != "" {
		_ = os.Remove(a.cfg.AdminSocket) // a stale socket of a killed run; the DB lock proves we are alone
		adminLn, err = net.Listen("unix", a.cfg.AdminSocket)
		if err != nil {
			ln.Close()
			return fmt.Errorf("agent: admin socket %s: %w", a.cfg.AdminSocket, err)
		}
		_ = os.Chmod(a.cfg.AdminSocket, 0o600)
		adminSrv = &http.Server{Handler: NewAdminHandler(db), ReadHeaderTimeout: 10 * time.Second}
	}

	a.logger.Info("agent started", "listen", ln.Addr().String(), "db", a.cfg.DBPath,
		"threatq", a.cfg.ThreatQ.BaseURL, "thehive", a.cfg.TheHive.URL, "workers", a.cfg.Workers,
		"reconcile_interval", a.cfg.ReconcileInterval.String())
	// The worker counts as running from here (its goroutine starts just
	// below), so /readyz does not report it missing in the first instant.
	a.worker.running.Store(true)
	close(a.ready)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("agent: webhook listener: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		// Shutdown waits for in-flight handlers, so every acknowledged
		// append has committed before the database closes.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		err := srv.Shutdown(sctx)
		if adminSrv != nil {
			_ = adminSrv.Shutdown(sctx)
		}
		return err
	})
	if adminSrv != nil {
		g.Go(func() error {
			if err := adminSrv.Serve(adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("agent: admin socket: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error { return a.worker.run(gctx) })
	g.Go(func() error { a.housekeeping(gctx); return nil })
	if th != nil && a.cfg.ReconcileInterval > 0 {
		g.Go(func() error { a.reconcileLoop(gctx); return nil })
	}
	err = g.Wait()
	if adminSrv != nil {
		_ = os.Remove(a.cfg.AdminSocket)
	}
	a.logger.Info("agent stopped")
	return err
}

// open opens the outbox and builds the clients (ThreatQ's only when
// withThreatQ; TheHive's when configured) and the components over them.
func (a *Agent) open(ctx context.Context, withThreatQ bool) (*store.DB, *thehive.Client, error) {
	db, err := store.Open(a.cfg.DBPath, store.Options{Timeout: time.Second})
	if err != nil {
		return nil, nil, fmt.Errorf("open outbox: %w", err)
	}
	var tq ThreatQ
	if withThreatQ {
		c, err := threatq.NewClient(a.clientConfigThreatQ())
		if err != nil {
			db.Close()
			return nil, nil, fmt.Errorf("threatq client: %w", err)
		}
		tq = c
	}
	var th *thehive.Client
	if a.cfg.TheHive.URL != "" {
		if th, err = thehive.NewClient(a.clientConfigTheHive()); err != nil {
			db.Close()
			return nil, nil, fmt.Errorf("thehive client: %w", err)
		}
	}
	a.resolveTLP(ctx, th)
	a.build(db, tq, th)
	return db, th, nil
}

// resolveTLP settles tlp_scheme "auto" from TheHive's version, once at start.
func (a *Agent) resolveTLP(ctx context.Context, th *thehive.Client) {
	var status func(context.Context) (string, error)
	if th != nil {
		status = th.Status
	}
	scheme, version := resolveTLPScheme(ctx, a.cfg.Sync.TLPScheme, status)
	if scheme != a.cfg.Sync.TLPScheme {
		a.logger.Info("TLP numbering chosen", "tlp_scheme", scheme, "thehive_version", version)
	}
	a.cfg.Sync.TLPScheme = scheme
}

// build creates the components over an open store. Split from Run so tests
// and the backfill command can use the same wiring.
func (a *Agent) build(db *store.DB, tq ThreatQ, th *thehive.Client) {
	a.db = db
	a.deliver = &deliverer{db: db}
	if tq != nil {
		a.deliver.setThreatQ(tq)
	}
	if th != nil {
		a.deliver.cases = th
	}
	opts := a.cfg.Sync
	a.deliver.opts.Store(&opts)
	a.intake = &intake{db: db, metrics: a.metrics, logger: a.logger.With("component", "intake")}
	ic := a.cfg.Intake
	a.intake.cfg.Store(&ic)
	a.worker = &worker{
		db: db, deliver: a.deliver, concurrency: a.cfg.Workers, batchSize: 4 * a.cfg.Workers,
		retryBase: a.cfg.RetryBase, retryMax: a.cfg.RetryMax, authPause: a.cfg.AuthPause,
		now: time.Now, metrics: a.metrics, logger: a.logger.With("component", "worker"),
	}
	a.recon = &reconciler{db: db, th: th, deliver: a.deliver, metrics: a.metrics, logger: a.logger.With("component", "reconcile")}
}

// Handler is the webhook listener's router.
func (a *Agent) Handler() http.Handler {
	r := newRouter(a.logger, " (TheHive posts to /cases)")
	r.POST("/cases", a.intake.handleCases)
	r.GET("/healthz", func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.GET("/readyz", a.handleReady)
	r.Handler(http.MethodGet, "/metrics", a.Metrics())
	return r
}

type readiness struct {
	Status  string   `json:"status"` // ok, degraded
	Reasons []string `json:"reasons,omitempty"`
}

func (a *Agent) handleReady(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	var reasons []string
	if !a.worker.running.Load() {
		reasons = append(reasons, "outbox worker not running")
	}
	if failing, why := a.worker.authFailing(); failing {
		reasons = append(reasons, "ThreatQ authentication failing: "+why)
	}
	if down, why := a.worker.upstreamFailing(); down {
		reasons = append(reasons, "ThreatQ unreachable: "+why)
	}
	st, err := a.db.Stats()
	if err != nil {
		reasons = append(reasons, "outbox unreadable: "+err.Error())
	} else if !st.OldestPending.IsZero() {
		if age := time.Since(st.OldestPending); age > a.cfg.MaxBacklogAge {
			reasons = append(reasons, "oldest pending message is "+age.Round(time.Second).String()+" old (threshold "+a.cfg.MaxBacklogAge.String()+")")
		}
	}
	if len(reasons) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, readiness{Status: "degraded", Reasons: reasons})
		return
	}
	writeJSON(w, http.StatusOK, readiness{Status: "ok"})
}

// housekeeping refreshes the outbox gauges and purges done messages past
// their retention.
func (a *Agent) housekeeping(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	lastPurge := time.Time{}
	for {
		if st, err := a.db.Stats(); err == nil {
			a.metrics.outboxPending.Set(float64(st.Pending))
			a.metrics.outboxDead.Set(float64(st.Dead))
			if st.OldestPending.IsZero() {
				a.metrics.oldestPending.Set(0)
			} else {
				a.metrics.oldestPending.Set(time.Since(st.OldestPending).Seconds())
			}
		}
		if time.Since(lastPurge) > time.Hour {
			lastPurge = time.Now()
			if n, err := a.db.Purge(ctx, time.Now().Add(-a.cfg.Retention)); err != nil {
				a.logger.Warn("purge of done messages failed", "error", err)
			} else if n > 0 {
				a.logger.Info("purged done messages", "count", n, "retention", a.cfg.Retention.String())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reconcileLoop runs the incremental reconcile at start and then every
// ReconcileInterval, each run resuming from the last checkpoint.
func (a *Agent) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		sum, err := a.recon.run(ctx, BackfillOptions{
			Checkpoint: checkpointName(CheckpointReconcile, a.cfg.TheHive.Organisation, time.Time{}),
			Parallel:   max(1, a.cfg.Workers/2),
		})
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			a.logger.Error("reconcile failed", "error", err, "cases", sum.Cases, "failed", sum.Failed)
		default:
			a.logger.Info("reconcile done", "cases", sum.Cases, "observables", sum.Observables,
				"created", sum.Created, "updated", sum.Updated, "unchanged", sum.Unchanged)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Reload swaps in a new configuration (SIGHUP). The sync options (mapping,
// ioc_only, ...), the intake settings and the ThreatQ host and credentials
// change for messages processed from now on; the listener, the database
// and the TheHive connection stay as they are (restart to change those).
// An error leaves the old config in force.
func (a *Agent) Reload(cfg Config) error {
	if err := cfg.Sync.Validate(); err != nil {
		return fmt.Errorf("agent: reload: sync options: %w", err)
	}
	if a.deliver == nil || a.intake == nil {
		return errors.New("agent: reload: agent is not running")
	}
	if threatQChanged(a.cfg.ThreatQ, cfg.ThreatQ) {
		// New host or credentials (the usual fix for an auth failure):
		// deliveries from now on use a client built from them.
		next := a.cfg
		next.ThreatQ = cfg.ThreatQ
		tq, err := threatq.NewClient((&Agent{cfg: next, logger: a.logger, metrics: a.metrics}).clientConfigThreatQ())
		if err != nil {
			return fmt.Errorf("agent: reload: threatq: %w", err)
		}
		a.deliver.setThreatQ(tq)
		a.cfg.ThreatQ = cfg.ThreatQ
		a.worker.authFailedAt.Store(0) // try again at once
		a.logger.Info("ThreatQ settings changed; using them from now on", "threatq", cfg.ThreatQ.BaseURL)
	}
	opts := cfg.Sync
	if opts.TLPScheme == "" || opts.TLPScheme == mapping.TLPSchemeAuto {
		opts.TLPScheme = a.cfg.Sync.TLPScheme // as resolved from TheHive's version at start
	}
	a.deliver.opts.Store(&opts)
	ic := cfg.Intake
	if ic.MaxBodyBytes <= 0 {
		ic.MaxBodyBytes = DefaultMaxBodyBytes
	}
	a.intake.cfg.Store(&ic)
	a.logger.Info("configuration reloaded")
	return nil
}

// threatQChanged reports whether a reload changes what the ThreatQ client
// is built from.
func threatQChanged(old, next threatq.Config) bool {
	return old.BaseURL != next.BaseURL || old.ClientID != next.ClientID || old.Email != next.Email ||
		old.Password != next.Password || old.InsecureSkipVerify != next.InsecureSkipVerify || old.ProxyURL != next.ProxyURL
}

func (a *Agent) clientConfigThreatQ() threatq.Config {
	c := a.cfg.ThreatQ
	if c.WrapTransport == nil {
		c.WrapTransport = a.instrument("threatq")
	}
	if c.Logger == nil {
		c.Logger = a.logger.With("component", "threatq")
	}
	return c
}

func (a *Agent) clientConfigTheHive() thehive.Config {
	c := a.cfg.TheHive
	if c.WrapTransport == nil {
		c.WrapTransport = a.instrument("thehive")
	}
	if c.Logger == nil {
		c.Logger = a.logger.With("component", "thehive")
	}
	return c
}

// instrument returns a transport wrapper feeding the request metrics.
func (a *Agent) instrument(service string) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		return &instrumented{next: next, service: service, m: a.metrics}
	}
}

// instrumented records every HTTP attempt (retries included) to ThreatQ or
// TheHive.
type instrumented struct {
	next    http.RoundTripper
	service string
	m       *metrics
}

func (t *instrumented) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	if err != nil || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		t.m.retries.WithLabelValues(t.service).Inc()
	}
	t.m.upstream.WithLabelValues(t.service, code).Observe(time.Since(start).Seconds())
	return resp, err
}

// Outbox is the agent's open store while Run runs (nil before); tests and
// the admin API read it.
func (a *Agent) Outbox() *store.DB { return a.db }
