package agent

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/julienschmidt/httprouter"
)

// newRouter is an httprouter whose every failure answers JSON: unknown
// paths 404, wrong methods 405, and a panic 500 (logged, never a crash).
// hint is added to the 404 message.
func newRouter(logger *slog.Logger, hint string) *httprouter.Router {
	r := httprouter.New()
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+req.URL.Path+hint)
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method "+req.Method+" not allowed on "+req.URL.Path)
	})
	r.PanicHandler = func(w http.ResponseWriter, req *http.Request, v any) {
		logger.Error("handler panic", "path", req.URL.Path, "panic", fmt.Sprint(v))
		writeError(w, http.StatusInternalServerError, "internal error")
	}
	return r
}

type jsonError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, jsonError{Error: msg})
}
