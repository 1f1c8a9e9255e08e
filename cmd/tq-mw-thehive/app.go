package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // runtime failure
	exitUsage   = 2 // bad command line or configuration
)

const appName = "tq-mw-thehive"

// version is set at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

// realMain runs the CLI and returns the process exit code. Errors are
// printed as one line "tq-mw-thehive: <error>".
func realMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	args, err := normaliseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", appName, err)
		return exitUsage
	}
	app := newApp(stdin, stdout, stderr)
	err = app.Run(args)
	if err == nil {
		return exitOK
	}
	if msg := oneLine(err); msg != "" { // cli.Exit("", n) asks for silence
		fmt.Fprintf(stderr, "%s: %s\n", appName, msg)
	}
	return exitCode(err)
}

func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}

// exitCode maps an error to the process exit code. Errors that did not come
// out of an action (flag parsing, unknown flags) are usage errors.
func exitCode(err error) int {
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	var ce *configError
	if errors.As(err, &ce) {
		return exitUsage
	}
	var re *runtimeError
	if errors.As(err, &re) {
		return exitFailure
	}
	return exitUsage
}

// runtimeError marks a failure of the work itself (exit 1), as opposed to
// a usage or configuration error (exit 2).
type runtimeError struct{ err error }

func (e *runtimeError) Error() string { return e.err.Error() }
func (e *runtimeError) Unwrap() error { return e.err }

// action wraps a command action so that its plain errors count as runtime
// failures; configError keeps exit code 2.
func action(fn cli.ActionFunc) cli.ActionFunc {
	return func(c *cli.Context) error {
		err := fn(c)
		if err == nil {
			return nil
		}
		var ce *configError
		if errors.As(err, &ce) {
			return err
		}
		return &runtimeError{err: err}
	}
}

func usageError(c *cli.Context, err error, isSubcommand bool) error {
	return configErrorf("%v (see %s --help)", err, c.App.Name)
}

var shortVerbosity = regexp.MustCompile(`^-v(\d+)$`)

// normaliseArgs rewrites the manual's "-v3" into "-v=3": Go's flag package
// would read "-v3" as a flag named "v3". Arguments after "--" are left
// alone.
func normaliseArgs(args []string) ([]string, error) {
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if i == 0 {
			continue
		}
		if a == "--" {
			break
		}
		if m := shortVerbosity.FindStringSubmatch(a); m != nil {
			switch m[1] {
			case "1", "2", "3":
				out[i] = "-v=" + m[1]
			default:
				return nil, fmt.Errorf("invalid verbosity %q: want -v1, -v2 or -v3", a)
			}
		}
	}
	return reorderIDArgs(out), nil
}

// valueFlags are the flags of the outbox subcommands that take a separate
// value ("-c DIR").
var valueFlags = map[string]bool{"-c": true, "--c": true, "-config": true, "--config": true,
	"-ll": true, "--ll": true, "-loglocation": true, "--loglocation": true,
	"-v": true, "--v": true, "-verbosity": true, "--verbosity": true}

// reorderIDArgs moves the positional ID of "outbox show" and "outbox
// requeue" behind their flags: Go's flag package stops at the first
// argument, so "outbox show 5 -c /etc/tq_labs" would otherwise ignore -c.
func reorderIDArgs(args []string) []string {
	sub := -1
	for i := 1; i+1 < len(args); i++ {
		if args[i] == "outbox" && (args[i+1] == "show" || args[i+1] == "requeue") {
			sub = i + 2
			break
		}
	}
	if sub < 0 {
		return args
	}
	head := append([]string{}, args[:sub]...)
	var flags, positional []string
	for i := sub; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags = append(flags, a)
			if valueFlags[a] && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			positional = append(positional, a)
		}
	}
	return append(append(head, flags...), positional...)
}

// manualAliases are the manual's two-letter short flags. urfave/cli prints
// multi-letter aliases with "--"; Go's flag package accepts both, and the
// help should show them as the manual does.
var manualAliases = strings.NewReplacer("--ll ", "-ll ", "--ep", "-ep", "--ds", "-ds", "--li ", "-li ")

func init() {
	def := cli.FlagStringer
	cli.FlagStringer = func(f cli.Flag) string { return manualAliases.Replace(def(f)) }
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:    appName,
		Usage:   "sync TheHive 5 cases and observables into ThreatQ",
		Version: version,
		Description: "Without a subcommand, runs the agent (same as \"run\").\n\n" +
			"Every flag can also be set by an environment variable, shown in brackets.\n" +
			"Every config file key can be overridden by TQ_THEHIVE_ plus the key's dotted\n" +
			"path upper-cased with dots as underscores, e.g. threatq.password →\n" +
			"TQ_THEHIVE_THREATQ_PASSWORD, intake.auth.token → TQ_THEHIVE_INTAKE_AUTH_TOKEN.",
		Flags:  globalFlags(),
		Action: action(runAction),
		Commands: []*cli.Command{
			runCommand,
			initCommand,
			backfillCommand,
			outboxCommand,
			demoCommand,
			versionCommand,
		},
		Reader:         stdin,
		Writer:         stdout,
		ErrWriter:      stderr,
		OnUsageError:   usageError,
		ExitErrHandler: func(*cli.Context, error) {}, // realMain prints and exits
		HideVersion:    true,                         // "version" is a command
		Metadata:       map[string]any{"stdin": stdin},
	}
}

func stdinOf(c *cli.Context) io.Reader {
	if r, ok := c.App.Metadata["stdin"].(io.Reader); ok {
		return r
	}
	return os.Stdin
}
