package backend

import (
	"context"
	"errors"
	"hash/fnv"
	"net/url"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// Refreshing ahead of need, and only what is used.
//
// A credential is in use while its current token is read from the cache:
// the read that obtained the token does not count, so a credential read
// once and then left alone makes no further vendor call. An in-use token
// that lives at least proactiveMinLifetime is refreshed by a timer on the
// active node shortly before its hand-out end (lead plus a jitter that
// spreads many tokens obtained together), so busy readers never wait for
// a vendor, at a cost of (lead + jitter) / L more vendor calls. Shorter
// tokens are left to readers: a reader waits one vendor round trip, and
// no token is replaced earlier than its hand-out end.
//
// A refresh-token credential is also refreshed after keepalive_interval
// without a refresh (in use or not), because vendors expire refresh tokens
// that go unused: Okta by default after 7 days, others after weeks; the
// default 72 h keeps a credential alive through a failed keep-alive or two.
// Client-credentials credentials need no keep-alive: a new grant needs only
// the client's own secret.
const (
	// TickInterval is how often Vault calls the backend's PeriodicFunc (its
	// rollback period).
	TickInterval = time.Minute
	// proactiveMinLifetime: tokens shorter-lived than this are left to
	// readers.
	proactiveMinLifetime = 2 * time.Minute
	// refreshConcurrency and refreshRate bound the background refreshes
	// sent to one token endpoint (one host), so a restart of a mount
	// with many credentials does not stampede a vendor.
	refreshConcurrency = 4
	refreshRate        = 10 // per second
	// maxRefreshWorkers bounds the goroutines of background refreshes
	// waiting for their endpoint's turn.
	maxRefreshWorkers = 64
)

// refreshLead is how long before a token's hand-out end its proactive
// refresh starts: room for a vendor round trip, 1% of the life within
// [1 s, 15 s].
func refreshLead(life time.Duration) time.Duration {
	return min(max(life/100, time.Second), 15*time.Second)
}

// refreshJitter spreads the refreshes of tokens obtained together over up
// to 0.5% of their life (at most 10 s), the same for a given name and
// token so the schedule is stable.
func refreshJitter(name string, tok *model.Token) time.Duration {
	span := min(tok.ExpiresAt.Sub(tok.ObtainedAt)/200, 10*time.Second)
	if span <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	_, _ = h.Write([]byte(tok.ObtainedAt.UTC().Format(time.RFC3339Nano)))
	return time.Duration(h.Sum64() % uint64(span))
}

// proactiveAt is when the background refresher should refresh e, or zero
// for never: ahead of the hand-out end if the token is in use, and at the
// keep-alive time of a refresh-token credential.
func proactiveAt(name string, e *model.Entry, s *model.Settings, used bool) time.Time {
	if s == nil || s.Static() || e.Status.NeedsReauthorization {
		return time.Time{}
	}
	var at time.Time
	if used && e.Token != nil && e.Token.ExpiresAt.Sub(e.Token.ObtainedAt) >= proactiveMinLifetime {
		life := e.Token.ExpiresAt.Sub(e.Token.ObtainedAt)
		at = model.HandoutEnd(e.Token, s).Add(-refreshLead(life) - refreshJitter(name, e.Token))
	}
	if k := keepAliveAt(e, s); !k.IsZero() && (at.IsZero() || k.Before(at)) {
		at = k
	}
	return at
}

// keepAliveAt is when a refresh-token credential is refreshed whether used
// or not, or zero.
func keepAliveAt(e *model.Entry, s *model.Settings) time.Time {
	if !s.Grant.KeepsAlive || e.Config.RefreshToken == "" || s.KeepAlive <= 0 || e.Status.LastRefreshedAt.IsZero() {
		return time.Time{}
	}
	return e.Status.LastRefreshedAt.Add(s.KeepAlive)
}

// proactiveDue reports whether e is due for a background refresh at now:
// its token is in use and near its hand-out end, or its keep-alive came.
func proactiveDue(name string, e *model.Entry, s *model.Settings, used bool, now time.Time) bool {
	at := proactiveAt(name, e, s, used)
	return !at.IsZero() && !at.After(now)
}

// markUsed records that c's token was handed out from the cache, and on
// the first such read schedules its refresh ahead of need. Later reads of
// the same token cost one atomic load.
func (m *Manager) markUsed(name string, c *cached) {
	if c.used.Load() || !c.used.CompareAndSwap(false, true) {
		return
	}
	if at := proactiveAt(name, c.entry, c.settings, true); !at.IsZero() {
		m.sched.set(name, at)
		m.refresher.wake()
	}
}

// used reports whether the cached copy of e's token was read.
func (m *Manager) used(name string, e *model.Entry) bool {
	c, ok := m.cache.load(name)
	return ok && c.used.Load() && c.entry.Token != nil && e.Token != nil && c.entry.Token.ObtainedAt.Equal(e.Token.ObtainedAt)
}

// Tick is the periodic work: it stores rotated refresh tokens whose write
// failed, keeps building the schedule after a restart, and keeps the
// background refresher and the device pollers running on the node that
// can write (and stopped on one that cannot: OpenBao's standbys run
// periodic functions too). It calls no vendor itself but a few issuers
// for their metadata, within rediscoverBudget, so it ends long before
// Vault's deadline for it.
func (m *Manager) Tick(ctx context.Context, s logical.Storage, writable bool) error {
	if !writable {
		m.refresher.halt()
		m.devices.halt()
		m.sweeper.reset()
		return nil
	}
	m.flushPending(ctx, s)
	m.loader.resume(m, s)
	m.refresher.run(m, s)
	m.rediscoverApps(ctx, s)
	m.devices.resume(m, s)
	m.sweeper.resume(m, s)
	return nil
}

// refresher runs due background refreshes when they are due, on a timer,
// for the backend's lifetime. It stops when the backend closes, when a
// tick finds the node cannot write, and when a storage write fails (the
// node may have lost leadership); the next tick that finds the node
// writable starts it again.
type refresher struct {
	mu      sync.Mutex
	stop    context.CancelFunc // nil when not running
	gen     uint64             // counts runs, so a loop's exit stops only its own
	wakeCh  chan struct{}
	manual  bool // a test drives RefreshDue itself
	limits  map[string]*endpointLimit
	workers chan struct{}
}

func newRefresher() *refresher {
	return &refresher{wakeCh: make(chan struct{}, 1), limits: map[string]*endpointLimit{}, workers: make(chan struct{}, maxRefreshWorkers)}
}

func (r *refresher) wake() {
	select {
	case r.wakeCh <- struct{}{}:
	default:
	}
}

// run starts the refresher unless it runs.
func (r *refresher) run(m *Manager, s logical.Storage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// The loop itself is not work in flight (Close would always wait for
	// it): its grants count, each for its vendor call and store.
	if r.stop != nil || r.manual || m.life.Err() != nil {
		return
	}
	ctx, stop := context.WithCancel(m.life)
	r.stop = stop
	r.gen++
	gen := r.gen
	go func() {
		defer m.recoverBackground("background refresher", "")
		// A loop halted by a tick may still be finishing a refresh when
		// the next tick starts another: its exit must not stop that one.
		defer r.haltRun(gen)
		r.loop(ctx, m, s)
	}()
}

// haltRun stops the refresher if its current run is gen.
func (r *refresher) haltRun(gen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stop != nil && r.gen == gen {
		r.stop()
		r.stop = nil
	}
}

// halt stops the refresher; refreshes in flight finish.
func (r *refresher) halt() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stop != nil {
		r.stop()
		r.stop = nil
	}
}

func (r *refresher) loop(ctx context.Context, m *Manager, s logical.Storage) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-r.wakeCh:
		}
		if err := m.refreshDue(ctx, s); err != nil {
			m.logger.Error("background refreshes stopped: a storage write failed, so this node may have lost leadership; the next periodic tick starts them again if it can write", "error", err)
			return
		}
		wait := TickInterval
		if next := m.sched.earliest(); !next.IsZero() {
			wait = min(max(next.Sub(m.now()), 0), TickInterval)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// RefreshDue runs the background refreshes due now and waits for them,
// for tests that drive the schedule with their own clock (SetClock stops
// the timer-driven refresher, which runs on the wall clock).
func (m *Manager) RefreshDue(ctx context.Context, s logical.Storage) error {
	return m.refreshDue(ctx, s)
}

// refreshDue refreshes the names that are due, each endpoint's at most
// refreshConcurrency at a time and refreshRate a second. A failed storage
// write stops it (the node may have lost leadership): the names it did
// not get to go back on the schedule.
func (m *Manager) refreshDue(ctx context.Context, s logical.Storage) error {
	due := m.sched.popDue(m.now())
	if len(due) == 0 {
		return nil
	}
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var wg sync.WaitGroup
	for i, name := range due {
		select {
		case m.refresher.workers <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			m.requeue(due[i:])
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-m.refresher.workers }()
			m.proactive(ctx, stop, s, name)
		}()
	}
	wg.Wait()
	if cause := context.Cause(ctx); errors.Is(cause, ErrStorageWrite) {
		return cause
	}
	return nil
}

// requeue puts names whose refresh did not start back on the schedule.
func (m *Manager) requeue(names []string) {
	now := m.now()
	for _, name := range names {
		if m.sched.next(name).IsZero() {
			m.sched.set(name, now)
		}
	}
}

// proactive refreshes name if it is still due once its lock is held. Its
// vendor call runs under the backend's lifetime; stopping ctx only stops
// new calls from starting.
func (m *Manager) proactive(ctx context.Context, stop context.CancelCauseFunc, s logical.Storage, name string) {
	defer m.recoverBackground("proactive refresh", name)
	gctx, cancel := m.detached(grantTimeout)
	defer cancel()
	release, err := m.endpointTurn(ctx, s, name)
	if err != nil {
		m.requeue([]string{name})
		return
	}
	defer release()
	if _, err := m.refreshLocked(gctx, ctx, s, name, modeProactive); err != nil {
		switch {
		case IsNotFound(err):
			// Deleted since it was scheduled.
		case errors.Is(err, ErrStorageWrite):
			stop(err)
			m.requeue([]string{name})
		case ctx.Err() != nil:
			m.requeue([]string{name})
		default:
			m.logger.Warn("proactive refresh failed; readers will still try", "name", name, "error", err)
		}
	}
}

// endpointLimit bounds the background refreshes of one token endpoint.
type endpointLimit struct {
	slots chan struct{}
	mu    sync.Mutex
	next  time.Time // earliest start of the next refresh (rate)
}

// endpointTurn waits until name's token endpoint may take another
// background refresh, and returns the func that frees the slot.
func (m *Manager) endpointTurn(ctx context.Context, s logical.Storage, name string) (func(), error) {
	key, conc, rate := m.limitsFor(ctx, s, name)
	r := m.refresher
	r.mu.Lock()
	l := r.limits[key]
	if l == nil || cap(l.slots) != conc {
		l = &endpointLimit{slots: make(chan struct{}, conc)}
		r.limits[key] = l
	}
	r.mu.Unlock()
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	l.mu.Lock()
	now := time.Now()
	start := now
	if l.next.After(now) {
		start = l.next
	}
	l.next = start.Add(time.Duration(float64(time.Second) / rate))
	l.mu.Unlock()
	if wait := start.Sub(now); wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			<-l.slots
			return nil, ctx.Err()
		}
	}
	return func() { <-l.slots }, nil
}

// limitsFor is the group name's background refreshes count against (its
// app, else its token endpoint's host) and the group's limits.
func (m *Manager) limitsFor(ctx context.Context, s logical.Storage, name string) (key string, conc int, rate float64) {
	key, conc, rate = "?", refreshConcurrency, float64(refreshRate)
	c, err := m.get(ctx, s, name)
	if err != nil || c == nil || c.settings == nil {
		return key, conc, rate
	}
	app := c.entry.Config.App
	if app == "" {
		return endpointKey(c.settings), conc, rate
	}
	// An app's connections share its limits.
	a, err := m.App(ctx, s, app)
	if err == nil && a != nil {
		if a.RefreshConcurrency > 0 {
			conc = a.RefreshConcurrency
		}
		if a.RefreshRate > 0 {
			rate = a.RefreshRate
		}
	}
	return "app:" + app, conc, rate
}

// endpointKey groups credentials by the host of their token endpoint: what
// a vendor rate-limits.
func endpointKey(s *model.Settings) string {
	if u, err := url.Parse(s.TokenURL); err == nil {
		return u.Host
	}
	return s.TokenURL
}

// flushPending retries the storage writes of rotated refresh tokens that
// are held in memory.
func (m *Manager) flushPending(ctx context.Context, s logical.Storage) {
	m.pendingMu.Lock()
	names := make([]string, 0, len(m.pending))
	for name := range m.pending {
		names = append(names, name)
	}
	m.pendingMu.Unlock()
	for _, name := range names {
		if ctx.Err() != nil {
			return
		}
		m.flushOne(ctx, s, name)
	}
}

func (m *Manager) flushOne(ctx context.Context, s logical.Storage, name string) {
	unlock, err := m.lockName(ctx, "flush", name)
	if err != nil {
		return
	}
	defer unlock()
	if _, err := m.current(ctx, s, name); err != nil {
		m.logger.Error("storing a held refresh token failed again; retrying on the next tick", "name", name, "error", err)
	}
}

// recoverBackground turns a panic in background work into an error log:
// one process serves every mount, and a panic would end them all.
func (m *Manager) recoverBackground(what, name string) {
	if r := recover(); r != nil {
		m.logger.Error("internal error in background work; it was stopped", "work", what, "name", name, "panic", r)
	}
}
