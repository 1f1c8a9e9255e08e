package agent

import (
	"context"
	"errors"
	"testing"

	"github.com/tqlabs/tq-mw-thehive/mapping"
)

func TestResolveTLPScheme(t *testing.T) {
	status := func(v string, err error) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { return v, err }
	}
	tests := []struct {
		scheme string
		status func(context.Context) (string, error)
		want   string
	}{
		{"pre52", status("5.4.0", nil), mapping.TLPSchemePre52},
		{"post52", status("5.0.1", nil), mapping.TLPSchemePost52},
		{"auto", status("5.1.8-1", nil), mapping.TLPSchemePre52},
		{"auto", status("4.1.24-1", nil), mapping.TLPSchemePre52},
		{"auto", status("5.2.16-1", nil), mapping.TLPSchemePost52},
		{"", status("5.10.0", nil), mapping.TLPSchemePost52},
		{"auto", status("", errors.New("down")), mapping.TLPSchemePost52},
		{"auto", status("garbage", nil), mapping.TLPSchemePost52},
		{"auto", nil, mapping.TLPSchemePost52},
	}
	for _, tt := range tests {
		if got, _ := resolveTLPScheme(context.Background(), tt.scheme, tt.status); got != tt.want {
			t.Errorf("resolveTLPScheme(%q) = %q, want %q", tt.scheme, got, tt.want)
		}
	}
}
