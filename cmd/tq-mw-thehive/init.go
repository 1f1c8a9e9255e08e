package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

var initCommand = &cli.Command{
	Name:  "init",
	Usage: "create the config file " + configFileName + " in --config DIR (mode 0600)",
	Description: "Prompts for the ThreatQ and TheHive settings (passwords are not echoed).\n" +
		"With --non-interactive every setting comes from the flags below or their env\n" +
		"vars, and missing required ones are reported by name.",
	Flags: append(dirFlags(),
		&cli.BoolFlag{Name: "non-interactive", Usage: "take every setting from flags/env instead of prompting", EnvVars: env("NON_INTERACTIVE"), DefaultText: "prompt"},
		&cli.BoolFlag{Name: "force", Usage: "overwrite an existing config file", DefaultText: "refuse"},
		&cli.StringFlag{Name: "threatq-host", Usage: "ThreatQ host name, IP or https://host[:port] (required)", EnvVars: env("THREATQ_HOST")},
		&cli.StringFlag{Name: "threatq-client-id", Usage: "ThreatQ API client ID (required)", EnvVars: env("THREATQ_CLIENT_ID")},
		&cli.StringFlag{Name: "threatq-email", Usage: "ThreatQ user email (required)", EnvVars: env("THREATQ_EMAIL")},
		&cli.StringFlag{Name: "threatq-password", Usage: "ThreatQ user password, written to the file (required unless --threatq-password-file)", EnvVars: env("THREATQ_PASSWORD"), DefaultText: "none"},
		&cli.StringFlag{Name: "threatq-password-file", Usage: "`FILE` holding the ThreatQ password; the config refers to it instead of storing the password", EnvVars: env("THREATQ_PASSWORD_FILE")},
		&cli.StringFlag{Name: "threatq-proxy", Usage: "HTTP proxy `URL` used with --external-proxy", EnvVars: env("THREATQ_PROXY"), DefaultText: "none, then HTTPS_PROXY"},
		&cli.StringFlag{Name: "thehive-url", Usage: "TheHive URL https://host[:port] (required)", EnvVars: env("THEHIVE_URL")},
		&cli.StringFlag{Name: "thehive-api-key", Usage: "TheHive API key, written to the file (required unless --thehive-api-key-file)", EnvVars: env("THEHIVE_API_KEY"), DefaultText: "none"},
		&cli.StringFlag{Name: "thehive-api-key-file", Usage: "`FILE` holding the TheHive API key; the config refers to it instead of storing the key", EnvVars: env("THEHIVE_API_KEY_FILE")},
		&cli.StringFlag{Name: "thehive-organisation", Usage: "TheHive organisation sent as X-Organisation", EnvVars: env("THEHIVE_ORGANISATION"), DefaultText: "the API key's organisation"},
		&cli.BoolFlag{Name: "ioc-only", Usage: "only sync observables marked 'Is IOC'", EnvVars: env("SYNC_IOC_ONLY"), DefaultText: "false"},
		&cli.BoolFlag{Name: "cases-as-incidents", Usage: "sync cases as ThreatQ Incidents instead of Events", EnvVars: env("SYNC_CASES_AS_INCIDENTS"), DefaultText: "false"},
		&cli.BoolFlag{Name: "include-cases-without-observables", Usage: "sync cases that have no observables yet", EnvVars: env("SYNC_INCLUDE_CASES_WITHOUT_OBSERVABLES"), DefaultText: "false"},
	),
	OnUsageError: usageError,
	Action:       action(initAction),
}

func initAction(c *cli.Context) error {
	if c.Args().Present() {
		return configErrorf("init takes no arguments, got %q", c.Args().First())
	}
	g, err := readGlobals(c)
	if err != nil {
		return err
	}
	path := configPath(g.ConfigDir)
	if !c.Bool("force") {
		if _, err := os.Stat(path); err == nil {
			return configErrorf("%s already exists; use --force to overwrite it", path)
		}
	}
	if !c.Bool("non-interactive") {
		if !stdinIsTerminal(c) {
			return configErrorf("stdin is not a terminal; use --non-interactive with --threatq-host etc. (see %s init --help)", appName)
		}
		return promptAndWrite(c, path, c.Bool("force"))
	}

	fc := &fileConfig{
		ThreatQ: threatqSection{
			Host:         c.String("threatq-host"),
			ClientID:     c.String("threatq-client-id"),
			Email:        c.String("threatq-email"),
			Password:     c.String("threatq-password"),
			PasswordFile: c.String("threatq-password-file"),
			Proxy:        c.String("threatq-proxy"),
		},
		TheHive: thehiveSection{
			URL:          c.String("thehive-url"),
			APIKey:       c.String("thehive-api-key"),
			APIKeyFile:   c.String("thehive-api-key-file"),
			Organisation: c.String("thehive-organisation"),
		},
		Sync: syncSection{
			IOCOnly:                        c.Bool("ioc-only"),
			CasesAsIncidents:               c.Bool("cases-as-incidents"),
			IncludeCasesWithoutObservables: c.Bool("include-cases-without-observables"),
		},
	}
	var missing []string
	for _, m := range []struct{ flag, v string }{
		{"--threatq-host", fc.ThreatQ.Host},
		{"--threatq-client-id", fc.ThreatQ.ClientID},
		{"--threatq-email", fc.ThreatQ.Email},
		{"--threatq-password", fc.ThreatQ.Password + fc.ThreatQ.PasswordFile},
		{"--thehive-url", fc.TheHive.URL},
		{"--thehive-api-key", fc.TheHive.APIKey + fc.TheHive.APIKeyFile},
	} {
		if m.v == "" {
			missing = append(missing, m.flag)
		}
	}
	if len(missing) > 0 {
		return configErrorf("init --non-interactive: missing %s", strings.Join(missing, ", "))
	}
	return validateAndWrite(c, path, fc, c.Bool("force"))
}

// validateAndWrite checks fc the way run will read it before writing, so
// that init never leaves a file run would reject.
func validateAndWrite(c *cli.Context, path string, fc *fileConfig, force bool) error {
	if _, err := fc.validate(); err != nil {
		return configErrorf("%v", err)
	}
	if err := writeConfigFile(path, fc, force); err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "Wrote %s (mode 0600).\n", path)
	return nil
}

// promptAndWrite asks for the settings on the terminal and writes them.
func promptAndWrite(c *cli.Context, path string, force bool) error {
	in := stdinOf(c)
	p := &prompter{in: bufio.NewReader(in), out: c.App.ErrWriter, readSecret: terminalSecret(in)}
	fc, err := p.ask()
	if err != nil {
		return err
	}
	return validateAndWrite(c, path, fc, force)
}

// terminalSecret reads a line without echo when in is a terminal.
func terminalSecret(in io.Reader) func() (string, error) {
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return func() (string, error) {
		b, err := term.ReadPassword(int(f.Fd()))
		return string(b), err
	}
}

// prompter asks the init questions. readSecret nil means read secrets as
// plain lines (tests).
type prompter struct {
	in         *bufio.Reader
	out        io.Writer
	readSecret func() (string, error)
}

func (p *prompter) line(question, def string) (string, error) {
	if def != "" {
		fmt.Fprintf(p.out, "%s [%s]: ", question, def)
	} else {
		fmt.Fprintf(p.out, "%s: ", question)
	}
	s, err := p.in.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && s != "") {
		return "", fmt.Errorf("init: read answer: %w", err)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return def, nil
	}
	return s, nil
}

func (p *prompter) required(question string) (string, error) {
	for {
		s, err := p.line(question, "")
		if err != nil || s != "" {
			return s, err
		}
		fmt.Fprintln(p.out, "  a value is required")
	}
}

func (p *prompter) secret(question string) (string, error) {
	if p.readSecret == nil {
		return p.required(question)
	}
	for {
		fmt.Fprintf(p.out, "%s (not echoed): ", question)
		s, err := p.readSecret()
		fmt.Fprintln(p.out)
		if err != nil {
			return "", fmt.Errorf("init: read secret: %w", err)
		}
		if s = strings.TrimSpace(s); s != "" {
			return s, nil
		}
		fmt.Fprintln(p.out, "  a value is required")
	}
}

func (p *prompter) yesNo(question string) (bool, error) {
	for {
		s, err := p.line(question+" (y/N)", "")
		if err != nil {
			return false, err
		}
		switch strings.ToLower(s) {
		case "", "n", "no":
			return false, nil
		case "y", "yes":
			return true, nil
		}
		fmt.Fprintln(p.out, "  answer y or n")
	}
}

func (p *prompter) ask() (*fileConfig, error) {
	fc := &fileConfig{}
	steps := []func() error{
		func() (err error) {
			fc.ThreatQ.Host, err = p.required("ThreatQ Host (host name, IP or https://host:port)")
			return
		},
		func() (err error) { fc.ThreatQ.ClientID, err = p.required("ThreatQ Client ID"); return },
		func() (err error) { fc.ThreatQ.Email, err = p.required("ThreatQ Email"); return },
		func() (err error) { fc.ThreatQ.Password, err = p.secret("ThreatQ Password"); return },
		func() (err error) { fc.TheHive.URL, err = p.required("TheHive URL (https://host:port)"); return },
		func() (err error) { fc.TheHive.APIKey, err = p.secret("TheHive API Key"); return },
		func() (err error) {
			fc.TheHive.Organisation, err = p.line("TheHive organisation (empty = the API key's default)", "")
			return
		},
		func() (err error) {
			fc.Sync.IOCOnly, err = p.yesNo("Only sync indicators if the 'Is IOC' field is selected?")
			return
		},
		func() (err error) {
			fc.Sync.CasesAsIncidents, err = p.yesNo("Sync cases as Incidents instead of Events?")
			return
		},
		func() (err error) {
			fc.Sync.IncludeCasesWithoutObservables, err = p.yesNo("Include cases with no observables?")
			return
		},
		func() (err error) { fc.Sync.CustomIOCMapping, err = p.yesNo("Use a custom IoC type mapping?"); return },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if fc.Sync.CustomIOCMapping {
		fmt.Fprintln(p.out, "Type mapping, one '<observable type>: <ThreatQ type>' a line; an empty line ends it:")
		var lines []string
		for {
			s, err := p.line(" ", "")
			if err != nil {
				return nil, err
			}
			if s == "" {
				break
			}
			lines = append(lines, s)
		}
		fc.Sync.IOCTypeMapping = strings.Join(lines, "\n") + "\n"
	}
	return fc, nil
}

// redactURL drops the userinfo of a proxy URL before it is logged.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "[unparsable]"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	return u.String()
}
