// Package keylock serialises work on one key (a TheHive case, a ThreatQ
// object) with a fixed set of striped mutexes: bounded memory however many
// keys there are, at the cost of two keys now and then sharing a stripe.
package keylock

import (
	"hash/fnv"
	"sync"
)

// Set is ready to use as its zero value.
type Set struct {
	stripes [4096]sync.Mutex
}

// Lock locks key's stripe and returns its unlock.
func (s *Set) Lock(key string) (unlock func()) {
	h := fnv.New32a()
	h.Write([]byte(key))
	mu := &s.stripes[h.Sum32()%uint32(len(s.stripes))]
	mu.Lock()
	return mu.Unlock
}
