package thehive

// Backoff exposes the retry wait for tests.
var Backoff = backoff
