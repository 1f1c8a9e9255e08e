package transport_test

import (
	"net/http"
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
