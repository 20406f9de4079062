package standin

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/keys"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// published plays the plugin's published JWKS path: it serves a key Set's
// JWKS and counts fetches.
type published struct {
	*httptest.Server
	mu  sync.Mutex
	set *keys.Set
}

func newPublished(t *testing.T, set *keys.Set) *published {
	t.Helper()
	p := &published{set: set}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		p.mu.Lock()
		out, err := p.set.JWKS(time.Now())
		p.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	}))
	t.Cleanup(p.Close)
	return p
}

// update changes the set under the lock.
func (p *published) update(fn func(s *keys.Set)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn(p.set)
}

func newAuthServer(t *testing.T, opts AuthServerOptions) *AuthServer {
	t.Helper()
	a, err := NewAuthServer(opts)
	if err != nil {
		t.Fatalf("NewAuthServer: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func genKey(t *testing.T, alg keys.Algorithm) *keys.Key {
	t.Helper()
	k, err := keys.Generate(alg, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pkjwt is a private_key_jwt client_credentials request signed by k.
func pkjwt(tokenURL, clientID string, k *keys.Key) tokenclient.Request {
	return tokenclient.Request{
		TokenURL: tokenURL, GrantType: "client_credentials", ClientID: clientID,
		AuthStyle: tokenclient.AuthPrivateKeyJWT, Signer: k.Signer(), KeyID: k.ID(), SigningAlgorithm: string(k.Algorithm()),
	}
}

func vendorCode(err error) string {
	var ve *tokenclient.Error
	if errors.As(err, &ve) {
		return ve.Code
	}
	return ""
}

func TestAuthServerPrivateKeyJWT(t *testing.T) {
	t.Parallel()
	for _, alg := range []keys.Algorithm{keys.ES256, keys.RS256} {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			a := newAuthServer(t, AuthServerOptions{IssuerPath: "/tenant"})
			k := genKey(t, alg)
			pub := newPublished(t, &keys.Set{Current: k})
			if err := a.AddClient(AuthClient{ID: "svc", Method: MethodPrivateKeyJWT, JWKSURL: pub.URL,
				ResponseFields: map[string]any{"instance_url": "https://na1.example", "uid": 42}}); err != nil {
				t.Fatal(err)
			}
			c := tokenclient.New()
			for i := range 3 {
				r := pkjwt(a.Endpoints(Plain).Token, "svc", k)
				r.ResponseFields = []string{"instance_url", "uid"}
				tok, err := c.Exchange(context.Background(), r)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if !a.AccessTokenValid(tok.AccessToken) {
					t.Error("the issued token is not valid")
				}
				if u, _ := tok.Extra.Get("instance_url"); string(u) != `"https://na1.example"` {
					t.Errorf("instance_url = %q", u)
				}
				if u, _ := tok.Extra.Get("uid"); string(u) != "42" {
					t.Errorf("uid = %q", u)
				}
			}
			st := a.Stats()
			if st.JWKSFetches != 1 || st.AssertionsVerified != 3 || st.Grants != 3 {
				t.Errorf("stats = %+v, want one JWKS fetch for three verified assertions", st)
			}
		})
	}
}

// TestAuthServerKeyRotation rotates the key behind the published JWKS:
// the new kid makes the server fetch again, the old key still verifies in
// its overlap, and a staged key needs no extra fetch when it starts to
// sign.
func TestAuthServerKeyRotation(t *testing.T) {
	t.Parallel()
	a := newAuthServer(t, AuthServerOptions{})
	old := genKey(t, keys.ES256)
	pub := newPublished(t, &keys.Set{Current: old})
	if err := a.AddClient(AuthClient{ID: "svc", Method: MethodPrivateKeyJWT, JWKSURL: pub.URL}); err != nil {
		t.Fatal(err)
	}
	c := tokenclient.New()
	token := a.Endpoints(Plain).Token
	exchange := func(k *keys.Key) error {
		_, err := c.Exchange(context.Background(), pkjwt(token, "svc", k))
		return err
	}
	if err := exchange(old); err != nil {
		t.Fatal(err)
	}
	next := genKey(t, keys.ES256)
	pub.update(func(s *keys.Set) {
		if err := s.Rotate(next, time.Now(), time.Hour); err != nil {
			t.Fatal(err)
		}
	})
	if err := exchange(next); err != nil {
		t.Fatalf("the first request after rotation: %v", err)
	}
	if err := exchange(old); err != nil {
		t.Fatalf("the old key in its overlap: %v", err)
	}
	if n := a.Stats().JWKSFetches; n != 2 {
		t.Errorf("%d JWKS fetches, want 2 (the first, then for the new kid)", n)
	}

	// Stage a third key: once the JWKS with it is fetched, promoting it
	// costs no fetch.
	third := genKey(t, keys.ES256)
	pub.update(func(s *keys.Set) {
		if err := s.Stage(third); err != nil {
			t.Fatal(err)
		}
		s.Previous = nil // the old key's overlap ends
	})
	// A server caches the JWKS: the retired key verifies until the cache
	// is renewed, then it is an unknown kid.
	if err := exchange(old); err != nil {
		t.Fatalf("the retired key before the server renews its cache: %v", err)
	}
	a.ExpireJWKSCache()
	if err := exchange(old); vendorCode(err) != "invalid_client" {
		t.Fatalf("the retired key: %v, want invalid_client", err)
	}
	fetches := a.Stats().JWKSFetches
	pub.update(func(s *keys.Set) {
		if err := s.Rotate(nil, time.Now(), time.Hour); err != nil {
			t.Fatal(err)
		}
	})
	if err := exchange(third); err != nil {
		t.Fatalf("the promoted key: %v", err)
	}
	if n := a.Stats().JWKSFetches; n != fetches {
		t.Errorf("promoting a staged key cost %d fetches, want 0", n-fetches)
	}
	if r := a.Stats().Rejections[RejectUnknownKey]; r != 1 {
		t.Errorf("unknown_kid rejections = %d, want 1", r)
	}
}

// capture records the request bodies a client sends.
type capture struct {
	mu     sync.Mutex
	bodies []string
}

func (c *capture) RoundTrip(r *http.Request) (*http.Response, error) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.bodies = append(c.bodies, string(b))
	c.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(b))
	return http.DefaultTransport.RoundTrip(r)
}

func TestAuthServerReplay(t *testing.T) {
	t.Parallel()
	a := newAuthServer(t, AuthServerOptions{})
	k := genKey(t, keys.ES256)
	pub := newPublished(t, &keys.Set{Current: k})
	if err := a.AddClient(AuthClient{ID: "svc", Method: MethodPrivateKeyJWT, JWKSURL: pub.URL}); err != nil {
		t.Fatal(err)
	}
	cap := &capture{}
	c := tokenclient.New(tokenclient.WithHTTPClient(&http.Client{Transport: cap}))
	if _, err := c.Exchange(context.Background(), pkjwt(a.Endpoints(Plain).Token, "svc", k)); err != nil {
		t.Fatal(err)
	}
	// The same body again: the same jti.
	res := call{path: "/token", raw: cap.bodies[0], contentType: "application/x-www-form-urlencoded"}.do(t, a.URL(Plain))
	want{status: 401, code: "invalid_client", desc: []string{"jti was already used"}}.check(t, res)
	if n := a.Stats().Rejections[RejectReplay]; n != 1 {
		t.Errorf("replay rejections = %d", n)
	}
	// A fresh assertion is fine.
	if _, err := c.Exchange(context.Background(), pkjwt(a.Endpoints(Plain).Token, "svc", k)); err != nil {
		t.Fatal(err)
	}
}

// sign makes a compact JWS of claims with key, alg and kid.
func sign(t *testing.T, key any, alg jose.SignatureAlgorithm, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAuthServerAssertionChecks sends hand-made assertions that a strict
// server must refuse, each for its own reason.
func TestAuthServerAssertionChecks(t *testing.T) {
	t.Parallel()
	a := newAuthServer(t, AuthServerOptions{IssuerPath: "/t"})
	k := genKey(t, keys.ES256)
	pub := newPublished(t, &keys.Set{Current: k})
	for _, c := range []AuthClient{
		{ID: "svc", Method: MethodPrivateKeyJWT, JWKSURL: pub.URL},
		{ID: "es-only", Method: MethodPrivateKeyJWT, JWKSURL: pub.URL, Algorithms: []string{"ES384"}},
		{ID: "other", Method: MethodClientSecretBasic, Secret: "other-secret"},
	} {
		if err := a.AddClient(c); err != nil {
			t.Fatal(err)
		}
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	token := a.Endpoints(Plain).Token
	good := func() map[string]any {
		now := time.Now()
		return map[string]any{"iss": "svc", "sub": "svc", "aud": token, "jti": randString(16), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
	}
	with := func(change func(m map[string]any)) map[string]any {
		m := good()
		change(m)
		return m
	}
	none := func() string {
		enc := func(v string) string { return base64.RawURLEncoding.EncodeToString([]byte(v)) }
		body := `{"iss":"svc","sub":"svc","aud":"` + token + `","jti":"x","iat":1,"exp":9999999999}`
		return enc(`{"alg":"none","typ":"JWT"}`) + "." + enc(body) + "."
	}
	tests := []struct {
		name      string
		assertion string
		form      url.Values // added to the form
		header    map[string]string
		wantCode  string
		reason    string
	}{
		{name: "a good one", assertion: sign(t, k.Signer(), jose.ES256, k.ID(), good())},
		{name: "aud the issuer", assertion: sign(t, k.Signer(), jose.ES256, k.ID(), with(func(m map[string]any) { m["aud"] = a.Issuer() }))},
		{name: "aud a list with the token endpoint", assertion: sign(t, k.Signer(), jose.ES256, k.ID(), with(func(m map[string]any) { m["aud"] = []string{"x", token} }))},
		{name: "no kid: every key is tried", assertion: sign(t, k.Signer(), jose.ES256, "", good())},
		{name: "alg none", assertion: none(), wantCode: "invalid_client", reason: RejectAlgorithm},
		{name: "HS256 for a private_key_jwt client", assertion: sign(t, []byte(strings.Repeat("k", 32)), jose.HS256, "", good()), wantCode: "invalid_client", reason: RejectMethod},
		{name: "an algorithm the client does not use", assertion: sign(t, k.Signer(), jose.ES256, k.ID(), with(func(m map[string]any) { m["iss"], m["sub"] = "es-only", "es-only" })), wantCode: "invalid_client", reason: RejectAlgorithm},
		{name: "an unknown kid", assertion: sign(t, other, jose.ES256, "not-published", good()), wantCode: "invalid_client", reason: RejectUnknownKey},
		{name: "the right kid, another key", assertion: sign(t, other, jose.ES256, k.ID(), good()), wantCode: "invalid_client", reason: RejectSignature},
		{name: "sub is not iss", assertion: sign(t, k.Signer(), jose.ES256, k.ID(), with(func(m map[string]any) { m["sub"] = "someone" })), wantCode: "invalid_client", reason: RejectIssuer},
		{name: "an unknown issuer", assertion: sign(t, k.Signer(), jose.ES256, k.ID(), with(func(m map[string]any) { m["iss"], m["sub"] = "nobody", "nobody" })), wantCode: "invalid_client", reason: RejectUnknownClient},
		{name: "client_id not the issuer", assertion: sign(t, k.Signer(), jose.ES256, k.ID(), good()), form: url.Values{"client_id": {"other"}}, wantCode: "invalid_client", reason: RejectIssuer},
		{name: "aud another server", assertion: sign(t, k.Signer(), jose.ES256, k.ID(), with(func(m map[string]any) { m["aud"] = "https://elsewhere.example/token" })), wantCode: "invalid_client", reason: RejectAudience},
		{name: "aud the token endpoint with a query", assertion: sign(t, k.Signer(), jose.ES256, k.ID(), with(func(m map[string]any) { m["aud"] = token + "?x=1" })), wantCode: "invalid_client", reason: RejectAudience},
		{name: "no exp", assertion: sign(t, k.Signer(), jose.ES256, k.ID(), with(func(m map[string]any) { delete(m, "exp") })), wantCode: "invalid_client", reason: RejectExpired},
		{name: "expired", assertion: sign(t, k.Signer(), jose.ES256, k.ID(), with(func(m map[string]any) { m["exp"] = time.Now().Add(-time.Minute).Unix() })), wantCode: "invalid_client", reason: RejectExpired},
		{name: "no iat", assertion: sign(t, k.Signer(), jose.ES256, k.ID(), with(func(m map[string]any) { delete(m, "iat") })), wantCode: "invalid_client", reason: RejectLifetime},
		{name: "iat in the future", assertion: sign(t, k.Signer(), jose.ES256, k.ID(), with(func(m map[string]any) { m["iat"] = time.Now().Add(time.Minute).Unix() })), wantCode: "invalid_client", reason: RejectNotYetValid},
		{name: "nbf in the future", assertion: sign(t, k.Signer(), jose.ES256, k.ID(), with(func(m map[string]any) { m["nbf"] = time.Now().Add(time.Minute).Unix() })), wantCode: "invalid_client", reason: RejectNotYetValid},
		{name: "a ten-minute lifetime", assertion: sign(t, k.Signer(), jose.ES256, k.ID(), with(func(m map[string]any) { m["exp"] = time.Now().Add(10 * time.Minute).Unix() })), wantCode: "invalid_client", reason: RejectLifetime},
		{name: "no jti", assertion: sign(t, k.Signer(), jose.ES256, k.ID(), with(func(m map[string]any) { delete(m, "jti") })), wantCode: "invalid_client", reason: RejectMissingJTI},
		{name: "not a JWS", assertion: "not-a-jwt", wantCode: "invalid_client", reason: RejectAssertionFormat},
		{name: "the wrong assertion type", assertion: sign(t, k.Signer(), jose.ES256, k.ID(), good()), form: url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:saml2-bearer"}}, wantCode: "invalid_client", reason: RejectAssertionFormat},
		{name: "an assertion and Basic", assertion: sign(t, k.Signer(), jose.ES256, k.ID(), good()), header: map[string]string{"Authorization": basicRFC6749("other", "other-secret")}, wantCode: "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {clientAssertionTypeJWT}, "client_assertion": {tc.assertion}}
			for key, vals := range tc.form {
				f[key] = vals
			}
			before := a.Stats().Rejections[tc.reason]
			res := call{path: "/t/token", form: f, header: tc.header}.do(t, a.URL(Plain))
			if tc.wantCode == "" {
				want{status: 200}.check(t, res)
				return
			}
			want{status: map[string]int{"invalid_client": 401, "invalid_request": 400}[tc.wantCode], code: tc.wantCode}.check(t, res)
			if tc.reason != "" {
				if after := a.Stats().Rejections[tc.reason]; after <= before {
					t.Errorf("rejection %q not counted (%s)", tc.reason, res.body)
				}
			}
		})
	}
}

func TestAuthServerClientSecretJWT(t *testing.T) {
	t.Parallel()
	a := newAuthServer(t, AuthServerOptions{})
	const secret = "a-client-secret-of-at-least-32-bytes!"
	if err := a.AddClient(AuthClient{ID: "hs", Method: MethodClientSecretJWT, Secret: secret}); err != nil {
		t.Fatal(err)
	}
	c := tokenclient.New()
	r := tokenclient.Request{TokenURL: a.Endpoints(Plain).Token, GrantType: "client_credentials", ClientID: "hs",
		AuthStyle: tokenclient.AuthClientSecretJWT, ClientSecret: secret}
	if _, err := c.Exchange(context.Background(), r); err != nil {
		t.Fatalf("client_secret_jwt: %v", err)
	}
	r.ClientSecret = strings.ToUpper(secret)
	if _, err := c.Exchange(context.Background(), r); vendorCode(err) != "invalid_client" {
		t.Fatalf("a wrong secret: %v", err)
	}
	// The same client with Basic is the wrong method.
	r.AuthStyle, r.ClientSecret = tokenclient.AuthBasic, secret
	if _, err := c.Exchange(context.Background(), r); vendorCode(err) != "invalid_client" {
		t.Fatalf("Basic for a client_secret_jwt client: %v", err)
	}
	st := a.Stats()
	if st.Rejections[RejectSignature] != 1 || st.Rejections[RejectMethod] != 1 {
		t.Errorf("rejections = %v", st.Rejections)
	}
}

func TestAuthServerMutualTLS(t *testing.T) {
	t.Parallel()
	a := newAuthServer(t, AuthServerOptions{})
	good, _ := a.ClientCA().IssueClient("client-1")
	wrongCN, _ := a.ClientCA().IssueClient("client-2")
	rogueCA, _ := NewTestCA("rogue")
	rogue, _ := rogueCA.IssueClient("client-1")
	self, _ := SelfSignedClient("self-1")
	unregistered, _ := SelfSignedClient("self-2")
	for _, c := range []AuthClient{
		{ID: "mtls", Method: MethodTLSClientAuth, TLSSubject: "CN=client-1"},
		{ID: "self", Method: MethodSelfSignedTLSClientAuth, SelfSignedCertPEM: self.CertPEM},
		{ID: "basic", Method: MethodClientSecretBasic, Secret: "basic-secret"},
	} {
		if err := a.AddClient(c); err != nil {
			t.Fatal(err)
		}
	}
	ca := a.ServerCA().CertPEM()
	withCert := func(i *Issued) *tokenclient.TLSConfig {
		return &tokenclient.TLSConfig{CABundlePEM: ca, ClientCertificatePEM: i.CertPEM, ClientKeyPEM: i.KeyPEM}
	}
	tests := []struct {
		name     string
		listener Listener
		clientID string
		style    tokenclient.AuthStyle
		secret   string
		tls      *tokenclient.TLSConfig
		wantTLS  tokenclient.TLSFailure
		wantCode string
		reason   string
		// notRequested expects the client to see that no certificate was
		// asked for.
		notRequested bool
	}{
		{name: "tls_client_auth", listener: MutualTLS, clientID: "mtls", style: tokenclient.AuthTLSClient, tls: withCert(good)},
		{name: "self_signed_tls_client_auth", listener: MutualTLS, clientID: "self", style: tokenclient.AuthSelfSignedTLSClient, tls: withCert(self)},
		{name: "Basic over mutual TLS is still Basic", listener: MutualTLS, clientID: "basic", secret: "basic-secret", tls: withCert(good)},
		{name: "the private CA on the TLS listener", listener: TLS, clientID: "basic", secret: "basic-secret", tls: &tokenclient.TLSConfig{CABundlePEM: ca}},
		{name: "no CA bundle", listener: TLS, clientID: "basic", secret: "basic-secret", wantTLS: tokenclient.TLSUntrustedServer},
		{name: "no client certificate", listener: MutualTLS, clientID: "basic", secret: "basic-secret", tls: &tokenclient.TLSConfig{CABundlePEM: ca}, wantTLS: tokenclient.TLSClientCertificateRequired},
		{name: "a certificate from an untrusted CA", listener: MutualTLS, clientID: "mtls", style: tokenclient.AuthTLSClient, tls: withCert(rogue), wantTLS: tokenclient.TLSClientCertificateRejected},
		{name: "an unregistered self-signed certificate", listener: MutualTLS, clientID: "self", style: tokenclient.AuthSelfSignedTLSClient, tls: withCert(unregistered), wantTLS: tokenclient.TLSClientCertificateRejected},
		{name: "the wrong subject", listener: MutualTLS, clientID: "mtls", style: tokenclient.AuthTLSClient, tls: withCert(wrongCN), wantCode: "invalid_client", reason: RejectCertificate},
		{name: "another client's self-signed certificate", listener: MutualTLS, clientID: "self", style: tokenclient.AuthSelfSignedTLSClient, tls: withCert(good), wantCode: "invalid_client", reason: RejectCertificate},
		{name: "tls_client_auth on the listener that asks for no certificate", listener: TLS, clientID: "mtls", style: tokenclient.AuthTLSClient, tls: withCert(good), wantCode: "invalid_client", reason: RejectNoCertificate, notRequested: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := tokenclient.Request{TokenURL: a.Endpoints(tc.listener).Token, GrantType: "client_credentials", ClientID: tc.clientID,
				ClientSecret: tc.secret, AuthStyle: tc.style, TLS: tc.tls}
			before := a.Stats()
			_, err := tokenclient.New().Exchange(context.Background(), r)
			switch {
			case tc.wantTLS != "":
				var te *tokenclient.TransportError
				if !errors.As(err, &te) || te.TLSFailure != tc.wantTLS {
					t.Fatalf("error = %v, want TLS failure %s", err, tc.wantTLS)
				}
				if tc.listener == MutualTLS {
					// The server logs the handshake after sending its alert,
					// so the client can have its error first.
					eventually(t, "the refused handshake to be counted", func() bool {
						return a.Stats().TLSHandshakeErrors > before.TLSHandshakeErrors
					})
				}
			case tc.wantCode != "":
				var ve *tokenclient.Error
				if !errors.As(err, &ve) || ve.Code != tc.wantCode || ve.ClientCertificateNotRequested != tc.notRequested {
					t.Fatalf("error = %v, want %s (not requested: %v)", err, tc.wantCode, tc.notRequested)
				}
				if a.Stats().Rejections[tc.reason] <= before.Rejections[tc.reason] {
					t.Errorf("rejection %s not counted", tc.reason)
				}
			default:
				if err != nil {
					t.Fatalf("Exchange: %v", err)
				}
			}
		})
	}
}

func TestAuthServerMetadata(t *testing.T) {
	t.Parallel()
	a := newAuthServer(t, AuthServerOptions{IssuerPath: "/tenant1"})
	c := tokenclient.New()
	md, err := c.Discover(context.Background(), a.Issuer(), nil)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	ep, mt := a.Endpoints(Plain), a.Endpoints(MutualTLS)
	if md.Issuer != a.Issuer() || md.TokenEndpoint != ep.Token || md.RevocationEndpoint != ep.Revocation ||
		md.DeviceAuthorizationEndpoint != ep.DeviceAuthorization || md.Endpoint("token_endpoint", true) != mt.Token ||
		!md.SupportsAuthMethod("private_key_jwt") || !md.SupportsAuthMethod("tls_client_auth") || !md.SupportsPKCE("S256") {
		t.Errorf("metadata = %+v", md)
	}
	if !strings.HasSuffix(md.Source, "/.well-known/oauth-authorization-server/tenant1") {
		t.Errorf("came from %s, want RFC 8414's inserted path", md.Source)
	}

	a.SetMetadata(MetadataOptions{NoOAuth: true})
	md, err = c.Discover(context.Background(), a.Issuer(), nil)
	if err != nil || !strings.HasSuffix(md.Source, "/tenant1/.well-known/openid-configuration") {
		t.Fatalf("OpenID fallback: %+v, %v", md, err)
	}

	a.SetMetadata(MetadataOptions{Issuer: "https://impostor.example/tenant1"})
	_, err = c.Discover(context.Background(), a.Issuer(), nil)
	var me *tokenclient.MetadataError
	if !errors.As(err, &me) || !me.IssuerMismatch || tokenclient.Classify(err) != tokenclient.FailureMetadata {
		t.Fatalf("mismatched issuer: %v", err)
	}

	a.SetMetadata(MetadataOptions{NoOAuth: true, NoOpenID: true})
	if _, err = c.Discover(context.Background(), a.Issuer(), nil); err == nil {
		t.Fatal("no documents: no error")
	}

	// An issuer on the TLS listener needs the CA bundle.
	b := newAuthServer(t, AuthServerOptions{IssuerListener: TLS})
	if _, err := c.Discover(context.Background(), b.Issuer(), nil); tokenclient.Classify(err) != tokenclient.FailureTLS {
		t.Errorf("without the CA bundle: %v", err)
	}
	md, err = c.Discover(context.Background(), b.Issuer(), &tokenclient.TLSConfig{CABundlePEM: b.ServerCA().CertPEM()})
	if err != nil || md.TokenEndpoint != b.Endpoints(TLS).Token {
		t.Errorf("with the CA bundle: %+v, %v", md, err)
	}
	if a.Stats().MetadataRequests < 4 {
		t.Errorf("metadata requests = %d", a.Stats().MetadataRequests)
	}
}

func TestAuthServerRevocation(t *testing.T) {
	t.Parallel()
	a := newAuthServer(t, AuthServerOptions{})
	k := genKey(t, keys.ES256)
	pub := newPublished(t, &keys.Set{Current: k})
	for _, cl := range []AuthClient{
		{ID: "app", Method: MethodClientSecretBasic, Secret: "app-secret"},
		{ID: "other", Method: MethodClientSecretPost, Secret: "other-secret"},
		{ID: "svc", Method: MethodPrivateKeyJWT, JWKSURL: pub.URL},
	} {
		if err := a.AddClient(cl); err != nil {
			t.Fatal(err)
		}
	}
	c := tokenclient.New()
	ep := a.Endpoints(Plain)
	auth := tokenclient.Request{TokenURL: ep.Token, ClientID: "app", ClientSecret: "app-secret"}
	rt, _ := a.IssueRefreshToken("app")
	refresh := auth
	refresh.GrantType, refresh.Params = "refresh_token", map[string]string{"refresh_token": rt}
	tok, err := c.Exchange(context.Background(), refresh)
	if err != nil {
		t.Fatal(err)
	}

	if err := c.Revoke(context.Background(), auth, tokenclient.Revocation{Endpoint: ep.Revocation, Token: rt, TokenTypeHint: tokenclient.HintRefreshToken}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if a.RefreshTokenValid(rt) || a.AccessTokenValid(tok.AccessToken) {
		t.Error("the refresh token, or the access token of its grant, is still valid")
	}
	if _, err := c.Exchange(context.Background(), refresh); vendorCode(err) != "invalid_grant" {
		t.Errorf("refresh after revocation: %v, want invalid_grant", err)
	}

	tests := []struct {
		name     string
		auth     tokenclient.Request
		rv       tokenclient.Revocation
		wantErr  string
		wantKind string
	}{
		{name: "an unknown token is a success", auth: auth, rv: tokenclient.Revocation{Token: "never-issued"}, wantKind: "unknown"},
		{name: "an access token", auth: auth, rv: tokenclient.Revocation{Token: "{access}", TokenTypeHint: tokenclient.HintAccessToken}, wantKind: "access_token"},
		{name: "private_key_jwt, audience the token endpoint", auth: tokenclient.Request{TokenURL: ep.Token, ClientID: "svc", AuthStyle: tokenclient.AuthPrivateKeyJWT, Signer: k.Signer(), KeyID: k.ID()},
			rv: tokenclient.Revocation{Token: "{svc-refresh}", TokenTypeHint: tokenclient.HintRefreshToken}, wantKind: "refresh_token"},
		{name: "another client's token", auth: tokenclient.Request{ClientID: "other", ClientSecret: "other-secret", AuthStyle: tokenclient.AuthBody}, rv: tokenclient.Revocation{Token: "{refresh}"}, wantErr: "invalid_request"},
		{name: "an unknown hint", auth: auth, rv: tokenclient.Revocation{Token: "{refresh}", TokenTypeHint: "id_token"}, wantErr: "unsupported_token_type"},
		{name: "a wrong secret", auth: tokenclient.Request{ClientID: "app", ClientSecret: "nope"}, rv: tokenclient.Revocation{Token: "{refresh}"}, wantErr: "invalid_client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rv := tc.rv
			rv.Endpoint = ep.Revocation
			switch rv.Token {
			case "{access}":
				at, err := c.Exchange(context.Background(), tokenclient.Request{TokenURL: ep.Token, GrantType: "client_credentials", ClientID: "app", ClientSecret: "app-secret"})
				if err != nil {
					t.Fatal(err)
				}
				rv.Token = at.AccessToken
				defer func() {
					if a.AccessTokenValid(at.AccessToken) {
						t.Error("the revoked access token is still valid")
					}
				}()
			case "{refresh}":
				rv.Token, _ = a.IssueRefreshToken("app")
			case "{svc-refresh}":
				rv.Token, _ = a.IssueRefreshToken("svc")
			}
			err := c.Revoke(context.Background(), tc.auth, rv)
			if tc.wantErr != "" {
				if vendorCode(err) != tc.wantErr {
					t.Fatalf("error = %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			found := false
			for _, r := range a.Revocations() {
				found = found || (r.Kind == tc.wantKind && r.ClientID == tc.auth.ClientID && r.Hint == rv.TokenTypeHint)
			}
			if !found {
				t.Errorf("no %s revocation by %s recorded: %+v", tc.wantKind, tc.auth.ClientID, a.Revocations())
			}
		})
	}
}

func TestAuthServerDeviceFlow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// answer is what the user does after the first poll: approve,
		// deny, or nothing (and the code expires).
		answer     string
		wantStatus tokenclient.DeviceStatus
	}{
		{name: "approved", answer: "approve", wantStatus: tokenclient.DeviceApproved},
		{name: "denied", answer: "deny", wantStatus: tokenclient.DeviceDenied},
		{name: "expired", answer: "", wantStatus: tokenclient.DeviceExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newAuthServer(t, AuthServerOptions{DeviceInterval: 5 * time.Second, DeviceLifetime: 10 * time.Minute})
			if err := a.AddClient(AuthClient{ID: "tv", Method: MethodNone, Scopes: []string{"offline_access", "read"}}); err != nil {
				t.Fatal(err)
			}
			c := tokenclient.New()
			ep := a.Endpoints(Plain)
			auth := tokenclient.Request{TokenURL: ep.Token, ClientID: "tv", AuthStyle: tokenclient.AuthNone, Scopes: []string{"offline_access"}}
			d, err := c.StartDeviceAuthorization(context.Background(), auth, ep.DeviceAuthorization)
			if err != nil {
				t.Fatalf("StartDeviceAuthorization: %v", err)
			}
			if d.Interval != 5*time.Second || d.ExpiresIn != 10*time.Minute || d.VerificationURI != ep.Verification ||
				d.VerificationURIComplete != ep.Verification+"?user_code="+d.UserCode || len(d.UserCode) != 9 {
				t.Errorf("authorization = %v", d)
			}
			poll := func() *tokenclient.DevicePoll {
				t.Helper()
				p, err := c.PollDeviceToken(context.Background(), auth, d.DeviceCode, d.Interval)
				if err != nil {
					t.Fatalf("PollDeviceToken: %v", err)
				}
				d.Interval = p.Interval
				return p
			}
			if p := poll(); p.Status != tokenclient.DevicePending {
				t.Fatalf("first poll: %s", p.Status)
			}
			// Again at once: too fast.
			if p := poll(); p.Status != tokenclient.DeviceSlowDown || p.Interval != 10*time.Second {
				t.Fatalf("second poll: %s, interval %s", p.Status, p.Interval)
			}
			// Waiting only the old 5 s is still too fast: the interval grew.
			a.Advance(5 * time.Second)
			if p := poll(); p.Status != tokenclient.DeviceSlowDown || p.Interval != 15*time.Second {
				t.Fatalf("poll at the old interval: %s, interval %s", p.Status, p.Interval)
			}
			a.Advance(d.Interval)
			if p := poll(); p.Status != tokenclient.DevicePending {
				t.Fatalf("poll at the new interval: %s", p.Status)
			}
			switch tc.answer {
			case "approve":
				if err := a.ApproveDevice(strings.ToLower(strings.ReplaceAll(d.UserCode, "-", ""))); err != nil {
					t.Fatal(err)
				}
			case "deny":
				if err := a.DenyDevice(d.UserCode); err != nil {
					t.Fatal(err)
				}
			default:
				a.Advance(10 * time.Minute)
				if err := a.ApproveDevice(d.UserCode); err == nil {
					t.Error("approving an expired code succeeded")
				}
			}
			a.Advance(d.Interval)
			p := poll()
			if p.Status != tc.wantStatus {
				t.Fatalf("final poll: %s, want %s (%v)", p.Status, tc.wantStatus, p.Answer)
			}
			if p.Status == tokenclient.DeviceApproved {
				if p.Token.RefreshToken == "" || !a.AccessTokenValid(p.Token.AccessToken) || p.Token.Scope != "offline_access" {
					t.Errorf("token = %v", p.Token)
				}
				a.Advance(d.Interval)
				if _, err := c.PollDeviceToken(context.Background(), auth, d.DeviceCode, d.Interval); vendorCode(err) != "invalid_grant" {
					t.Errorf("a used device code: %v, want invalid_grant", err)
				}
			}
			st := a.Stats()
			if st.SlowDowns != 2 || st.DevicePolls < 5 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestAuthServerVerificationPage(t *testing.T) {
	t.Parallel()
	a := newAuthServer(t, AuthServerOptions{})
	if err := a.AddClient(AuthClient{ID: "tv", Method: MethodNone}); err != nil {
		t.Fatal(err)
	}
	ep := a.Endpoints(Plain)
	d, err := tokenclient.New().StartDeviceAuthorization(context.Background(), tokenclient.Request{ClientID: "tv", AuthStyle: tokenclient.AuthNone}, ep.DeviceAuthorization)
	if err != nil {
		t.Fatal(err)
	}
	page := call{method: http.MethodGet, path: "/device", query: url.Values{"user_code": {d.UserCode}}}.do(t, a.URL(Plain))
	if page.status != 200 || !strings.Contains(string(page.body), `value="`+d.UserCode+`"`) {
		t.Fatalf("page: %d %s", page.status, page.body)
	}
	xss := call{method: http.MethodGet, path: "/device", query: url.Values{"user_code": {`"><script>`}}}.do(t, a.URL(Plain))
	if strings.Contains(string(xss.body), "<script>") {
		t.Error("the page does not escape the user code")
	}
	res := call{path: "/device", form: form("user_code", d.UserCode, "action", "approve")}.do(t, a.URL(Plain))
	if res.status != 200 || !strings.Contains(string(res.body), "Approved") {
		t.Fatalf("approve: %d %s", res.status, res.body)
	}
	again := call{path: "/device", form: form("user_code", d.UserCode, "action", "deny")}.do(t, a.URL(Plain))
	if again.status != 400 || !strings.Contains(string(again.body), "already approved") {
		t.Errorf("deny after approve: %d %s", again.status, again.body)
	}
	p, err := tokenclient.New().PollDeviceToken(context.Background(), tokenclient.Request{TokenURL: ep.Token, ClientID: "tv", AuthStyle: tokenclient.AuthNone}, d.DeviceCode, 0)
	if err != nil || p.Status != tokenclient.DeviceApproved {
		t.Errorf("poll after the page approved: %+v, %v", p, err)
	}
}

// TestAuthServerStrict checks the refusals every endpoint shares.
func TestAuthServerStrict(t *testing.T) {
	t.Parallel()
	a := newAuthServer(t, AuthServerOptions{})
	for _, c := range []AuthClient{
		{ID: "basic", Secret: "basic-secret"},
		{ID: "post", Method: MethodClientSecretPost, Secret: "post-secret"},
		{ID: "public", Method: MethodNone},
		{ID: "cc-only", Secret: "cc-secret", Grants: []string{"client_credentials"}},
		{ID: "scoped", Secret: "scoped-secret", Scopes: []string{"read"}},
	} {
		if err := a.AddClient(c); err != nil {
			t.Fatal(err)
		}
	}
	basic := map[string]string{"Authorization": basicRFC6749("basic", "basic-secret")}
	tests := []struct {
		name   string
		c      call
		want   want
		reason string
	}{
		{name: "Basic", c: call{path: "/token", form: form("grant_type", "client_credentials"), header: basic}, want: want{status: 200}},
		{name: "post", c: call{path: "/token", form: form("grant_type", "client_credentials", "client_id", "post", "client_secret", "post-secret")}, want: want{status: 200}},
		{name: "GET", c: call{method: http.MethodGet, path: "/token"}, want: want{status: 405}},
		{name: "a JSON body", c: call{path: "/token", json: map[string]string{"grant_type": "client_credentials"}, header: basic}, want: want{status: 400, code: "invalid_request", desc: []string{"Content-Type must be"}}},
		{name: "a parameter twice", c: call{path: "/token", raw: "grant_type=client_credentials&grant_type=client_credentials", contentType: "application/x-www-form-urlencoded", header: basic}, want: want{status: 400, code: "invalid_request", desc: []string{"must not be repeated"}}},
		{name: "an assertion in the query", c: call{path: "/token", query: url.Values{"client_assertion": {"x"}}, form: form("grant_type", "client_credentials"), header: basic}, want: want{status: 400, code: "invalid_request", desc: []string{"not the query string"}}},
		{name: "a Basic client posting its secret", c: call{path: "/token", form: form("grant_type", "client_credentials", "client_id", "basic", "client_secret", "basic-secret")}, want: want{status: 401, code: "invalid_client", desc: []string{"registered for client_secret_basic"}}, reason: RejectMethod},
		{name: "a post client using Basic", c: call{path: "/token", form: form("grant_type", "client_credentials"), header: map[string]string{"Authorization": basicRFC6749("post", "post-secret")}}, want: want{status: 401, code: "invalid_client"}, reason: RejectMethod},
		{name: "a wrong secret", c: call{path: "/token", form: form("grant_type", "client_credentials"), header: map[string]string{"Authorization": basicRFC6749("basic", "nope")}}, want: want{status: 401, code: "invalid_client"}, reason: RejectSecret},
		{name: "a confidential client sending only its id", c: call{path: "/token", form: form("grant_type", "client_credentials", "client_id", "basic")}, want: want{status: 401, code: "invalid_client"}, reason: RejectMethod},
		{name: "nothing at all", c: call{path: "/token", form: form("grant_type", "client_credentials")}, want: want{status: 401, code: "invalid_client"}, reason: RejectUnknownClient},
		{name: "a public client with a secret", c: call{path: "/token", form: form("grant_type", "client_credentials", "client_id", "public", "client_secret", "x")}, want: want{status: 401, code: "invalid_client"}, reason: RejectSecret},
		{name: "an unknown grant", c: call{path: "/token", form: form("grant_type", "password"), header: basic}, want: want{status: 400, code: "unsupported_grant_type"}},
		{name: "a grant the client may not use", c: call{path: "/token", form: form("grant_type", "refresh_token", "refresh_token", "x"), header: map[string]string{"Authorization": basicRFC6749("cc-only", "cc-secret")}}, want: want{status: 400, code: "unauthorized_client"}},
		{name: "a scope the client may not have", c: call{path: "/token", form: form("grant_type", "client_credentials", "scope", "write"), header: map[string]string{"Authorization": basicRFC6749("scoped", "scoped-secret")}}, want: want{status: 400, code: "invalid_scope"}},
		{name: "an unknown refresh token", c: call{path: "/token", form: form("grant_type", "refresh_token", "refresh_token", "x"), header: basic}, want: want{status: 400, code: "invalid_grant"}},
		{name: "revocation without a token", c: call{path: "/revoke", form: form(), header: basic}, want: want{status: 400, code: "invalid_request", desc: []string{"token"}}},
		{name: "device authorization for a client without the grant", c: call{path: "/device_authorization", form: form(), header: map[string]string{"Authorization": basicRFC6749("cc-only", "cc-secret")}}, want: want{status: 400, code: "unauthorized_client"}},
		{name: "a device poll without a code", c: call{path: "/token", form: form("grant_type", grantDeviceCode, "client_id", "public")}, want: want{status: 400, code: "invalid_request"}},
		{name: "an unknown path", c: call{method: http.MethodGet, path: "/nope"}, want: want{status: 404}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			before := a.Stats().Rejections[tc.reason]
			res := tc.c.do(t, a.URL(Plain))
			tc.want.check(t, res)
			if res.status == 200 && res.header.Get("Cache-Control") != "no-store" {
				t.Error("a token response without Cache-Control: no-store")
			}
			if tc.reason != "" && a.Stats().Rejections[tc.reason] <= before {
				t.Errorf("rejection %s not counted", tc.reason)
			}
		})
	}
	t.Cleanup(func() {
		if n := len(a.Requests()); n < len(tests)-2 {
			t.Errorf("%d requests recorded", n)
		}
	})
}

func TestAuthServerRefreshRotation(t *testing.T) {
	t.Parallel()
	a := newAuthServer(t, AuthServerOptions{})
	if err := a.AddClient(AuthClient{ID: "app", Secret: "app-secret", RotateRefreshTokens: true}); err != nil {
		t.Fatal(err)
	}
	rt, _ := a.IssueRefreshToken("app")
	c := tokenclient.New()
	r := tokenclient.Request{TokenURL: a.Endpoints(Plain).Token, GrantType: "refresh_token", ClientID: "app", ClientSecret: "app-secret",
		Params: map[string]string{"refresh_token": rt}}
	tok, err := c.Exchange(context.Background(), r)
	if err != nil || tok.RefreshToken == "" || tok.RefreshToken == rt {
		t.Fatalf("rotation: %v, %v", tok, err)
	}
	if a.RefreshTokenValid(rt) || !a.RefreshTokenValid(tok.RefreshToken) {
		t.Error("the old refresh token lives or the new one does not")
	}
}

func TestAuthServerOptionsAndClients(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]AuthServerOptions{
		"issuer path without a slash":   {IssuerPath: "tenant"},
		"issuer path ending in a slash": {IssuerPath: "/tenant/"},
		"a fractional interval":         {DeviceInterval: 1500 * time.Millisecond},
	} {
		if a, err := NewAuthServer(o); err == nil {
			_ = a.Close()
			t.Errorf("%s: no error", name)
		}
	}
	a := newAuthServer(t, AuthServerOptions{})
	self, _ := SelfSignedClient("s")
	for name, c := range map[string]AuthClient{
		"no id":                             {Secret: "x"},
		"basic without a secret":            {ID: "a"},
		"private_key_jwt without keys":      {ID: "a", Method: MethodPrivateKeyJWT},
		"private_key_jwt with both":         {ID: "a", Method: MethodPrivateKeyJWT, JWKSURL: "http://x", JWKS: `{"keys":[]}`},
		"an inline JWKS with a private key": {ID: "a", Method: MethodPrivateKeyJWT, JWKS: `{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"c"}]}`},
		"self-signed without a certificate": {ID: "a", Method: MethodSelfSignedTLSClientAuth},
		"an unknown method":                 {ID: "a", Method: "magic"},
		"tls_client_auth with a secret":     {ID: "a", Method: MethodTLSClientAuth, Secret: "x"},
	} {
		if err := a.AddClient(c); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := a.AddClient(AuthClient{ID: "ok", Method: MethodSelfSignedTLSClientAuth, SelfSignedCertPEM: self.CertPEM}); err != nil {
		t.Error(err)
	}
	if _, err := a.IssueRefreshToken("nobody"); err == nil {
		t.Error("a refresh token for an unknown client")
	}
}

// TestAuthServerJWKSWithPrivateKey checks that a published JWKS with a
// private member is refused, as the plugin must never publish one.
func TestAuthServerJWKSWithPrivateKey(t *testing.T) {
	t.Parallel()
	a := newAuthServer(t, AuthServerOptions{})
	k := genKey(t, keys.ES256)
	leaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		priv := jose.JSONWebKey{Key: k.Signer(), KeyID: k.ID(), Algorithm: "ES256", Use: "sig"}
		out, _ := priv.MarshalJSON()
		_, _ = w.Write([]byte(`{"keys":[` + string(out) + `]}`))
	}))
	t.Cleanup(leaky.Close)
	if err := a.AddClient(AuthClient{ID: "svc", Method: MethodPrivateKeyJWT, JWKSURL: leaky.URL}); err != nil {
		t.Fatal(err)
	}
	_, err := tokenclient.New().Exchange(context.Background(), pkjwt(a.Endpoints(Plain).Token, "svc", k))
	if vendorCode(err) != "invalid_client" || !strings.Contains(err.Error(), "private member") || a.Stats().Rejections[RejectJWKS] != 1 {
		t.Errorf("error = %v, rejections %v", err, a.Stats().Rejections)
	}
}
