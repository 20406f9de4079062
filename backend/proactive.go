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
		m.refresher.halt(m)
		m.devices.halt()
		m.sweeper.reset()
		return nil
	}
	m.flushPending(ctx, s)
	m.loader.resume(m, s)
	m.flushIndexSoon(s, 0)
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
//
// It never waits for a refresh's turn, nor for refreshes to finish: a
// refresh whose group (its app, else its token endpoint's host) may not
// start one yet by its rate is put back on the schedule at the time its
// turn comes, and one whose group has refreshes enough in flight waits
// in the group's queue, not in a worker, until one of them ends. So an app
// with a low refresh_rate, or many refreshes at a slow vendor, delays only
// itself: every other credential's refresh starts when it is due.
type refresher struct {
	mu     sync.Mutex
	stop   context.CancelFunc // nil when not running
	gen    uint64             // counts runs, so a loop's exit stops only its own
	wakeCh chan struct{}
	manual bool // a test drives RefreshDue itself
	limits map[string]*endpointLimit
	// workers bounds the goroutines of background refreshes in flight;
	// parked holds the names that found none free.
	workers chan struct{}
	parked  []string
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
	ctx, stop := context.WithCancelCause(m.life)
	r.stop = func() { stop(nil) }
	r.gen++
	gen := r.gen
	go func() {
		defer m.recoverBackground("background refresher", "")
		// A loop halted by a tick may still be finishing a refresh when
		// the next tick starts another: its exit must not stop that one.
		defer r.haltRun(m, gen)
		r.loop(ctx, stop, m, s)
	}()
}

// haltRun stops the refresher if its current run is gen.
func (r *refresher) haltRun(m *Manager, gen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stop != nil && r.gen == gen {
		r.stop()
		r.stop = nil
		r.unparkAllLocked(m)
	}
}

// halt stops the refresher; refreshes in flight finish. The names waiting
// for a turn go back on the schedule, for the next run.
func (r *refresher) halt(m *Manager) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stop != nil {
		r.stop()
		r.stop = nil
	}
	r.unparkAllLocked(m)
}

// unparkAllLocked puts every waiting name back on the schedule, due now;
// the caller holds r.mu.
func (r *refresher) unparkAllLocked(m *Manager) {
	now := m.now()
	for _, l := range r.limits {
		l.mu.Lock()
		for _, name := range l.parked {
			m.sched.setIfUnset(name, now)
		}
		l.parked = nil
		l.mu.Unlock()
	}
	for _, name := range r.parked {
		m.sched.setIfUnset(name, now)
	}
	r.parked = nil
}

func (r *refresher) loop(ctx context.Context, stop context.CancelCauseFunc, m *Manager, s logical.Storage) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			if cause := context.Cause(ctx); errors.Is(cause, ErrStorageWrite) {
				m.logger.Error("background refreshes stopped: a storage write failed, so this node may have lost leadership; the next periodic tick starts them again if it can write", "error", cause)
			}
			return
		case <-timer.C:
		case <-r.wakeCh:
		}
		later, _ := m.dispatch(ctx, stop, s, m.sched.popDue(m.now()), nil)
		for _, d := range later {
			m.sched.set(d.name, m.now().Add(d.wait))
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

// deferral is a due name whose turn comes after wait.
type deferral struct {
	name string
	wait time.Duration
}

// dispatch starts the background refreshes of names, each as its group's
// limits allow, and returns at once: a refresh that may start now starts
// in a goroutine of its own (wg counts them, when given); one whose group
// is at its concurrency waits in the group's queue; one whose turn by the
// group's rate is later is returned with when, for the caller to schedule.
// A name that is no longer due is scheduled for when it is.
func (m *Manager) dispatch(ctx context.Context, stop context.CancelCauseFunc, s logical.Storage, names []string, wg *sync.WaitGroup) (later []deferral, started []string) {
	for i, name := range names {
		if ctx.Err() != nil {
			m.requeue(names[i:])
			break
		}
		// Checked before taking a turn: a name whose due time was early
		// (it was refreshed meanwhile, or the schedule was rebuilt from
		// stored due times that run early) costs its group no turn.
		c, err := m.get(ctx, s, name)
		if err != nil {
			m.requeueAfter(name, time.Second)
			continue
		}
		if c == nil {
			continue // deleted
		}
		used := c.used.Load()
		if !proactiveDue(name, c.entry, c.settings, used, m.now()) {
			m.sched.set(name, proactiveAt(name, c.entry, c.settings, used))
			continue
		}
		l, wait := m.takeTurn(ctx, s, name)
		switch {
		case wait > 0:
			later = append(later, deferral{name, wait})
		case l != nil:
			if m.start(ctx, stop, s, name, l, wg) {
				started = append(started, name)
			}
		}
	}
	return later, started
}

// start runs name's refresh in a worker, or parks it when every worker is
// busy, and reports whether it started; l is its group's turn, which it
// holds.
func (m *Manager) start(ctx context.Context, stop context.CancelCauseFunc, s logical.Storage, name string, l *endpointLimit, wg *sync.WaitGroup) bool {
	r := m.refresher
	select {
	case r.workers <- struct{}{}:
	default:
		// Its turn is given back; it takes one again when it comes back.
		m.release(l)
		r.mu.Lock()
		r.parked = append(r.parked, name)
		r.mu.Unlock()
		return false
	}
	if wg != nil {
		wg.Add(1)
	}
	go func() {
		if wg != nil {
			defer wg.Done()
		}
		defer func() {
			<-r.workers
			r.mu.Lock()
			if len(r.parked) > 0 {
				m.sched.setIfUnset(r.parked[0], m.now())
				r.parked = r.parked[1:]
				r.wake()
			}
			r.mu.Unlock()
		}()
		defer m.release(l)
		m.proactive(ctx, stop, s, name)
	}()
	return true
}

// requeue puts names whose refresh did not start back on the schedule.
func (m *Manager) requeue(names []string) {
	now := m.now()
	for _, name := range names {
		m.sched.setIfUnset(name, now)
	}
}

// requeueAfter puts name back on the schedule after wait.
func (m *Manager) requeueAfter(name string, wait time.Duration) {
	m.sched.setIfUnset(name, m.now().Add(wait))
}

// RefreshDue runs the background refreshes due now and waits for them,
// for tests that drive the schedule with their own clock (SetClock stops
// the timer-driven refresher, which runs on the wall clock). It keeps the
// groups' limits as the refresher does, waiting (on the wall clock) for
// the turns that come later; a storage write that failed stops it, with
// that error.
func (m *Manager) RefreshDue(ctx context.Context, s logical.Storage) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	done := map[string]bool{}
	var later, again []deferral
	defer func() {
		// Run once already by this call, and due again (scheduled by
		// their own refresh): for a later call.
		for _, d := range again {
			m.sched.setIfUnset(d.name, m.now())
		}
	}()
	for {
		var wg sync.WaitGroup
		var names []string
		for _, name := range m.sched.popDue(m.now()) {
			if done[name] {
				again = append(again, deferral{name: name})
				continue
			}
			names = append(names, name)
		}
		for _, d := range later {
			names = append(names, d.name)
		}
		if len(names) == 0 {
			break
		}
		var started []string
		later, started = m.dispatch(ctx, stop, s, names, &wg)
		for _, name := range started {
			done[name] = true
		}
		wg.Wait()
		if cause := context.Cause(ctx); cause != nil {
			// What did not start goes back on the schedule.
			for _, d := range later {
				m.requeue([]string{d.name})
			}
			if errors.Is(cause, ErrStorageWrite) {
				return cause
			}
			return nil
		}
		if len(later) > 0 {
			wait := later[0].wait
			for _, d := range later {
				wait = min(wait, d.wait)
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
		}
	}
	return nil
}

// proactive refreshes name if it is still due once its lock is held. Its
// vendor call runs under the backend's lifetime; stopping ctx only stops
// new calls from starting.
func (m *Manager) proactive(ctx context.Context, stop context.CancelCauseFunc, s logical.Storage, name string) {
	defer m.recoverBackground("proactive refresh", name)
	gctx, cancel := m.detached(grantTimeout)
	defer cancel()
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

// endpointLimit bounds the background refreshes of one group (an app, or
// a token endpoint's host).
type endpointLimit struct {
	slots chan struct{}
	mu    sync.Mutex
	// next is the earliest start of a refresh whose turn is not taken
	// yet (the rate); tickets are the turns given to names that come back
	// for them at their time.
	next    time.Time
	tickets map[string]time.Time
	// parked are the names whose turn came with every slot taken, in
	// order; each slot freed starts the first.
	parked []string
}

// takeTurn gives name its group's turn: the group (l) when it may start
// now, or how long until its turn comes by the group's rate. A name whose
// group has refreshes enough in flight is parked (nil, 0): a slot freed
// schedules it again. The rate is kept on the wall clock.
func (m *Manager) takeTurn(ctx context.Context, s logical.Storage, name string) (*endpointLimit, time.Duration) {
	key, conc, rate := m.limitsFor(ctx, s, name)
	r := m.refresher
	r.mu.Lock()
	l := r.limits[key]
	if l == nil || cap(l.slots) != conc {
		if l != nil {
			// The limits changed: the names it parked try the new ones.
			l.mu.Lock()
			for _, p := range l.parked {
				m.sched.setIfUnset(p, m.now())
			}
			l.parked = nil
			l.mu.Unlock()
		}
		l = &endpointLimit{slots: make(chan struct{}, conc), tickets: map[string]time.Time{}}
		r.limits[key] = l
	}
	r.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if wait := l.rateTurn(name, rate, time.Now()); wait > 0 {
		return nil, wait
	}
	select {
	case l.slots <- struct{}{}:
		return l, 0
	default:
		l.parked = append(l.parked, name)
		return nil, 0
	}
}

// rateTurn gives name its turn by the group's rate: 0 when it may start
// now (its turn, taken earlier, has come, or the rate allows one now), or
// how long until the turn it holds comes. The caller holds l.mu.
func (l *endpointLimit) rateTurn(name string, rate float64, now time.Time) time.Duration {
	if t, ok := l.tickets[name]; ok {
		if now.Before(t) {
			return t.Sub(now)
		}
		delete(l.tickets, name)
		return 0
	}
	at := now
	if l.next.After(now) {
		at = l.next
	}
	l.next = at.Add(time.Duration(float64(time.Second) / rate))
	if !at.After(now) {
		return 0
	}
	if len(l.tickets) >= maxTickets {
		l.dropStaleTickets(now)
	}
	l.tickets[name] = at
	return at.Sub(now)
}

// maxTickets is how many turns a group holds before it drops those whose
// names never came for them (deleted, or rescheduled by a write).
const maxTickets = 4096

// dropStaleTickets drops the turns that came more than a tick ago; the
// caller holds l.mu.
func (l *endpointLimit) dropStaleTickets(now time.Time) {
	for name, at := range l.tickets {
		if now.Sub(at) > TickInterval {
			delete(l.tickets, name)
		}
	}
}

// release frees a slot of l, and schedules the first name parked there.
func (m *Manager) release(l *endpointLimit) {
	<-l.slots
	l.mu.Lock()
	var next string
	if len(l.parked) > 0 {
		next, l.parked = l.parked[0], l.parked[1:]
	}
	l.mu.Unlock()
	if next != "" {
		m.sched.setIfUnset(next, m.now())
		m.refresher.wake()
	}
}

// limitsFor is the group name's background refreshes count against (its
// app, else its token endpoint's host) and the group's limits.
func (m *Manager) limitsFor(ctx context.Context, s logical.Storage, name string) (key string, conc int, rate float64) {
	// The defaults bound the refreshes sent to one token endpoint (one
	// host), so a restart of a mount with many credentials does not
	// stampede a vendor.
	key, conc, rate = "?", model.DefaultRefreshConcurrency, model.DefaultRefreshRate
	c, err := m.get(ctx, s, name)
	if err != nil || c == nil || c.settings == nil {
		return key, conc, rate
	}
	app := c.entry.Config.App
	if app == "" {
		return endpointKey(c.settings), conc, rate
	}
	// An app's connections share its limits. A rate below the bound
	// (stored by an older release, which took any) is the bound.
	a, err := m.App(ctx, s, app)
	if err == nil && a != nil {
		if a.RefreshConcurrency > 0 {
			conc = a.RefreshConcurrency
		}
		if a.RefreshRate > 0 {
			rate = max(a.RefreshRate, model.MinRefreshRate)
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
