package backend

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// Backoff after failed grants: doubling from backoffBase up to backoffMax,
// or longer when the vendor says so with Retry-After.
const (
	backoffBase = time.Second
	backoffMax  = 5 * time.Minute
)

// health is what this node remembers of a credential's recent failures. It
// is deliberately not stored: it throttles this node's calls, and a new
// active node starting afresh costs at most one extra call.
type health struct {
	failures int
	retryAt  time.Time
	lastErr  *GrantError
	// unknownOutcome: a refresh was sent and no answer came back. If the
	// vendor rotates refresh tokens, it may have killed the stored one.
	unknownOutcome bool
}

func (m *Manager) healthOf(name string) health {
	m.healthMu.Lock()
	defer m.healthMu.Unlock()
	if h := m.health[name]; h != nil {
		return *h
	}
	return health{}
}

func (m *Manager) resetHealth(name string) {
	m.healthMu.Lock()
	defer m.healthMu.Unlock()
	delete(m.health, name)
}

// noteFailure records a failed grant and returns when the next may start.
func (m *Manager) noteFailure(name string, gerr *GrantError, now time.Time) time.Time {
	m.healthMu.Lock()
	defer m.healthMu.Unlock()
	h := m.health[name]
	if h == nil {
		h = &health{}
		m.health[name] = h
	}
	h.failures++
	h.lastErr = gerr
	wait := backoffBase << min(h.failures-1, 16)
	if wait > backoffMax {
		wait = backoffMax
	}
	var ve *tokenclient.Error
	if errors.As(gerr.Err, &ve) && ve.RetryAfter > wait {
		wait = ve.RetryAfter
	}
	var te *tokenclient.TransportError
	if errors.As(gerr.Err, &te) && te.Sent {
		h.unknownOutcome = true
	}
	h.retryAt = now.Add(wait)
	return h.retryAt
}

// counters are per-credential operational counts since the plugin started
// on this node, for the status path.
type counters struct {
	reads     atomic.Int64
	cacheHits atomic.Int64
	grants    atomic.Int64

	mu       sync.Mutex
	failures map[string]int64
}

// Stats is a snapshot of a credential's counters.
type Stats struct {
	Reads     int64
	CacheHits int64
	Grants    int64
	Failures  map[string]int64
	RetryAt   time.Time
}

func (m *Manager) countersOf(name string) *counters {
	if c, ok := m.counters.Load(name); ok {
		return c.(*counters)
	}
	c, _ := m.counters.LoadOrStore(name, &counters{failures: map[string]int64{}})
	return c.(*counters)
}

func (c *counters) fail(code string) {
	if code == "" {
		code = "no_answer"
	}
	c.mu.Lock()
	c.failures[code]++
	c.mu.Unlock()
}

// Stats returns the counters of the credential called name.
func (m *Manager) Stats(name string) Stats {
	c := m.countersOf(name)
	c.mu.Lock()
	failures := make(map[string]int64, len(c.failures))
	for k, v := range c.failures {
		failures[k] = v
	}
	c.mu.Unlock()
	return Stats{
		Reads:     c.reads.Load(),
		CacheHits: c.cacheHits.Load(),
		Grants:    c.grants.Load(),
		Failures:  failures,
		RetryAt:   m.healthOf(name).retryAt,
	}
}
