package keylock_test

import (
	"sync"
	"testing"

	"github.com/tqlabs/tq-mw-thehive/internal/keylock"
)

// Holders of one key never overlap; the race detector checks the counter.
func TestLockSerialisesAKey(t *testing.T) {
	var s keylock.Set
	var wg sync.WaitGroup
	inside, max := 0, 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.Lock("case ~1")()
			inside++
			if inside > max {
				max = inside
			}
			inside--
		}()
	}
	wg.Wait()
	if max != 1 {
		t.Fatalf("%d holders at once, want 1", max)
	}
}
