package standin

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Client is an application registered with a vendor.
type Client struct {
	ID, Secret string
	// APIKey is the x-api-key value Bold Penguin's gateway requires of this
	// client. Other vendors ignore it.
	APIKey string
	// Scopes are the scopes the application may be granted (OfficeRnD
	// calls them the application's permissions). Nil allows any scope.
	Scopes []string
	// RedirectURIs are the redirect URIs registered for the application
	// (Penbox registers a partner's callbacks when the partnership is set
	// up). Penbox's /authorize refuses any other, compared as exact
	// strings (RFC 6749 section 3.1.2.3), with an error shown to the user
	// and no redirect. Nil accepts any absolute http(s) URI, for tests
	// that do not exercise registration; an empty list accepts none.
	RedirectURIs []string
}

// Behavior holds knobs that change how a vendor answers token requests. All
// of them may be changed while serving.
type Behavior struct {
	// Lifetime is the life of issued access tokens; 0 means the vendor's
	// documented default (officernd 3599s, boldpenguin 43200s, eshopbox
	// 86400s, penbox 3600s, generic 3600s). expires_in is its whole
	// seconds.
	Lifetime time.Duration
	// Rotate makes refresh_token grants return a new refresh token and
	// kill the presented one.
	Rotate bool
	// ReuseDetection makes presenting a rotated-away refresh token revoke
	// the whole chain it belongs to (every refresh and access token from
	// the same consent) and count in Stats.ReuseDetections.
	ReuseDetection bool
	// RotationGrace keeps a rotated-away refresh token usable for this
	// long after its rotation, as Okta's grace period and Auth0's reuse
	// interval do: presenting it within the grace rotates again from it
	// (a new access and refresh token, the chain intact) and counts in
	// Stats.GraceReuses; after it, the token is reuse as above.
	RotationGrace time.Duration
	// LoseNext makes the next N token requests be processed (a rotation
	// happens) and then answered by closing the connection without a
	// response: the answer is lost on the way back. Each decrements it;
	// they count in Stats.Lost.
	LoseNext int
	// LateAnswer is slept after a token request was processed (a rotation
	// happened) and before it is answered; a client that leaves meanwhile
	// loses the answer.
	LateAnswer time.Duration
	// Delay is slept before answering a token request. A client that goes
	// away meanwhile gets no answer; it counts as Failures["client_gone"].
	Delay time.Duration
	// FailNext makes the next N token requests fail with FailStatus (503
	// if 0), FailBody (a temporarily_unavailable error if empty) and
	// FailHeader. Each injected failure decrements it.
	FailNext   int
	FailStatus int
	FailBody   string
	FailHeader http.Header
	// RateLimit caps token requests per RateWindow (1s if 0); beyond it
	// the vendor answers 429 {"error":"rate_limited"} with Retry-After.
	// 0 turns rate limiting off. Only admitted requests fill the window.
	RateLimit  int
	RateWindow time.Duration
	// ExpiresInFormat (generic only): how expires_in is written: "int"
	// (default), "float" (3599.0), "string" ("3599"), "missing", or
	// "duration" ("3599s", which no client can read).
	ExpiresInFormat string
	// ResponseFormat (generic only): "json" (default) or "form"
	// (application/x-www-form-urlencoded, errors too).
	ResponseFormat string
}

// Stats counts token endpoint traffic.
type Stats struct {
	// Requests counts token endpoint requests, all outcomes.
	Requests int
	// Grants counts successful token responses.
	Grants int
	// ByGrantType counts successful responses per grant type.
	ByGrantType map[string]int
	// Failures counts failed requests by the error code returned
	// ("invalid_client"), or "http_<status>" when the body has none
	// (Bold Penguin's gateway 403, a 405), or "client_gone" when the
	// client left during Delay.
	Failures map[string]int
	// ReuseDetections counts rotated-away refresh tokens presented again
	// while ReuseDetection was on.
	ReuseDetections int
	// GraceReuses counts rotated-away refresh tokens accepted within
	// RotationGrace.
	GraceReuses int
	// Lost counts answers dropped by LoseNext.
	Lost int
}

// Recorded is one token request as the vendor received it.
type Recorded struct {
	Method string
	Path   string
	Query  url.Values
	// Header is as received, Authorization included: tests assert on it.
	Header http.Header
	// Form holds the body parameters whatever the body format; a repeated
	// parameter keeps its first value.
	Form     map[string]string
	BodyJSON bool
	At       time.Time
}

// maxRecorded is how many requests a vendor remembers.
const maxRecorded = 1000

// Vendor is one vendor played by a Server.
type Vendor struct {
	srv             *Server
	name            string
	tokenPath       string // within the vendor's prefix, e.g. "/oauth/token"
	defaultLifetime time.Duration
	handleToken     func(v *Vendor, req *tokenRequest) (*grantResult, *oauthError)
	routes          map[string]http.HandlerFunc // other paths within the prefix

	mu         sync.Mutex
	clients    map[string]*clientRecord
	behavior   Behavior
	expect     Expect
	acceptBody []string // body formats accepted where a vendor takes several
	stats      Stats
	recorded   []Recorded
	admitted   []time.Time // rate limit window
	refresh    map[string]*refreshRecord
	access     map[string]*accessRecord
	codes      map[string]*codeRecord
}

type clientRecord struct {
	Client
	uid string // Bold Penguin's per-client user id
	// secrets are the client secrets the vendor accepts: Secret, and
	// those added with AddClientSecret until removed. A record is never
	// changed once stored (changes store a copy), so a handler may use
	// one it looked up after the lock is released.
	secrets []string
}

// chain groups the tokens issued from one consent (an authorization code, or
// an app install for IssueRefreshToken), so they can be revoked together.
type chain struct {
	refresh []string
	access  []string
	revoked bool
}

type refreshRecord struct {
	clientID string
	chain    *chain
	scope    string
	rotated  bool // replaced by rotation: presenting it again is reuse
	// rotatedAt is when it was rotated, for RotationGrace.
	rotatedAt time.Time
	revoked   bool
}

type accessRecord struct {
	clientID string
	expiry   time.Time
	chain    *chain // nil for grants without a consent (client credentials)
	revoked  bool
}

type codeRecord struct {
	clientID, redirectURI, scope, challenge string
	expiry                                  time.Time
	used                                    bool
	chain                                   *chain // tokens issued from the code
}

func newVendor(s *Server, name, tokenPath string, lifetime time.Duration) *Vendor {
	v := &Vendor{
		srv:             s,
		name:            name,
		tokenPath:       tokenPath,
		defaultLifetime: lifetime,
		routes:          map[string]http.HandlerFunc{},
		clients:         map[string]*clientRecord{},
		refresh:         map[string]*refreshRecord{},
		access:          map[string]*accessRecord{},
		codes:           map[string]*codeRecord{},
	}
	v.stats = emptyStats()
	return v
}

func emptyStats() Stats {
	return Stats{ByGrantType: map[string]int{}, Failures: map[string]int{}}
}

// Name returns the vendor's name.
func (v *Vendor) Name() string { return v.name }

// TokenPath returns the token endpoint's path within the server, e.g.
// "/officernd/oauth/token". Bold Penguin clients must add
// ?grant_type=client_credentials themselves.
func (v *Vendor) TokenPath() string { return "/" + v.name + v.tokenPath }

// AddClient registers an application, replacing one with the same ID.
func (v *Vendor) AddClient(c Client) {
	if c.ID == "" {
		panic("standin: a client needs an ID")
	}
	// Copied, keeping nil (any) apart from empty (none).
	if c.Scopes != nil {
		c.Scopes = append(make([]string, 0, len(c.Scopes)), c.Scopes...)
	}
	if c.RedirectURIs != nil {
		c.RedirectURIs = append(make([]string, 0, len(c.RedirectURIs)), c.RedirectURIs...)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.clients[c.ID] = &clientRecord{Client: c, uid: newUUID(), secrets: []string{c.Secret}}
}

// AddClientSecret makes the vendor accept secret for the client as well as
// the ones it has, as a vendor's console does when a new client secret is
// generated: both work until the old one is removed with
// RemoveClientSecret. It panics on an unknown client or an empty secret.
func (v *Vendor) AddClientSecret(clientID, secret string) {
	if secret == "" {
		panic("standin: empty client secret")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.clients[clientID]
	if !ok {
		panic(fmt.Sprintf("standin: %s has no client %q", v.name, clientID))
	}
	next := *c
	next.secrets = append(append([]string(nil), c.secrets...), secret)
	v.clients[clientID] = &next
}

// RemoveClientSecret stops the vendor accepting secret for the client (the
// console's "delete secret"); requests with it then get invalid_client.
// It panics on an unknown client.
func (v *Vendor) RemoveClientSecret(clientID, secret string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.clients[clientID]
	if !ok {
		panic(fmt.Sprintf("standin: %s has no client %q", v.name, clientID))
	}
	next := *c
	next.secrets = nil
	for _, s := range c.secrets {
		if s != secret {
			next.secrets = append(next.secrets, s)
		}
	}
	if next.Secret == secret {
		next.Secret = ""
	}
	v.clients[clientID] = &next
}

// IssueRefreshToken returns a fresh valid refresh token for the client, as
// if the vendor had issued it outside the token endpoint (an Eshopbox app
// install, a Penbox consent). Each call starts a new chain. It panics on an
// unknown client.
func (v *Vendor) IssueRefreshToken(clientID string) string {
	tok := v.newToken("rt")
	v.AddRefreshToken(clientID, tok)
	return tok
}

// AddRefreshToken makes token a valid refresh token for the client, starting
// a new chain, so demos can use fixed, well-known values. It panics on an
// unknown client.
func (v *Vendor) AddRefreshToken(clientID, token string) {
	if token == "" {
		panic("standin: empty refresh token")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.clients[clientID]; !ok {
		panic(fmt.Sprintf("standin: %s has no client %q", v.name, clientID))
	}
	v.addRefreshLocked(clientID, token, "", &chain{})
}

// RevokeRefreshToken revokes one refresh token (not its chain). Unknown
// tokens are ignored.
func (v *Vendor) RevokeRefreshToken(tok string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if rt, ok := v.refresh[tok]; ok {
		rt.revoked = true
	}
}

// SetBehavior replaces the vendor's behaviour knobs. It panics on a value
// the stand-in does not know.
func (v *Vendor) SetBehavior(b Behavior) {
	switch b.ExpiresInFormat {
	case "", "int", "float", "string", "missing", "duration":
	default:
		panic(fmt.Sprintf("standin: unknown ExpiresInFormat %q", b.ExpiresInFormat))
	}
	switch b.ResponseFormat {
	case "", "json", "form":
	default:
		panic(fmt.Sprintf("standin: unknown ResponseFormat %q", b.ResponseFormat))
	}
	b.FailHeader = b.FailHeader.Clone()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.behavior = b
}

// Behavior returns the vendor's current behaviour knobs (FailNext as
// decremented by failures so far).
func (v *Vendor) Behavior() Behavior {
	v.mu.Lock()
	defer v.mu.Unlock()
	b := v.behavior
	b.FailHeader = b.FailHeader.Clone()
	return b
}

// Stats returns a copy of the vendor's counters.
func (v *Vendor) Stats() Stats {
	v.mu.Lock()
	defer v.mu.Unlock()
	st := v.stats
	st.ByGrantType = make(map[string]int, len(v.stats.ByGrantType))
	for k, n := range v.stats.ByGrantType {
		st.ByGrantType[k] = n
	}
	st.Failures = make(map[string]int, len(v.stats.Failures))
	for k, n := range v.stats.Failures {
		st.Failures[k] = n
	}
	return st
}

// Reset zeroes the stats, forgets recorded requests and the rate limit
// window. Clients, tokens and behaviour stay.
func (v *Vendor) Reset() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.stats = emptyStats()
	v.recorded = nil
	v.admitted = nil
}

// Requests returns the token requests received, oldest first (the last
// 1000).
func (v *Vendor) Requests() []Recorded {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]Recorded, len(v.recorded))
	for i, r := range v.recorded {
		out[i] = r.clone()
	}
	return out
}

// clone copies a record deeply, so callers cannot reach the vendor's copy.
func (r Recorded) clone() Recorded {
	r.Query = url.Values(http.Header(r.Query).Clone())
	r.Header = r.Header.Clone()
	form := make(map[string]string, len(r.Form))
	for k, x := range r.Form {
		form[k] = x
	}
	r.Form = form
	return r
}

// LastRequest returns the latest token request, if any.
func (v *Vendor) LastRequest() (Recorded, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.recorded) == 0 {
		return Recorded{}, false
	}
	return v.recorded[len(v.recorded)-1].clone(), true
}

// Valid reports whether accessToken was issued by this vendor, is not
// expired and was not revoked.
func (v *Vendor) Valid(accessToken string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	at, ok := v.access[accessToken]
	return ok && !at.revoked && v.srv.now().Before(at.expiry)
}

// TokenExpiry returns when an access token issued by this vendor expires
// (or expired). ok is false for tokens the vendor never issued.
func (v *Vendor) TokenExpiry(accessToken string) (time.Time, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	at, ok := v.access[accessToken]
	if !ok {
		return time.Time{}, false
	}
	return at.expiry, true
}

// lifetimeLocked is the life of a token issued now.
func (v *Vendor) lifetimeLocked() time.Duration {
	if v.behavior.Lifetime != 0 {
		return v.behavior.Lifetime
	}
	return v.defaultLifetime
}

// newToken returns a random token, prefixed so tests can tell vendors and
// kinds apart: "officernd-at-…", "penbox-rt-…".
func (v *Vendor) newToken(kind string) string {
	return v.name + "-" + kind + "-" + randString(24)
}

// randString returns n random bytes, base64url without padding.
func randString(n int) string { return base64.RawURLEncoding.EncodeToString(randBytes(n)) }

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails: crypto/rand crashes the program instead
	return b
}

func newUUID() string {
	b := randBytes(16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func (v *Vendor) addRefreshLocked(clientID, token, scope string, c *chain) {
	v.refresh[token] = &refreshRecord{clientID: clientID, chain: c, scope: scope}
	c.refresh = append(c.refresh, token)
}

// maxAccess is how many access tokens a vendor keeps before forgetting
// expired ones, so a long-running demo does not grow without bound.
const maxAccess = 10000

// issueAccessLocked records a new access token and returns it with its
// lifetime.
func (v *Vendor) issueAccessLocked(clientID string, c *chain) (string, time.Duration) {
	now := v.srv.now()
	if len(v.access) >= maxAccess {
		for tok, at := range v.access {
			if !now.Before(at.expiry) {
				delete(v.access, tok)
			}
		}
	}
	life := v.lifetimeLocked()
	tok := v.newToken("at")
	v.access[tok] = &accessRecord{clientID: clientID, expiry: now.Add(life), chain: c}
	if c != nil {
		c.access = append(c.access, tok)
	}
	return tok, life
}

// revokeChainLocked revokes every token of a chain.
func (v *Vendor) revokeChainLocked(c *chain) {
	c.revoked = true
	for _, t := range c.refresh {
		if rt, ok := v.refresh[t]; ok {
			rt.revoked = true
		}
	}
	for _, t := range c.access {
		if at, ok := v.access[t]; ok {
			at.revoked = true
		}
	}
}

// redeemRefreshLocked checks a presented refresh token for the client and,
// with Rotate, replaces it. It returns the refresh token to hand back ("" for
// none) and the token's record.
func (v *Vendor) redeemRefreshLocked(clientID, presented string) (*refreshRecord, string, *oauthError) {
	rt, ok := v.refresh[presented]
	if !ok || rt.clientID != clientID {
		// Another client's token is as unknown as a made-up one.
		return nil, "", errGrant("the refresh token is invalid, expired, revoked, or was issued to another client")
	}
	inGrace := rt.rotated && v.behavior.RotationGrace > 0 && v.srv.now().Sub(rt.rotatedAt) < v.behavior.RotationGrace
	if inGrace && !rt.revoked && !rt.chain.revoked {
		v.stats.GraceReuses++
	} else if rt.rotated && !rt.revoked {
		if v.behavior.ReuseDetection {
			v.revokeChainLocked(rt.chain)
			v.stats.ReuseDetections++
			return nil, "", errGrant("the refresh token was already used: reuse detected, every token from this grant is revoked")
		}
		return nil, "", errGrant("the refresh token was already used and has been replaced")
	}
	if rt.revoked || rt.chain.revoked {
		return nil, "", errGrant("the refresh token has been revoked")
	}
	if !v.behavior.Rotate {
		return rt, "", nil
	}
	if !rt.rotated {
		rt.rotated, rt.rotatedAt = true, v.srv.now()
	}
	next := v.newToken("rt")
	v.addRefreshLocked(clientID, next, rt.scope, rt.chain)
	return rt, next, nil
}
