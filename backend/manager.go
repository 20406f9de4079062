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
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
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
	return nil
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

// Result is a token ready to hand out.
type Result struct {
	Token    Token
	TTL      time.Duration // lease TTL: remaining life minus skew, capped by max_ttl
	Cached   bool          // served without calling the vendor
	Warnings []string
}

// Lease returns how long tok may be handed out for at now, and whether it
// may be handed out at all. A token stops being handed out once its lease
// would be shorter than a tenth of its full lease: a reader such as Vault
// Agent re-reads at 85-95% of a lease, and handing out a sliver of life
// would only make it re-read again at once.
func Lease(tok *Token, s *Settings, now time.Time) (time.Duration, bool) {
	if tok == nil || s == nil {
		return 0, false
	}
	lifetime := tok.ExpiresAt.Sub(tok.ObtainedAt)
	skew := s.ExpirySkew
	// A skew near the token's life would make almost every read a grant,
	// and for short-lived tokens a long skew multiplies vendor calls.
	if skew > lifetime/10 {
		skew = lifetime / 10
	}
	ttl := tok.ExpiresAt.Sub(now) - skew
	minLease := (lifetime - skew) / 10
	if minLease < time.Second {
		minLease = time.Second
	}
	if ttl < minLease {
		return 0, false
	}
	if s.MaxTTL > 0 && ttl > s.MaxTTL {
		ttl = s.MaxTTL
	}
	return ttl.Truncate(time.Second), true
}

// Token returns a token for the credential called name: the cached one
// while it may be handed out, else a new one from the vendor. writable says
// whether this node can write storage; when it cannot, a token that needs a
// vendor call yields logical.ErrReadOnly so Vault forwards the request.
func (m *Manager) Token(ctx context.Context, s logical.Storage, name string, writable bool) (*Result, error) {
	c, err := m.get(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, ErrNotFound
	}
	if ttl, ok := Lease(c.entry.Token, c.settings, m.now()); ok {
		return &Result{Token: *c.entry.Token, TTL: ttl, Cached: true}, nil
	}
	if !writable {
		return nil, logical.ErrReadOnly
	}
	return m.refresh(ctx, s, name, false)
}

// Refresh gets a new token from the vendor now, whatever the cache holds.
func (m *Manager) Refresh(ctx context.Context, s logical.Storage, name string, writable bool) (*Result, error) {
	if !writable {
		return nil, logical.ErrReadOnly
	}
	return m.refresh(ctx, s, name, true)
}

// refresh collapses concurrent callers for one name into one vendor call.
func (m *Manager) refresh(ctx context.Context, s logical.Storage, name string, force bool) (*Result, error) {
	key := name
	if force {
		// A forced refresh must not be satisfied by a regular one that
		// started before it and may return the old token.
		key = "force:" + name
	}
	v, err, _ := m.flights.Do(key, func() (any, error) {
		gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grantTimeout)
		defer cancel()
		return m.refreshLocked(gctx, s, name, force)
	})
	if err != nil {
		return nil, err
	}
	r := *v.(*Result)
	r.Warnings = append([]string(nil), r.Warnings...)
	return &r, nil
}

func (m *Manager) refreshLocked(ctx context.Context, s logical.Storage, name string, force bool) (*Result, error) {
	lock := locksutil.LockForKey(m.locks, name)
	lock.Lock()
	defer lock.Unlock()

	// Re-read under the lock: another request may have refreshed already.
	e, err := m.current(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, ErrNotFound
	}
	settings, err := e.Config.Resolve()
	if err != nil {
		return nil, &ConfigError{Name: name, Err: err}
	}
	now := m.now()
	if !force {
		if ttl, ok := Lease(e.Token, settings, now); ok {
			return &Result{Token: *e.Token, TTL: ttl, Cached: true}, nil
		}
	}

	log := m.logger.With("name", name, "vendor", settings.Preset.Name)
	req := e.Config.Request(settings)
	start := now
	tok, err := m.client.Exchange(ctx, req)
	if err != nil {
		gerr := &GrantError{
			Name:   name,
			Vendor: settings.Preset.DisplayName,
			Err:    err,
			Hint:   hintFor(settings.Preset, name, settings.GrantType, err),
		}
		log.Warn("token request failed", "grant_type", settings.GrantType, "error", gerr.Err.Error())
		m.recordFailure(ctx, s, name, e, gerr)
		return m.serveStale(e, settings, gerr)
	}
	log.Debug("token request succeeded", "grant_type", settings.GrantType, "duration", m.now().Sub(start))

	next := e.Clone()
	lifetime := tok.ExpiresIn
	if lifetime <= 0 {
		lifetime = settings.DefaultTTL
	}
	got := m.now()
	next.Token = &Token{
		AccessToken: tok.AccessToken,
		TokenType:   tok.TokenType,
		Scope:       tok.Scope,
		ObtainedAt:  got,
		ExpiresAt:   got.Add(lifetime),
	}
	rotated := false
	if settings.GrantType == providers.GrantRefreshToken && tok.RefreshToken != "" && tok.RefreshToken != e.Config.RefreshToken {
		next.Config.RefreshToken = tok.RefreshToken
		rotated = true
	}
	next.Status.LastRefreshedAt = got
	next.Status.LastError = ""
	next.Status.LastErrorAt = time.Time{}

	// Persist before handing out: if the vendor rotated the refresh token,
	// the old one is dead and this write is the only thing keeping the
	// credential alive.
	if err := m.writeEntry(ctx, s, name, next); err != nil {
		if rotated {
			m.pendingMu.Lock()
			m.pending[name] = next
			m.pendingMu.Unlock()
			log.Error("the vendor rotated the refresh token but storing it failed; holding it in memory and storing it on the next operation", "error", err)
		} else {
			log.Error("storing a new token failed", "error", err)
		}
		return nil, err
	}
	if rotated {
		log.Info("stored rotated refresh token")
	}
	ttl, ok := Lease(next.Token, settings, m.now())
	if !ok {
		return nil, &GrantError{
			Name:   name,
			Vendor: settings.Preset.DisplayName,
			Err:    fmt.Errorf("the new token lives %s, too short to hand out with expiry_skew %s", lifetime, settings.ExpirySkew),
			Hint:   "lower expiry_skew in vendoroauth config/" + name,
		}
	}
	return &Result{Token: *next.Token, TTL: ttl}, nil
}

// serveStale hands out the previous token after a failed refresh while it
// is still valid for a little longer, with a warning, so a vendor hiccup
// does not become an outage for readers.
func (m *Manager) serveStale(e *Entry, s *Settings, gerr *GrantError) (*Result, error) {
	if e.Token == nil {
		return nil, gerr
	}
	left := e.Token.ExpiresAt.Sub(m.now()) - time.Second
	if left < time.Second {
		return nil, gerr
	}
	if s.MaxTTL > 0 && left > s.MaxTTL {
		left = s.MaxTTL
	}
	return &Result{
		Token:    *e.Token,
		TTL:      left.Truncate(time.Second),
		Cached:   true,
		Warnings: []string{fmt.Sprintf("%s; serving the cached token, which expires at %s", gerr.Error(), e.Token.ExpiresAt.UTC().Format(time.RFC3339))},
	}, nil
}

// recordFailure notes the error in the credential's status. It is best
// effort: the read already fails or serves a stale token either way.
func (m *Manager) recordFailure(ctx context.Context, s logical.Storage, name string, e *Entry, gerr *GrantError) {
	next := e.Clone()
	next.Status.LastError = gerr.Err.Error()
	next.Status.LastErrorAt = m.now()
	if err := m.writeEntry(ctx, s, name, next); err != nil {
		m.logger.Warn("recording the failure in the credential's status failed", "name", name, "error", err)
	}
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
