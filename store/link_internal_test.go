package store

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLinkEncoding(t *testing.T) {
	for _, l := range []Link{
		{},
		{Kind: "events", ID: 1, Modified: 1751886507804, Hash: "0123456789abcdef0123456789abcdef"},
		{Kind: "indicators", ID: 1 << 40, Modified: -5, Hash: "ABCDEF", RelatedID: 77}, // upper-case hex stays text
		{Kind: "incident", ID: 3, Hash: "not hex at all"},
		{Kind: "custom_things", ID: 9, Hash: "ff"},
	} {
		b := encodeLink(l)
		got, err := decodeLink(b)
		if err != nil {
			t.Fatalf("%+v: %v", l, err)
		}
		if d := cmp.Diff(l, got); d != "" {
			t.Errorf("round trip (-want +got):\n%s", d)
		}
		for i := range b { // every truncation is an error, never a panic
			if _, err := decodeLink(b[:i]); err == nil && i < len(b) {
				t.Errorf("%+v: truncated to %d bytes decoded without error", l, i)
			}
		}
	}
	if len(encodeLink(Link{Kind: "indicators", ID: 123456, Modified: 1751886507804, Hash: "0123456789abcdef0123456789abcdef", RelatedID: 4321})) > 40 {
		t.Error("a typical link no longer fits in 40 bytes")
	}
}

func FuzzDecodeLink(f *testing.F) {
	f.Add(encodeLink(Link{Kind: "events", ID: 1, Modified: 2, Hash: "00ff"}))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := decodeLink(b)
		if err != nil {
			return
		}
		if _, err := decodeLink(encodeLink(l)); err != nil {
			t.Fatalf("re-encoding %+v does not decode: %v", l, err)
		}
	})
}
