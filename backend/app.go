package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// AppPrefix is where apps live; it is seal-wrapped.
const AppPrefix = "apps/"

// DefaultSecretOverlap is how long an app keeps its previous client secret
// after a new one is written, for a vendor that does not know the new one
// yet.
const DefaultSecretOverlap = 24 * time.Hour

// App is one OAuth client (one client_id and its secrets) that many
// connections share: what belongs to the client, not to an account.
type App struct {
	Version int `json:"version"`
	// Config holds the client's settings in the same fields a
	// self-contained credential uses; its RefreshToken, App and Metadata
	// are always empty.
	Config Config `json:"config"`
	// AllowedRedirectURIs are the only redirect URIs an authorization of
	// a connection may use, compared exactly.
	AllowedRedirectURIs []string `json:"allowed_redirect_uris,omitempty"`
	// PreviousClientSecret is the secret before the last change, tried
	// once when the vendor refuses the current one with invalid_client,
	// until PreviousUntil, and only at PreviousFor, the token endpoint it
	// was written for.
	PreviousClientSecret string    `json:"previous_client_secret,omitempty"`
	PreviousUntil        time.Time `json:"previous_until,omitempty"`
	PreviousFor          string    `json:"previous_for,omitempty"`
	// SecretOverlap: nil means DefaultSecretOverlap.
	SecretOverlap *time.Duration `json:"client_secret_overlap,omitempty"`
	// RefreshConcurrency and RefreshRate bound the background refreshes of
	// the app's connections (0: the defaults, 4 at a time and 10 a
	// second), so a restart of a mount with many connections does not
	// stampede the vendor.
	RefreshConcurrency int     `json:"refresh_concurrency,omitempty"`
	RefreshRate        float64 `json:"refresh_rate,omitempty"`
}

// Validate checks an app as its connections will use it.
func (a *App) Validate() error {
	if a.Config.RefreshToken != "" || a.Config.App != "" {
		return fmt.Errorf("an app holds no refresh_token: write it to a connection, config/<app>/<account>")
	}
	if a.RefreshConcurrency < 0 || a.RefreshRate < 0 {
		return fmt.Errorf("refresh_concurrency and refresh_rate cannot be negative")
	}
	if err := ValidateRedirectURIs(a.AllowedRedirectURIs); err != nil {
		return err
	}
	// A connection brings the refresh token; check the rest as it will.
	c := a.Config
	c.RefreshToken = "a connection's"
	if _, err := c.Resolve(); err != nil {
		return err
	}
	return nil
}

// Overlap is how long the previous client secret is kept.
func (a *App) Overlap() time.Duration {
	if a.SecretOverlap != nil {
		return *a.SecretOverlap
	}
	return DefaultSecretOverlap
}

// previousSecret is the previous client secret while it may still be
// tried at tokenURL, or "". One kept without the endpoint it was written
// for (by an older release) is not tried: it may have been kept across a
// change of token_url.
func (a *App) previousSecret(now time.Time, tokenURL string) string {
	if a == nil || a.PreviousClientSecret == "" || !now.Before(a.PreviousUntil) || a.PreviousFor == "" || a.PreviousFor != tokenURL {
		return ""
	}
	return a.PreviousClientSecret
}

// HasPrevious reports whether a previous client secret is kept and not
// yet past its overlap.
func (a *App) HasPrevious(now time.Time) bool {
	return a.PreviousClientSecret != "" && now.Before(a.PreviousUntil)
}

// KeepPrevious keeps before's client secret for the overlap, bound to the
// token endpoint it was written for; one whose endpoint cannot be told is
// not kept.
func (a *App) KeepPrevious(before *Config, now time.Time) bool {
	c := before.Clone()
	c.RefreshToken = "a connection's" // resolved as its connections are
	s, err := c.Resolve()
	if err != nil || before.ClientSecret == "" {
		return false
	}
	a.PreviousClientSecret, a.PreviousUntil, a.PreviousFor = before.ClientSecret, now.Add(a.Overlap()), s.TokenURL
	return true
}

// DropPrevious forgets the previous client secret.
func (a *App) DropPrevious() {
	a.PreviousClientSecret, a.PreviousUntil, a.PreviousFor = "", time.Time{}, ""
}

// Clone returns a deep copy.
func (a *App) Clone() *App {
	out := *a
	out.Config = a.Config.clone()
	out.AllowedRedirectURIs = append([]string(nil), a.AllowedRedirectURIs...)
	out.SecretOverlap = clonePtr(a.SecretOverlap)
	return &out
}

// Secrets lists the app's secret values, for redaction.
func (a *App) Secrets() []string {
	return append(a.Config.Secrets(), a.PreviousClientSecret)
}

// Effective is the config a connection of app a acts with: the app's
// client settings and secrets, the connection's refresh token, scopes
// (when it has its own), extra parameters (over the app's) and lease
// settings (when it has its own). A self-contained config is itself.
func (c *Config) Effective(a *App) Config {
	if c.App == "" || a == nil {
		return *c
	}
	eff := a.Config
	eff.App, eff.Metadata = c.App, c.Metadata
	eff.RefreshToken, eff.RefreshTokenFor, eff.RevokeURLFor = c.RefreshToken, c.RefreshTokenFor, c.RevokeURLFor
	if len(c.Scopes) > 0 {
		eff.Scopes = c.Scopes
	}
	if len(c.ExtraParams) > 0 {
		eff.ExtraParams = maps.Clone(a.Config.ExtraParams)
		if eff.ExtraParams == nil {
			eff.ExtraParams = map[string]string{}
		}
		maps.Copy(eff.ExtraParams, c.ExtraParams)
	}
	if c.DefaultTTL > 0 {
		eff.DefaultTTL = c.DefaultTTL
	}
	if c.MaxTTL > 0 {
		eff.MaxTTL = c.MaxTTL
	}
	for _, p := range []struct{ dst, src **time.Duration }{{&eff.ExpirySkew, &c.ExpirySkew}, {&eff.KeepAlive, &c.KeepAlive}} {
		if *p.src != nil {
			*p.dst = *p.src
		}
	}
	if c.RetryLostRefresh != nil {
		eff.RetryLostRefresh = c.RetryLostRefresh
	}
	return eff
}

// ValidateRedirectURIs checks an app's allow-list: absolute https URLs
// (http only on a loopback host, for local development), no fragment.
func ValidateRedirectURIs(uris []string) error {
	for _, raw := range uris {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || u.Opaque != "" {
			return fmt.Errorf("allowed_redirect_uris: %q is not an absolute URL", raw)
		}
		if u.Fragment != "" || strings.Contains(raw, "#") {
			return fmt.Errorf("allowed_redirect_uris: %q must not have a #fragment (RFC 6749 3.1.2)", raw)
		}
		if u.User != nil {
			return fmt.Errorf("allowed_redirect_uris: %q must not carry credentials", raw)
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
			return fmt.Errorf("allowed_redirect_uris: %q must use https (http only on a loopback host)", raw)
		}
	}
	return nil
}

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
	app *App // nil: no such app
	gen uint64
	// plain is the settings of a connection that overrides nothing: one
	// value shared by all of them (settings hold no secret).
	plainOnce sync.Once
	plain     *Settings
	plainErr  error
}

// plainSettings resolves, once, the settings every connection of the app
// without overrides shares.
func (a *appSnap) plainSettings(appName string) (*Settings, error) {
	a.plainOnce.Do(func() {
		eff := (&Config{App: appName}).Effective(a.app)
		eff.RefreshToken = "a connection's" // resolved as its connections are
		a.plain, a.plainErr = eff.Resolve()
	})
	return a.plain, a.plainErr
}

// overridesNothing reports whether a connection's config takes all its
// settings from its app.
func (c *Config) overridesNothing() bool {
	return len(c.Scopes) == 0 && len(c.ExtraParams) == 0 && c.DefaultTTL == 0 && c.MaxTTL == 0 &&
		c.ExpirySkew == nil && c.KeepAlive == nil && c.RetryLostRefresh == nil
}

func appKey(name string) string { return AppPrefix + name }

// App returns the app called name, or nil. It is shared: the caller must
// not modify it.
func (m *Manager) App(ctx context.Context, s logical.Storage, name string) (*App, error) {
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
	a, err := readApp(ctx, s, name)
	if err != nil {
		return nil, err
	}
	snap := &appSnap{app: a, gen: m.apps.gen.Add(1)}
	m.apps.mu.Lock()
	if m.apps.changes == seen {
		m.apps.m.Store(name, snap)
	}
	m.apps.mu.Unlock()
	return snap, nil
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

func readApp(ctx context.Context, s logical.Storage, name string) (*App, error) {
	raw, err := s.Get(ctx, appKey(name))
	if err != nil {
		return nil, fmt.Errorf("reading app %q from storage: %w", name, err)
	}
	if raw == nil {
		return nil, nil
	}
	var a App
	if err := json.Unmarshal(raw.Value, &a); err != nil {
		return nil, fmt.Errorf("decoding stored app %q: %w", name, err)
	}
	if a.Version > SchemaVersion {
		return nil, fmt.Errorf("decoding stored app %q: it has schema version %d but this plugin knows up to %d; upgrade the plugin", name, a.Version, SchemaVersion)
	}
	return &a, nil
}

// UpdateApp changes the app called name under its lock: fn gets a private
// copy (nil when there is none) and returns the app to store. Its
// connections pick the change up on their next read, and keep their
// tokens unless what they send changed.
func (m *Manager) UpdateApp(ctx context.Context, s logical.Storage, name string, fn func(*App) (*App, error)) (*App, error) {
	unlock, err := m.lockName(ctx, "update app", AppPrefix+name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	cur, err := readApp(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if cur != nil {
		cur = cur.Clone()
	}
	next, err := fn(cur)
	if err != nil {
		return nil, err
	}
	next.Version = SchemaVersion
	raw, err := json.Marshal(next)
	if err != nil {
		return nil, fmt.Errorf("storing app %q: %w", name, err)
	}
	if err := s.Put(ctx, &logical.StorageEntry{Key: appKey(name), Value: raw, SealWrap: true}); err != nil {
		m.dropApp(name)
		return nil, fmt.Errorf("storing app %q: %w: %w", name, ErrStorageWrite, err)
	}
	m.dropApp(name)
	return next, nil
}

// DeleteApp removes the app called name. Its connections stay, and fail
// with a message that says the app is gone, until it is written again.
func (m *Manager) DeleteApp(ctx context.Context, s logical.Storage, name string) error {
	unlock, err := m.lockName(ctx, "delete app", AppPrefix+name)
	if err != nil {
		return err
	}
	defer unlock()
	if err := s.Delete(ctx, appKey(name)); err != nil {
		return fmt.Errorf("deleting app %q: %w", name, err)
	}
	m.dropApp(name)
	return m.DeleteKeys(ctx, s, "app/"+name)
}

// ListApps returns the names of all apps.
func (m *Manager) ListApps(ctx context.Context, s logical.Storage) ([]string, error) {
	names, err := s.List(ctx, AppPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing apps: %w", err)
	}
	return names, nil
}

// AppOf is the app a credential name belongs to by its layout:
// "<app>/<account>" is a connection of <app>.
func AppOf(name string) string {
	app, _, ok := strings.Cut(name, "/")
	if !ok {
		return ""
	}
	return app
}

// AppError is a connection whose app does not exist.
type AppError struct{ Name, App string }

func (e *AppError) Error() string {
	return fmt.Sprintf("credential %q is a connection of app %q, which does not exist", e.Name, e.App)
}

// Effective is c's config with its app merged in and its settings, for the
// path layer: resolveErr says why it does not resolve (the caller's to
// fix), err is a storage failure.
func (m *Manager) Effective(ctx context.Context, s logical.Storage, name string, c *Config) (eff Config, settings *Settings, resolveErr, err error) {
	r, err := m.resolve(ctx, s, name, &Entry{Config: *c})
	if err != nil {
		return Config{}, nil, nil, err
	}
	return r.eff, r.settings, r.err, nil
}

// CountAuthorizations is how many unexpired authorizations name has open,
// those a version 1 entry e (may be nil) keeps inline included.
func (m *Manager) CountAuthorizations(ctx context.Context, s logical.Storage, name string, e *Entry) (int, error) {
	prefix := AuthzPrefix + name + "/"
	keys, err := s.List(ctx, prefix)
	if err != nil {
		return 0, fmt.Errorf("listing the authorizations of credential %q: %w", name, err)
	}
	n := 0
	for _, k := range keys {
		if strings.HasSuffix(k, "/") {
			continue
		}
		raw, err := s.Get(ctx, prefix+k)
		if err != nil {
			return 0, fmt.Errorf("reading an authorization of credential %q: %w", name, err)
		}
		var a Authorization
		if raw != nil && json.Unmarshal(raw.Value, &a) == nil && !m.now().After(a.ExpiresAt) {
			n++
		}
	}
	n += legacyOpen(e, m.now())
	return n, nil
}
