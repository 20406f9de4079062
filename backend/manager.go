package backend

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/singleflight"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/outbound"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// grantTimeout bounds one grant or refresh, including the storage write
// that follows it. It is detached from the reader's request so a reader who
// hangs up cannot cancel a refresh that other readers wait for, nor the
// write of a rotated refresh token; it is bound to the backend's lifetime.
const grantTimeout = 2 * time.Minute

// Manager keeps credentials and their tokens for one mount. It is safe for
// concurrent use; one Manager exists per backend instance, never global.
type Manager struct {
	logger hclog.Logger
	// gate is the one way vendor requests leave: it checks every secret
	// against where it was written for.
	gate *outbound.Gate
	now  func() time.Time

	// life is the backend's lifetime: every vendor call and every piece of
	// background work derives its context from it, and Close cancels it,
	// so a backend that was unmounted, sealed or stepped down starts no
	// vendor call and abandons the ones in flight.
	life     context.Context
	stop     context.CancelFunc
	inflight tracker

	locks   *nameLocks
	flights singleflight.Group
	cache   *entryCache
	apps    apps
	index   *index
	// problems holds the names this node recorded an error for, so a
	// success clears it; refreshing the names with a vendor call in
	// flight.
	problems   sync.Map
	refreshing sync.Map
	devices    devicePollers

	// pending holds entries whose storage write failed after the vendor
	// rotated the refresh token (or after a code exchange). The vendor
	// has already killed the old token, so this copy is the only live
	// one: the failing request retries the write briefly, every tick
	// retries it, and the next operation on the name writes it first.
	pendingMu sync.Mutex
	pending   map[string]*model.Entry

	// authz is what this node knows of the stored authorizations, and
	// sweeper deletes the expired ones (authzsweep.go).
	authz   openAuthz
	sweeper authzSweeper

	healthMu  sync.Mutex
	health    map[string]*health
	counters  sync.Map // name -> *counters
	sched     *schedule
	loader    *loader
	refresher *refresher

	// allBound: the upgrade mark is written; nothing an older release
	// stored is left without its binding (upgrade.go).
	allBound atomic.Bool
	// indexFlush: a write of the stored index runs (loader.go).
	indexFlush atomic.Bool

	// The event feeds, their webhooks and the metrics (feed.go,
	// notify.go, metrics.go); rejected holds the clients the vendor
	// refused, announced once (events.go).
	feeds    feeds
	notifier *notifier
	metrics  *Metrics
	rejected sync.Map

	hooks TestHooks
}

// TestHooks let tests stop an operation at a chosen point, to make a race
// happen every time instead of once in a thousand runs. Unset in
// production.
type TestHooks struct {
	// BeforeLock runs before an operation (read, refresh, proactive,
	// update, delete, exchange, flush) waits for name's lock.
	BeforeLock func(op, name string)
	// BeforeVendorCall runs before a vendor request is sent.
	BeforeVendorCall func(name string)
	// AfterStorageRead runs after a cache miss read storage, before the
	// result may fill the cache.
	AfterStorageRead func(name string)
}

// SetTestHooks installs hooks; call it before the manager is used.
func (m *Manager) SetTestHooks(h TestHooks) { m.hooks = h }

// NewManager returns a Manager that logs to logger and calls vendors with
// client.
func NewManager(logger hclog.Logger, client *tokenclient.Client) *Manager {
	life, stop := context.WithCancel(context.Background())
	m := &Manager{
		logger:    logger,
		gate:      outbound.New(client),
		now:       time.Now,
		life:      life,
		stop:      stop,
		locks:     newNameLocks(),
		cache:     newEntryCache(),
		index:     newIndex(),
		pending:   map[string]*model.Entry{},
		health:    map[string]*health{},
		sched:     newSchedule(),
		loader:    &loader{retryDelay: time.Second},
		refresher: newRefresher(),
		notifier:  newNotifier(),
		metrics:   newMetrics(),
	}
	m.gate.Observe(m.metrics)
	m.metrics.reg.MustRegister(stateCollector{m})
	// A write that makes a name due sooner than the refresher's timer
	// wakes it: it sleeps up to a tick otherwise.
	m.sched.wake = m.refresher.wake
	return m
}

// SetClock replaces the clock, for tests. The timer-driven refresher runs
// on the wall clock, so a manager with a clock of its own does not start
// it: the test calls RefreshDue.
func (m *Manager) SetClock(now func() time.Time) {
	m.now = now
	m.refresher.mu.Lock()
	m.refresher.manual = true
	m.refresher.mu.Unlock()
}

// Invalidate drops what the manager remembers of a storage key that changed
// underneath it (Vault calls this on nodes that replicate storage).
func (m *Manager) Invalidate(key string) {
	entry, app := store.Changed(key)
	if entry != "" {
		m.cache.drop(entry)
	}
	if app != "" {
		m.dropApp(app)
	}
}

// closeWait bounds how long Close waits for vendor calls and the storage
// writes of their answers.
const closeWait = 5 * time.Second

// Close ends the backend's lifetime: nothing new starts (no vendor call,
// no background work), and the work in flight is given closeWait to
// finish, so a reload or seal in the middle of a refresh still stores the
// refresh token the vendor just issued; then whatever remains is
// cancelled. Refresh tokens still held after a failed write get one last
// try at s, and are logged if that fails too, since they are lost with the
// backend.
func (m *Manager) Close(s logical.Storage) {
	// Background loops start nothing more while Close waits.
	m.refresher.halt(m)
	m.devices.halt()
	m.notifier.halt()
	select {
	case <-m.inflight.close():
	case <-time.After(closeWait):
		m.logger.Warn("vendor calls still in flight when the backend closed; they are cancelled and their results are not stored")
	}
	m.stop()
	m.refresher.halt(m)
	if s != nil {
		ctx, cancel := context.WithTimeout(context.Background(), closeWait)
		m.flushPending(ctx, s)
		// Events kept after a failed write record changes that were
		// stored: the next node cannot know of them otherwise.
		if err := m.flushEvents(ctx, s); err != nil {
			m.logger.Warn("writing events kept after a failed write failed again at close", "error", err)
		}
		// What the next start loads instead of reading every entry.
		m.flushIndex(ctx, s)
		cancel()
	}
	m.pendingMu.Lock()
	for name := range m.pending {
		m.logger.Error("the backend closed with a rotated refresh token that could not be stored; the credential needs a new refresh token if the vendor has killed the old one", "name", name)
	}
	m.pendingMu.Unlock()
	m.feeds.unwMu.Lock()
	for _, p := range m.feeds.unwrit {
		m.logger.Error("the backend closed with an event that could not be written; its feed and webhooks will not carry it: read status/<app> for the state it recorded", "app", p.app, "name", p.ev.Data.Connection, "event", p.ev.Type)
	}
	m.feeds.unwMu.Unlock()
	m.cache.clear()
	m.sched.reset()
	m.index.reset()
	m.feeds.reset()
	m.notifier.reset()
	m.authz.reset()
	m.gate.CloseIdleConnections()
}

// detached returns a context for work that must not end with the request
// that started it, but must end with the backend.
func (m *Manager) detached(timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(m.life, timeout)
}

// Get returns the credential called name, or nil. The entry is shared: the
// caller must not modify it.
func (m *Manager) Get(ctx context.Context, s logical.Storage, name string) (*model.Entry, error) {
	c, err := m.get(ctx, s, name)
	if err != nil || c == nil {
		return nil, err
	}
	return c.entry, nil
}

func (m *Manager) get(ctx context.Context, s logical.Storage, name string) (*cached, error) {
	if c, ok := m.cache.load(name); ok {
		return m.fresh(ctx, s, name, c)
	}
	gen := m.cache.generation(name)
	e, err := store.Of(s).Entry(ctx, name)
	if h := m.hooks.AfterStorageRead; h != nil {
		h(name)
	}
	if err != nil || e == nil {
		return nil, err
	}
	c, err := m.newCached(ctx, s, name, e)
	if err != nil {
		return nil, err
	}
	m.cache.fill(name, gen, c)
	return c, nil
}

// peek returns the entry called name as cached or stored, without
// caching it: for paths anyone may call.
func (m *Manager) peek(ctx context.Context, s logical.Storage, name string) (*model.Entry, error) {
	if c, ok := m.cache.load(name); ok {
		return c.entry, nil
	}
	return store.Of(s).Entry(ctx, name)
}

// newCached resolves e (with its app's settings, for a connection) for the
// cache. A config that no longer resolves (a preset changed, its app was
// deleted) is still cached so it can be read and fixed; token reads report
// the problem. Only a storage failure is an error.
func (m *Manager) newCached(ctx context.Context, s logical.Storage, name string, e *model.Entry) (*cached, error) {
	r, err := m.resolve(ctx, s, name, e)
	if err != nil {
		return nil, err
	}
	return &cached{entry: r.entry, settings: r.settings, err: r.err, appGen: r.appGen}, nil
}

// resolution is an entry with its app merged in.
type resolution struct {
	// entry is the entry resolved: the one given, or a copy with the
	// secrets an older release stored without a binding bound (bound).
	entry    *model.Entry
	bound    bool
	settings *model.Settings // nil when it does not resolve, with err saying why
	err      error
	eff      model.Config
	app      *model.App
	appGen   uint64
}

// resolve merges e's app into e's config and resolves it. The error is a
// storage failure; a config that does not resolve is r.err. An entry an
// older release stored with secrets but no binding comes back bound to
// where they go now (Entry.BindUpgrade), for the caller to store.
func (m *Manager) resolve(ctx context.Context, s logical.Storage, name string, e *model.Entry) (resolution, error) {
	if e.Config.App == "" {
		st, err := e.Config.Resolve()
		r := resolution{entry: e, settings: st, err: err, eff: e.Config}
		r.bindUpgrade(nil)
		return r, nil
	}
	snap, err := m.appSnap(ctx, s, e.Config.App)
	if err != nil {
		return resolution{}, err
	}
	if snap.app == nil {
		return resolution{entry: e, err: &AppError{Name: name, App: e.Config.App}, eff: e.Config, appGen: snap.gen}, nil
	}
	eff := e.Config.Effective(snap.app)
	var st *model.Settings
	if e.Config.OverridesNothing() && e.Config.RefreshToken != "" {
		st, err = snap.plainSettings(e.Config.App)
	} else {
		st, err = eff.Resolve()
	}
	r := resolution{entry: e, settings: st, err: err, eff: eff, app: snap.app, appGen: snap.gen}
	r.bindUpgrade(snap.app)
	return r, nil
}

// bindUpgrade binds, on a copy, the secrets of an entry stored without a
// binding (by an older release), and merges its app in again.
func (r *resolution) bindUpgrade(app *model.App) {
	if r.settings == nil || !r.entry.NeedsBinding() {
		return
	}
	e := r.entry.Clone()
	e.BindUpgrade(r.settings)
	r.entry, r.bound, r.eff = e, true, e.Config.Effective(app)
}

// fresh returns c, or c recomputed when its app changed since it was
// cached.
func (m *Manager) fresh(ctx context.Context, s logical.Storage, name string, c *cached) (*cached, error) {
	app := c.entry.Config.App
	if app == "" || c.appGen == m.appGen(app) && c.appGen != 0 {
		return c, nil
	}
	gen := m.cache.generation(name)
	n, err := m.newCached(ctx, s, name, c.entry)
	if err != nil {
		return nil, err
	}
	n.used.Store(c.used.Load())
	m.cache.fill(name, gen, n)
	return n, nil
}

// writeEntry stores e for name; the caller holds name's lock. An entry
// read at an older schema version first has its inline parts moved to
// their own keys.
func (m *Manager) writeEntry(ctx context.Context, s logical.Storage, name string, e *model.Entry) error {
	if err := store.Of(s).PutEntry(ctx, name, e); err != nil {
		// What is cached may no longer be what is stored: a failed
		// write can still have reached storage.
		m.cache.drop(name)
		return err
	}
	c, err := m.newCached(ctx, s, name, e)
	if err != nil {
		// Stored, but its app could not be read: the next read resolves
		// it again.
		m.cache.drop(name)
		m.index.put(name, e, nil)
		return nil
	}
	m.cache.put(name, c)
	if m.index.put(name, e, c.settings) {
		// The stored index would mislead a start now (a keep-alive due
		// earlier, another state): it is written soon, not with the next
		// periodic batch.
		m.flushIndexSoon(s, time.Second)
	}
	// A new token is not in use until it is read from the cache; the
	// first such read schedules its refresh ahead (markUsed).
	m.sched.set(name, proactiveAt(name, e, c.settings, false))
	return nil
}

// lockName takes name's lock for op.
func (m *Manager) lockName(ctx context.Context, op, name string) (func(), error) {
	if h := m.hooks.BeforeLock; h != nil {
		h(op, name)
	}
	return m.locks.lock(ctx, name)
}

// locked is an entry read under its name's lock, resolved.
type locked struct {
	e        *model.Entry
	settings *model.Settings
	eff      model.Config // what the credential acts with, secrets included
	app      *model.App   // its app, for a connection
}

// lockedEntry takes name's lock, waiting no longer than wait allows, and
// reads the entry under it, so that a caller decides on what is stored
// now, not on what it saw before waiting (another request may have
// refreshed meanwhile). On success the caller must call unlock.
func (m *Manager) lockedEntry(ctx, wait context.Context, s logical.Storage, op, name string) (_ *locked, _ func(), err error) {
	unlock, err := m.lockName(wait, op, name)
	if err != nil {
		return nil, nil, err
	}
	// Released here unless handed to the caller, panics included: a lock
	// left held would stall every later operation on the name.
	handed := false
	defer func() {
		if !handed {
			unlock()
		}
	}()
	e, err := m.current(ctx, s, name)
	if err != nil {
		return nil, nil, err
	}
	if e == nil {
		return nil, nil, ErrNotFound
	}
	r, err := m.resolve(ctx, s, name, e)
	if err != nil {
		return nil, nil, err
	}
	if r.err != nil {
		return nil, nil, &ConfigError{Name: name, Err: r.err}
	}
	handed = true
	return &locked{e: r.entry, settings: r.settings, eff: r.eff, app: r.app}, unlock, nil
}

// current returns the authoritative entry for name; the caller holds the
// name's lock. A pending entry (rotated but not yet stored) wins over
// storage and is written now; if that write fails too, current fails, so
// nothing decides on the older stored entry.
func (m *Manager) current(ctx context.Context, s logical.Storage, name string) (*model.Entry, error) {
	m.pendingMu.Lock()
	p := m.pending[name]
	m.pendingMu.Unlock()
	if p == nil {
		return store.Of(s).Entry(ctx, name)
	}
	if err := m.writeEntry(ctx, s, name, p); err != nil {
		return nil, err
	}
	m.pendingMu.Lock()
	if m.pending[name] == p {
		delete(m.pending, name)
	}
	m.pendingMu.Unlock()
	m.logger.Info("stored the rotated refresh token held since a failed write", "name", name)
	m.onStored(ctx, s, name, p)
	return p.Clone(), nil
}

// persist writes an entry that holds a refresh token the vendor just
// issued, which exists nowhere else. A failed write is retried briefly;
// if it still fails the entry is held in memory and written by the next
// tick or operation on the name. The caller holds name's lock.
func (m *Manager) persist(ctx context.Context, s logical.Storage, name string, e *model.Entry, log hclog.Logger) error {
	err := m.writeEntry(ctx, s, name, e)
	for _, delay := range []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 900 * time.Millisecond} {
		if err == nil || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(delay):
			err = m.writeEntry(ctx, s, name, e)
		}
	}
	if err == nil {
		return nil
	}
	m.pendingMu.Lock()
	m.pending[name] = e
	m.pendingMu.Unlock()
	log.Error("storing a refresh token the vendor just issued failed; holding it in memory and retrying on every tick and the next operation", "error", err)
	m.onHeld(ctx, s, name, e)
	return &HeldError{Name: name, Err: err}
}

// Update changes the credential called name under its lock. fn gets a
// private copy of the current entry (nil when there is none) and returns
// the entry to store; an error from fn stores nothing. The credential's
// backoff and unknown-outcome guard are reset only when what is sent to
// the vendor changed.
func (m *Manager) Update(ctx context.Context, s logical.Storage, name string, fn func(*model.Entry) (*model.Entry, error)) (*model.Entry, error) {
	unlock, err := m.lockName(ctx, "update", name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	cur, err := m.current(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if cur != nil && cur.NeedsBinding() {
		// fn decides on the entry as it resolves now, with what an
		// earlier release stored bound to where it went (upgrade.go).
		r, err := m.resolve(ctx, s, name, cur)
		if err != nil {
			return nil, err
		}
		cur = r.entry
	}
	var before *model.Config
	if cur != nil {
		c := cur.Config
		before = &c
	}
	next, err := fn(cur)
	if err != nil {
		return nil, err
	}
	if cur == nil && model.AppOf(name) == "" {
		// Keys without a credential are a deleted one's (a key is only
		// made for a credential that exists): the new credential must not
		// sign with them. A name under an app is a connection, which has
		// no keys of its own (and connections are many: no delete each).
		m.deleteOwnKeys(ctx, s, name)
	}
	if err := m.writeEntry(ctx, s, name, next); err != nil {
		return nil, err
	}
	if before != nil && before.App == "" && next.Config.App != "" {
		// Now a connection, it signs with its app's keys.
		m.deleteOwnKeys(ctx, s, name)
	}
	if before == nil || !before.SameRequest(&next.Config) {
		// New settings deserve a fresh attempt at the vendor.
		m.resetHealth(name)
	}
	return next, nil
}

// Delete removes the credential called name, revoking its refresh token
// at the vendor first where a revocation endpoint is known (a failure
// there does not stop the delete; the result says what happened).
func (m *Manager) Delete(ctx context.Context, s logical.Storage, name string) (RevokeResult, error) {
	unlock, err := m.lockName(ctx, "delete", name)
	if err != nil {
		return RevokeResult{}, err
	}
	defer unlock()
	var revoked RevokeResult
	e, cerr := m.current(ctx, s, name)
	if cerr == nil && e != nil {
		revoked = m.revokeAtVendor(ctx, s, name, e)
	}
	// The event goes first, as every event does: a kill between the two
	// repeats it (the connection is still there) rather than losing it.
	if cerr == nil && e != nil {
		m.onDeleting(ctx, s, name, e)
	}
	if err := store.Of(s).DeleteEntry(ctx, name); err != nil {
		return revoked, err
	}
	if cerr == nil && e != nil {
		m.onDeleted(name, e)
	}
	// The keys go after the entry, so a failed entry delete keeps a
	// working credential; they go even when the entry could not be read,
	// since a credential written later under the name must not sign with
	// them (a connection has none of its own).
	m.deleteOwnKeys(ctx, s, name)
	m.cache.drop(name)
	m.index.remove(name)
	m.metrics.forgetCredential(name)
	m.problems.Delete(name)
	if err := deleteRecords(ctx, s, name); err != nil {
		m.logger.Warn("deleting a credential's status or open authorizations failed; they expire unused, and the periodic sweep deletes them", "name", name, "error", err)
	}
	m.forgetAuthz(name, "")
	// A pending device flow would create the credential again on
	// approval.
	m.devices.stop(name)
	if err := store.Of(s).DeleteDevice(ctx, name); err != nil {
		m.logger.Warn("deleting a credential's device flow failed; if the user still approves it, it connects the credential again", "name", name, "error", err)
	}
	m.pendingMu.Lock()
	delete(m.pending, name)
	m.pendingMu.Unlock()
	m.resetHealth(name)
	m.sched.set(name, time.Time{})
	m.counters.Delete(name)
	return revoked, nil
}

// deleteOwnKeys deletes the signing keys of name as a self-contained
// credential; the caller holds name's lock.
func (m *Manager) deleteOwnKeys(ctx context.Context, s logical.Storage, name string) {
	if err := m.DeleteKeys(ctx, s, KeyOwner(name, &model.Config{})); err != nil {
		m.logger.Warn("deleting a credential's signing keys failed; a credential written later under its name would sign with them until rotate-key", "name", name, "error", err)
	}
}

// List returns the names of all credentials, connections of apps
// ("<app>/<account>") included.
func (m *Manager) List(ctx context.Context, s logical.Storage) ([]string, error) {
	return store.Of(s).EntryNames(ctx)
}

// ListPage returns one page of the credentials of app ("" for the
// self-contained ones and the apps with connections, as "<app>/"),
// after the name after, at most limit (0: all). The active node answers
// an app's page from its index; a node without one (a standby, or just
// after a start) lists storage.
func (m *Manager) ListPage(ctx context.Context, s logical.Storage, app, after string, limit int) (Page, error) {
	if app != "" {
		full := after
		if full != "" {
			full = app + "/" + after
		}
		if p, ok := m.index.pageOf(app, full, limit); ok {
			for i, k := range p.Keys {
				p.Keys[i] = strings.TrimPrefix(k, app+"/")
			}
			p.Next = strings.TrimPrefix(p.Next, app+"/")
			return p, nil
		}
	}
	keys, err := store.Of(s).EntryKeys(ctx, app)
	if err != nil {
		return Page{}, err
	}
	return pageFrom(keys, after, limit), nil
}

// NextRefresh is when the periodic tick will refresh name, or zero.
func (m *Manager) NextRefresh(name string) time.Time { return m.sched.next(name) }

// Scheduled is how many credentials are on the refresh schedule (ahead of
// need, or for a keep-alive), for status.
func (m *Manager) Scheduled() int { return m.sched.size() }

// SetClient replaces the token client, for tests that need short timeouts.
func (m *Manager) SetClient(c *tokenclient.Client) {
	m.gate = outbound.New(c)
	m.gate.Observe(m.metrics)
}

// Now is the manager's clock.
func (m *Manager) Now() time.Time { return m.now() }
