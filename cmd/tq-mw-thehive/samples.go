package main

import "embed"

// demoSamples are the manual's two webhooks, for the demo.
//
//go:embed testdata/webhook-case-update.json testdata/webhook-observable-update.json
var demoSamples embed.FS
