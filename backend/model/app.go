package model

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// App is one OAuth client (one client_id and its secrets) that many
// connections share: what belongs to the client, not to an account.
type App struct {
	Version int `json:"version"`
	// Config holds the client's settings in the same fields a
	// self-contained credential uses; what only an account holds
	// (refresh_token, app, metadata) is always empty.
	Config Config `json:"config"`
	// AllowedRedirectURIs are the only redirect URIs an authorization of
	// a connection may use, compared exactly.
	AllowedRedirectURIs []string `json:"allowed_redirect_uris,omitempty"`
	// PreviousClientSecret is the secret before the last change, tried
	// once when the vendor refuses the current one with invalid_client,
	// until PreviousUntil, and only where it was written for
	// (PreviousBound).
	PreviousClientSecret string       `json:"previous_client_secret,omitempty"`
	PreviousUntil        time.Time    `json:"previous_until,omitempty"`
	PreviousBound        *Destination `json:"previous_bound,omitempty"`
	// SecretOverlap: nil means DefaultSecretOverlap.
	SecretOverlap *time.Duration `json:"client_secret_overlap,omitempty"`
	// RefreshConcurrency and RefreshRate bound the background refreshes of
	// the app's connections (0: the defaults, 4 at a time and 10 a
	// second), so a restart of a mount with many connections does not
	// stampede the vendor.
	RefreshConcurrency int     `json:"refresh_concurrency,omitempty"`
	RefreshRate        float64 `json:"refresh_rate,omitempty"`
	// NotifyURL and NotifySecret are where the app's events are delivered
	// as signed webhooks, and the secret that signs them (notify.go).
	NotifyURL    string       `json:"notify_url,omitempty"`
	NotifySecret string       `json:"notify_secret,omitempty"`
	NotifyBound  *Destination `json:"notify_bound,omitempty"`
	NotifyFrom   uint64       `json:"notify_from,omitempty"`
	// MaxOpenAuthorizations bounds the authorizations of the app's
	// connections open at a time (0: DefaultMaxOpenAuthorizations).
	MaxOpenAuthorizations int `json:"max_open_authorizations,omitempty"`

	// Upgrade holds what an app written by an older release recorded
	// differently (backend/store reads it).
	Upgrade *Upgrade `json:"-"`
}

// BindUpgrade binds the secrets of an app written by an older release
// that hold no binding, as its connections resolve it now: its client
// secrets to where they go now, its previous client secret to the token
// endpoint the release recorded it for. It reports whether it bound any;
// the caller stores the app.
func (a *App) BindUpgrade() bool {
	s, err := a.Config.ResolveAsConnection()
	if err != nil {
		return false
	}
	e := Entry{Config: a.Config}
	bound := e.BindUpgrade(s)
	a.Config.Bound = e.Config.Bound
	if a.PreviousBound == nil && a.PreviousClientSecret != "" && a.Upgrade != nil && a.Upgrade.PreviousFor != "" {
		d := ClientDestination(&a.Config, s)
		d.Endpoints = []string{a.Upgrade.PreviousFor}
		a.PreviousBound, bound = &d, true
	}
	return bound
}

// Validate checks an app as its connections will use it.
func (a *App) Validate() error {
	for _, f := range fields {
		if f.Holder == InConfig && f.ConnectionOnly() && f.IsSet(&a.Config) {
			return fmt.Errorf("an app holds no %s: write it to a connection, config/<app>/<account>", f.Name)
		}
	}
	if a.RefreshConcurrency < 0 || a.RefreshRate < 0 || a.MaxOpenAuthorizations < 0 {
		return fmt.Errorf("refresh_concurrency, refresh_rate and max_open_authorizations cannot be negative")
	}
	if a.RefreshRate > 0 && a.RefreshRate < MinRefreshRate {
		return fmt.Errorf("refresh_rate is at least %g (a background refresh every %s); 0 is the default, 10 a second", MinRefreshRate, time.Duration(float64(time.Second)/MinRefreshRate))
	}
	if a.MaxOpenAuthorizations > MaxOpenAuthorizationsLimit {
		return fmt.Errorf("max_open_authorizations is at most %d", MaxOpenAuthorizationsLimit)
	}
	if err := ValidateRedirectURIs(a.AllowedRedirectURIs); err != nil {
		return err
	}
	if err := a.validateNotify(); err != nil {
		return err
	}
	_, err := a.Config.ResolveAsConnection()
	return err
}

// OpenAuthorizationLimit is how many authorizations of the app's
// connections may be open at a time.
func (a *App) OpenAuthorizationLimit() int {
	if a.MaxOpenAuthorizations > 0 {
		return a.MaxOpenAuthorizations
	}
	return DefaultMaxOpenAuthorizations
}

// Overlap is how long the previous client secret is kept.
func (a *App) Overlap() time.Duration {
	if a.SecretOverlap != nil {
		return *a.SecretOverlap
	}
	return DefaultSecretOverlap
}

// PreviousSecret is the previous client secret and where it may go,
// while it may still be tried; "" when there is none. One kept without
// where it was written for (by an older release) is never tried.
func (a *App) PreviousSecret(now time.Time) (string, Destination) {
	if a == nil || a.PreviousClientSecret == "" || !now.Before(a.PreviousUntil) || a.PreviousBound == nil {
		return "", Destination{}
	}
	return a.PreviousClientSecret, *a.PreviousBound
}

// HasPrevious reports whether a previous client secret is kept and not
// yet past its overlap.
func (a *App) HasPrevious(now time.Time) bool {
	return a.PreviousClientSecret != "" && now.Before(a.PreviousUntil)
}

// KeepPrevious keeps before's client secret for the overlap, bound where
// it was; one without a binding is not kept.
func (a *App) KeepPrevious(before *Config, now time.Time) bool {
	d, ok := before.Bound["client_secret"]
	if before.ClientSecret == "" || !ok {
		return false
	}
	d = d.Clone()
	a.PreviousClientSecret, a.PreviousUntil, a.PreviousBound = before.ClientSecret, now.Add(a.Overlap()), &d
	return true
}

// DropPrevious forgets the previous client secret.
func (a *App) DropPrevious() {
	a.PreviousClientSecret, a.PreviousUntil, a.PreviousBound = "", time.Time{}, nil
}

// Clone returns a deep copy.
func (a *App) Clone() *App {
	out := *a
	out.Config = a.Config.Clone()
	out.AllowedRedirectURIs = append([]string(nil), a.AllowedRedirectURIs...)
	if a.SecretOverlap != nil {
		d := *a.SecretOverlap
		out.SecretOverlap = &d
	}
	if a.PreviousBound != nil {
		d := a.PreviousBound.Clone()
		out.PreviousBound = &d
	}
	if a.NotifyBound != nil {
		d := a.NotifyBound.Clone()
		out.NotifyBound = &d
	}
	return &out
}

// Secrets lists the app's secret values, for redaction.
func (a *App) Secrets() []string {
	return append(a.Config.Secrets(), a.PreviousClientSecret, a.NotifySecret)
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
		if u.Scheme != "https" && !(u.Scheme == "http" && IsLoopback(u.Hostname())) {
			return fmt.Errorf("allowed_redirect_uris: %q must use https (http only on a loopback host)", raw)
		}
	}
	return nil
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
