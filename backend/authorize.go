package backend

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
)

// ErrNoRefreshToken is a code exchange answered without a refresh token.
var ErrNoRefreshToken = errors.New("the vendor answered the code exchange without a refresh token")

const (
	// StateTTL is how long an authorization started with authorize/<name>
	// may be exchanged; vendors' codes live about as long.
	StateTTL = 10 * time.Minute
	// maxOpenAuthorizations bounds the flows kept per credential, so a
	// caller cannot grow the entry without limit.
	maxOpenAuthorizations = 32
)

// AuthorizeRequest starts an authorization-code flow.
type AuthorizeRequest struct {
	RedirectURI string
	Scopes      []string
	State       string
	// App names the app of a connection that does not exist yet; a name
	// "<app>/<account>" implies it.
	App string
	// Metadata is merged into the connection's at the exchange.
	Metadata map[string]string
}

// Authorization URL and the state the exchange must present.
type AuthorizeResult struct {
	URL       string
	State     string
	ExpiresAt time.Time
}

// Authorize remembers a new flow for name and returns the vendor's
// authorization URL to send the user to. A connection of an app needs no
// config first: the app's client and redirect allow-list are used, and
// the exchange creates the connection. Nothing of the credential's entry
// changes: the flow is stored on its own key.
func (m *Manager) Authorize(ctx context.Context, s logical.Storage, name string, r AuthorizeRequest) (*AuthorizeResult, error) {
	state := r.State
	if state == "" {
		state = randomString(24)
	} else if len(state) < 16 || len(state) > 512 {
		return nil, &InputError{Msg: "state must be 16 to 512 characters (leave it out to have one generated)"}
	}
	unlock, err := m.lockName(ctx, "authorize", name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	e, err := m.current(ctx, s, name)
	if err != nil {
		return nil, err
	}
	flow, err := m.flowFor(ctx, s, name, e, r.App)
	if err != nil {
		return nil, err
	}
	unreserve, err := m.admit(ctx, s, name, state, e, flow, r)
	if err != nil {
		return nil, err
	}
	settings := flow.settings
	scopes := r.Scopes
	if len(scopes) == 0 {
		scopes = settings.Preset.AuthorizeScopes
	}
	now := m.now()
	// The code verifier, and the code the vendor sends back for it, may
	// go only to the token endpoint of now: a write that moves it later
	// cancels this authorization, and the exchange sends nothing
	// elsewhere.
	bound := model.AccountDestination(settings)
	a := &model.Authorization{RedirectURI: r.RedirectURI, Scopes: scopes, ExpiresAt: now.Add(StateTTL), App: flow.appName, Metadata: r.Metadata, Bound: &bound}
	u, err := url.Parse(settings.AuthorizeURL)
	if err != nil {
		unreserve()
		return nil, &ConfigError{Name: name, Err: err}
	}
	q := u.Query()
	q.Set("client_id", flow.eff.ClientID)
	q.Set("redirect_uri", r.RedirectURI)
	q.Set("response_type", "code")
	q.Set("state", state)
	if len(scopes) > 0 {
		q.Set("scope", strings.Join(scopes, " "))
	}
	if settings.UsePKCE {
		a.CodeVerifier = randomString(48)
		sum := sha256.Sum256([]byte(a.CodeVerifier))
		q.Set("code_challenge", base64.RawURLEncoding.EncodeToString(sum[:]))
		q.Set("code_challenge_method", "S256")
	}
	u.RawQuery = q.Encode()
	if err := store.Of(s).PutAuthorization(ctx, name, state, a); err != nil {
		unreserve()
		return nil, err
	}
	return &AuthorizeResult{URL: u.String(), State: state, ExpiresAt: a.ExpiresAt}, nil
}

// admit checks a new authorization of name for state (e is name's entry,
// nil for a new connection) and takes its place among its app's open
// ones; the returned func gives the place back, for one that is not
// stored after all.
func (m *Manager) admit(ctx context.Context, s logical.Storage, name, state string, e *model.Entry, flow *flow, r AuthorizeRequest) (func(), error) {
	if flow.app != nil {
		if r.RedirectURI == "" || !slices.Contains(flow.app.AllowedRedirectURIs, r.RedirectURI) {
			return nil, &InputError{Msg: redirectNotAllowed(r.RedirectURI, flow)}
		}
	} else if err := validateRedirect(r.RedirectURI); err != nil {
		return nil, &InputError{Msg: err.Error()}
	}
	if err := checkFlowMetadata(e, r.Metadata); err != nil {
		return nil, err
	}
	if n, err := store.Of(s).OpenAuthorizations(ctx, name, e, m.now(), true); err != nil {
		return nil, err
	} else if n >= maxOpenAuthorizations {
		return nil, &InputError{Msg: fmt.Sprintf("credential %q has %d unfinished authorizations; finish one or wait %s for them to expire", name, n, StateTTL)}
	}
	if a, err := store.Of(s).Authorization(ctx, name, state, e); err != nil {
		return nil, err
	} else if a != nil {
		return nil, &InputError{Msg: "that state is already in use; leave state out to have one generated"}
	}
	limit := model.DefaultMaxOpenAuthorizations
	if flow.app != nil {
		limit = flow.app.OpenAuthorizationLimit()
	}
	return m.reserveAuthz(ctx, s, name, store.AuthorizationID(state), m.now().Add(StateTTL), limit)
}

// redirectNotAllowed says why an app's connection cannot be authorized
// for uri, and what would do.
func redirectNotAllowed(uri string, f *flow) string {
	allowed := "one of: " + strings.Join(f.app.AllowedRedirectURIs, ", ")
	if len(f.app.AllowedRedirectURIs) == 0 {
		allowed = fmt.Sprintf("app %q allows none yet: add yours with vault write %sapps/%s allowed_redirect_uris=<your callback>", f.appName, MountPlaceholder, f.appName)
	}
	if uri == "" {
		return "redirect_uri is required: the address the vendor sends the user back to with the code, " + allowed
	}
	if len(f.app.AllowedRedirectURIs) == 0 {
		return fmt.Sprintf("redirect_uri %q is not allowed: %s", uri, allowed)
	}
	return fmt.Sprintf("redirect_uri %q is not in the allowed_redirect_uris of app %q; add it there (exact match) or use %s", uri, f.appName, allowed)
}

// flow is what an authorization of a credential acts with.
type flow struct {
	settings *model.Settings
	eff      model.Config
	app      *model.App // nil for a self-contained credential
	appName  string
}

// flowFor resolves the credential an authorization is for: an existing
// one, or a new connection of an app.
func (m *Manager) flowFor(ctx context.Context, s logical.Storage, name string, e *model.Entry, appName string) (*flow, error) {
	f, err := m.connectionFlow(ctx, s, name, e, appName)
	if err != nil {
		return nil, err
	}
	settings := f.settings
	if settings.AuthorizeURL == "" {
		// A connection's authorize_url is its app's; a new one changes
		// where the client sends users, which needs its secrets again.
		where, secrets := "config/"+name, f.eff.SecretsSet()
		if f.app != nil {
			where, secrets = "apps/"+f.appName, f.app.Config.SecretsSet()
		}
		again := ""
		for _, s := range secrets {
			again += " " + s + "=..."
		}
		return nil, &InputError{Msg: fmt.Sprintf("%q has no authorize_url (provider %s has no authorization endpoint of its own); set it with vault write %s%s authorize_url=<the vendor's authorization endpoint>%s",
			name, settings.Preset.Name, MountPlaceholder, where, again)}
	}
	if settings.Static() {
		return nil, &InputError{Msg: fmt.Sprintf("credential %q has grant_type=static; set grant_type=refresh_token to connect an account", name)}
	}
	if err := canConnect(name, settings); err != nil {
		return nil, err
	}
	return f, nil
}

// connectionFlow resolves what connecting name's account uses: its entry
// e, or for a connection of an app that has none yet (named <app>/<account>,
// or with appName), the app's settings. Both the code and the device flow
// start here.
func (m *Manager) connectionFlow(ctx context.Context, s logical.Storage, name string, e *model.Entry, appName string) (*flow, error) {
	if implied := model.AppOf(name); implied != "" {
		if appName != "" && appName != implied {
			return nil, &InputError{Msg: fmt.Sprintf("%q is a connection of app %q by its name; app=%q does not match", name, implied, appName)}
		}
		appName = implied
	}
	if e != nil && appName != "" && e.Config.App != appName {
		return nil, &InputError{Msg: fmt.Sprintf("credential %q is not a connection of app %q; leave app out, or connect it to the app first with vault write %sconfig/%s app=%s", name, appName, MountPlaceholder, name, appName)}
	}
	if e == nil {
		if appName == "" {
			return nil, ErrNotFound
		}
		e = &model.Entry{Config: model.Config{App: appName}}
	}
	r, err := m.resolve(ctx, s, name, e)
	if err != nil {
		return nil, err
	}
	if r.err != nil && r.app != nil && r.eff.RefreshToken == "" {
		// The flow brings the refresh token: only what else is missing
		// counts (an app's authorize_url above all).
		if st, err := r.eff.ResolveAsConnection(); err == nil {
			r.settings, r.err = st, nil
		}
	}
	if r.err != nil {
		var ae *AppError
		if errors.As(r.err, &ae) {
			return nil, &InputError{Msg: fmt.Sprintf("there is no app %q; create it with vault write %sapps/%s first", ae.App, MountPlaceholder, ae.App)}
		}
		return nil, &ConfigError{Name: name, Err: r.err}
	}
	return &flow{settings: r.settings, eff: r.eff, app: r.app, appName: e.Config.App}, nil
}

// noAuthorization is the error for an exchange whose state opens no
// authorization (err): starting again needs the credential, or the
// connection's app, so a missing one is the error.
func (m *Manager) noAuthorization(ctx context.Context, s logical.Storage, name string, e *model.Entry, err error) error {
	if e != nil {
		return err
	}
	var nf *NotFoundError
	if miss := m.notFound(ctx, s, name); !errors.As(miss, &nf) || nf.AppMissing {
		return miss
	}
	return err
}

// Exchange trades an authorization code for tokens and stores them; for a
// connection of an app that did not exist yet, it creates it, and a
// reconnection keeps the connection's name and metadata. A wrong or
// expired state, or a code the vendor refuses, changes nothing.
func (m *Manager) Exchange(ctx context.Context, s logical.Storage, name, code, state string, writable bool) (*Result, error) {
	if code == "" || state == "" {
		return nil, &InputError{Msg: "code and state are both required, as the vendor sent them to your redirect_uri"}
	}
	if !writable {
		return nil, logical.ErrReadOnly
	}
	gctx, cancel := m.detached(grantTimeout)
	defer cancel()
	unlock, err := m.lockName(gctx, "exchange", name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	e, err := m.current(gctx, s, name)
	if err != nil {
		return nil, err
	}
	a, err := m.openAuthorization(gctx, s, name, state, e)
	if err != nil {
		return nil, m.noAuthorization(gctx, s, name, e, err)
	}
	fl, err := m.flowFor(gctx, s, name, e, a.App)
	if err != nil {
		return nil, err
	}
	if a.Bound == nil {
		return nil, &InputError{Msg: fmt.Sprintf("the authorization for this state was started by an earlier release of the plugin, which did not record where its code may be sent; start again with vault write %sauthorize/%s", MountPlaceholder, name)}
	}
	call, err := m.callFor(gctx, s, name, &fl.eff, fl.settings)
	if err != nil {
		return nil, err
	}
	call.Req.GrantType = model.MustGrant(providers.GrantAuthorizationCode).Wire
	call.Req.Scopes = nil
	call.Req.Params = map[string]string{"code": decodeCode(code), "redirect_uri": a.RedirectURI}
	for _, p := range []string{"code", "redirect_uri", "code_verifier"} {
		call = call.With(tokenclient.ParamRef(p), *a.Bound)
	}
	if a.CodeVerifier != "" {
		call.Req.Params["code_verifier"] = a.CodeVerifier
	}
	log := m.logger.With("name", name, "vendor", fl.settings.Preset.Name)
	if !m.inflight.start() {
		return nil, ErrClosed
	}
	defer m.inflight.done()
	sentAt := m.now()
	tok, err := m.callVendor(gctx, gctx, name, call)
	if err == nil && tok.RefreshToken == "" {
		err = ErrNoRefreshToken
	}
	if err != nil {
		gerr := &GrantError{Name: name, App: fl.eff.App, Vendor: fl.settings.Preset.DisplayName, Preset: fl.settings.Preset, Grant: providers.GrantAuthorizationCode, AuthStyle: fl.settings.AuthStyle, Err: err}
		m.countersOf(name).fail(gerr.VendorCode())
		log.Warn("authorization code exchange failed", "error", gerr.Err.Error())
		return nil, gerr
	}
	m.countersOf(name).grants.Add(1)
	next, settings := connectedEntry(e, fl, tok, sentAt, a.Metadata, *a.Bound)
	// The vendor issued a refresh token that exists nowhere else: a failed
	// write holds it like a rotated one instead of dropping it.
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(gctx), storeTimeout)
	defer wcancel()
	m.onConnected(wctx, s, name, next, "authorization_code")
	if err := m.persist(wctx, s, name, next, log); err != nil {
		return nil, err
	}
	if err := store.Of(s).DeleteAuthorization(wctx, name, state, nil); err != nil {
		log.Warn("deleting a used authorization failed; it expires unused", "error", err)
	}
	m.forgetAuthz(name, store.AuthorizationID(state))
	m.resetHealth(name)
	m.clearProblem(wctx, s, name)
	log.Info("connected an account with an authorization code")
	return m.handOut(name, next, settings)
}

// decodeCode URL-decodes a code that arrives encoded. Penbox's docs ask
// partners to URL-decode the code; a code copied from the redirect's
// address bar arrives encoded. A raw code never holds a '%', and
// PathUnescape leaves '+' alone.
func decodeCode(code string) string {
	if strings.Contains(code, "%") {
		if dec, err := url.PathUnescape(code); err == nil {
			return dec
		}
	}
	return code
}

// openAuthorization is name's unexpired authorization for state, or a
// StateError.
func (m *Manager) openAuthorization(ctx context.Context, s logical.Storage, name, state string, e *model.Entry) (*model.Authorization, error) {
	a, err := store.Of(s).Authorization(ctx, name, state, e)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return nil, &StateError{Name: name}
	}
	if m.now().After(a.ExpiresAt) {
		if store.Of(s).DeleteAuthorization(ctx, name, state, e) == nil {
			m.forgetAuthz(name, store.AuthorizationID(state))
		}
		return nil, &StateError{Name: name, ExpiredAt: a.ExpiresAt}
	}
	return a, nil
}

// connectedEntry is e (or a new connection of fl's app) after an account
// was connected: the vendor's refresh token bound where the flow that got
// it was bound when it started (bound), whatever the credential or its app
// says by now, the access token that came with it, a clean status, the
// flow's metadata merged in. It returns the settings the token is handed
// out with (a refresh-token grant from now on).
func connectedEntry(e *model.Entry, fl *flow, tok *tokenclient.Token, sentAt time.Time, metadata map[string]string, bound model.Destination) (*model.Entry, *model.Settings) {
	if e == nil {
		e = &model.Entry{Config: model.Config{App: fl.appName}}
	}
	st := *fl.settings // a copy: it may be shared by the app's connections
	settings := &st
	settings.Grant = model.ConnectedGrant()
	settings.GrantType = settings.Grant.Name
	next := e.Clone()
	if next.Config.App == "" {
		next.Config.GrantType = ""
		if settings.Preset.DefaultGrantType() != settings.Grant.Name {
			next.Config.GrantType = settings.Grant.Name
		}
	}
	// The flow's metadata fitted beside the connection's when the flow
	// started (checkFlowMetadata); if a write made it not fit since, the
	// connection keeps its own: the refresh token is stored either way.
	if merged := mergedMetadata(next.Config.Metadata, metadata); model.CheckMetadata(merged) == nil {
		next.Config.Metadata = merged
	}
	next.Config.RefreshToken = tok.RefreshToken
	if next.Config.Bound == nil {
		next.Config.Bound = model.Bindings{}
	}
	next.Config.Bound["refresh_token"] = bound.Clone()
	next.Status = model.Status{}
	next.ApplyToken(tok, settings, sentAt)
	keepResponseFields(next.Token, tok, &fl.eff)
	return next, settings
}

// mergedMetadata is a connection's metadata with a flow's merged in; nil
// for none.
func mergedMetadata(conn, flow map[string]string) map[string]string {
	if len(flow) == 0 {
		return conn
	}
	out := maps.Clone(conn)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, flow)
	return out
}

// checkFlowMetadata refuses a flow's metadata over its bounds, alone or
// merged into the connection's (e, nil for none) as the flow's end will
// merge it: each is stored, and a flow can be started by whoever can make
// a partner's backend call authorize/ or device/.
func checkFlowMetadata(e *model.Entry, metadata map[string]string) error {
	if err := model.CheckMetadata(metadata); err != nil {
		return &InputError{Msg: "metadata: " + err.Error()}
	}
	if e == nil {
		return nil
	}
	if err := model.CheckMetadata(mergedMetadata(e.Config.Metadata, metadata)); err != nil {
		return &InputError{Msg: "metadata: with the connection's own, " + err.Error()}
	}
	return nil
}

// canConnect refuses an authorization flow for a vendor whose preset takes
// no refresh tokens: the exchange would store a credential that cannot
// resolve.
func canConnect(name string, s *model.Settings) error {
	if !s.Preset.SupportsGrant(model.ConnectedGrant().Name) {
		return &InputError{Msg: fmt.Sprintf("provider %s does not take refresh tokens, so credential %q cannot connect an account; use provider=generic with authorize_url", s.Preset.Name, name)}
	}
	return nil
}

func validateRedirect(raw string) error {
	if raw == "" {
		return fmt.Errorf("redirect_uri is required: the address the vendor sends the user back to with the code")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("redirect_uri %q must be an absolute http(s) URL", raw)
	}
	if u.Fragment != "" {
		return fmt.Errorf("redirect_uri must not have a #fragment (RFC 6749 3.1.2)")
	}
	return nil
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
