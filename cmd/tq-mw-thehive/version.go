package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

var versionCommand = &cli.Command{
	Name:         "version",
	Usage:        "print the version of tq-mw-thehive",
	OnUsageError: usageError,
	Action: action(func(c *cli.Context) error {
		v := version
		if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		_, err := fmt.Fprintf(c.App.Writer, "%s %s (%s, %s/%s)\n", appName, v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return err
	}),
}
