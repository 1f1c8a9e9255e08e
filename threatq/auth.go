package threatq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// token is the cached OAuth token. refreshAt is when it is renewed ahead of
// its expiry, so requests never race the server's clock.
type token struct {
	access    string
	refresh   string
	refreshAt time.Time
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
}

// maxTokenLife is what ThreatQ's own SDK assumes ("tokens expire every 30
// minutes"), used when the server claims longer.
const maxTokenLife = 30 * time.Minute

// Login performs the OAuth password grant now, replacing any cached token.
// Calling it is optional: every request logs in on demand.
func (c *Client) Login(ctx context.Context) error {
	if err := c.acquireLogin(ctx); err != nil {
		return err
	}
	defer c.releaseLogin()
	_, err := c.passwordLogin(ctx)
	return err
}

// token returns a usable access token, logging in or refreshing first when
// there is none or it is about to expire. Only one login runs at a time;
// goroutines arriving meanwhile wait for it and use its result.
func (c *Client) token(ctx context.Context) (string, error) {
	if t, ok := c.cached(); ok {
		return t, nil
	}
	if err := c.acquireLogin(ctx); err != nil {
		return "", err
	}
	defer c.releaseLogin()
	if t, ok := c.cached(); ok {
		return t, nil // someone else logged in while we waited
	}
	c.mu.Lock()
	rt := c.tok.refresh
	c.mu.Unlock()
	if rt != "" {
		t, err := c.refreshLogin(ctx, rt)
		if err == nil {
			return t, nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		c.log.Debug("token refresh failed, logging in again", "error", err)
	}
	return c.passwordLogin(ctx)
}

func (c *Client) cached() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.access != "" && c.now().Before(c.tok.refreshAt) {
		return c.tok.access, true
	}
	return "", false
}

// dropToken forgets tok after a 401, unless another goroutine already
// replaced it. The refresh token goes too: the server rejected the session,
// so the next call does a full password login.
func (c *Client) dropToken(tok string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.access == tok {
		c.tok = token{}
	}
}

func (c *Client) acquireLogin(ctx context.Context) error {
	select {
	case c.loginSem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) releaseLogin() { <-c.loginSem }

func (c *Client) passwordLogin(ctx context.Context) (string, error) {
	q := url.Values{"grant_type": {"password"}, "client_id": {c.cfg.ClientID}}
	body, _ := json.Marshal(map[string]string{"email": c.cfg.Email, "password": c.cfg.Password})
	t, err := c.tokenRequest(ctx, q, body, "")
	if err != nil {
		return "", fmt.Errorf("threatq: login: %w", err)
	}
	c.log.Debug("logged in to threatq")
	return t, nil
}

func (c *Client) refreshLogin(ctx context.Context, refresh string) (string, error) {
	c.mu.Lock()
	cur := c.tok.access
	c.mu.Unlock()
	q := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}
	auth := ""
	if cur != "" {
		auth = "Bearer " + cur
	}
	t, err := c.tokenRequest(ctx, q, []byte("{}"), auth)
	if err != nil {
		return "", fmt.Errorf("threatq: refresh token: %w", err)
	}
	return t, nil
}

// tokenRequest posts to /api/token and caches the answer. Its errors never
// include the body sent or the tokens received.
func (c *Client) tokenRequest(ctx context.Context, q url.Values, body []byte, auth string) (string, error) {
	const path = "/api/token"
	resp, err := c.send(ctx, c.tokenRTC, http.MethodPost, path, q, body, auth)
	if err != nil {
		return "", err
	}
	var tr tokenResponse
	err = func() error {
		defer drain(resp)
		if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			b := make([]byte, 4096)
			n, _ := resp.Body.Read(b)
			msg, _ := parseErrorMessage(b[:n])
			return &authError{err: &Error{StatusCode: resp.StatusCode, Method: http.MethodPost, Path: path, Message: msg}}
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return &Error{StatusCode: resp.StatusCode, Method: http.MethodPost, Path: path}
		}
		if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
			return &transportError{Method: http.MethodPost, Path: path, Err: errors.New("decode token response")}
		}
		if tr.AccessToken == "" {
			return &authError{err: errors.New("no access_token in response")}
		}
		return nil
	}()
	if err != nil {
		return "", err
	}
	life := time.Duration(tr.ExpiresIn) * time.Second
	if life <= 0 || life > maxTokenLife {
		life = maxTokenLife
	}
	early := time.Minute
	if life <= 2*early {
		early = life / 2
	}
	c.mu.Lock()
	c.tok = token{access: tr.AccessToken, refresh: tr.RefreshToken, refreshAt: c.now().Add(life - early)}
	c.mu.Unlock()
	return tr.AccessToken, nil
}
