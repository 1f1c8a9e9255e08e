package threatqtest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
)

// handleToken is POST /api/token: the password grant (query grant_type and
// client_id, JSON or form email/password, as any of the known clients send
// it) and the refresh grant.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	fields := map[string]string{}
	for k, v := range r.URL.Query() {
		fields[k] = v[0]
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		if err := r.ParseForm(); err == nil {
			for k, v := range r.PostForm {
				fields[k] = v[0]
			}
		}
	} else if len(strings.TrimSpace(string(body))) > 0 {
		var m map[string]any
		if json.Unmarshal(body, &m) != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "message": "Malformed JSON."})
			return
		}
		for k, v := range m {
			if s, ok := v.(string); ok {
				fields[k] = s
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch fields["grant_type"] {
	case "password":
		if fields["client_id"] != s.ClientID {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client", "message": "Client authentication failed"})
			return
		}
		if fields["email"] != s.Email || fields["password"] != s.Password {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_credentials", "message": "The user credentials were incorrect."})
			return
		}
	case "refresh_token":
		rt := fields["refresh_token"]
		if !s.refresh[rt] {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request", "message": "The refresh token is invalid."})
			return
		}
		delete(s.refresh, rt) // rotated
	default:
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "unsupported_grant_type", "message": "The authorization grant type is not supported."})
		return
	}
	at, rt := randToken(), randToken()
	s.tokens[at] = time.Now().Add(s.cfg.TokenLifetime)
	s.refresh[rt] = true
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":    "Bearer",
		"expires_in":    int(s.cfg.TokenLifetime / time.Second),
		"access_token":  at,
		"refresh_token": rt,
	})
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[h[7:]]
	return ok && time.Now().Before(exp)
}
