// Package transport builds the outbound HTTP transport of the ThreatQ and
// TheHive clients from the command line's TLS and proxy flags.
package transport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// New is http.DefaultTransport's settings with TLS verification off when
// insecureSkipVerify (--disable-ssl, warned about at start) and every
// request through proxyURL when set; without one, no proxy, whatever the
// environment says (--external-proxy decides, not HTTPS_PROXY alone).
func New(insecureSkipVerify bool, proxyURL string) (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if insecureSkipVerify {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // --disable-ssl
	}
	tr.Proxy = nil
	if proxyURL != "" {
		pu, err := url.Parse(proxyURL)
		if err != nil || pu.Host == "" {
			return nil, errors.New("invalid proxy URL")
		}
		tr.Proxy = http.ProxyURL(pu)
	}
	return tr, nil
}

// BaseURL parses an API server's address as users write it: "host",
// "host:port", "https://host[:port]" (and http:// for tests and plain-HTTP
// proxies); a bare host means https. A pasted "https://host/api" or a
// trailing slash still means the host; a longer path is kept for a server
// under a prefix. Credentials, queries and fragments are refused.
func BaseURL(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("URL is required")
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("invalid URL %q", s)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("invalid URL %q: scheme must be https", u.Redacted())
	}
	if u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("invalid URL %q", u.Redacted())
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("invalid URL %q: bad port", u.Redacted())
		}
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/api")
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}
