package backend

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
)

// apps caches decoded apps with a generation per change, so a
// connection's resolved settings are recomputed when its app changes.
type apps struct {
	m   sync.Map // name -> *appSnap
	gen atomic.Uint64
	// fill is guarded like entryCache's: a read that raced a change does
	// not cache the older app.
	mu      sync.Mutex
	changes uint64
}

type appSnap struct {
	app *model.App // nil: no such app
	gen uint64
	// plain is the settings of a connection that overrides nothing: one
	// value shared by all of them (settings hold no secret).
	plainOnce sync.Once
	plain     *model.Settings
	plainErr  error
}

// plainSettings resolves, once, the settings every connection of the app
// without overrides shares.
func (a *appSnap) plainSettings(appName string) (*model.Settings, error) {
	a.plainOnce.Do(func() {
		eff := (&model.Config{App: appName}).Effective(a.app)
		a.plain, a.plainErr = eff.ResolveAsConnection()
	})
	return a.plain, a.plainErr
}

// App returns the app called name, or nil. It is shared: the caller must
// not modify it.
func (m *Manager) App(ctx context.Context, s logical.Storage, name string) (*model.App, error) {
	snap, err := m.appSnap(ctx, s, name)
	if err != nil {
		return nil, err
	}
	return snap.app, nil
}

func (m *Manager) appSnap(ctx context.Context, s logical.Storage, name string) (*appSnap, error) {
	if v, ok := m.apps.m.Load(name); ok {
		return v.(*appSnap), nil
	}
	m.apps.mu.Lock()
	seen := m.apps.changes
	m.apps.mu.Unlock()
	a, err := store.Of(s).App(ctx, name)
	if err != nil {
		return nil, err
	}
	if a != nil {
		// An app an older release stored binds its secrets to where they
		// go now; its next write stores that.
		a.BindUpgrade()
	}
	snap := &appSnap{app: a, gen: m.apps.gen.Add(1)}
	if a == nil {
		// A miss is not remembered: names are the caller's (an
		// unauthenticated JWKS request may name any), and remembering each
		// would grow memory without bound in a process that serves every
		// mount. A connection of a deleted app pays one storage read per
		// resolve, and fails anyway.
		return snap, nil
	}
	m.apps.mu.Lock()
	if m.apps.changes == seen {
		m.apps.m.Store(name, snap)
	}
	m.apps.mu.Unlock()
	return snap, nil
}

// appExists reports whether the app called name exists, caching nothing
// it did not hold: for paths anyone may call.
func (m *Manager) appExists(ctx context.Context, s logical.Storage, name string) (bool, error) {
	if v, ok := m.apps.m.Load(name); ok {
		return v.(*appSnap).app != nil, nil
	}
	a, err := store.Of(s).App(ctx, name)
	return a != nil, err
}

// CacheSizes is how many entries and apps the manager holds decoded, for
// tests and status.
func (m *Manager) CacheSizes() (entries, apps int) {
	m.apps.m.Range(func(any, any) bool { apps++; return true })
	return int(m.cache.size.Load()), apps
}

// appGen is the generation of the cached app called name, or 0 when it is
// not cached (a connection's settings are then recomputed on its next
// read).
func (m *Manager) appGen(name string) uint64 {
	if v, ok := m.apps.m.Load(name); ok {
		return v.(*appSnap).gen
	}
	return 0
}

func (m *Manager) dropApp(name string) {
	m.apps.mu.Lock()
	m.apps.changes++
	m.apps.m.Delete(name)
	m.apps.mu.Unlock()
}

// UpdateApp changes the app called name under its lock: fn gets a private
// copy (nil when there is none) and returns the app to store. Its
// connections pick the change up on their next read, and keep their
// tokens unless what they send changed.
func (m *Manager) UpdateApp(ctx context.Context, s logical.Storage, name string, fn func(*model.App) (*model.App, error)) (*model.App, error) {
	unlock, err := m.lockName(ctx, "update app", appLockName(name))
	if err != nil {
		return nil, err
	}
	defer unlock()
	cur, err := store.Of(s).App(ctx, name)
	if err != nil {
		return nil, err
	}
	if cur != nil {
		cur = cur.Clone()
	}
	// fn may change its copy in place: what the app sent events to before.
	var notifyBefore [2]string
	if cur != nil {
		notifyBefore = [2]string{cur.NotifyURL, cur.NotifySecret}
	}
	next, err := fn(cur)
	if err != nil {
		return nil, err
	}
	if err := store.Of(s).PutApp(ctx, name, next); err != nil {
		m.dropApp(name)
		return nil, err
	}
	m.dropApp(name)
	if [2]string{next.NotifyURL, next.NotifySecret} != notifyBefore {
		// Another receiver (or none) starts afresh: no backoff or
		// failing time of the one before.
		m.forgetWebhooks(name)
	}
	return next, nil
}

// DeleteApp removes the app called name. Its connections stay, and fail
// with a message that says the app is gone, until it is written again.
func (m *Manager) DeleteApp(ctx context.Context, s logical.Storage, name string) error {
	unlock, err := m.lockName(ctx, "delete app", appLockName(name))
	if err != nil {
		return err
	}
	defer unlock()
	if err := store.Of(s).DeleteApp(ctx, name); err != nil {
		return err
	}
	m.dropApp(name)
	// What is said of the app ends with it: an alert on its client or
	// its receiver would fire for an app that is gone.
	m.rejected.Delete(rejectedKey("", name))
	m.forgetWebhooks(name)
	m.metrics.forgetApp(name)
	return m.DeleteKeys(ctx, s, store.AppKeyOwner(name))
}

// ListApps returns the names of all apps.
func (m *Manager) ListApps(ctx context.Context, s logical.Storage) ([]string, error) {
	return store.Of(s).AppNames(ctx)
}

// AppError is a connection whose app does not exist.
type AppError struct{ Name, App string }

func (e *AppError) Error() string {
	return fmt.Sprintf("credential %q is a connection of app %q, which does not exist", e.Name, e.App)
}

// Effective is c's config with its app merged in and its settings, for the
// path layer: resolveErr says why it does not resolve (the caller's to
// fix), err is a storage failure.
func (m *Manager) Effective(ctx context.Context, s logical.Storage, name string, c *model.Config) (eff model.Config, settings *model.Settings, resolveErr, err error) {
	r, err := m.resolve(ctx, s, name, &model.Entry{Config: *c})
	if err != nil {
		return model.Config{}, nil, nil, err
	}
	return r.eff, r.settings, r.err, nil
}

// CountAuthorizations is how many unexpired authorizations name has open,
// those a version 1 entry e (may be nil) keeps inline included.
func (m *Manager) CountAuthorizations(ctx context.Context, s logical.Storage, name string, e *model.Entry) (int, error) {
	return store.Of(s).OpenAuthorizations(ctx, name, e, m.now(), false)
}

// appLockName is the lock an app's changes take. A credential's name
// cannot collide with it: names never hold a NUL ("apps/x" is the
// connection x of an app called apps).
func appLockName(name string) string { return "app\x00" + name }
