package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// rediscoverAfter is how old an issuer's metadata may get before the
// active node fetches it again.
const rediscoverAfter = 24 * time.Hour

// A failed fetch is tried again after rediscoverRetry, doubling with each
// failure in a row up to rediscoverAfter, so an issuer that is down is not
// asked every tick and does not hold back the other apps.
const rediscoverRetry = 15 * time.Minute

// rediscoverBudget bounds the time one tick spends fetching metadata, and
// rediscoverPerTick how many issuers it asks: the tick runs on Vault's
// periodic schedule and must end long before its deadline.
const (
	rediscoverBudget  = 20 * time.Second
	rediscoverPerTick = 4
)

// Discover fetches an issuer's metadata (RFC 8414, then OpenID
// Discovery), checking that it names the same issuer. It runs when a
// config or app is written, and daily in the background; never on a read.
func (m *Manager) Discover(ctx context.Context, issuer string, c *model.Config) (*model.Discovered, error) {
	if !m.inflight.start() {
		return nil, ErrClosed
	}
	defer m.inflight.done()
	md, err := m.gate.Discover(ctx, issuer, c.CABundle)
	if err != nil {
		return nil, err
	}
	d := &model.Discovered{
		TokenURL:               md.TokenEndpoint,
		AuthorizeURL:           md.AuthorizationEndpoint,
		RevocationURL:          md.RevocationEndpoint,
		DeviceAuthorizationURL: md.DeviceAuthorizationEndpoint,
		AuthMethods:            md.TokenEndpointAuthMethodsSupported,
		PKCEMethods:            md.CodeChallengeMethodsSupported,
		FetchedAt:              m.now(),
	}
	// The aliases of the endpoints secrets go to, which a client that
	// presents a certificate uses (the model's endpoint table).
	for _, name := range model.MTLSAliasNames() {
		if u := md.MTLSEndpointAliases[name]; u != "" {
			if d.MTLSAliases == nil {
				d.MTLSAliases = map[string]string{}
			}
			d.MTLSAliases[name] = u
		}
	}
	return d, nil
}

// RevokeResult says what deleting a credential did at its vendor.
type RevokeResult struct {
	// Tried: a refresh token and a revocation endpoint were there, and
	// revoke_on_delete was on.
	Tried bool
	Err   error
	// NotSent: the refresh token was not revoked because the endpoint it
	// would go to (Endpoint) is not the one it was stored for (BoundTo).
	NotSent           bool
	Endpoint, BoundTo string
}

// revokeAtVendor revokes e's refresh token (RFC 7009) before its delete,
// with the same client authentication as the token endpoint. A failure is
// reported, not fatal: the delete goes on.
func (m *Manager) revokeAtVendor(ctx context.Context, s logical.Storage, name string, e *model.Entry) RevokeResult {
	r, err := m.resolve(ctx, s, name, e)
	if err != nil || r.err != nil || r.settings == nil {
		return RevokeResult{}
	}
	st := r.settings
	if e.Config.RefreshToken == "" || st.RevocationURL == "" || !st.RevokeOnDelete || !st.Grant.HoldsRefreshToken {
		return RevokeResult{}
	}
	if !m.inflight.start() {
		return RevokeResult{Tried: true, Err: ErrClosed}
	}
	defer m.inflight.done()
	call, err := m.callFor(ctx, s, name, &r.eff, st)
	if err != nil {
		return RevokeResult{Tried: true, Err: err}
	}
	// The refresh token is revoked only where it may be sent: the
	// revocation endpoint in effect when it was stored, with the same
	// trust; the client's secrets that authenticate the revocation are
	// checked as at the token endpoint.
	if d, ok := r.eff.Bound["refresh_token"]; ok {
		call = call.With(tokenclient.RevokedTokenRef, d)
	}
	err = m.gate.Revoke(ctx, call, tokenclient.Revocation{Endpoint: st.RevocationURL, Token: e.Config.RefreshToken, TokenTypeHint: tokenclient.HintRefreshToken})
	var me *model.MisdirectedError
	if errors.As(err, &me) {
		m.logger.Warn("not revoking the refresh token of a deleted credential: the revocation endpoint is not where its secrets may go", "name", name, "vendor", st.Preset.Name, "secret", me.Secret.String())
		bound := ""
		if me.Bound != nil {
			bound = me.Bound.String()
		}
		return RevokeResult{NotSent: true, Endpoint: st.RevocationURL, BoundTo: bound}
	}
	if err != nil {
		m.logger.Warn("revoking the refresh token of a deleted credential at the vendor failed; the credential is deleted anyway", "name", name, "vendor", st.Preset.Name, "error", err.Error())
	} else {
		m.logger.Info("revoked the refresh token of a deleted credential at the vendor", "name", name, "vendor", st.Preset.Name)
	}
	return RevokeResult{Tried: true, Err: err}
}

// rediscoverApps fetches again the metadata of apps whose issuer's was
// fetched more than rediscoverAfter ago; at most a few per tick. Metadata
// that moves an endpoint the app's secrets go to is not adopted: whoever
// controls the issuer's document (or its host, later) would otherwise get
// them without anyone writing the app. The app keeps what it had and says
// what changed (Discovered.Changed) until an operator writes it again.
// Self-contained configs are not fetched again: their metadata is what was
// fetched when they were written.
func (m *Manager) rediscoverApps(tick context.Context, s logical.Storage) {
	ctx, cancel := context.WithTimeout(m.life, rediscoverBudget)
	defer cancel()
	defer context.AfterFunc(tick, cancel)()
	names, err := m.ListApps(ctx, s)
	if err != nil {
		return
	}
	done := 0
	for _, name := range names {
		if done >= rediscoverPerTick || ctx.Err() != nil {
			return
		}
		a, err := m.App(ctx, s, name)
		if err != nil || a == nil || a.Config.Issuer == "" || a.Config.Discovered == nil || !rediscoverDue(a.Config.Discovered, m.now()) {
			continue
		}
		done++
		m.rediscoverApp(ctx, s, name, a)
	}
}

// rediscoverApp fetches app a's issuer's metadata again and records what
// came of it; every try is recorded, so the next tick asks about other
// apps.
func (m *Manager) rediscoverApp(ctx context.Context, s logical.Storage, name string, a *model.App) {
	d, err := m.Discover(ctx, a.Config.Issuer, &a.Config)
	if errors.Is(err, ErrClosed) {
		return
	}
	var changed []string
	if err != nil {
		m.logger.Warn("refreshing an issuer's metadata failed; keeping what was fetched before", "app", name, "error", err.Error())
	} else if changed = a.Config.DiscoveryChanges(d); len(changed) > 0 {
		m.logger.Warn("an issuer's metadata now names other endpoints for the app's secrets; keeping the ones in use until the app is written again", "app", name, "changed", strings.Join(changed, ", "))
	}
	// Recorded also when the tick's time ran out during the fetch.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if _, err := m.UpdateApp(wctx, s, name, func(cur *model.App) (*model.App, error) {
		if cur == nil || cur.Config.Issuer != a.Config.Issuer || cur.Config.Discovered == nil || !cur.Config.Discovered.FetchedAt.Equal(a.Config.Discovered.FetchedAt) {
			return nil, fmt.Errorf("changed meanwhile")
		}
		switch {
		case err != nil:
			cur.Config.Discovered.Failures++
		case len(changed) > 0:
			cur.Config.Discovered.Changed, cur.Config.Discovered.Failures = changed, 0
		default:
			cur.Config.Discovered = d
		}
		cur.Config.Discovered.CheckedAt = m.now()
		return cur, nil
	}); err != nil {
		m.logger.Warn("storing an issuer's refreshed metadata failed", "app", name, "error", err.Error())
	}
}

// rediscoverDue reports whether d is old enough to fetch again at now, or
// a failed try's backoff is over.
func rediscoverDue(d *model.Discovered, now time.Time) bool {
	if d.Failures > 0 {
		wait := rediscoverRetry
		for i := 1; i < d.Failures && wait < rediscoverAfter; i++ {
			wait *= 2
		}
		return now.Sub(d.CheckedAt) >= min(wait, rediscoverAfter)
	}
	last := d.FetchedAt
	if d.CheckedAt.After(last) {
		last = d.CheckedAt
	}
	return now.Sub(last) >= rediscoverAfter
}
