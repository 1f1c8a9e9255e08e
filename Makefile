# tq-mw-thehive — see README.md. Only Go is needed; everything else the
# tests use comes from the Go module proxy.
GO      ?= go
BIN     ?= bin/tq-mw-thehive
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
PREFIX  ?= /usr/local

.PHONY: all build test test-short fuzz bench demo install clean vet

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/tq-mw-thehive

# The full suite, race detector on; fuzz targets run their seed corpus.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

test-short:
	$(GO) test -short -count=1 ./...

# Run each fuzz target for a while (FUZZTIME=30s by default).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseWebhook$$' -fuzztime $(FUZZTIME) ./thehive
	$(GO) test -run '^$$' -fuzz '^FuzzParseTypeMapping$$' -fuzztime $(FUZZTIME) ./mapping

# Throughput and memory figures (see README "Performance"): durable intake
# vs a no-op handler, outbox drain into ThreatQ, and the 100k-case backfill.
bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./agent
	$(GO) test -run '^$$' -bench 'AppendParallel|AppendDBBatch' -benchtime 2s ./store

# The whole path on loopback: fake TheHive, fake ThreatQ, the agent between.
demo: build
	$(BIN) demo

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/tq-mw-thehive
	install -D -m 0644 deploy/tq-mw-thehive.service $(DESTDIR)/etc/systemd/system/tq-mw-thehive.service
	install -d -m 0750 $(DESTDIR)/etc/tq_labs $(DESTDIR)/var/log/tq_labs

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
