package standin

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The AuthServer is a strict, standards-only OAuth 2.0 authorization
// server, apart from the vendor Server: it has its own listeners because
// mutual TLS needs TLS listeners of its own, signed by a private CA, and
// because its endpoints (metadata, revocation, device authorization) are
// defined by RFCs rather than by one vendor's documentation. It checks
// each request the way the RFCs say a server must:
//
//   - client authentication by client_secret_basic, client_secret_post,
//     client_secret_jwt, private_key_jwt (RFC 7523: signature against a
//     JWKS it fetches from the client's jwks_uri, alg, iss = sub, aud,
//     exp, iat, lifetime and jti replay), tls_client_auth and
//     self_signed_tls_client_auth (RFC 8705), or none for public clients,
//     each client held to the one method it is registered with;
//   - RFC 8414 / OpenID Connect metadata at both well-known locations,
//     with an option to serve a wrong issuer;
//   - RFC 7009 revocation, recorded, after which a revoked refresh token
//     fails;
//   - the RFC 8628 device flow, with authorization_pending, slow_down for
//     a client that polls faster than the interval, and approval or denial
//     by the test.
//
// It listens on three loopback ports: Plain (http), TLS (https signed by
// ServerCA, no client certificate asked for) and MutualTLS (https signed
// by ServerCA, a client certificate required: one issued by ClientCA, or
// the self-signed one of a registered client). Every endpoint is served
// on each.

// Listener names one of an AuthServer's listeners.
type Listener int

const (
	// Plain is the http listener.
	Plain Listener = iota
	// TLS is https with a ServerCA certificate; no client certificate is
	// asked for.
	TLS
	// MutualTLS is https with a ServerCA certificate and a client
	// certificate required.
	MutualTLS
)

func (l Listener) String() string {
	switch l {
	case Plain:
		return "plain"
	case TLS:
		return "tls"
	case MutualTLS:
		return "mtls"
	}
	return fmt.Sprintf("Listener(%d)", int(l))
}

// Client authentication methods (RFC 8414 / OpenID Connect names).
const (
	MethodClientSecretBasic        = "client_secret_basic"
	MethodClientSecretPost         = "client_secret_post"
	MethodClientSecretJWT          = "client_secret_jwt"
	MethodPrivateKeyJWT            = "private_key_jwt"
	MethodTLSClientAuth            = "tls_client_auth"
	MethodSelfSignedTLSClientAuth  = "self_signed_tls_client_auth"
	MethodNone                     = "none"
	clientAssertionTypeJWT         = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	grantDeviceCode                = "urn:ietf:params:oauth:grant-type:device_code"
	defaultAuthTokenLifetime       = time.Hour
	defaultDeviceInterval          = 5 * time.Second
	defaultDeviceLifetime          = 10 * time.Minute
	defaultMaxAssertionLifetime    = 5 * time.Minute
	assertionLeeway                = 5 * time.Second
	maxAuthRecorded                = 1000
	maxJWKSBody                    = 64 << 10
	deviceSlowDownStep             = 5 * time.Second
	authServerReadHeaderTimeout    = 10 * time.Second
	authServerJWKSFetchTimeout     = 10 * time.Second
	authServerDefaultListenAddress = "127.0.0.1:0"
)

// Methods lists every client authentication method, sorted.
func Methods() []string {
	m := []string{MethodClientSecretBasic, MethodClientSecretPost, MethodClientSecretJWT, MethodPrivateKeyJWT,
		MethodTLSClientAuth, MethodSelfSignedTLSClientAuth, MethodNone}
	sort.Strings(m)
	return m
}

// Reasons a client authentication or grant was refused, as counted in
// AuthStats.Rejections, so tests can tell one refusal from another.
const (
	RejectMethod          = "wrong_method"
	RejectUnknownClient   = "unknown_client"
	RejectSecret          = "wrong_secret"
	RejectAssertionFormat = "assertion_format"
	RejectAlgorithm       = "algorithm"
	RejectUnknownKey      = "unknown_kid"
	RejectSignature       = "signature"
	RejectIssuer          = "iss_sub"
	RejectAudience        = "aud"
	RejectExpired         = "expired"
	RejectLifetime        = "lifetime"
	RejectNotYetValid     = "not_yet_valid"
	RejectMissingJTI      = "jti_missing"
	RejectReplay          = "jti_replay"
	RejectJWKS            = "jwks"
	RejectNoCertificate   = "no_client_certificate"
	RejectCertificate     = "client_certificate"
)

// AuthServerOptions configure an AuthServer; zero values are the defaults.
type AuthServerOptions struct {
	// Addr is where each listener listens: "127.0.0.1:0" by default.
	Addr string
	// IssuerPath is the issuer's path, such as "/tenant1" (RFC 8414
	// section 3.1 puts the well-known suffix before it); "" for none. The
	// endpoints live under it.
	IssuerPath string
	// IssuerListener is the listener whose URL is the issuer and whose
	// endpoints the metadata names: Plain by default.
	IssuerListener Listener
	// ServerCA signs the TLS listeners' certificate; nil makes one.
	ServerCA *TestCA
	// ClientCA issues the certificates tls_client_auth clients present;
	// nil makes one.
	ClientCA *TestCA
	// TokenLifetime is the access tokens' life: an hour by default.
	TokenLifetime time.Duration
	// DeviceInterval is the polling interval the device flow announces
	// (whole seconds, at least 1): 5 s by default.
	DeviceInterval time.Duration
	// DeviceLifetime is how long device codes live: 10 minutes by default.
	DeviceLifetime time.Duration
	// MaxAssertionLifetime is the longest exp - iat a client assertion
	// may have: 5 minutes by default.
	MaxAssertionLifetime time.Duration
	// JWKSRefetchInterval is the least time between two fetches of a
	// client's JWKS for a kid it did not have (a key rotation). Zero, the
	// default, fetches again each time; real servers rate-limit this.
	JWKSRefetchInterval time.Duration
	// JWKSClient fetches clients' JWKS; nil is a client with a 10 s
	// timeout that follows no redirect.
	JWKSClient *http.Client
}

// AuthClient is a client registered with an AuthServer.
type AuthClient struct {
	// ID is the client_id.
	ID string
	// Method is the one client authentication method the client may use:
	// client_secret_basic by default.
	Method string
	// Secret is the client secret, for the client_secret_* methods.
	Secret string
	// JWKSURL is fetched for private_key_jwt (in the end-to-end tests the
	// plugin's published JWKS path in Vault); JWKS holds one inline
	// instead.
	JWKSURL string
	JWKS    string
	// Algorithms are the assertion algorithms accepted. Default: RS256,
	// PS256, ES256, ES384 and EdDSA for private_key_jwt; HS256 for
	// client_secret_jwt.
	Algorithms []string
	// Audiences are the assertion audiences accepted. Default: the
	// issuer, each listener's token endpoint, and the URL of the endpoint
	// called.
	Audiences []string
	// TLSSubject is, for tls_client_auth, the subject DN the certificate
	// must have (as x509.Certificate.Subject.String() writes it, such as
	// "CN=client-1"); "" takes any certificate ClientCA issued.
	TLSSubject string
	// SelfSignedCertPEM is, for self_signed_tls_client_auth, the
	// registered certificate.
	SelfSignedCertPEM string
	// Scopes the client may have; nil allows any.
	Scopes []string
	// Grants the client may use; nil allows client_credentials,
	// refresh_token and the device code grant.
	Grants []string
	// ResponseFields are added to each of the client's token responses
	// (instance_url, uid, ...).
	ResponseFields map[string]any
	// RotateRefreshTokens makes each refresh return a new refresh token
	// and kill the one presented.
	RotateRefreshTokens bool
}

// AuthStats counts an AuthServer's traffic.
type AuthStats struct {
	// Requests counts requests to the token, revocation and device
	// authorization endpoints.
	Requests int
	// Grants counts token responses, by grant type in ByGrantType.
	Grants      int
	ByGrantType map[string]int
	// Failures counts refusals by error code.
	Failures map[string]int
	// Rejections counts refusals by Reject* reason.
	Rejections map[string]int
	// AssertionsVerified counts accepted client assertions.
	AssertionsVerified int
	// JWKSFetches counts fetches of clients' JWKS.
	JWKSFetches int
	// Revocations counts accepted revocation requests.
	Revocations int
	// DevicePolls counts device code grant requests; SlowDowns those
	// answered slow_down.
	DevicePolls, SlowDowns int
	// TLSHandshakeErrors counts handshakes the TLS listeners refused.
	TLSHandshakeErrors int
	// MetadataRequests counts metadata document requests.
	MetadataRequests int
}

// RevocationRecord is one accepted revocation request.
type RevocationRecord struct {
	ClientID string
	// Hint is the token_type_hint sent ("" for none).
	Hint string
	// Kind is what the token was: "refresh_token", "access_token", or
	// "unknown" for one the server did not know (answered 200 all the
	// same, as RFC 7009 says).
	Kind string
	At   time.Time
}

// AuthEndpoints are an AuthServer's URLs on one listener.
type AuthEndpoints struct {
	Issuer, Token, Revocation, DeviceAuthorization, Verification string
	OAuthMetadata, OpenIDMetadata                                string
}

// AuthServer is a strict standards authorization server; see Listener for
// its shape. It is safe for concurrent use.
type AuthServer struct {
	opts     AuthServerOptions
	serverCA *TestCA
	clientCA *TestCA
	bases    [3]string
	servers  []*http.Server
	jwksHTTP *http.Client

	skew      atomic.Int64
	closeOnce sync.Once

	mu           sync.Mutex
	clients      map[string]*authClientRecord
	refresh      map[string]*authRefresh
	access       map[string]*authAccess
	devices      map[string]*deviceRecord // by device code
	userCodes    map[string]string        // user code -> device code
	jtis         map[string]time.Time     // client id + "\x00" + jti -> exp
	stats        AuthStats
	recorded     []Recorded
	revocations  []RevocationRecord
	metaIssuer   string
	noOAuthMeta  bool
	noOpenIDMeta bool
}

type authClientRecord struct {
	AuthClient
	selfSigned *x509.Certificate
	jwks       *jwksCache
}

type authRefresh struct {
	clientID, scope string
	revoked         bool
	access          []string
}

type authAccess struct {
	clientID string
	expiry   time.Time
	revoked  bool
}

type listenerKey struct{}

// NewAuthServer starts an AuthServer on three loopback listeners. Close
// stops it.
func NewAuthServer(opts AuthServerOptions) (*AuthServer, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	a := &AuthServer{
		opts:      opts,
		serverCA:  opts.ServerCA,
		clientCA:  opts.ClientCA,
		clients:   map[string]*authClientRecord{},
		refresh:   map[string]*authRefresh{},
		access:    map[string]*authAccess{},
		devices:   map[string]*deviceRecord{},
		userCodes: map[string]string{},
		jtis:      map[string]time.Time{},
		stats:     emptyAuthStats(),
	}
	var err error
	if a.serverCA == nil {
		if a.serverCA, err = NewTestCA("stand-in authorization server CA"); err != nil {
			return nil, err
		}
	}
	if a.clientCA == nil {
		if a.clientCA, err = NewTestCA("stand-in client CA"); err != nil {
			return nil, err
		}
	}
	a.jwksHTTP = opts.JWKSClient
	if a.jwksHTTP == nil {
		a.jwksHTTP = &http.Client{
			Timeout:       authServerJWKSFetchTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	issued, err := a.serverCA.IssueServer()
	if err != nil {
		return nil, err
	}
	pair, err := issued.TLSCertificate()
	if err != nil {
		return nil, err
	}
	if err := a.listen(pair); err != nil {
		_ = a.Close() // the listen error is the one to report
		return nil, err
	}
	return a, nil
}

// setDefaults fills in the defaults and checks what cannot be defaulted.
func (o *AuthServerOptions) setDefaults() error {
	if o.Addr == "" {
		o.Addr = authServerDefaultListenAddress
	}
	if o.IssuerPath != "" && (!strings.HasPrefix(o.IssuerPath, "/") || strings.HasSuffix(o.IssuerPath, "/") || strings.ContainsAny(o.IssuerPath, "?#")) {
		return fmt.Errorf("standin: IssuerPath %q must start with / and not end with one", o.IssuerPath)
	}
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = defaultAuthTokenLifetime
	}
	if o.DeviceInterval <= 0 {
		o.DeviceInterval = defaultDeviceInterval
	}
	if o.DeviceInterval < time.Second || o.DeviceInterval%time.Second != 0 {
		return errors.New("standin: DeviceInterval is whole seconds, at least 1")
	}
	if o.DeviceLifetime <= 0 {
		o.DeviceLifetime = defaultDeviceLifetime
	}
	if o.MaxAssertionLifetime <= 0 {
		o.MaxAssertionLifetime = defaultMaxAssertionLifetime
	}
	return nil
}

// listen starts the three listeners (plain, TLS with pair, mutual TLS)
// and a server on each.
func (a *AuthServer) listen(pair tls.Certificate) error {
	errLog := log.New(&handshakeCounter{a: a}, "", 0)
	for _, l := range []Listener{Plain, TLS, MutualTLS} {
		ln, err := net.Listen("tcp", a.opts.Addr)
		if err != nil {
			return fmt.Errorf("standin: listen on %s: %w", a.opts.Addr, err)
		}
		scheme := "http"
		if l != Plain {
			scheme = "https"
			cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
			if l == MutualTLS {
				cfg.ClientAuth = tls.RequireAnyClientCert
				cfg.VerifyConnection = a.verifyClientConnection
			}
			ln = tls.NewListener(ln, cfg)
		}
		a.bases[l] = scheme + "://" + ln.Addr().String()
		l := l
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				a.serve(w, r.WithContext(context.WithValue(r.Context(), listenerKey{}, l)))
			}),
			ReadHeaderTimeout: authServerReadHeaderTimeout,
			ErrorLog:          errLog,
		}
		a.servers = append(a.servers, srv)
		go func() { _ = srv.Serve(ln) }()
	}
	return nil
}

// handshakeCounter counts the TLS handshake errors net/http logs, and
// drops the lines: refused handshakes are what tests provoke.
type handshakeCounter struct{ a *AuthServer }

func (h *handshakeCounter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), "TLS handshake error") {
		h.a.mu.Lock()
		h.a.stats.TLSHandshakeErrors++
		h.a.mu.Unlock()
	}
	return len(p), nil
}

func emptyAuthStats() AuthStats {
	return AuthStats{ByGrantType: map[string]int{}, Failures: map[string]int{}, Rejections: map[string]int{}}
}

// Close stops every listener and drops open connections. It is safe to
// call more than once.
func (a *AuthServer) Close() error {
	var first error
	a.closeOnce.Do(func() {
		for _, s := range a.servers {
			if err := s.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) && first == nil {
				first = err
			}
		}
	})
	return first
}

// URL is a listener's base URL, such as "https://127.0.0.1:41234".
func (a *AuthServer) URL(l Listener) string { return a.bases[l] }

// Issuer is the issuer identifier: the issuer listener's URL and the
// issuer path.
func (a *AuthServer) Issuer() string { return a.bases[a.opts.IssuerListener] + a.opts.IssuerPath }

// Endpoints are the URLs of every endpoint on listener l.
func (a *AuthServer) Endpoints(l Listener) AuthEndpoints {
	base, p := a.bases[l], a.opts.IssuerPath
	return AuthEndpoints{
		Issuer:              a.Issuer(),
		Token:               base + p + "/token",
		Revocation:          base + p + "/revoke",
		DeviceAuthorization: base + p + "/device_authorization",
		Verification:        base + p + "/device",
		OAuthMetadata:       base + "/.well-known/oauth-authorization-server" + p,
		OpenIDMetadata:      base + p + "/.well-known/openid-configuration",
	}
}

// ServerCA is the CA that signed the TLS listeners' certificate: the CA
// bundle a client needs.
func (a *AuthServer) ServerCA() *TestCA { return a.serverCA }

// ClientCA issues certificates tls_client_auth clients present.
func (a *AuthServer) ClientCA() *TestCA { return a.clientCA }

// Advance moves the server's clock forward by d, to expire assertions,
// tokens and device codes, or to pass a polling interval, without
// waiting.
func (a *AuthServer) Advance(d time.Duration) { a.skew.Add(int64(d)) }

func (a *AuthServer) now() time.Time { return time.Now().Add(time.Duration(a.skew.Load())) }

// AddClient registers a client, replacing one with the same ID (and its
// JWKS cache).
func (a *AuthServer) AddClient(c AuthClient) error {
	if c.ID == "" {
		return errors.New("standin: a client needs an ID")
	}
	if c.Method == "" {
		c.Method = MethodClientSecretBasic
	}
	rec := &authClientRecord{AuthClient: c, jwks: &jwksCache{}}
	switch c.Method {
	case MethodClientSecretBasic, MethodClientSecretPost, MethodClientSecretJWT:
		if c.Secret == "" {
			return fmt.Errorf("standin: %s needs a secret", c.Method)
		}
	case MethodPrivateKeyJWT:
		if (c.JWKSURL == "") == (c.JWKS == "") {
			return errors.New("standin: private_key_jwt needs a JWKSURL or an inline JWKS, not both")
		}
		if c.JWKS != "" {
			keys, err := parseClientJWKS([]byte(c.JWKS))
			if err != nil {
				return fmt.Errorf("standin: the inline JWKS: %w", err)
			}
			rec.jwks.keys, rec.jwks.loaded = keys, true
		}
	case MethodSelfSignedTLSClientAuth:
		certs, err := parsePEMCertificates(c.SelfSignedCertPEM)
		if err != nil || len(certs) != 1 {
			return errors.New("standin: self_signed_tls_client_auth needs one certificate in SelfSignedCertPEM")
		}
		rec.selfSigned = certs[0]
	case MethodTLSClientAuth, MethodNone:
	default:
		return fmt.Errorf("standin: unknown method %q (have %s)", c.Method, strings.Join(Methods(), ", "))
	}
	if c.Method != MethodClientSecretBasic && c.Method != MethodClientSecretPost && c.Method != MethodClientSecretJWT && c.Secret != "" {
		return fmt.Errorf("standin: a %s client has no secret", c.Method)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.clients[c.ID] = rec
	return nil
}

// IssueRefreshToken returns a new valid refresh token for the client, as
// if a consent had happened elsewhere.
func (a *AuthServer) IssueRefreshToken(clientID string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.clients[clientID]; !ok {
		return "", fmt.Errorf("standin: no client %q", clientID)
	}
	tok := "as-rt-" + randString(24)
	a.refresh[tok] = &authRefresh{clientID: clientID}
	return tok, nil
}

// RefreshTokenValid reports whether a refresh token was issued and not
// revoked or rotated away.
func (a *AuthServer) RefreshTokenValid(tok string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	rt, ok := a.refresh[tok]
	return ok && !rt.revoked
}

// AccessTokenValid reports whether an access token was issued, is not
// expired and was not revoked.
func (a *AuthServer) AccessTokenValid(tok string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.access[tok]
	return ok && !at.revoked && a.now().Before(at.expiry)
}

// ExpireJWKSCache drops every client's cached JWKS, as a server's cache
// lifetime running out would: the next assertion fetches again.
func (a *AuthServer) ExpireJWKSCache() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.clients {
		if c.JWKSURL == "" {
			continue
		}
		c.jwks.mu.Lock()
		c.jwks.keys, c.jwks.loaded = nil, false
		c.jwks.mu.Unlock()
	}
}

// MetadataOptions change the metadata documents served.
type MetadataOptions struct {
	// Issuer replaces the issuer in the documents ("" serves the real
	// one): a mismatched issuer a client must refuse.
	Issuer string
	// NoOAuth serves no RFC 8414 document (404), NoOpenID no OpenID one.
	NoOAuth, NoOpenID bool
}

// SetMetadata changes the metadata documents served.
func (a *AuthServer) SetMetadata(m MetadataOptions) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.metaIssuer, a.noOAuthMeta, a.noOpenIDMeta = m.Issuer, m.NoOAuth, m.NoOpenID
}

// Stats returns a copy of the counters.
func (a *AuthServer) Stats() AuthStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.stats
	st.ByGrantType, st.Failures, st.Rejections = copyCounts(a.stats.ByGrantType), copyCounts(a.stats.Failures), copyCounts(a.stats.Rejections)
	return st
}

func copyCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Requests returns the requests to the token, revocation and device
// authorization endpoints, oldest first (the last 1000).
func (a *AuthServer) Requests() []Recorded {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Recorded, len(a.recorded))
	for i, r := range a.recorded {
		out[i] = r.clone()
	}
	return out
}

// Revocations returns the accepted revocation requests, oldest first.
func (a *AuthServer) Revocations() []RevocationRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]RevocationRecord(nil), a.revocations...)
}

// serve routes a request.
func (a *AuthServer) serve(w http.ResponseWriter, r *http.Request) {
	p := a.opts.IssuerPath
	switch r.URL.Path {
	case "/.well-known/oauth-authorization-server" + p:
		a.serveMetadata(w, r, true)
	case p + "/.well-known/openid-configuration":
		a.serveMetadata(w, r, false)
	case p + "/token":
		a.serveEndpoint(w, r, a.handleToken)
	case p + "/revoke":
		a.serveEndpoint(w, r, a.handleRevoke)
	case p + "/device_authorization":
		a.serveEndpoint(w, r, a.handleDeviceAuthorization)
	case p + "/device":
		a.serveVerification(w, r)
	default:
		http.NotFound(w, r)
	}
}

// endpointRequest is a POST to one of the client-authenticated endpoints.
type endpointRequest struct {
	*tokenRequest
	listener Listener
	// called is the URL the client posted to, as an audience.
	called string
}

// serveEndpoint parses, records and checks what every client-authenticated
// endpoint shares, then runs h.
func (a *AuthServer) serveEndpoint(w http.ResponseWriter, r *http.Request, h func(*endpointRequest) (map[string]any, *oauthError)) {
	req := parseTokenRequest(w, r)
	l, _ := r.Context().Value(listenerKey{}).(Listener)
	rec := Recorded{Method: r.Method, Path: r.URL.Path, Query: req.query, Header: r.Header.Clone(), Form: map[string]string{}, At: a.now()}
	if rec.Query == nil {
		rec.Query = url.Values{}
	}
	for k, vals := range req.body {
		rec.Form[k] = vals[0]
	}
	a.mu.Lock()
	a.stats.Requests++
	a.recorded = append(a.recorded, rec)
	if n := len(a.recorded); n > maxAuthRecorded {
		a.recorded = append([]Recorded(nil), a.recorded[n-maxAuthRecorded:]...)
	}
	a.mu.Unlock()

	var (
		fields map[string]any
		e      *oauthError
	)
	switch {
	case r.Method != http.MethodPost:
		e = &oauthError{status: http.StatusMethodNotAllowed, header: http.Header{"Allow": {http.MethodPost}},
			raw: []byte("method not allowed: this endpoint takes POST\n"), rawCT: "text/plain; charset=utf-8"}
	default:
		if e = req.checkBody(formatForm); e == nil {
			if e = req.checkQuery(); e == nil {
				for _, p := range []string{"client_assertion", "client_assertion_type", "device_code", "token"} {
					if req.query.Has(p) {
						e = errRequest("parameter %s must be sent in the request body, not the query string", p)
						break
					}
				}
			}
		}
		if e == nil {
			fields, e = h(&endpointRequest{tokenRequest: req, listener: l, called: a.bases[l] + r.URL.Path})
		}
	}
	a.mu.Lock()
	if e != nil {
		a.stats.Failures[e.statKey()]++
	}
	a.mu.Unlock()
	h2 := w.Header()
	h2.Set("Cache-Control", "no-store")
	h2.Set("Pragma", "no-cache")
	if e != nil {
		for k, vals := range e.header {
			h2[k] = append([]string(nil), vals...)
		}
		if e.raw != nil {
			h2.Set("Content-Type", e.rawCT)
			w.WriteHeader(e.status)
			_, _ = w.Write(e.raw)
			return
		}
		writeFields(w, e.status, map[string]any{"error": e.code, "error_description": e.desc}, false)
		return
	}
	if fields == nil {
		// Revocation: RFC 7009 section 2.2 answers 200 with no body.
		w.WriteHeader(http.StatusOK)
		return
	}
	writeFields(w, http.StatusOK, fields, false)
}

// reject counts a refusal by reason and returns it.
func (a *AuthServer) reject(reason string, e *oauthError) *oauthError {
	a.mu.Lock()
	a.stats.Rejections[reason]++
	a.mu.Unlock()
	return e
}

// authenticate finds and checks the client of a request, by the one
// method it is registered with.
func (a *AuthServer) authenticate(req *endpointRequest) (*authClientRecord, *oauthError) {
	authz := req.r.Header.Values("Authorization")
	hasAssertion := req.has("client_assertion") || req.has("client_assertion_type")
	methods := 0
	for _, used := range []bool{len(authz) > 0, req.has("client_secret"), hasAssertion} {
		if used {
			methods++
		}
	}
	if methods > 1 {
		return nil, errRequest("the client used more than one authentication method")
	}
	var (
		c    *authClientRecord
		used string
		e    *oauthError
	)
	switch {
	case hasAssertion:
		c, used, e = a.verifyAssertion(req)
		if e != nil {
			return nil, e
		}
	case len(authz) > 0:
		c, e = a.authenticateBasic(req)
		if e != nil {
			return nil, e
		}
		used = MethodClientSecretBasic
	case req.has("client_secret"):
		c, e = a.checkSecret(req.param("client_id"), req.param("client_secret"), false)
		if e != nil {
			return nil, e
		}
		used = MethodClientSecretPost
	default:
		c, used, e = a.authenticateByID(req)
		if e != nil {
			return nil, e
		}
	}
	if used != c.Method {
		return nil, a.reject(RejectMethod, errClient(used == MethodClientSecretBasic, "stand-in",
			fmt.Sprintf("client %s is registered for %s, not %s", c.ID, c.Method, used)))
	}
	return c, nil
}

// authenticateBasic checks a client_secret_basic Authorization header.
func (a *AuthServer) authenticateBasic(req *endpointRequest) (*authClientRecord, *oauthError) {
	id, secret, _, e := basicCreds(req.r, true, "stand-in")
	if e != nil {
		return nil, e
	}
	if req.has("client_id") && req.param("client_id") != id {
		return nil, errClient(true, "stand-in", "client_id in the body does not match the Authorization header")
	}
	return a.checkSecret(id, secret, true)
}

// authenticateByID authenticates a request that names its client_id with
// no secret or assertion: by its certificate (tls_client_auth and
// self_signed_tls_client_auth) or as a public client (none). It returns
// the method the request used.
func (a *AuthServer) authenticateByID(req *endpointRequest) (*authClientRecord, string, *oauthError) {
	id := req.param("client_id")
	if id == "" {
		return nil, "", a.reject(RejectUnknownClient, errClient(false, "", "client authentication required: no client_id, credentials, assertion or certificate"))
	}
	a.mu.Lock()
	c := a.clients[id]
	a.mu.Unlock()
	if c == nil {
		return nil, "", a.reject(RejectUnknownClient, errClient(false, "", "unknown client"))
	}
	used := c.Method
	switch c.Method {
	case MethodTLSClientAuth, MethodSelfSignedTLSClientAuth:
		if e := a.checkClientCertificate(req, c); e != nil {
			return nil, "", e
		}
	case MethodNone:
	default:
		used = MethodNone
	}
	return c, used, nil
}

// checkSecret looks a client up by id and secret, in constant time.
func (a *AuthServer) checkSecret(id, secret string, basic bool) (*authClientRecord, *oauthError) {
	a.mu.Lock()
	c := a.clients[id]
	a.mu.Unlock()
	if c == nil {
		return nil, a.reject(RejectUnknownClient, errClient(basic, "stand-in", "unknown client or wrong client secret"))
	}
	if c.Secret == "" || !constantTimeEqual(c.Secret, secret) {
		return nil, a.reject(RejectSecret, errClient(basic, "stand-in", "unknown client or wrong client secret"))
	}
	return c, nil
}

// checkClientCertificate holds a certificate-authenticated client to RFC
// 8705: a certificate on this connection, issued by ClientCA with the
// registered subject, or the registered self-signed one.
func (a *AuthServer) checkClientCertificate(req *endpointRequest, c *authClientRecord) *oauthError {
	if req.r.TLS == nil || len(req.r.TLS.PeerCertificates) == 0 {
		return a.reject(RejectNoCertificate, errClient(false, "", fmt.Sprintf("%s: no client certificate was presented (use the mutual-TLS endpoint)", c.Method)))
	}
	leaf := req.r.TLS.PeerCertificates[0]
	if c.Method == MethodSelfSignedTLSClientAuth {
		if !leaf.Equal(c.selfSigned) {
			return a.reject(RejectCertificate, errClient(false, "", "the client certificate is not the one registered for this client"))
		}
		return nil
	}
	inter := x509.NewCertPool()
	for _, ic := range req.r.TLS.PeerCertificates[1:] {
		inter.AddCert(ic)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: a.clientCA.Pool(), Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: a.now()}); err != nil {
		return a.reject(RejectCertificate, errClient(false, "", "the client certificate is not issued by a CA trusted for tls_client_auth"))
	}
	if c.TLSSubject != "" && leaf.Subject.String() != c.TLSSubject {
		return a.reject(RejectCertificate, errClient(false, "", fmt.Sprintf("the client certificate's subject is %s, not the registered %s", leaf.Subject.String(), c.TLSSubject)))
	}
	return nil
}

// verifyClientConnection is the mutual-TLS listener's handshake check: a
// certificate ClientCA issued, or a registered self-signed one. Anything
// else is refused in the handshake, with a bad_certificate alert.
func (a *AuthServer) verifyClientConnection(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no client certificate")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, ic := range cs.PeerCertificates[1:] {
		inter.AddCert(ic)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: a.clientCA.Pool(), Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: a.now()}); err == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.clients {
		if c.selfSigned != nil && leaf.Equal(c.selfSigned) {
			return nil
		}
	}
	return errors.New("the client certificate is neither issued by the client CA nor registered")
}

// allowsGrant reports whether the client may use grant type gt.
func (c *authClientRecord) allowsGrant(gt string) bool {
	if c.Grants == nil {
		return gt == "client_credentials" || gt == "refresh_token" || gt == grantDeviceCode
	}
	return contains(c.Grants, gt)
}

// handleToken is the token endpoint.
func (a *AuthServer) handleToken(req *endpointRequest) (map[string]any, *oauthError) {
	c, e := a.authenticate(req)
	if e != nil {
		return nil, e
	}
	gt, e := req.grantType(false)
	if e != nil {
		return nil, e
	}
	if gt != "client_credentials" && gt != "refresh_token" && gt != grantDeviceCode {
		return nil, errUnsupportedGrant(gt)
	}
	if !c.allowsGrant(gt) {
		return nil, &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", desc: fmt.Sprintf("the client may not use grant_type %s", gt)}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var (
		scope, rt string
		chain     *authRefresh
	)
	switch gt {
	case "client_credentials":
		if scope, e = grantScopes(&clientRecord{Client: Client{Scopes: c.Scopes}}, req.param("scope")); e != nil {
			return nil, e
		}
	case "refresh_token":
		if scope, rt, chain, e = a.refreshGrantLocked(req, c); e != nil {
			return nil, e
		}
	case grantDeviceCode:
		var d *deviceRecord
		if d, e = a.pollDeviceLocked(req, c); e != nil {
			return nil, e
		}
		scope = d.scope
		rt = "as-rt-" + randString(24)
		chain = &authRefresh{clientID: c.ID, scope: scope}
		a.refresh[rt] = chain
	}
	at := "as-at-" + randString(24)
	a.access[at] = &authAccess{clientID: c.ID, expiry: a.now().Add(a.opts.TokenLifetime)}
	if chain != nil {
		chain.access = append(chain.access, at)
	}
	fields := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": seconds(a.opts.TokenLifetime)}
	for k, v := range c.ResponseFields {
		fields[k] = v
	}
	if rt != "" {
		fields["refresh_token"] = rt
	}
	if scope != "" {
		fields["scope"] = scope
	}
	a.stats.Grants++
	a.stats.ByGrantType[gt]++
	return fields, nil
}

// refreshGrantLocked checks the refresh token a refresh_token grant
// presents and returns the scope to grant, the new refresh token if c's
// rotate, and the chain the new access token joins. a.mu is held.
func (a *AuthServer) refreshGrantLocked(req *endpointRequest, c *authClientRecord) (scope, rt string, chain *authRefresh, e *oauthError) {
	presented := req.param("refresh_token")
	if presented == "" {
		return "", "", nil, errMissing("refresh_token")
	}
	old, ok := a.refresh[presented]
	switch {
	case !ok || old.clientID != c.ID:
		return "", "", nil, errGrant("the refresh token is invalid, expired, revoked, or was issued to another client")
	case old.revoked:
		return "", "", nil, errGrant("the refresh token has been revoked")
	}
	if scope, e = subsetScopes(old.scope, req.param("scope")); e != nil {
		return "", "", nil, e
	}
	chain = old
	if c.RotateRefreshTokens {
		old.revoked = true
		rt = "as-rt-" + randString(24)
		chain = &authRefresh{clientID: c.ID, scope: old.scope}
		a.refresh[rt] = chain
	}
	return scope, rt, chain, nil
}

// handleRevoke is the RFC 7009 revocation endpoint.
func (a *AuthServer) handleRevoke(req *endpointRequest) (map[string]any, *oauthError) {
	c, e := a.authenticate(req)
	if e != nil {
		return nil, e
	}
	tok := req.param("token")
	if tok == "" {
		return nil, errMissing("token")
	}
	hint := req.param("token_type_hint")
	if hint != "" && hint != "refresh_token" && hint != "access_token" {
		return nil, &oauthError{status: http.StatusBadRequest, code: "unsupported_token_type", desc: fmt.Sprintf("token_type_hint %q is not supported", hint)}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	rec := RevocationRecord{ClientID: c.ID, Hint: hint, Kind: "unknown", At: a.now()}
	if rt, ok := a.refresh[tok]; ok {
		if rt.clientID != c.ID {
			return nil, errRequest("the token was issued to another client")
		}
		// RFC 7009 section 2.1: revoking a refresh token should revoke the
		// access tokens of the same grant.
		rt.revoked = true
		for _, at := range rt.access {
			if r, ok := a.access[at]; ok {
				r.revoked = true
			}
		}
		rec.Kind = "refresh_token"
	} else if at, ok := a.access[tok]; ok {
		if at.clientID != c.ID {
			return nil, errRequest("the token was issued to another client")
		}
		at.revoked = true
		rec.Kind = "access_token"
	}
	a.revocations = append(a.revocations, rec)
	a.stats.Revocations++
	return nil, nil
}

// constantTimeEqual compares secrets in constant time.
func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
