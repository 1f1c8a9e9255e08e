package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/metrics"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/tqlabs/tq-mw-thehive/agent"
)

var backfillCommand = &cli.Command{
	Name:  "backfill",
	Usage: "one-shot reconciliation: sync every TheHive case and its observables into ThreatQ",
	Description: "Pages through TheHive's v1 query API (keyset paging, constant memory) and sends each\n" +
		"case and its observables through the same mapping and idempotent ThreatQ path as webhooks.\n" +
		"A checkpoint is saved in the outbox database after every page: Ctrl-C (or a crash) and a\n" +
		"rerun resume where it stopped. After a complete walk, a rerun fetches only what was\n" +
		"created or updated since. Stop the agent first: both use the same database.\n" +
		"Exit status: 0 all synced, 1 some objects failed or TheHive kept failing, 2 usage error.",
	Flags: append(globalFlags(),
		&cli.StringFlag{
			Name:  "since",
			Usage: "only cases created or updated since `WHEN`: an RFC 3339 time (2025-07-01T00:00:00Z) or a duration back from now (720h)",
		},
		&cli.BoolFlag{Name: "restart", Usage: "ignore the saved checkpoint and walk every case again"},
		&cli.BoolFlag{Name: "dry-run", Usage: "read TheHive and map everything, but write nothing to ThreatQ or the checkpoint"},
		&cli.IntFlag{Name: "page-size", Value: 100, Usage: "cases per TheHive query page (TheHive's queries are heavy: 100-500)"},
		&cli.IntFlag{Name: "parallel", Value: 8, Usage: "cases synced to ThreatQ in parallel"},
		&cli.StringFlag{Name: "organisation", Usage: "TheHive organisation `ORG` to walk (X-Organisation); default thehive.organisation, else the API key's own"},
		&cli.BoolFlag{Name: "json", Usage: "print the final summary as one JSON object on stdout"},
		&cli.BoolFlag{Name: "no-progress", Usage: "log progress lines instead of drawing a progress bar, even on a terminal"},
	),
	OnUsageError: usageError,
	Action:       action(backfillAction),
}

// parseSince accepts an RFC 3339 time or a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since: %q is neither an RFC 3339 time nor a positive duration", s)
}

func backfillAction(c *cli.Context) error {
	g, err := readGlobals(c)
	if err != nil {
		return err
	}
	since, err := parseSince(c.String("since"), time.Now())
	if err != nil {
		return configErrorf("%v", err)
	}
	if c.Int("page-size") < 1 || c.Int("page-size") > 10000 {
		return configErrorf("--page-size: want 1-10000, got %d", c.Int("page-size"))
	}
	if c.Int("parallel") < 1 {
		return configErrorf("--parallel: want at least 1, got %d", c.Int("parallel"))
	}
	logger, closer, err := newLogger(g.Verbosity, g.LogDir, c.App.ErrWriter)
	if err != nil {
		return configErrorf("%v", err)
	}
	defer closer.Close()
	slog.SetDefault(logger)

	cfg, err := loadConfig(configPath(g.ConfigDir), os.LookupEnv)
	if errors.Is(err, errNoConfig) {
		return configErrorf("no config file %s; create one with \"%s init -c %s\"", configPath(g.ConfigDir), appName, g.ConfigDir)
	}
	if err != nil {
		return err
	}
	acfg, err := buildAgentConfig(cfg, g, os.LookupEnv, logger)
	if err != nil {
		return err
	}
	if org := c.String("organisation"); org != "" {
		acfg.TheHive.Organisation = org
	}
	if acfg.TheHive.URL == "" {
		return configErrorf("thehive.url is required for a backfill")
	}

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()

	prog := newBackfillProgress(c.App.ErrWriter, logger, !c.Bool("no-progress") && isTerminal(c.App.ErrWriter))
	opts := agent.BackfillOptions{
		Since:    since,
		Restart:  c.Bool("restart"),
		DryRun:   c.Bool("dry-run"),
		PageSize: c.Int("page-size"),
		Parallel: c.Int("parallel"),
		Total:    prog.total,
		Progress: prog.update,
	}
	logger.Info("backfill starting", "thehive", acfg.TheHive.URL, "organisation", acfg.TheHive.Organisation,
		"since", since, "restart", opts.Restart, "dry_run", opts.DryRun, "page_size", opts.PageSize)
	start := time.Now()
	heap := sampleHeap()
	sum, runErr := agent.Backfill(ctx, acfg, opts)
	peakLive, peakObjects := heap()
	prog.finish()
	elapsed := time.Since(start)
	logger.Debug("backfill memory", "go_heap_live_peak_bytes", peakLive, "go_heap_objects_peak_bytes", peakObjects)

	if c.Bool("json") {
		out := struct {
			agent.Summary
			Seconds     float64 `json:"seconds"`
			DryRun      bool    `json:"dry_run"`
			PeakLive    uint64  `json:"go_heap_live_peak_bytes"`
			PeakObjects uint64  `json:"go_heap_objects_peak_bytes"`
			Error       string  `json:"error,omitempty"`
		}{Summary: sum, Seconds: elapsed.Seconds(), DryRun: opts.DryRun, PeakLive: peakLive, PeakObjects: peakObjects}
		if runErr != nil {
			out.Error = runErr.Error()
		}
		_ = json.NewEncoder(c.App.Writer).Encode(out)
	} else {
		verb := "synced"
		if opts.DryRun {
			verb = "read (dry run, nothing written)"
		}
		fmt.Fprintf(c.App.Writer, "backfill: %d cases and %d observables %s in %s: %d created, %d updated, %d unchanged, %d skipped, %d failed\n",
			sum.Cases, sum.Observables, verb, elapsed.Round(time.Millisecond), sum.Created, sum.Updated, sum.Unchanged, sum.Skipped, sum.Failed)
	}
	switch {
	case runErr != nil && ctx.Err() != nil:
		return &runtimeError{err: errors.New("backfill interrupted; the checkpoint is saved, rerun to resume")}
	case runErr != nil:
		return &runtimeError{err: fmt.Errorf("backfill: %w", runErr)}
	}
	return nil
}

// sampleHeap watches the Go heap until the returned function is called,
// which returns the peaks of the live heap (what the last GC found
// reachable: the memory the backfill holds on to) and of all heap objects
// (live plus garbage not yet collected). The backfill's memory must not
// grow with the size of TheHive; this makes that checkable on any run
// (--json), not only in a benchmark.
func sampleHeap() func() (live, objects uint64) {
	samples := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	var peakLive, peakObjects atomic.Uint64
	read := func() {
		metrics.Read(samples)
		for i, p := range []*atomic.Uint64{&peakLive, &peakObjects} {
			if samples[i].Value.Kind() == metrics.KindUint64 {
				if v := samples[i].Value.Uint64(); v > p.Load() {
					p.Store(v)
				}
			}
		}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() (uint64, uint64) {
		close(done)
		<-stopped
		return peakLive.Load(), peakObjects.Load()
	}
}

// backfillProgress draws a bar on a terminal, or logs a line every few
// seconds otherwise (journald, CI).
type backfillProgress struct {
	bar     *progressbar.ProgressBar
	logger  *slog.Logger
	w       io.Writer
	tty     bool
	lastLog time.Time
	start   time.Time
	count   int64
}

func newBackfillProgress(w io.Writer, logger *slog.Logger, tty bool) *backfillProgress {
	return &backfillProgress{w: w, logger: logger, tty: tty, start: time.Now()}
}

func (p *backfillProgress) total(n int64) {
	p.count = n
	if p.tty {
		p.bar = progressbar.NewOptions64(n,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription("cases"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("cases"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionFullWidth(),
		)
	}
}

func (p *backfillProgress) update(pr agent.Progress) {
	if p.bar != nil {
		_ = p.bar.Set64(pr.Cases)
		return
	}
	if time.Since(p.lastLog) < 5*time.Second {
		return
	}
	p.lastLog = time.Now()
	rate := float64(pr.Cases) / time.Since(p.start).Seconds()
	args := []any{"cases", pr.Cases, "observables", pr.Observables, "cases_per_second", int(rate), "cursor", pr.Cursor.UTC().Format(time.RFC3339)}
	if p.count > 0 {
		args = append(args, "total", p.count)
		if rate > 0 && pr.Cases < p.count {
			args = append(args, "eta", time.Duration(float64(p.count-pr.Cases)/rate*float64(time.Second)).Round(time.Second).String())
		}
	}
	p.logger.Info("backfill progress", args...)
}

func (p *backfillProgress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}
