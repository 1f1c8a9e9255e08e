// Command tq-mw-thehive keeps ThreatQ in sync with TheHive 5: it receives
// TheHive's webhooks, stores them in a local outbox and delivers them to
// ThreatQ. See README.md for the command line.
package main

import (
	"os"
	"runtime"

	"github.com/tqlabs/tq-mw-thehive/agent"
)

func main() {
	// See agent.MinProcs: the fsync-bound committer must not starve intake.
	if os.Getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) < agent.MinProcs {
		runtime.GOMAXPROCS(agent.MinProcs)
	}
	os.Exit(realMain(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
