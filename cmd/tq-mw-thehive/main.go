// Command tq-mw-thehive keeps ThreatQ in sync with TheHive 5: it receives
// TheHive's webhooks, stores them in a local outbox and delivers them to
// ThreatQ. See SPEC.md §2 for the command line.
package main

import "os"

func main() {
	os.Exit(realMain(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
