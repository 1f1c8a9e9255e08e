// Package transport builds the outbound HTTP transport of the ThreatQ and
// TheHive clients from the command line's TLS and proxy flags.
package transport

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/url"
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
