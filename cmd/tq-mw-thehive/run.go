package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/tqlabs/tq-mw-thehive/agent"
)

var runCommand = &cli.Command{
	Name:  "run",
	Usage: "run the agent: webhook listener, outbox worker and periodic reconciliation (default command)",
	Description: "Reads " + configFileName + " from --config DIR (on a terminal, prompts for it when\n" +
		"missing). SIGHUP re-reads the config file; SIGINT/SIGTERM stop cleanly.",
	Flags:        globalFlags(),
	OnUsageError: usageError,
	Action:       action(runAction),
}

func runAction(c *cli.Context) error {
	if c.Args().Present() {
		return configErrorf("unknown command %q (see %s --help)", c.Args().First(), appName)
	}
	g, err := readGlobals(c)
	if err != nil {
		return err
	}
	logger, closer, err := newLogger(g.Verbosity, g.LogDir, c.App.ErrWriter)
	if err != nil {
		return configErrorf("%v", err)
	}
	defer closer.Close()
	slog.SetDefault(logger)

	path := configPath(g.ConfigDir)
	cfg, err := loadConfig(path, os.LookupEnv)
	if errors.Is(err, errNoConfig) {
		if !stdinIsTerminal(c) {
			return configErrorf("no config file %s; create one with \"%s init -c %s\" or \"%s init --non-interactive -c %s ...\"",
				path, appName, g.ConfigDir, appName, g.ConfigDir)
		}
		fmt.Fprintf(c.App.ErrWriter, "No config file at %s yet; let's create it.\n", path)
		if err := promptAndWrite(c, path, false); err != nil {
			return err
		}
		cfg, err = loadConfig(path, os.LookupEnv)
	}
	if err != nil {
		return err
	}
	logger.Debug("config loaded", "path", cfg.Path, "config_dir", g.ConfigDir, "verbosity", g.Verbosity)

	acfg, err := buildAgentConfig(cfg, g, os.LookupEnv, logger)
	if err != nil {
		return err
	}
	if g.DisableSSL {
		logger.Warn("TLS certificate verification is disabled for TheHive and ThreatQ (--disable-ssl)")
	}
	if acfg.ThreatQ.ProxyURL != "" {
		logger.Info("using outbound proxy", "proxy", redactURL(acfg.ThreatQ.ProxyURL))
	}

	a, err := agent.New(acfg)
	if err != nil {
		return configErrorf("%v", err)
	}

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Registered before Run so that an early SIGHUP cannot kill the
	// process with the default action.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go reloadOnHUP(ctx, hup, a, g, logger)

	logger.Info("starting agent", "version", version, "listen", acfg.ListenAddr, "db", acfg.DBPath)
	if err := a.Run(ctx); err != nil {
		return err
	}
	logger.Info("agent stopped")
	return nil
}

// reloadOnHUP re-reads the config on SIGHUP. A config that fails to load
// or validate is logged and the running one stays in force: a typo must not
// take down intake.
func reloadOnHUP(ctx context.Context, hup <-chan os.Signal, a *agent.Agent, g globalOptions, logger *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		path := configPath(g.ConfigDir)
		cfg, err := loadConfig(path, os.LookupEnv)
		if err != nil {
			logger.Error("config reload failed; keeping the running config", "error", err)
			continue
		}
		acfg, err := buildAgentConfig(cfg, g, os.LookupEnv, logger)
		if err != nil {
			logger.Error("config reload failed; keeping the running config", "error", err)
			continue
		}
		if err := a.Reload(acfg); err != nil {
			logger.Error("config reload failed; keeping the running config", "error", err)
			continue
		}
		logger.Info("config reloaded", "path", path)
	}
}

func stdinIsTerminal(c *cli.Context) bool {
	f, ok := stdinOf(c).(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
