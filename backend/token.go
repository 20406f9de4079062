package backend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/singleflight"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/outbound"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// Result is a token ready to hand out.
type Result struct {
	Token  model.Token
	TTL    time.Duration // lease TTL: remaining life minus skew, capped by max_ttl
	Cached bool          // served without calling the vendor
	// Renewable: the lease may be renewed up to the token's hand-out end
	// (a stale token's lease may not).
	Renewable bool
	// UsedPreviousSecret: the vendor refused the app's client secret and
	// took its previous one, kept until PreviousUntil.
	UsedPreviousSecret bool
	PreviousUntil      time.Time
	// Stale is why a token past its hand-out end is served (a refresh
	// failed or may not be tried), or nil.
	Stale error
}

// errNoResult stands for a refresh that ended without a result or an
// error: a bug, reported as our failure rather than dereferenced.
var errNoResult = errors.New("internal error: a token refresh ended without a result")

// errNotStarted wraps the reason a vendor call was not sent.
var errNotStarted = errors.New("not calling the vendor")

// mode says who asks for a refresh, which decides what may be skipped.
type mode int

const (
	// modeRead: a reader whose cached token may no longer be handed out.
	// The entry is re-read under the lock and may turn out fresh.
	modeRead mode = iota
	// modeForce: an operator asked for a new token, whatever the cache
	// and the backoff say.
	modeForce
	// modeProactive: the periodic tick, for a credential that was due
	// when it was scheduled. It calls the vendor only if the credential is
	// still due and not blocked once its lock is held.
	modeProactive
)

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
		return nil, m.notFound(ctx, s, name)
	}
	cnt := m.countersOf(name)
	cnt.reads.Add(1)
	now := m.now()
	if ttl, ok := model.Lease(c.entry.Token, c.settings, now); ok {
		cnt.cacheHits.Add(1)
		m.markUsed(name, c)
		return &Result{Token: *c.entry.Token, TTL: ttl, Cached: true, Renewable: true}, nil
	}
	if c.settings == nil {
		return nil, &ConfigError{Name: name, Err: c.err}
	}
	if err := m.blocked(name, c.entry, c.settings, now); err != nil {
		return m.serveStale(c.entry, c.settings, err)
	}
	if !writable() {
		return nil, logical.ErrReadOnly
	}
	return m.refresh(ctx, s, name, modeRead)
}

// Renew says how much longer a lease holding the token obtained at
// obtained (expiring at expires) may last: to that token's lease end H.
// The token need not be the one handed out now: the token the current
// one replaced by a refresh keeps its leases to their own end (see
// lease.go), while one that was dropped (a config change, a refusal by the
// vendor, a new static token) or replaced earlier ends them now. A renewal counts as a read (a proxy serving a cached copy renews
// instead of reading), so it marks the credential in use. It never calls
// a vendor.
func (m *Manager) Renew(ctx context.Context, s logical.Storage, name string, obtained, expires time.Time) (time.Duration, error) {
	c, err := m.get(ctx, s, name)
	if err != nil {
		return 0, err
	}
	if c == nil {
		return 0, ErrNotFound
	}
	tok := c.entry.Token
	switch {
	case tok == nil || c.settings == nil:
		return 0, &LeaseEndedError{Name: name}
	case tok.ObtainedAt.Equal(obtained):
	case !tok.Replaces.IsZero() && tok.Replaces.Equal(obtained) && expires.After(obtained):
		tok = &model.Token{ObtainedAt: obtained, ExpiresAt: expires}
	default:
		return 0, &LeaseEndedError{Name: name}
	}
	ttl, ok := model.RenewLease(tok, c.settings, m.now())
	if !ok {
		return 0, &LeaseEndedError{Name: name}
	}
	m.markUsed(name, c)
	return ttl, nil
}

// blocked says why no vendor call may be made for a credential now, or nil.
func (m *Manager) blocked(name string, e *model.Entry, s *model.Settings, now time.Time) error {
	if s == nil {
		return &ConfigError{Name: name, Err: errors.New("its config does not resolve")}
	}
	if s.Static() {
		return staticExpired(name, e, s)
	}
	if err := needsReauth(name, e, s); err != nil {
		return err
	}
	h := m.healthOf(name)
	if (h.unknownOutcome || !e.Status.OutcomeUnknownAt.IsZero()) && e.Status.RotationSeen {
		return &UnknownOutcomeError{Name: name, Vendor: s.Preset.DisplayName}
	}
	if now.Before(h.retryAt) && h.lastErr != nil {
		return &BackoffError{Last: h.lastErr, RetryAt: h.retryAt}
	}
	return nil
}

// needsReauth is the error for a credential whose refresh token is dead or
// missing, or nil.
func needsReauth(name string, e *model.Entry, s *model.Settings) error {
	switch {
	case e.Status.NeedsReauthorization:
		return reauthError(name, s, e.Status.ReauthReason)
	case s.Grant.HoldsRefreshToken && e.Config.RefreshToken == "":
		return reauthError(name, s, "it has no refresh token yet")
	case s.Grant.HoldsRefreshToken && !refreshTokenGoes(e, s):
		// A refresh token goes only where it was written or issued for:
		// whoever changed the endpoint, or who may answer there (of the
		// config or its app), after it was stored did not necessarily
		// know it. The gate would refuse to send it; this says why
		// before trying.
		d := e.Config.Bound["refresh_token"]
		return reauthError(name, s, fmt.Sprintf("its refresh token was issued for %s, and the credential now sends requests to %s; the plugin does not send it there", d, model.AccountDestination(s)))
	}
	return nil
}

// refreshTokenGoes reports whether e's refresh token may go to the token
// endpoint of s.
func refreshTokenGoes(e *model.Entry, s *model.Settings) bool {
	d, ok := e.Config.Bound["refresh_token"]
	return ok && d.Allows(s.TokenURL, s.Trust, s.Routing)
}

// Refresh gets a new token from the vendor now, whatever the cache holds
// and whatever the backoff says: an operator asked for it.
func (m *Manager) Refresh(ctx context.Context, s logical.Storage, name string, writable bool) (*Result, error) {
	c, err := m.get(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, m.notFound(ctx, s, name)
	}
	if c.settings != nil && c.settings.Static() {
		return nil, &StaticRefreshError{Name: name, Hint: c.settings.Preset.StaticHint}
	}
	if !writable {
		return nil, logical.ErrReadOnly
	}
	return m.refresh(ctx, s, name, modeForce)
}

// refresh collapses concurrent callers for one name into one vendor call.
func (m *Manager) refresh(ctx context.Context, s logical.Storage, name string, md mode) (*Result, error) {
	key := name
	if md == modeForce {
		// A forced refresh must not be satisfied by a regular one that
		// started before it and may return the old token.
		key = "force:" + name
	}
	ch := m.flights.DoChan(key, func() (r any, err error) {
		// A panic here would reach every caller sharing the flight.
		defer func() {
			if p := recover(); p != nil {
				m.logger.Error("internal error: a refresh panicked", "name", name, "panic", fmt.Sprint(p))
				r, err = nil, errNoResult
			}
		}()
		gctx, cancel := m.detached(grantTimeout)
		defer cancel()
		res, err := m.refreshLocked(gctx, gctx, s, name, md)
		if res == nil && err == nil {
			return nil, errNoResult
		}
		return res, err
	})
	// The flight goes on without a caller who gave up (it may be storing
	// a rotated refresh token); the caller does not wait for it.
	var fr singleflight.Result
	select {
	case fr = <-ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if fr.Err != nil {
		return nil, fr.Err
	}
	r, _ := fr.Val.(*Result)
	if r == nil {
		return nil, errNoResult
	}
	// Callers share the flight's result; each gets its own copy.
	out := *r
	return &out, nil
}

// refreshLocked decides under name's lock whether to call the vendor and
// does. ctx bounds the whole refresh, storage writes included; start
// bounds only what may begin: waiting for the lock and sending a request.
// In modeProactive it returns (nil, nil) when nothing was due any more;
// every other mode returns a result or an error.
func (m *Manager) refreshLocked(ctx, start context.Context, s logical.Storage, name string, md mode) (*Result, error) {
	l, unlock, err := m.lockedEntry(ctx, start, s, lockOp(md), name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	e, settings := l.e, l.settings
	now := m.now()
	switch md {
	case modeRead:
		if ttl, ok := model.Lease(e.Token, settings, now); ok {
			return &Result{Token: *e.Token, TTL: ttl, Cached: true, Renewable: true}, nil
		}
		if err := m.blocked(name, e, settings, now); err != nil {
			return m.serveStale(e, settings, err)
		}
	case modeForce:
		if err := needsReauth(name, e, settings); err != nil {
			return nil, err
		}
	case modeProactive:
		used := m.used(name, e)
		if !proactiveDue(name, e, settings, used, now) {
			// Someone refreshed it, or it changed, meanwhile.
			m.sched.set(name, proactiveAt(name, e, settings, used))
			return nil, nil
		}
		if err := m.blocked(name, e, settings, now); err != nil {
			var be *BackoffError
			if errors.As(err, &be) {
				m.sched.set(name, be.RetryAt)
			}
			return nil, nil
		}
		// Prove this node can still write before the vendor rotates a
		// refresh token that only a write can keep.
		if err := m.probeWrite(ctx, s); err != nil {
			return nil, err
		}
	}
	return m.grant(ctx, start, s, name, l, md)
}

// probeWrite proves the node can still write before a background vendor
// call (see store.Probe).
func (m *Manager) probeWrite(ctx context.Context, s logical.Storage) error {
	return store.Of(s).Probe(ctx, m.now())
}

func lockOp(md mode) string {
	switch md {
	case modeForce:
		return "refresh"
	case modeProactive:
		return "proactive"
	}
	return "read"
}

// storeTimeout bounds the storage writes that follow a vendor's answer.
// They run detached from the request and from the backend's lifetime: the
// answer may hold a refresh token that exists nowhere else, and a reload
// or seal that closes the backend meanwhile must not cancel its write.
const storeTimeout = 15 * time.Second

// grant asks the vendor for a new token for e and stores it; the caller
// holds name's lock. From the vendor call to the storage write it counts
// as work in flight, which Close waits for.
func (m *Manager) grant(ctx, start context.Context, s logical.Storage, name string, l *locked, md mode) (*Result, error) {
	if !m.inflight.start() {
		return nil, ErrClosed
	}
	defer m.inflight.done()
	m.refreshing.Store(name, struct{}{})
	defer m.refreshing.Delete(name)
	e, settings := l.e, l.settings
	log := m.logger.With("name", name, "vendor", settings.Preset.Name)
	cnt := m.countersOf(name)
	call, err := m.callFor(ctx, s, name, &l.eff, settings)
	if err != nil {
		return nil, err
	}
	a := m.attempt(ctx, start, name, l, md, call, log)
	tok, err, sentAt, usedPrevious := a.tok, a.err, a.sentAt, a.usedPrevious
	if err != nil && ctx.Err() != nil && !isLostAnswer(err) {
		return nil, err // cancelled before anything reached the vendor
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err != nil {
		if kept, herr := m.keepIssuedRefreshToken(wctx, s, name, e, settings, err, log); herr != nil {
			return nil, herr
		} else if kept != nil {
			e = kept
		}
		m.onGrantFailed(name, l, md)
		return m.failed(wctx, s, name, e, settings, err, log)
	}
	log.Debug("token request succeeded", "grant_type", settings.GrantType, "duration", m.now().Sub(sentAt).String())
	cnt.grants.Add(1)
	m.resetHealth(name)
	m.clearProblem(wctx, s, name)

	next := e.Clone()
	rotated := next.ApplyToken(tok, settings, sentAt)
	keepResponseFields(next.Token, tok, &l.eff)
	m.onGranted(wctx, s, name, l, next, md, sentAt)
	// Persist before handing out: if the vendor rotated the refresh token,
	// the old one is dead and this write is the only thing keeping the
	// credential alive.
	if rotated {
		if err := m.persist(wctx, s, name, next, log); err != nil {
			return nil, err
		}
		log.Info("stored rotated refresh token")
	} else if err := m.writeEntry(wctx, s, name, next); err != nil {
		log.Error("storing a new token failed", "error", err)
		return nil, err
	}
	res, err := m.handOut(name, next, settings)
	if res != nil && usedPrevious {
		res.UsedPreviousSecret, res.PreviousUntil = true, l.app.PreviousUntil
	}
	return res, err
}

// attempted is what a grant's calls to the vendor got.
type attempted struct {
	tok          *tokenclient.Token
	err          error
	sentAt       time.Time // when the request that answered was sent
	usedPrevious bool      // the app's previous client secret worked
}

// attempt sends req, and once more in the two cases where a second try at
// once can save the day: the vendor refused the app's client secret while
// its previous one is in its overlap, or the answer to a refresh of a
// rotating credential was lost.
func (m *Manager) attempt(ctx, start context.Context, name string, l *locked, md mode, call outbound.Call, log hclog.Logger) attempted {
	a := attempted{sentAt: m.now()}
	a.tok, a.err = m.callVendor(ctx, start, name, call)
	if prev, bound := l.app.PreviousSecret(m.now()); prev != "" && isInvalidClient(a.err) {
		// The app's secret changed in Vault before at the vendor (or the
		// other way round): the one secret the vendor refused, the
		// other may still work during the overlap, where it was written
		// for.
		log.Warn("the vendor refused the app's client secret; trying its previous one once")
		alt := call.With(tokenclient.ClientSecretRef, bound)
		alt.Req.ClientSecret = prev
		if tok, err := m.callVendor(ctx, start, name, alt); err == nil {
			a.tok, a.err, a.usedPrevious = tok, nil, true
		}
	}
	// An operator's forced refresh makes exactly one request.
	if a.err == nil || md == modeForce || !l.settings.RetriesLostAnswer(l.e) || !isLostAnswer(a.err) {
		return a
	}
	// The vendor may have rotated the refresh token in the answer we lost.
	// Without a grace period the old one is dead already (a retry gets
	// invalid_grant, the same as waiting); with rotation leeway it still
	// works for a short while, so only a prompt retry can save the chain.
	// It continues a call already made, so a tick's start window does not
	// hold it back.
	log.Warn("a refresh was sent but no answer came back; retrying once at once, while the vendor may still accept the refresh token", "error", a.err.Error())
	sentAt := m.now()
	if tok, err := m.callVendor(ctx, ctx, name, call); !errors.Is(err, errNotStarted) {
		a.tok, a.err, a.sentAt = tok, err, sentAt
	}
	return a
}

// isInvalidClient reports whether the vendor refused the client's
// authentication.
func isInvalidClient(err error) bool {
	var ve *tokenclient.Error
	return errors.As(err, &ve) && (ve.Code == "invalid_client" || ve.Code == "" && ve.StatusCode == http.StatusUnauthorized)
}

// callVendor sends a grant through the gate unless start or ctx is done,
// so nothing reaches a vendor from a backend that was unmounted or lost
// leadership, or from a tick whose time is up. The request runs under ctx.
// The caller counts as work in flight.
func (m *Manager) callVendor(ctx, start context.Context, name string, call outbound.Call) (*tokenclient.Token, error) {
	if err := start.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", errNotStarted, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", errNotStarted, err)
	}
	if h := m.hooks.BeforeVendorCall; h != nil {
		h(name)
	}
	return m.gate.Token(ctx, call)
}

// keepIssuedRefreshToken stores a refresh token that came in an answer the
// plugin could not otherwise use (a malformed expires_in, say): the vendor
// may have rotated, and then it is the only live one. It returns the entry
// now stored, nil when there was nothing to keep, or the error of a write
// that failed (the token is then held in memory).
func (m *Manager) keepIssuedRefreshToken(ctx context.Context, s logical.Storage, name string, e *model.Entry, settings *model.Settings, err error, log hclog.Logger) (*model.Entry, error) {
	var re *tokenclient.ResponseError
	if !errors.As(err, &re) || re.IssuedRefreshToken == "" || !settings.Grant.HoldsRefreshToken || re.IssuedRefreshToken == e.Config.RefreshToken {
		return nil, nil
	}
	next := e.Clone()
	next.Config.RefreshToken = re.IssuedRefreshToken
	next.Status.RotationSeen = true
	next.Token = nil // the answer's access token was not usable
	if err := m.persist(ctx, s, name, next, log); err != nil {
		return nil, err
	}
	log.Warn("stored the rotated refresh token from an answer whose access token could not be used", "error", re.Reason)
	return next, nil
}

func isLostAnswer(err error) bool {
	var te *tokenclient.TransportError
	return errors.As(err, &te) && te.Sent
}

// failed records a failed grant in the credential's health and status and
// decides what the caller gets; the caller holds name's lock.
func (m *Manager) failed(ctx context.Context, s logical.Storage, name string, e *model.Entry, settings *model.Settings, err error, log hclog.Logger) (*Result, error) {
	if errors.Is(err, ErrClosed) || errors.Is(err, errNotStarted) || outbound.Refused(err) {
		// Nothing was asked of the vendor: nothing to record.
		return nil, err
	}
	gerr := &GrantError{Name: name, App: e.Config.App, Vendor: settings.Preset.DisplayName, Preset: settings.Preset, Grant: settings.GrantType, AuthStyle: settings.AuthStyle, Err: err}
	m.countersOf(name).fail(gerr.VendorCode())
	retryAt := m.noteFailure(name, gerr, m.now())
	log.Warn("token request failed", "grant_type", settings.GrantType, "error", gerr.Err.Error(), "retry_after", retryAt.Sub(m.now()).Round(time.Second).String())
	if werr := m.recordProblem(ctx, s, name, gerr, m.now()); werr != nil {
		log.Warn("recording the failure in the credential's status failed", "error", werr)
	}
	next := e.Clone()
	if settings.Grant.RefusalMeans == model.RefusalReauth && gerr.VendorCode() == "invalid_grant" {
		next.Status.NeedsReauthorization = true
		next.Status.ReauthReason = gerr.Err.Error()
		if e.Status.RotationSeen {
			// A rotating vendor that refuses a refresh token has most
			// likely detected its reuse and revoked the whole chain, the
			// access token we hold included: it is no longer handed out.
			next.Token = nil
		}
		log.Error("the vendor refused the refresh token; the credential needs reauthorization and the plugin stops calling the vendor for it")
	}
	// A lost answer is remembered in storage, so the guard holds across a
	// restart or a failover; any answer clears it.
	next.Status.OutcomeUnknownAt = time.Time{}
	if gerr.lostAnswer() && settings.Grant.HoldsRefreshToken && e.Status.RotationSeen {
		next.Status.OutcomeUnknownAt = m.now()
		log.Error("a refresh was sent but no answer came back; the vendor may have rotated the refresh token, so it is not retried automatically again")
	}
	m.onRefused(ctx, s, name, e, next, gerr)
	// The entry (with the secrets) is rewritten only when what the plugin
	// may do changed; the error itself went to status/<name>.
	if next.Status != e.Status || next.Token != e.Token {
		if werr := m.writeEntry(ctx, s, name, next); werr != nil {
			log.Warn("recording the failure in the credential's status failed", "error", werr)
		}
	}
	if next.Status.NeedsReauthorization {
		return m.serveStale(next, settings, reauthError(name, settings, gerr.Err.Error()))
	}
	return m.serveStale(e, settings, gerr)
}

func (m *Manager) handOut(name string, e *model.Entry, s *model.Settings) (*Result, error) {
	ttl, ok := model.FreshLease(e.Token, s, m.now())
	if !ok {
		return nil, &ShortTokenError{Name: name, Lifetime: e.Token.ExpiresAt.Sub(e.Token.ObtainedAt)}
	}
	return &Result{Token: *e.Token, TTL: ttl, Renewable: true}, nil
}

// serveStale hands out the previous token after a failed or refused refresh
// while it is still valid for a little longer, so a vendor hiccup does not
// become an outage for readers; the caller warns with the cause.
func (m *Manager) serveStale(e *model.Entry, s *model.Settings, cause error) (*Result, error) {
	if s == nil || s.Static() {
		return nil, cause
	}
	ttl, ok := model.StaleLease(e.Token, s, m.now())
	if !ok {
		return nil, cause
	}
	return &Result{Token: *e.Token, TTL: ttl, Cached: true, Stale: cause}, nil
}

func staticExpired(name string, e *model.Entry, s *model.Settings) error {
	if e.Token == nil {
		return &StaticExpiredError{Name: name, Hint: s.Preset.StaticHint}
	}
	return &StaticExpiredError{Name: name, ExpiredAt: e.Token.ExpiresAt, Hint: s.Preset.StaticHint}
}

// notFound is the error for name, which does not exist: for a connection
// of an app, whether the app does.
func (m *Manager) notFound(ctx context.Context, s logical.Storage, name string) error {
	app := model.AppOf(name)
	if app == "" {
		return ErrNotFound
	}
	a, err := m.App(ctx, s, app)
	if err != nil {
		return err
	}
	return &NotFoundError{Name: name, App: app, AppMissing: a == nil}
}
