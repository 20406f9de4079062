package backend

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
)

// GrantAuthorizationCode is the grant of a code exchange.
const GrantAuthorizationCode = "authorization_code"

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
}

// Authorization URL and the state the exchange must present.
type AuthorizeResult struct {
	URL       string
	State     string
	ExpiresAt time.Time
}

// Authorize remembers a new flow for name and returns the vendor's
// authorization URL to send the user to.
func (m *Manager) Authorize(ctx context.Context, s logical.Storage, name string, r AuthorizeRequest) (*AuthorizeResult, error) {
	if err := validateRedirect(r.RedirectURI); err != nil {
		return nil, &InputError{Msg: err.Error()}
	}
	state := r.State
	if state == "" {
		state = randomString(24)
	} else if len(state) < 16 || len(state) > 512 {
		return nil, &InputError{Msg: "state must be 16 to 512 characters (leave it out to have one generated)"}
	}
	var res *AuthorizeResult
	_, err := m.Update(ctx, s, name, func(e *Entry) (*Entry, error) {
		if e == nil {
			return nil, ErrNotFound
		}
		settings, err := e.Config.Resolve()
		if err != nil {
			return nil, &ConfigError{Name: name, Err: err}
		}
		if settings.AuthorizeURL == "" {
			return nil, &InputError{Msg: fmt.Sprintf("provider %s has no authorization flow; set authorize_url in the config of credential %q to use one", settings.Preset.Name, name)}
		}
		if settings.Static() {
			return nil, &InputError{Msg: fmt.Sprintf("credential %q has grant_type=static; set grant_type=refresh_token to connect an account", name)}
		}
		if err := canConnect(name, settings); err != nil {
			return nil, err
		}
		now := m.now()
		for k, a := range e.Authorizations {
			if now.After(a.ExpiresAt) {
				delete(e.Authorizations, k)
			}
		}
		if _, dup := e.Authorizations[state]; dup {
			return nil, &InputError{Msg: "that state is already in use; leave state out to have one generated"}
		}
		if len(e.Authorizations) >= maxOpenAuthorizations {
			return nil, &InputError{Msg: fmt.Sprintf("credential %q has %d unfinished authorizations; finish one or wait %s for them to expire", name, len(e.Authorizations), StateTTL)}
		}
		scopes := r.Scopes
		if len(scopes) == 0 {
			scopes = settings.Preset.AuthorizeScopes
		}
		a := &Authorization{RedirectURI: r.RedirectURI, Scopes: scopes, ExpiresAt: now.Add(StateTTL)}
		u, err := url.Parse(settings.AuthorizeURL)
		if err != nil {
			return nil, &ConfigError{Name: name, Err: err}
		}
		q := u.Query()
		q.Set("client_id", e.Config.ClientID)
		q.Set("redirect_uri", r.RedirectURI)
		q.Set("response_type", "code")
		q.Set("state", state)
		if len(scopes) > 0 {
			q.Set("scope", strings.Join(scopes, " "))
		}
		if e.Config.UsePKCE {
			a.CodeVerifier = randomString(48)
			sum := sha256.Sum256([]byte(a.CodeVerifier))
			q.Set("code_challenge", base64.RawURLEncoding.EncodeToString(sum[:]))
			q.Set("code_challenge_method", "S256")
		}
		u.RawQuery = q.Encode()
		if e.Authorizations == nil {
			e.Authorizations = map[string]*Authorization{}
		}
		e.Authorizations[state] = a
		res = &AuthorizeResult{URL: u.String(), State: state, ExpiresAt: a.ExpiresAt}
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Exchange trades an authorization code for tokens and stores them. A wrong
// or expired state, or a code the vendor refuses, changes nothing.
func (m *Manager) Exchange(ctx context.Context, s logical.Storage, name, code, state string, writable bool) (*Result, error) {
	if code == "" || state == "" {
		return nil, &InputError{Msg: "code and state are both required, as the vendor sent them to your redirect_uri"}
	}
	if !writable {
		return nil, logical.ErrReadOnly
	}
	// Penbox's docs ask partners to URL-decode the code; a code copied from
	// the redirect's address bar arrives encoded. A raw code never holds a
	// '%', and PathUnescape leaves '+' alone.
	if strings.Contains(code, "%") {
		if dec, err := url.PathUnescape(code); err == nil {
			code = dec
		}
	}
	ctx, cancel := m.detached(grantTimeout)
	defer cancel()
	e, settings, unlock, err := m.lockedEntry(ctx, ctx, s, "exchange", name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	a, ok := e.Authorizations[state]
	if !ok {
		return nil, &StateError{Name: name}
	}
	if err := canConnect(name, settings); err != nil {
		return nil, err
	}
	if m.now().After(a.ExpiresAt) {
		return nil, &StateError{Name: name, ExpiredAt: a.ExpiresAt}
	}

	req := e.Config.Request(settings)
	req.GrantType = GrantAuthorizationCode
	req.Scopes = nil
	req.Params = map[string]string{"code": code, "redirect_uri": a.RedirectURI}
	if a.CodeVerifier != "" {
		req.Params["code_verifier"] = a.CodeVerifier
	}
	log := m.logger.With("name", name, "vendor", settings.Preset.Name)
	if !m.inflight.start() {
		return nil, ErrClosed
	}
	defer m.inflight.done()
	sentAt := m.now()
	tok, err := m.callVendor(ctx, ctx, name, req)
	if err == nil && tok.RefreshToken == "" {
		err = ErrNoRefreshToken
	}
	if err != nil {
		gerr := &GrantError{Name: name, Vendor: settings.Preset.DisplayName, Preset: settings.Preset, Grant: GrantAuthorizationCode, Err: err}
		m.countersOf(name).fail(gerr.VendorCode())
		log.Warn("authorization code exchange failed", "error", gerr.Err.Error())
		return nil, gerr
	}
	m.countersOf(name).grants.Add(1)
	next := e.Clone()
	delete(next.Authorizations, state)
	settings.GrantType = providers.GrantRefreshToken
	next.Config.GrantType = ""
	if !settings.Preset.SupportsGrant(providers.GrantRefreshToken) || settings.Preset.DefaultGrantType() != providers.GrantRefreshToken {
		next.Config.GrantType = providers.GrantRefreshToken
	}
	next.Config.RefreshToken = tok.RefreshToken
	next.applyToken(tok, settings, sentAt)
	next.Status = Status{LastRefreshedAt: next.Status.LastRefreshedAt}
	// The vendor issued a refresh token that exists nowhere else: a failed
	// write holds it like a rotated one instead of dropping it.
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer wcancel()
	if err := m.persist(wctx, s, name, next, log); err != nil {
		return nil, err
	}
	m.resetHealth(name)
	log.Info("connected an account with an authorization code")
	return m.handOut(name, next, settings)
}

// canConnect refuses an authorization flow for a vendor whose preset takes
// no refresh tokens: the exchange would store a credential that cannot
// resolve.
func canConnect(name string, s *Settings) error {
	if !s.Preset.SupportsGrant(providers.GrantRefreshToken) {
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
