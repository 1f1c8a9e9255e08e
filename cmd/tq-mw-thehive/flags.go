package main

import (
	"net"

	"github.com/urfave/cli/v2"
)

// globalOptions are the manual's command-line arguments (SPEC §2).
type globalOptions struct {
	Verbosity     int
	ConfigDir     string
	LogDir        string
	ExternalProxy bool
	Port          int
	DisableSSL    bool
	ListenerIP    string
}

func env(name string) []string { return []string{envPrefix + name} }

// dirFlags are the global flags every command understands. They are
// accepted before and after the subcommand ("tq-mw-thehive -c DIR outbox
// stats" and "tq-mw-thehive outbox stats -c DIR"); each call returns fresh
// flags because urfave/cli keeps parse state in them.
func dirFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{
			Name:    "verbosity",
			Aliases: []string{"v"},
			Value:   2,
			Usage:   "log verbosity `N`: 1 = errors and warnings, 2 = info, 3 = debug; -v3 is accepted",
			EnvVars: env("VERBOSITY"),
		},
		&cli.StringFlag{
			Name:    "config",
			Aliases: []string{"c"},
			Value:   ".",
			Usage:   "directory `DIR` of the config file (" + configFileName + "), the outbox database (" + dbFileName + ") and the admin socket",
			EnvVars: env("CONFIG"),
		},
		&cli.StringFlag{
			Name:        "loglocation",
			Aliases:     []string{"ll"},
			Usage:       "directory `DIR` for the rotated JSON log file " + logFileName + " (created if missing)",
			DefaultText: "none, stderr only",
			EnvVars:     env("LOGLOCATION"),
		},
	}
}

// globalFlags are dirFlags plus the ones that matter to commands talking
// to TheHive or ThreatQ or listening for webhooks.
func globalFlags() []cli.Flag {
	return append(dirFlags(),
		&cli.BoolFlag{
			Name:        "external-proxy",
			Aliases:     []string{"ep"},
			Usage:       "send outbound requests through the proxy in threatq.proxy, else HTTPS_PROXY",
			DefaultText: "off, direct connections",
			EnvVars:     env("EXTERNAL_PROXY"),
		},
		&cli.IntFlag{
			Name:    "port",
			Aliases: []string{"p"},
			Value:   5000,
			Usage:   "TCP `PORT` of the webhook listener (POST /cases)",
			EnvVars: env("PORT"),
		},
		&cli.BoolFlag{
			Name:        "disable-ssl",
			Aliases:     []string{"ds"},
			Usage:       "skip TLS certificate verification of TheHive and ThreatQ (insecure; logged as a warning)",
			DefaultText: "off, certificates are verified",
			EnvVars:     env("DISABLE_SSL"),
		},
		&cli.StringFlag{
			Name:    "listener-ip",
			Aliases: []string{"li"},
			Value:   "127.0.0.1",
			Usage:   "`IP` address the webhook listener binds to",
			EnvVars: env("LISTENER_IP"),
		},
	)
}

// readGlobals resolves the global flags from the innermost command that
// has them set; unset, every definition carries the same default.
func readGlobals(c *cli.Context) (globalOptions, error) {
	pick := func(name string) *cli.Context {
		for _, l := range c.Lineage() {
			if l.IsSet(name) {
				return l
			}
		}
		return c
	}
	g := globalOptions{
		Verbosity:     pick("verbosity").Int("verbosity"),
		ConfigDir:     pick("config").String("config"),
		LogDir:        pick("loglocation").String("loglocation"),
		ExternalProxy: pick("external-proxy").Bool("external-proxy"),
		Port:          pick("port").Int("port"),
		DisableSSL:    pick("disable-ssl").Bool("disable-ssl"),
		ListenerIP:    pick("listener-ip").String("listener-ip"),
	}
	if g.Verbosity < 1 || g.Verbosity > 3 {
		return g, configErrorf("--verbosity: want 1, 2 or 3, got %d", g.Verbosity)
	}
	if g.ConfigDir == "" {
		return g, configErrorf("--config: must not be empty")
	}
	if g.Port < 1 || g.Port > 65535 {
		return g, configErrorf("--port: want 1-65535, got %d", g.Port)
	}
	if net.ParseIP(g.ListenerIP) == nil {
		return g, configErrorf("--listener-ip: %q is not an IP address", g.ListenerIP)
	}
	return g, nil
}
