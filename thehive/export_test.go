package thehive

import "github.com/tqlabs/tq-mw-thehive/internal/retry"

// Backoff exposes the retry wait for tests.
var Backoff = retry.Backoff
