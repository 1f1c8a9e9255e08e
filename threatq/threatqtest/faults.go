package threatqtest

import (
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// FaultKind is one injected failure.
type FaultKind int

const (
	FaultNone     FaultKind = iota
	Fault500                // 500, nothing applied
	Fault503                // 503, nothing applied
	Fault429                // 429 with Retry-After: 1, nothing applied
	FaultDrop               // connection closed mid-headers, nothing applied
	FaultTruncate           // connection closed mid-body after a 200, nothing applied
	// FaultDropAfterCommit applies the request, then closes the connection
	// before the answer: the client cannot tell it succeeded. This is what
	// idempotent upserts must survive without duplicating.
	FaultDropAfterCommit
	FaultPermanent // 400 for a write, nothing applied
	FaultDown      // connection closed at once
	Fault401       // 401 as for a stale token, nothing applied
)

func (k FaultKind) String() string {
	switch k {
	case FaultNone:
		return ""
	case Fault500:
		return "500"
	case Fault503:
		return "503"
	case Fault429:
		return "429"
	case FaultDrop:
		return "drop"
	case FaultTruncate:
		return "truncate"
	case FaultDropAfterCommit:
		return "drop-after-commit"
	case FaultPermanent:
		return "permanent"
	case FaultDown:
		return "down"
	case Fault401:
		return "401"
	}
	return "unknown"
}

// Faults is a random fault mix: each rate is the fraction of requests that
// get that fault (their sum should be ≤ 1). Rates are drawn from a PRNG
// seeded with Config.Seed, so a sequential run is reproducible.
type Faults struct {
	Rate500, Rate503, Rate429, RateDrop, RateTruncate, RateDropAfterCommit float64
	// RateSlow requests are delayed by Slow on top of any other fault.
	RateSlow float64
	Slow     time.Duration
	// PermanentWrites answers every write (POST/PUT/DELETE, not /api/token)
	// with 400.
	PermanentWrites bool
	// IncludeToken lets faults hit /api/token too; by default it is spared
	// so tests of other paths are not confused by login failures.
	IncludeToken bool
}

type scripted struct {
	kind  FaultKind
	match string // "" or a prefix of "METHOD pattern", e.g. "POST /api/events"
	left  int
}

type faultState struct {
	mu      sync.Mutex
	rng     *rand.Rand
	f       Faults
	latency time.Duration
	down    bool
	next    []scripted
}

func (fs *faultState) init(seed uint64, latency time.Duration) {
	fs.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	fs.latency = latency
}

type decision struct {
	kind  FaultKind
	delay time.Duration
}

func (fs *faultState) pick(pattern string, isToken, isWrite bool) decision {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	d := decision{delay: fs.latency}
	if fs.down {
		d.kind = FaultDown
		return d
	}
	for i := range fs.next {
		sc := &fs.next[i]
		if sc.left <= 0 {
			continue
		}
		if sc.match == "" && isToken {
			continue
		}
		if sc.match != "" && !strings.HasPrefix(pattern, sc.match) {
			continue
		}
		sc.left--
		d.kind = sc.kind
		return d
	}
	if isToken && !fs.f.IncludeToken {
		return d
	}
	if fs.f.PermanentWrites && isWrite {
		d.kind = FaultPermanent
		return d
	}
	if fs.f.RateSlow > 0 && fs.rng.Float64() < fs.f.RateSlow {
		d.delay += fs.f.Slow
	}
	x := fs.rng.Float64()
	for _, c := range []struct {
		rate float64
		kind FaultKind
	}{
		{fs.f.Rate500, Fault500}, {fs.f.Rate503, Fault503}, {fs.f.Rate429, Fault429},
		{fs.f.RateDrop, FaultDrop}, {fs.f.RateTruncate, FaultTruncate},
		{fs.f.RateDropAfterCommit, FaultDropAfterCommit},
	} {
		if x < c.rate {
			d.kind = c.kind
			return d
		}
		x -= c.rate
	}
	return d
}

// SetFaults replaces the random fault mix; Faults{} turns it off.
func (s *Server) SetFaults(f Faults) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.f = f
}

// InjectNext makes the next n requests whose "METHOD pattern" starts with
// match fail with kind, before any random fault. match "" means any request
// except /api/token. Example: InjectNext("POST /api/events", FaultDropAfterCommit, 1).
func (s *Server) InjectNext(match string, kind FaultKind, n int) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.next = append(s.faults.next, scripted{kind: kind, match: match, left: n})
}

// SetLatency sets the delay added to every request.
func (s *Server) SetLatency(d time.Duration) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.latency = d
}

// SetDown makes every request fail with a closed connection while true.
func (s *Server) SetDown(down bool) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.down = down
}
