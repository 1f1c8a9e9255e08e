package transport_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tqlabs/tq-mw-thehive/internal/transport"
)

func TestNew(t *testing.T) {
	tr, err := transport.New(true, "http://proxy.example:3128")
	if err != nil {
		t.Fatal(err)
	}
	if !tr.TLSClientConfig.InsecureSkipVerify {
		t.Error("InsecureSkipVerify not set")
	}
	req, _ := http.NewRequest("GET", "https://tq.example/api", nil)
	if u, _ := tr.Proxy(req); u == nil || u.Host != "proxy.example:3128" {
		t.Errorf("proxy = %v", u)
	}
	tr, err = transport.New(false, "")
	if err != nil || tr.Proxy != nil || (tr.TLSClientConfig != nil && tr.TLSClientConfig.InsecureSkipVerify) {
		t.Errorf("plain transport: proxy set %v, tls %+v, err %v", tr.Proxy != nil, tr.TLSClientConfig, err)
	}
	for _, bad := range []string{"::", "no-host"} {
		if _, err := transport.New(false, bad); err == nil {
			t.Errorf("proxy %q accepted", bad)
		}
	}
}

func TestBaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"tq.example":                  "https://tq.example",
		" tq.example:8443 ":           "https://tq.example:8443",
		"https://tq.example/":         "https://tq.example",
		"https://tq.example/api":      "https://tq.example",
		"http://127.0.0.1:9000/hive/": "http://127.0.0.1:9000/hive",
	} {
		u, err := transport.BaseURL(in)
		if err != nil || u.String() != want {
			t.Errorf("BaseURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, bad := range []string{"", "ftp://tq", "https://", "https://u:secret@tq", "https://tq/?a=1", "https://tq/#x", "tq:99999", "tq:abc"} {
		u, err := transport.BaseURL(bad)
		if err == nil {
			t.Errorf("BaseURL(%q) = %v, want an error", bad, u)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}
