package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tqlabs/tq-mw-thehive/agent"
	"github.com/tqlabs/tq-mw-thehive/store"
)

// outboxSource is the outbox as the outbox commands see it: the database
// itself when the agent is stopped, the agent's admin socket while it runs
// (it holds bbolt's exclusive lock).
type outboxSource interface {
	Stats(ctx context.Context) (store.Stats, error)
	List(ctx context.Context, state store.State, afterID uint64, limit int) ([]store.Message, error)
	Get(ctx context.Context, id uint64) (store.Message, error)
	Requeue(ctx context.Context, id uint64) error
	RequeueDead(ctx context.Context) (int, error)
	Purge(ctx context.Context, doneBefore time.Time) (int, error)
	Close() error
}

var _ outboxSource = (*agent.AdminClient)(nil)

// directSource adapts *store.DB, whose reads take no context.
type directSource struct{ db *store.DB }

func (d directSource) Stats(context.Context) (store.Stats, error) { return d.db.Stats() }
func (d directSource) List(_ context.Context, s store.State, after uint64, limit int) ([]store.Message, error) {
	return d.db.List(s, after, limit)
}
func (d directSource) Get(_ context.Context, id uint64) (store.Message, error) { return d.db.Get(id) }
func (d directSource) Requeue(ctx context.Context, id uint64) error            { return d.db.Requeue(ctx, id) }
func (d directSource) RequeueDead(ctx context.Context) (int, error)            { return d.db.RequeueDead(ctx) }
func (d directSource) Purge(ctx context.Context, before time.Time) (int, error) {
	return d.db.Purge(ctx, before)
}
func (d directSource) Close() error { return d.db.Close() }

// outboxOpenTimeout is how long a command waits for bbolt's lock before
// concluding that the agent is running. Short: the agent holds it for its
// whole life, so waiting longer would not help.
const outboxOpenTimeout = 300 * time.Millisecond

// openOutbox opens the database directly (read-only unless write), or the
// running agent's admin socket when the database is locked.
func openOutbox(ctx context.Context, dir string, write bool) (outboxSource, error) {
	dbPath := filepath.Join(dir, dbFileName)
	if _, err := os.Stat(dbPath); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no outbox database at %s (has the agent run with -c %s?)", dbPath, dir)
	}
	db, err := store.Open(dbPath, store.Options{Timeout: outboxOpenTimeout, ReadOnly: !write})
	if err == nil {
		return directSource{db}, nil
	}
	if !errors.Is(err, store.ErrLocked) {
		return nil, err
	}
	sock := filepath.Join(dir, socketFileName)
	c := agent.NewAdminClient(sock)
	if perr := c.Ping(ctx); perr != nil {
		return nil, fmt.Errorf("agent is running (%v) but its admin socket %s is not reachable: %v", err, sock, perr)
	}
	return c, nil
}

func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table", DefaultText: "table"}
}

var outboxCommand = &cli.Command{
	Name:  "outbox",
	Usage: "inspect and repair the local outbox, whether the agent runs or not",
	Description: "With the agent stopped, opens " + dbFileName + " in --config DIR directly;\n" +
		"while it runs, asks the agent over its admin socket " + socketFileName + ".",
	Flags:        dirFlags(),
	OnUsageError: usageError,
	Subcommands: []*cli.Command{
		outboxStatsCommand,
		outboxListCommand,
		outboxShowCommand,
		outboxRequeueCommand,
		outboxPurgeCommand,
	},
}

var outboxStatsCommand = &cli.Command{
	Name:         "stats",
	Usage:        "count pending, dead and done messages; oldest pending age; database size",
	Flags:        append(dirFlags(), jsonFlag()),
	OnUsageError: usageError,
	Action: action(func(c *cli.Context) error {
		return withOutbox(c, false, func(ctx context.Context, src outboxSource) error {
			s, err := src.Stats(ctx)
			if err != nil {
				return err
			}
			return printStats(c.App.Writer, s, time.Now(), c.Bool("json"))
		})
	}),
}

// statsJSON is the documented shape of `outbox stats --json`.
type statsJSON struct {
	Pending                 int        `json:"pending"`
	Dead                    int        `json:"dead"`
	Done                    int        `json:"done"`
	OldestPending           *time.Time `json:"oldest_pending"`
	OldestPendingAgeSeconds float64    `json:"oldest_pending_age_seconds"`
	DBBytes                 int64      `json:"db_bytes"`
}

func printStats(w io.Writer, s store.Stats, now time.Time, asJSON bool) error {
	if asJSON {
		out := statsJSON{Pending: s.Pending, Dead: s.Dead, Done: s.Done, DBBytes: s.DBBytes}
		if !s.OldestPending.IsZero() {
			t := s.OldestPending.UTC()
			out.OldestPending = &t
			out.OldestPendingAgeSeconds = now.Sub(t).Seconds()
		}
		return writeJSON(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "pending\t%d\n", s.Pending)
	fmt.Fprintf(tw, "dead\t%d\n", s.Dead)
	fmt.Fprintf(tw, "done\t%d\n", s.Done)
	fmt.Fprintf(tw, "oldest pending\t%s\n", ago(s.OldestPending, now))
	fmt.Fprintf(tw, "db size\t%s\n", humanBytes(s.DBBytes))
	return tw.Flush()
}

var outboxListCommand = &cli.Command{
	Name:  "list",
	Usage: "list messages, oldest first",
	Flags: append(dirFlags(),
		&cli.StringFlag{Name: "state", Usage: "only messages in `STATE`: pending, dead or done", DefaultText: "all"},
		&cli.IntFlag{Name: "limit", Value: 50, Usage: "print at most `N` messages"},
		&cli.Uint64Flag{Name: "after", Usage: "start after message `ID` (page with the last ID printed)", DefaultText: "from the first"},
		jsonFlag(),
	),
	OnUsageError: usageError,
	Action: action(func(c *cli.Context) error {
		state := store.State(c.String("state"))
		switch state {
		case "", store.StatePending, store.StateDead, store.StateDone:
		default:
			return configErrorf("--state: want pending, dead or done, got %q", state)
		}
		limit := c.Int("limit")
		if limit < 1 || limit > 1000 {
			return configErrorf("--limit: want 1-1000, got %d", limit)
		}
		return withOutbox(c, false, func(ctx context.Context, src outboxSource) error {
			msgs, err := src.List(ctx, state, c.Uint64("after"), limit)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				if msgs == nil {
					msgs = []store.Message{}
				}
				return writeJSON(c.App.Writer, msgs)
			}
			return printList(c.App.Writer, msgs, time.Now())
		})
	}),
}

func printList(w io.Writer, msgs []store.Message, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tRECEIVED\tOBJECT\tACTION\tATTEMPTS\tNEXT\tLAST ERROR")
	for _, m := range msgs {
		next := "-"
		if m.State == store.StatePending {
			next = ago(m.NextAttemptAt, now)
			if m.NextAttemptAt.IsZero() {
				next = "now"
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s %s\t%s\t%d\t%s\t%s\n", m.ID, m.State, ago(m.ReceivedAt, now),
			m.ObjectType, m.ObjectID, m.Action, m.Attempts, next, truncate(m.LastError, 60))
	}
	if len(msgs) == 0 {
		fmt.Fprintln(tw, "(no messages)")
	}
	return tw.Flush()
}

var outboxShowCommand = &cli.Command{
	Name:         "show",
	Usage:        "show one message: the stored webhook, its delivery history and the ThreatQ objects it produced",
	ArgsUsage:    "ID",
	Flags:        append(dirFlags(), jsonFlag()),
	OnUsageError: usageError,
	Action: action(func(c *cli.Context) error {
		id, err := messageID(c)
		if err != nil {
			return err
		}
		return withOutbox(c, false, func(ctx context.Context, src outboxSource) error {
			m, err := src.Get(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("message %d not found", id)
			}
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return writeJSON(c.App.Writer, m)
			}
			return printMessage(c.App.Writer, m, time.Now())
		})
	}),
}

func printMessage(w io.Writer, m store.Message, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ID\t%d\n", m.ID)
	fmt.Fprintf(tw, "State\t%s\n", m.State)
	fmt.Fprintf(tw, "Received\t%s (%s)\n", stamp(m.ReceivedAt), ago(m.ReceivedAt, now))
	fmt.Fprintf(tw, "Object\t%s %s (case %s)\n", m.ObjectType, m.ObjectID, m.RootID)
	fmt.Fprintf(tw, "Action\t%s\n", m.Action)
	if m.AuditID != "" {
		fmt.Fprintf(tw, "Audit ID\t%s\n", m.AuditID)
	}
	fmt.Fprintf(tw, "Attempts\t%d\n", m.Attempts)
	if m.LastError != "" {
		fmt.Fprintf(tw, "Last error\t%s\n", m.LastError)
	}
	if !m.NextAttemptAt.IsZero() {
		fmt.Fprintf(tw, "Next attempt\t%s (%s)\n", stamp(m.NextAttemptAt), ago(m.NextAttemptAt, now))
	}
	if !m.DoneAt.IsZero() {
		fmt.Fprintf(tw, "Done\t%s (%s)\n", stamp(m.DoneAt), ago(m.DoneAt, now))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nHistory:")
	if len(m.History) == 0 {
		fmt.Fprintln(w, "  (none)")
	} else {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  AT\tOUTCOME\tERROR")
		for _, a := range m.History {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", stamp(a.At), a.Outcome, a.Error)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w, "\nThreatQ results:")
	if len(m.Results) == 0 {
		fmt.Fprintln(w, "  (none)")
	} else {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  KIND\tID\tACTION")
		for _, r := range m.Results {
			fmt.Fprintf(tw, "  %s\t%d\t%s\n", r.Kind, r.ID, r.Action)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w, "\nWebhook:")
	var buf bytes.Buffer
	if err := json.Indent(&buf, m.Body, "  ", "  "); err != nil {
		buf.Reset()
		buf.Write(m.Body)
	}
	_, err := fmt.Fprintf(w, "  %s\n", buf.Bytes())
	return err
}

var outboxRequeueCommand = &cli.Command{
	Name:      "requeue",
	Usage:     "make a message (or every dead one) pending and due now",
	ArgsUsage: "ID | --all-dead",
	Flags: append(dirFlags(),
		&cli.BoolFlag{Name: "all-dead", Usage: "requeue every dead message instead of one ID"},
		jsonFlag(),
	),
	OnUsageError: usageError,
	Action: action(func(c *cli.Context) error {
		allDead := c.Bool("all-dead")
		var id uint64
		switch {
		case allDead && c.Args().Present():
			return configErrorf("requeue: give an ID or --all-dead, not both")
		case !allDead:
			var err error
			if id, err = messageID(c); err != nil {
				return err
			}
		}
		return withOutbox(c, true, func(ctx context.Context, src outboxSource) error {
			n := 1
			if allDead {
				var err error
				if n, err = src.RequeueDead(ctx); err != nil {
					return err
				}
			} else if err := src.Requeue(ctx, id); errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("message %d not found", id)
			} else if err != nil {
				return err
			}
			if c.Bool("json") {
				return writeJSON(c.App.Writer, map[string]int{"requeued": n})
			}
			_, err := fmt.Fprintf(c.App.Writer, "requeued %d message(s)\n", n)
			return err
		})
	}),
}

var outboxPurgeCommand = &cli.Command{
	Name:  "purge",
	Usage: "delete done messages older than a duration",
	Flags: append(dirFlags(),
		&cli.DurationFlag{Name: "done-before", Usage: "delete done messages finished more than `DURATION` ago, e.g. 168h (required)", Required: true},
		jsonFlag(),
	),
	OnUsageError: usageError,
	Action: action(func(c *cli.Context) error {
		d := c.Duration("done-before")
		if d < 0 {
			return configErrorf("--done-before: must not be negative")
		}
		cutoff := time.Now().Add(-d)
		return withOutbox(c, true, func(ctx context.Context, src outboxSource) error {
			n, err := src.Purge(ctx, cutoff)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return writeJSON(c.App.Writer, map[string]int{"purged": n})
			}
			_, err = fmt.Fprintf(c.App.Writer, "purged %d done message(s) finished before %s\n", n, stamp(cutoff))
			return err
		})
	}),
}

func withOutbox(c *cli.Context, write bool, fn func(context.Context, outboxSource) error) error {
	if c.NArg() > 1 || (c.NArg() == 1 && c.Command.ArgsUsage == "") {
		return configErrorf("unexpected argument %q", c.Args().Get(c.NArg()-1))
	}
	g, err := readGlobals(c)
	if err != nil {
		return err
	}
	ctx := c.Context
	src, err := openOutbox(ctx, g.ConfigDir, write)
	if err != nil {
		return err
	}
	defer src.Close()
	return fn(ctx, src)
}

func messageID(c *cli.Context) (uint64, error) {
	if c.NArg() != 1 {
		return 0, configErrorf("want exactly one message ID (see %s outbox %s --help)", appName, c.Command.Name)
	}
	id, err := strconv.ParseUint(c.Args().First(), 10, 64)
	if err != nil || id == 0 {
		return 0, configErrorf("invalid message ID %q", c.Args().First())
	}
	return id, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ago renders t relative to now: "3m ago", "in 5s", "-" for zero.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	suffix := " ago"
	prefix := ""
	if d < 0 {
		d, prefix, suffix = -d, "in ", ""
	}
	var s string
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		s = fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh", int(d/time.Hour))
	default:
		s = fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
	return prefix + s + suffix
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func truncate(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
