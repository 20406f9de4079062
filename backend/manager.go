package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/singleflight"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// grantTimeout bounds one grant or refresh, including the storage write
// that follows it. It is detached from the reader's request so a reader who
// hangs up cannot cancel a refresh that other readers wait for, nor the
// write of a rotated refresh token.
const grantTimeout = 2 * time.Minute

// Manager keeps credentials and their tokens for one mount. It is safe for
// concurrent use; one Manager exists per backend instance, never global.
type Manager struct {
	logger hclog.Logger
	client *tokenclient.Client
	now    func() time.Time

	locks   []*locksutil.LockEntry
	flights singleflight.Group

	// cache holds read-only snapshots of stored entries with their resolved
	// settings, so a cached read touches neither storage nor the config.
	cache sync.Map // name -> *cached

	// pending holds entries whose storage write failed after the vendor
	// rotated the refresh token. The vendor has already killed the old
	// token, so this copy is the only live one: it is written first by the
	// next operation on the name.
	pendingMu sync.Mutex
	pending   map[string]*Entry

	healthMu sync.Mutex
	health   map[string]*health
	counters sync.Map // name -> *counters
	sched    *schedule
}

type cached struct {
	entry    *Entry
	settings *Settings
}

// NewManager returns a Manager that logs to logger and calls vendors with
// client.
func NewManager(logger hclog.Logger, client *tokenclient.Client) *Manager {
	return &Manager{
		logger:  logger,
		client:  client,
		now:     time.Now,
		locks:   locksutil.CreateLocks(),
		pending: map[string]*Entry{},
		health:  map[string]*health{},
		sched:   newSchedule(),
	}
}

// SetClock replaces the clock, for tests.
func (m *Manager) SetClock(now func() time.Time) { m.now = now }

func storageKey(name string) string { return StoragePrefix + name }

// Invalidate drops what the manager remembers of a storage key that changed
// underneath it (Vault calls this on nodes that replicate storage).
func (m *Manager) Invalidate(key string) {
	if name, ok := strings.CutPrefix(key, StoragePrefix); ok {
		m.cache.Delete(name)
	}
}

// Reset forgets every cached entry, for when the backend is torn down.
func (m *Manager) Reset() {
	m.cache.Range(func(k, _ any) bool { m.cache.Delete(k); return true })
	m.sched.reset()
}

// Get returns the credential called name, or nil. The entry is shared: the
// caller must not modify it.
func (m *Manager) Get(ctx context.Context, s logical.Storage, name string) (*Entry, error) {
	c, err := m.get(ctx, s, name)
	if err != nil || c == nil {
		return nil, err
	}
	return c.entry, nil
}

func (m *Manager) get(ctx context.Context, s logical.Storage, name string) (*cached, error) {
	if v, ok := m.cache.Load(name); ok {
		return v.(*cached), nil
	}
	e, err := readEntry(ctx, s, name)
	if err != nil || e == nil {
		return nil, err
	}
	c := &cached{entry: e}
	// A stored config that no longer resolves (a preset changed) is still
	// returned so it can be read and fixed; token reads report the problem.
	c.settings, _ = e.Config.Resolve()
	m.cache.Store(name, c)
	return c, nil
}

func readEntry(ctx context.Context, s logical.Storage, name string) (*Entry, error) {
	raw, err := s.Get(ctx, storageKey(name))
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", errReadEntry, name, err)
	}
	if raw == nil {
		return nil, nil
	}
	var e Entry
	if err := json.Unmarshal(raw.Value, &e); err != nil {
		return nil, fmt.Errorf("%s %q: %w", errDecodeEntry, name, err)
	}
	if err := upgrade(&e); err != nil {
		return nil, fmt.Errorf("%s %q: %w", errDecodeEntry, name, err)
	}
	return &e, nil
}

// upgrade brings an entry written by an older plugin up to SchemaVersion.
func upgrade(e *Entry) error {
	switch {
	case e.Version == SchemaVersion:
		return nil
	case e.Version > SchemaVersion:
		return fmt.Errorf("entry has schema version %d but this plugin knows up to %d; upgrade the plugin", e.Version, SchemaVersion)
	}
	// Version 0 never existed outside development; its layout is version 1.
	e.Version = SchemaVersion
	return nil
}

func (m *Manager) writeEntry(ctx context.Context, s logical.Storage, name string, e *Entry) error {
	e.Version = SchemaVersion
	raw, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("%s %q: %w", errPersistEntry, name, err)
	}
	if err := s.Put(ctx, &logical.StorageEntry{Key: storageKey(name), Value: raw, SealWrap: true}); err != nil {
		return fmt.Errorf("%s %q: %w", errPersistEntry, name, err)
	}
	settings, _ := e.Config.Resolve()
	m.cache.Store(name, &cached{entry: e, settings: settings})
	m.sched.set(name, proactiveAt(e, settings))
	return nil
}

// lockedEntry takes name's lock and reads the entry under it, so that a
// caller decides on what is stored now, not on what it saw before waiting
// (another request may have refreshed meanwhile). The caller must call
// unlock, also when err is not nil.
func (m *Manager) lockedEntry(ctx context.Context, s logical.Storage, name string) (e *Entry, settings *Settings, unlock func(), err error) {
	lock := locksutil.LockForKey(m.locks, name)
	lock.Lock()
	e, err = m.current(ctx, s, name)
	if err != nil {
		return nil, nil, lock.Unlock, err
	}
	if e == nil {
		return nil, nil, lock.Unlock, ErrNotFound
	}
	settings, err = e.Config.Resolve()
	if err != nil {
		return nil, nil, lock.Unlock, &ConfigError{Name: name, Err: err}
	}
	return e, settings, lock.Unlock, nil
}

// current returns the authoritative entry for name; the caller holds the
// name's lock. A pending entry (rotated but not yet stored) wins over
// storage and is written now.
func (m *Manager) current(ctx context.Context, s logical.Storage, name string) (*Entry, error) {
	m.pendingMu.Lock()
	p := m.pending[name]
	m.pendingMu.Unlock()
	if p != nil {
		if err := m.writeEntry(ctx, s, name, p); err != nil {
			return nil, err
		}
		m.pendingMu.Lock()
		delete(m.pending, name)
		m.pendingMu.Unlock()
		m.logger.Info("stored the rotated refresh token held since a failed write", "name", name)
		return p.Clone(), nil
	}
	return readEntry(ctx, s, name)
}

// Update changes the credential called name under its lock. fn gets a
// private copy of the current entry (nil when there is none) and returns
// the entry to store; an error from fn stores nothing.
func (m *Manager) Update(ctx context.Context, s logical.Storage, name string, fn func(*Entry) (*Entry, error)) (*Entry, error) {
	lock := locksutil.LockForKey(m.locks, name)
	lock.Lock()
	defer lock.Unlock()
	cur, err := m.current(ctx, s, name)
	if err != nil {
		return nil, err
	}
	next, err := fn(cur)
	if err != nil {
		return nil, err
	}
	if err := m.writeEntry(ctx, s, name, next); err != nil {
		return nil, err
	}
	// New settings deserve a fresh attempt at the vendor.
	m.resetHealth(name)
	return next, nil
}

// Delete removes the credential called name.
func (m *Manager) Delete(ctx context.Context, s logical.Storage, name string) error {
	lock := locksutil.LockForKey(m.locks, name)
	lock.Lock()
	defer lock.Unlock()
	if err := s.Delete(ctx, storageKey(name)); err != nil {
		return fmt.Errorf("deleting credential %q: %w", name, err)
	}
	m.cache.Delete(name)
	m.pendingMu.Lock()
	delete(m.pending, name)
	m.pendingMu.Unlock()
	m.resetHealth(name)
	m.sched.set(name, time.Time{})
	m.counters.Delete(name)
	return nil
}

// List returns the names of all credentials.
func (m *Manager) List(ctx context.Context, s logical.Storage) ([]string, error) {
	names, err := s.List(ctx, StoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing credentials: %w", err)
	}
	return names, nil
}

// ConfigError is a stored config that does not resolve; the operator must
// fix it.
type ConfigError struct {
	Name string
	Err  error
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("credential %q is misconfigured: %v; fix it with vault write vendoroauth/config/%s", e.Name, e.Err, e.Name)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// IsNotFound reports whether err means the credential does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// NextRefresh is when the periodic tick will refresh name, or zero.
func (m *Manager) NextRefresh(name string) time.Time { return m.sched.next(name) }

// SetClient replaces the token client, for tests that need short timeouts.
func (m *Manager) SetClient(c *tokenclient.Client) { m.client = c }

// Now is the manager's clock.
func (m *Manager) Now() time.Time { return m.now() }
