package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/lmittmann/tint"
	"golang.org/x/term"
	"gopkg.in/natefinch/lumberjack.v2"
)

// Log file rotation: enough history to cover a weekend outage without
// filling a small /var/log.
const (
	logMaxSizeMB  = 50
	logMaxBackups = 5
)

// levelFor maps the manual's verbosity to a slog level.
func levelFor(verbosity int) slog.Level {
	switch verbosity {
	case 1:
		return slog.LevelWarn
	case 3:
		return slog.LevelDebug
	default:
		return slog.LevelInfo
	}
}

// newLogger builds the process logger: tint on a terminal, JSON otherwise,
// on stderr; with logDir also JSON lines to a rotated file in logDir. The
// returned closer flushes and closes the file.
func newLogger(verbosity int, logDir string, stderr io.Writer) (*slog.Logger, io.Closer, error) {
	level := levelFor(verbosity)
	var console slog.Handler
	if isTerminal(stderr) {
		console = tint.NewHandler(stderr, &tint.Options{Level: level, TimeFormat: time.Kitchen})
	} else {
		console = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	}
	if logDir == "" {
		return slog.New(console), nopCloser{}, nil
	}
	if err := os.MkdirAll(logDir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("--loglocation: %w", err)
	}
	path := filepath.Join(logDir, logFileName)
	// lumberjack opens lazily; open once now so that an unwritable
	// directory is a start-up error rather than lost log lines.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("--loglocation: %w", err)
	}
	f.Close()
	lj := &lumberjack.Logger{Filename: path, MaxSize: logMaxSizeMB, MaxBackups: logMaxBackups, Compress: true}
	file := slog.NewJSONHandler(lj, &slog.HandlerOptions{Level: level})
	return slog.New(fanout{console, file}), lj, nil
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// fanout sends each record to every handler that wants it.
type fanout []slog.Handler

func (f fanout) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			if err := h.Handle(ctx, r.Clone()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (f fanout) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithAttrs(attrs)
	}
	return out
}

func (f fanout) WithGroup(name string) slog.Handler {
	out := make(fanout, len(f))
	for i, h := range f {
		out[i] = h.WithGroup(name)
	}
	return out
}
