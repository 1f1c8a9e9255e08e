package agent

import (
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/tqlabs/tq-mw-thehive/store"
	"github.com/tqlabs/tq-mw-thehive/thehive"
)

// DefaultMaxBodyBytes caps a webhook body when the config sets no limit.
const DefaultMaxBodyBytes = 1 << 20

// intake serves POST /cases. It never talks to ThreatQ: TheHive does not
// retry a failed webhook, so the only job here is to get the message onto
// disk and answer fast, whatever state ThreatQ is in.
type intake struct {
	db      *store.DB
	cfg     atomic.Pointer[IntakeConfig]
	metrics *metrics
	logger  *slog.Logger
}

// authorized checks the optional webhook credentials in constant time.
func (cfg *IntakeConfig) authorized(r *http.Request) bool {
	switch cfg.AuthType {
	case "", "none":
		return true
	case "bearer":
		got, ok := bearerToken(r)
		return ok && cfg.Token != "" && subtle.ConstantTimeCompare([]byte(got), []byte(cfg.Token)) == 1
	case "basic":
		u, p, ok := r.BasicAuth()
		// Compare both halves always so timing does not tell which one was wrong.
		uok := subtle.ConstantTimeCompare([]byte(u), []byte(cfg.Username))
		pok := subtle.ConstantTimeCompare([]byte(p), []byte(cfg.Password))
		return ok && cfg.Password != "" && uok&pok == 1
	default:
		return false
	}
}

func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return h[len(prefix):], true
}

type intakeResponse struct {
	Status string `json:"status"` // stored, duplicate, ignored
	ID     uint64 `json:"id,omitempty"`
}

func (in *intake) handleCases(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	start := time.Now()
	objectType := "unknown"
	code := http.StatusOK
	defer func() {
		in.metrics.webhooks.WithLabelValues(objectType, strconv.Itoa(code)).Inc()
		in.metrics.intakeLatency.Observe(time.Since(start).Seconds())
	}()
	fail := func(c int, msg string) {
		code = c
		in.logger.Debug("webhook rejected", "code", c, "reason", msg, "remote", r.RemoteAddr)
		writeError(w, c, msg)
	}

	cfg := in.cfg.Load()
	if !cfg.authorized(r) {
		if cfg.AuthType == "basic" {
			w.Header().Set("WWW-Authenticate", `Basic realm="tq-mw-thehive"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tq-mw-thehive"`)
		}
		fail(http.StatusUnauthorized, "missing or wrong webhook credentials")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		fail(http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	limit := cfg.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	if r.ContentLength > limit {
		fail(http.StatusRequestEntityTooLarge, "body exceeds "+strconv.FormatInt(limit, 10)+" bytes")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(http.StatusRequestEntityTooLarge, "body exceeds "+strconv.FormatInt(limit, 10)+" bytes")
			return
		}
		fail(http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	msg, err := thehive.ParseWebhook(body)
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	objectType = msg.ObjectType
	if !isKnownType(objectType) {
		objectType = "other"
	}
	if !thehive.IsStored(msg.ObjectType) {
		code = http.StatusAccepted
		writeJSON(w, code, intakeResponse{Status: "ignored"})
		return
	}
	id, dup, err := in.db.Append(r.Context(), &store.Message{
		AuditID:    msg.AuditID,
		Action:     msg.Action,
		ObjectType: msg.ObjectType,
		ObjectID:   msg.ObjectID,
		RootID:     msg.RootID,
		Body:       body,
	})
	if err != nil {
		// Not stored, so not acknowledged: TheHive logs the failure, and the
		// periodic reconcile picks the change up later.
		in.logger.Error("webhook not stored", "error", err, "object_type", msg.ObjectType, "object_id", msg.ObjectID)
		fail(http.StatusServiceUnavailable, "outbox unavailable: message not stored")
		return
	}
	status := "stored"
	if dup {
		status = "duplicate"
	}
	writeJSON(w, http.StatusOK, intakeResponse{Status: status, ID: id})
}

// isKnownType keeps the metric's object_type label bounded: webhook bodies
// are untrusted and could otherwise mint a label per request.
func isKnownType(t string) bool {
	switch t {
	case thehive.TypeCase, thehive.TypeObservable, "Alert", "Task", "Log", "Comment", "Page", "Procedure", "CaseTemplate", "Job":
		return true
	}
	return false
}
