package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/tqlabs/tq-mw-thehive/store"
)

// The admin API lets `tq-mw-thehive outbox ...` work while the agent runs:
// bbolt's flock keeps a second process out of the database, so the running
// agent serves the same operations on a unix socket (mode 0600, so only
// the agent's user can reach it).

// Limits of GET /outbox/messages.
const (
	adminDefaultLimit = 50
	adminMaxLimit     = 1000
)

// AdminStats is the JSON form of store.Stats on the admin API.
type AdminStats struct {
	Pending       int        `json:"pending"`
	Dead          int        `json:"dead"`
	Done          int        `json:"done"`
	OldestPending *time.Time `json:"oldest_pending,omitempty"`
	DBBytes       int64      `json:"db_bytes"`
}

func toAdminStats(s store.Stats) AdminStats {
	a := AdminStats{Pending: s.Pending, Dead: s.Dead, Done: s.Done, DBBytes: s.DBBytes}
	if !s.OldestPending.IsZero() {
		t := s.OldestPending
		a.OldestPending = &t
	}
	return a
}

func (a AdminStats) toStore() store.Stats {
	s := store.Stats{Pending: a.Pending, Dead: a.Dead, Done: a.Done, DBBytes: a.DBBytes}
	if a.OldestPending != nil {
		s.OldestPending = *a.OldestPending
	}
	return s
}

type adminCount struct {
	Requeued *int `json:"requeued,omitempty"`
	Purged   *int `json:"purged,omitempty"`
}

type adminError struct {
	Error string `json:"error"`
	// Code lets the client turn errors back into the store's sentinels.
	Code string `json:"code,omitempty"`
}

const codeNotFound = "not_found"

// NewAdminHandler serves the outbox of db:
//
//	GET  /outbox/stats
//	GET  /outbox/messages?state=&after=&limit=
//	GET  /outbox/messages/{id}
//	POST /outbox/messages/{id}/requeue
//	POST /outbox/requeue-dead
//	POST /outbox/purge?done_before=RFC3339
//
// Responses are JSON; errors are {"error": "..."} with 400, 404 or 500.
func NewAdminHandler(db *store.DB) http.Handler {
	h := &adminHandler{db: db, logger: slog.Default().With("component", "admin")}
	r := newRouter(h.logger, "")
	r.GET("/outbox/stats", h.stats)
	r.GET("/outbox/messages", h.list)
	r.GET("/outbox/messages/:id", h.get)
	r.POST("/outbox/messages/:id/requeue", h.requeue)
	r.POST("/outbox/requeue-dead", h.requeueDead)
	r.POST("/outbox/purge", h.purge)
	return r
}

type adminHandler struct {
	db     *store.DB
	logger *slog.Logger
}

func (h *adminHandler) stats(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	s, err := h.db.Stats()
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toAdminStats(s))
}

func (h *adminHandler) list(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	q := r.URL.Query()
	state := store.State(q.Get("state"))
	switch state {
	case "", store.StatePending, store.StateDone, store.StateDead:
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("state: want pending, done or dead, got %q", state))
		return
	}
	var after uint64
	if s := q.Get("after"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("after: invalid id %q", s))
			return
		}
		after = v
	}
	limit := adminDefaultLimit
	if s := q.Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > adminMaxLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit: want 1-%d, got %q", adminMaxLimit, s))
			return
		}
		limit = v
	}
	msgs, err := h.db.List(state, after, limit)
	if err != nil {
		h.fail(w, err)
		return
	}
	if msgs == nil {
		msgs = []store.Message{}
	}
	writeJSON(w, http.StatusOK, msgs)
}

func (h *adminHandler) get(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	id, ok := parseID(w, ps)
	if !ok {
		return
	}
	m, err := h.db.Get(id)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (h *adminHandler) requeue(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	id, ok := parseID(w, ps)
	if !ok {
		return
	}
	if err := h.db.Requeue(r.Context(), id); err != nil {
		h.fail(w, err)
		return
	}
	n := 1
	writeJSON(w, http.StatusOK, adminCount{Requeued: &n})
}

func (h *adminHandler) requeueDead(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	n, err := h.db.RequeueDead(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, adminCount{Requeued: &n})
}

func (h *adminHandler) purge(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	s := r.URL.Query().Get("done_before")
	before, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("done_before: want an RFC 3339 time, got %q", s))
		return
	}
	n, err := h.db.Purge(r.Context(), before)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, adminCount{Purged: &n})
}

func parseID(w http.ResponseWriter, ps httprouter.Params) (uint64, bool) {
	s := ps.ByName("id")
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid message id %q", s))
		return 0, false
	}
	return id, true
}

func (h *adminHandler) fail(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, adminError{Error: err.Error(), Code: codeNotFound})
		return
	}
	h.logger.Error("admin request failed", "error", err)
	writeError(w, http.StatusInternalServerError, err.Error())
}

// AdminClient talks to NewAdminHandler over the agent's unix socket. Its
// methods mirror the store's so that callers can use either.
type AdminClient struct {
	socket string
	http   *http.Client
}

// NewAdminClient returns a client for the admin socket at socketPath.
// Nothing is dialled until the first call.
func NewAdminClient(socketPath string) *AdminClient {
	d := &net.Dialer{Timeout: 2 * time.Second}
	return &AdminClient{
		socket: socketPath,
		http: &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return d.DialContext(ctx, "unix", socketPath)
				},
				MaxIdleConns:    2,
				IdleConnTimeout: 10 * time.Second,
			},
		},
	}
}

// Close releases idle connections.
func (c *AdminClient) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

// Ping checks that the socket accepts connections.
func (c *AdminClient) Ping(ctx context.Context) error {
	conn, err := (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "unix", c.socket)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	return conn.Close()
}

// Stats is store.DB.Stats.
func (c *AdminClient) Stats(ctx context.Context) (store.Stats, error) {
	var a AdminStats
	if err := c.do(ctx, http.MethodGet, "/outbox/stats", nil, &a); err != nil {
		return store.Stats{}, fmt.Errorf("admin: stats: %w", err)
	}
	return a.toStore(), nil
}

// List is store.DB.List; limit ≤ 0 means the server's default (50).
func (c *AdminClient) List(ctx context.Context, state store.State, afterID uint64, limit int) ([]store.Message, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", string(state))
	}
	if afterID > 0 {
		q.Set("after", strconv.FormatUint(afterID, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var msgs []store.Message
	if err := c.do(ctx, http.MethodGet, "/outbox/messages", q, &msgs); err != nil {
		return nil, fmt.Errorf("admin: list: %w", err)
	}
	return msgs, nil
}

// Get is store.DB.Get; an unknown id gives an error wrapping
// store.ErrNotFound.
func (c *AdminClient) Get(ctx context.Context, id uint64) (store.Message, error) {
	var m store.Message
	if err := c.do(ctx, http.MethodGet, "/outbox/messages/"+strconv.FormatUint(id, 10), nil, &m); err != nil {
		return store.Message{}, fmt.Errorf("admin: get %d: %w", id, err)
	}
	return m, nil
}

// Requeue is store.DB.Requeue.
func (c *AdminClient) Requeue(ctx context.Context, id uint64) error {
	if err := c.do(ctx, http.MethodPost, "/outbox/messages/"+strconv.FormatUint(id, 10)+"/requeue", nil, nil); err != nil {
		return fmt.Errorf("admin: requeue %d: %w", id, err)
	}
	return nil
}

// RequeueDead is store.DB.RequeueDead.
func (c *AdminClient) RequeueDead(ctx context.Context) (int, error) {
	var n adminCount
	if err := c.do(ctx, http.MethodPost, "/outbox/requeue-dead", nil, &n); err != nil {
		return 0, fmt.Errorf("admin: requeue dead: %w", err)
	}
	if n.Requeued == nil {
		return 0, errors.New("admin: requeue dead: response without a count")
	}
	return *n.Requeued, nil
}

// Purge is store.DB.Purge.
func (c *AdminClient) Purge(ctx context.Context, doneBefore time.Time) (int, error) {
	q := url.Values{"done_before": {doneBefore.UTC().Format(time.RFC3339Nano)}}
	var n adminCount
	if err := c.do(ctx, http.MethodPost, "/outbox/purge", q, &n); err != nil {
		return 0, fmt.Errorf("admin: purge: %w", err)
	}
	if n.Purged == nil {
		return 0, errors.New("admin: purge: response without a count")
	}
	return *n.Purged, nil
}

func (c *AdminClient) do(ctx context.Context, method, path string, q url.Values, v any) error {
	u := "http://unix" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e adminError
		msg := resp.Status
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if e.Code == codeNotFound {
			return store.ErrNotFound
		}
		return errors.New(msg)
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}
