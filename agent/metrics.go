package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are per Agent (own registry) so tests can run agents side by side
// and read exact counts.
type metrics struct {
	reg *prometheus.Registry

	webhooks        *prometheus.CounterVec // object_type, code
	intakeLatency   prometheus.Histogram
	deliveries      *prometheus.CounterVec // result: done, retry, dead, coalesced, skipped
	retries         *prometheus.CounterVec // service
	outboxPending   prometheus.Gauge
	outboxDead      prometheus.Gauge
	oldestPending   prometheus.Gauge
	reconcileCases  *prometheus.CounterVec // result
	reconcileLast   prometheus.Gauge
	reconcileCursor prometheus.Gauge
	upstream        *prometheus.HistogramVec // service, code
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tq_thehive_webhooks_received_total",
		Help: "Webhooks received on /cases, by TheHive object type and HTTP status code answered.",
	}, []string{"object_type", "code"})
	m.intakeLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tq_thehive_intake_duration_seconds",
		Help:    "Time from request start to acknowledgement on /cases (includes the fsync'd commit).",
		Buckets: []float64{.0005, .001, .002, .003, .004, .005, .0075, .01, .025, .05, .1, .25, .5, 1},
	})
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tq_thehive_deliveries_total",
		Help: "Outbox messages processed by the worker, by result (done, retry, dead, coalesced, skipped).",
	}, []string{"result"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tq_thehive_upstream_retries_total",
		Help: "Transient failures of HTTP requests to ThreatQ or TheHive (5xx, 429, transport errors); each one is retried, by the client or later by the outbox.",
	}, []string{"service"})
	m.outboxPending = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tq_thehive_outbox_pending", Help: "Messages waiting for delivery."})
	m.outboxDead = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tq_thehive_outbox_dead", Help: "Dead-lettered messages (see `outbox list --state dead`)."})
	m.oldestPending = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tq_thehive_outbox_oldest_pending_age_seconds", Help: "Age of the oldest pending message."})
	m.reconcileCases = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tq_thehive_reconcile_cases_total",
		Help: "Cases walked by backfill/reconcile, by result (synced, failed).",
	}, []string{"result"})
	m.reconcileLast = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tq_thehive_reconcile_last_success_timestamp_seconds", Help: "End time of the last reconcile run that completed without failures."})
	m.reconcileCursor = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tq_thehive_reconcile_cursor_timestamp_seconds", Help: "TheHive timestamp the reconcile checkpoint has reached."})
	m.upstream = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tq_thehive_upstream_request_duration_seconds",
		Help:    "HTTP requests to ThreatQ and TheHive, by service and status code (\"error\" for transport failures).",
		Buckets: prometheus.DefBuckets,
	}, []string{"service", "code"})
	m.reg.MustRegister(m.webhooks, m.intakeLatency, m.deliveries, m.retries, m.outboxPending, m.outboxDead,
		m.oldestPending, m.reconcileCases, m.reconcileLast, m.reconcileCursor, m.upstream,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
