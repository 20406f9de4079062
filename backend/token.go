package backend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
)

// Result is a token ready to hand out.
type Result struct {
	Token    Token
	TTL      time.Duration // lease TTL: remaining life minus skew, capped by max_ttl
	Cached   bool          // served without calling the vendor
	Warnings []string
}

// effectiveSkew is the skew actually applied to tok: at most a tenth of its
// life, since a skew near the token's life would make almost every read a
// grant, and for short-lived tokens a long skew multiplies vendor calls.
func effectiveSkew(tok *Token, s *Settings) time.Duration {
	lifetime := tok.ExpiresAt.Sub(tok.ObtainedAt)
	if s.ExpirySkew > lifetime/10 {
		return lifetime / 10
	}
	return s.ExpirySkew
}

// handoutShare is the share of a token's full lease below which it stops
// being handed out: a fifth, because Vault Agent re-reads a non-renewable
// secret at 85-95% of its lease, so at most 15% of any lease it got is
// left then, and the re-read must get a fresh token. With a tenth, the
// e2e Agent test saw every such re-read get the old token with 3-5 s left,
// and Agent replace the file under a second before the vendor's expiry.
const handoutShare = 5

// Lease returns how long tok may be handed out for at now, and whether it
// may be handed out at all. A token stops being handed out once its lease
// would be shorter than a fifth of its full lease (handoutShare). A static
// token cannot be replaced, so it is handed out to the last second.
func Lease(tok *Token, s *Settings, now time.Time) (time.Duration, bool) {
	if tok == nil || s == nil {
		return 0, false
	}
	skew := effectiveSkew(tok, s)
	ttl := tok.ExpiresAt.Sub(now) - skew
	minLease := (tok.ExpiresAt.Sub(tok.ObtainedAt) - skew) / handoutShare
	if minLease < time.Second || s.Static() {
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

// handoutEnd is when tok stops being handed out.
func handoutEnd(tok *Token, s *Settings) time.Time {
	skew := effectiveSkew(tok, s)
	minLease := (tok.ExpiresAt.Sub(tok.ObtainedAt) - skew) / handoutShare
	if minLease < time.Second {
		minLease = time.Second
	}
	return tok.ExpiresAt.Add(-skew - minLease)
}

// Token returns a token for the credential called name: the cached one
// while it may be handed out, else a new one from the vendor. writable says
// whether this node can write storage; when it cannot, a token that needs a
// vendor call yields logical.ErrReadOnly so Vault forwards the request. It
// is a func, asked only when a vendor call is needed, because in a plugin
// process asking costs a gRPC round trip to Vault that a cached read should
// not pay.
func (m *Manager) Token(ctx context.Context, s logical.Storage, name string, writable func() bool) (*Result, error) {
	c, err := m.get(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, ErrNotFound
	}
	cnt := m.countersOf(name)
	cnt.reads.Add(1)
	now := m.now()
	if ttl, ok := Lease(c.entry.Token, c.settings, now); ok {
		cnt.cacheHits.Add(1)
		return &Result{Token: *c.entry.Token, TTL: ttl, Cached: true}, nil
	}
	if err := m.blocked(name, c.entry, c.settings, now); err != nil {
		return m.serveStale(c.entry, c.settings, err)
	}
	if !writable() {
		return nil, logical.ErrReadOnly
	}
	return m.refresh(ctx, s, name, false)
}

// blocked says why no vendor call may be made for a credential now, or nil.
func (m *Manager) blocked(name string, e *Entry, s *Settings, now time.Time) error {
	if s == nil {
		_, err := e.Config.Resolve()
		return &ConfigError{Name: name, Err: err}
	}
	if s.Static() {
		return staticExpired(name, e, s)
	}
	if e.Status.NeedsReauthorization {
		return &ReauthError{Name: name, Vendor: s.Preset.DisplayName, Reason: e.Status.LastError, Hint: reauthHint(s, name)}
	}
	if s.GrantType == providers.GrantRefreshToken && e.Config.RefreshToken == "" {
		return &ReauthError{Name: name, Vendor: s.Preset.DisplayName, Reason: "it has no refresh token yet", Hint: reauthHint(s, name)}
	}
	h := m.healthOf(name)
	if h.unknownOutcome && e.Status.RotationSeen {
		return &UnknownOutcomeError{Name: name, Vendor: s.Preset.DisplayName}
	}
	if now.Before(h.retryAt) && h.lastErr != nil {
		return &BackoffError{Last: h.lastErr, RetryAt: h.retryAt}
	}
	return nil
}

// Refresh gets a new token from the vendor now, whatever the cache holds
// and whatever the backoff says: an operator asked for it.
func (m *Manager) Refresh(ctx context.Context, s logical.Storage, name string, writable bool) (*Result, error) {
	c, err := m.get(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, ErrNotFound
	}
	if c.settings != nil && c.settings.Static() {
		return nil, &InputError{Msg: fmt.Sprintf("credential %q holds a static token, which cannot be refreshed: %s", name, c.settings.Preset.StaticHint)}
	}
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
	e, settings, unlock, err := m.lockedEntry(ctx, s, name)
	defer unlock()
	if err != nil {
		return nil, err
	}
	now := m.now()
	if !force {
		if ttl, ok := Lease(e.Token, settings, now); ok {
			return &Result{Token: *e.Token, TTL: ttl, Cached: true}, nil
		}
		if err := m.blocked(name, e, settings, now); err != nil {
			return m.serveStale(e, settings, err)
		}
	} else if e.Status.NeedsReauthorization || (settings.GrantType == providers.GrantRefreshToken && e.Config.RefreshToken == "") {
		return nil, m.blocked(name, e, settings, now)
	}

	log := m.logger.With("name", name, "vendor", settings.Preset.Name)
	cnt := m.countersOf(name)
	start := now
	tok, err := m.client.Exchange(ctx, e.Config.Request(settings))
	if err != nil {
		gerr := &GrantError{
			Name:   name,
			Vendor: settings.Preset.DisplayName,
			Err:    err,
			Hint:   hintFor(settings.Preset, name, settings.GrantType, err),
		}
		cnt.fail(gerr.VendorCode())
		retryAt := m.noteFailure(name, gerr, m.now())
		log.Warn("token request failed", "grant_type", settings.GrantType, "error", gerr.Err.Error(), "retry_after", retryAt.Sub(m.now()).Round(time.Second))
		next := e.Clone()
		next.Status.LastError = gerr.Err.Error()
		next.Status.LastErrorCode = gerr.VendorCode()
		next.Status.LastErrorAt = m.now()
		if settings.GrantType == providers.GrantRefreshToken && gerr.VendorCode() == "invalid_grant" {
			next.Status.NeedsReauthorization = true
			log.Error("the vendor refused the refresh token; the credential needs reauthorization and the plugin stops calling the vendor for it")
		}
		var te *tokenclient.TransportError
		if errors.As(err, &te) && te.Sent && settings.GrantType == providers.GrantRefreshToken && e.Status.RotationSeen {
			log.Error("a refresh was sent but no answer came back; the vendor may have rotated the refresh token, so it is not retried automatically")
		}
		if werr := m.writeEntry(ctx, s, name, next); werr != nil {
			log.Warn("recording the failure in the credential's status failed", "error", werr)
		}
		if next.Status.NeedsReauthorization {
			return m.serveStale(next, settings, &ReauthError{Name: name, Vendor: settings.Preset.DisplayName, Reason: gerr.Err.Error(), Hint: reauthHint(settings, name)})
		}
		return m.serveStale(e, settings, gerr)
	}
	log.Debug("token request succeeded", "grant_type", settings.GrantType, "duration", m.now().Sub(start))
	cnt.grants.Add(1)
	m.resetHealth(name)

	next := e.Clone()
	rotated := next.applyToken(tok, settings, m.now())
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
	return m.handOut(name, next, settings)
}

// applyToken puts a vendor's token response into the entry and reports
// whether it rotated the refresh token.
func (e *Entry) applyToken(tok *tokenclient.Token, s *Settings, now time.Time) bool {
	lifetime := tok.ExpiresIn
	if lifetime <= 0 {
		lifetime = s.DefaultTTL
	}
	e.Token = &Token{
		AccessToken: tok.AccessToken,
		TokenType:   tok.TokenType,
		Scope:       tok.Scope,
		ObtainedAt:  now,
		ExpiresAt:   now.Add(lifetime),
	}
	rotated := false
	// Only a refresh-token credential keeps a refresh token: Bold Penguin,
	// for one, sends one with client credentials that it will not accept.
	if s.GrantType == providers.GrantRefreshToken && tok.RefreshToken != "" && tok.RefreshToken != e.Config.RefreshToken {
		e.Config.RefreshToken = tok.RefreshToken
		e.Status.RotationSeen = true
		rotated = true
	}
	e.Status.LastRefreshedAt = now
	e.Status.LastError, e.Status.LastErrorCode, e.Status.LastErrorAt = "", "", time.Time{}
	e.Status.NeedsReauthorization = false
	return rotated
}

func (m *Manager) handOut(name string, e *Entry, s *Settings) (*Result, error) {
	ttl, ok := Lease(e.Token, s, m.now())
	if !ok {
		return nil, &GrantError{
			Name:   name,
			Vendor: s.Preset.DisplayName,
			Err:    fmt.Errorf("the new token lives %s, too short to hand out", e.Token.ExpiresAt.Sub(e.Token.ObtainedAt)),
			Hint:   "lower expiry_skew in vendoroauth config/" + name,
		}
	}
	return &Result{Token: *e.Token, TTL: ttl}, nil
}

// serveStale hands out the previous token after a failed or refused refresh
// while it is still valid for a little longer, with a warning, so a vendor
// hiccup does not become an outage for readers.
func (m *Manager) serveStale(e *Entry, s *Settings, cause error) (*Result, error) {
	if e.Token == nil || s == nil || s.Static() {
		return nil, cause
	}
	left := e.Token.ExpiresAt.Sub(m.now()) - time.Second
	if left < time.Second {
		return nil, cause
	}
	if s.MaxTTL > 0 && left > s.MaxTTL {
		left = s.MaxTTL
	}
	return &Result{
		Token:    *e.Token,
		TTL:      left.Truncate(time.Second),
		Cached:   true,
		Warnings: []string{fmt.Sprintf("%s; serving the cached token, which expires at %s", cause.Error(), e.Token.ExpiresAt.UTC().Format(time.RFC3339))},
	}, nil
}

func staticExpired(name string, e *Entry, s *Settings) error {
	if e.Token == nil {
		return &InputError{Msg: fmt.Sprintf("credential %q has grant_type=static but no access_token; %s", name, s.Preset.StaticHint)}
	}
	return &StaticExpiredError{Name: name, ExpiredAt: e.Token.ExpiresAt, Hint: s.Preset.StaticHint}
}

func reauthHint(s *Settings, name string) string {
	if s.AuthorizeURL != "" {
		return fmt.Sprintf("connect the account again: vault write vendoroauth/authorize/%s redirect_uri=<your callback>, have the user consent, then vault write vendoroauth/exchange/%s code=<code> state=<state>; or write a new refresh_token to vendoroauth/config/%s", name, name, name)
	}
	return fmt.Sprintf("write a new refresh_token to vendoroauth/config/%s", name)
}
