package tokenclient

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// hmacSecret is long enough for HS256 (32 bytes) but not HS384.
const hmacSecret = "0123456789abcdef0123456789abcdef+/é"

var (
	rsaOnce sync.Once
	rsaTest *rsa.PrivateKey
)

// testRSAKey is one 2048-bit key for every test: generating is slow.
func testRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		var err error
		if rsaTest, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaTest
}

// opaqueSigner hides the key's type, as a KMS-backed crypto.Signer would.
type opaqueSigner struct{ crypto.Signer }

// failingSigner is a crypto.Signer whose Sign fails with a message that
// must not reach ours.
type failingSigner struct{ crypto.Signer }

func (failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("HSM says: key material 5ecr3t-k3y unavailable")
}

// decodeAssertion verifies an assertion with key and returns its headers
// and claims.
func decodeAssertion(t *testing.T, assertion string, alg jose.SignatureAlgorithm, key any) (jose.Header, jwt.Claims, map[string]any) {
	t.Helper()
	tok, err := jwt.ParseSigned(assertion, []jose.SignatureAlgorithm{alg})
	if err != nil {
		t.Fatalf("the assertion does not parse as a %s JWT: %v", alg, err)
	}
	var c jwt.Claims
	var all map[string]any
	if err := tok.Claims(key, &c, &all); err != nil {
		t.Fatalf("the assertion's signature does not verify: %v", err)
	}
	return tok.Headers[0], c, all
}

// TestClientAssertion checks private_key_jwt and client_secret_jwt as a
// strict server would: the body, the JWS header, the signature and every
// claim.
func TestClientAssertion(t *testing.T) {
	t.Parallel()
	rk := testRSAKey(t)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ek384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edk, _ := ed25519.GenerateKey(rand.Reader)
	ekThumb, _ := Thumbprint(&ek.PublicKey)
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

	tests := []struct {
		name string
		req  Request
		// path is appended to the vendor URL for TokenURL.
		path    string
		wantAlg jose.SignatureAlgorithm
		// verify is the key the signature verifies with.
		verify  any
		wantKID string // "-" means no kid header
		wantAud string // "{url}" is replaced by the vendor's URL
		wantTTL time.Duration
	}{
		{
			name: "RS256 from an RSA key, kid given",
			req:  Request{AuthStyle: AuthPrivateKeyJWT, Signer: rk, KeyID: "rsa-1"},
			path: "/oauth2/v1/token", wantAlg: jose.RS256, verify: &rk.PublicKey, wantKID: "rsa-1",
			wantAud: "{url}/oauth2/v1/token", wantTTL: time.Minute,
		},
		{
			name: "ES256 from a P-256 key, kid is the thumbprint",
			req:  Request{AuthStyle: AuthPrivateKeyJWT, Signer: ek},
			path: "/token", wantAlg: jose.ES256, verify: &ek.PublicKey, wantKID: ekThumb,
			wantAud: "{url}/token", wantTTL: time.Minute,
		},
		{
			name: "ES256 through an opaque crypto.Signer",
			req:  Request{AuthStyle: AuthPrivateKeyJWT, Signer: opaqueSigner{ek}, KeyID: "kms"},
			path: "/token", wantAlg: jose.ES256, verify: &ek.PublicKey, wantKID: "kms",
			wantAud: "{url}/token", wantTTL: time.Minute,
		},
		{
			name: "PS256 asked of an RSA key through an opaque signer",
			req:  Request{AuthStyle: AuthPrivateKeyJWT, Signer: opaqueSigner{rk}, SigningAlgorithm: "PS256", KeyID: "k"},
			path: "/token", wantAlg: jose.PS256, verify: &rk.PublicKey, wantKID: "k",
			wantAud: "{url}/token", wantTTL: time.Minute,
		},
		{
			name: "ES384 from a P-384 key",
			req:  Request{AuthStyle: AuthPrivateKeyJWT, Signer: ek384, KeyID: "k"},
			path: "/token", wantAlg: jose.ES384, verify: &ek384.PublicKey, wantKID: "k",
			wantAud: "{url}/token", wantTTL: time.Minute,
		},
		{
			name: "EdDSA",
			req:  Request{AuthStyle: AuthPrivateKeyJWT, Signer: edk, KeyID: "k"},
			path: "/token", wantAlg: jose.EdDSA, verify: edk.Public(), wantKID: "k",
			wantAud: "{url}/token", wantTTL: time.Minute,
		},
		{
			name: "the audience drops the token URL's query",
			req:  Request{AuthStyle: AuthPrivateKeyJWT, Signer: ek, KeyID: "k"},
			path: "/token?tenant=a", wantAlg: jose.ES256, verify: &ek.PublicKey, wantKID: "k",
			wantAud: "{url}/token", wantTTL: time.Minute,
		},
		{
			name: "a configured audience and lifetime",
			req: Request{AuthStyle: AuthPrivateKeyJWT, Signer: ek, KeyID: "k",
				Audience: "https://issuer.example/", AssertionLifetime: 5 * time.Minute},
			path: "/token", wantAlg: jose.ES256, verify: &ek.PublicKey, wantKID: "k",
			wantAud: "https://issuer.example/", wantTTL: 5 * time.Minute,
		},
		{
			name: "client_secret_jwt is HS256 keyed by the secret, no kid",
			req:  Request{AuthStyle: AuthClientSecretJWT, ClientSecret: hmacSecret},
			path: "/token", wantAlg: jose.HS256, verify: []byte(hmacSecret), wantKID: "-",
			wantAud: "{url}/token", wantTTL: time.Minute,
		},
		{
			name: "client_secret_jwt HS512 with a long secret",
			req:  Request{AuthStyle: AuthClientSecretJWT, ClientSecret: strings.Repeat("s", 64), SigningAlgorithm: "HS512"},
			path: "/token", wantAlg: jose.HS512, verify: []byte(strings.Repeat("s", 64)), wantKID: "-",
			wantAud: "{url}/token", wantTTL: time.Minute,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := newFakeVendor(t, replyJSON(http.StatusOK, okBody))
			c := New()
			c.nowFunc = func() time.Time { return now }
			r := tc.req
			r.TokenURL = v.URL + tc.path
			r.GrantType = "client_credentials"
			r.ClientID = testClientID
			r.Scopes = []string{"read"}
			if _, err := c.Exchange(context.Background(), r); err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			got := v.requests()[0]
			if h := got.Header.Get("Authorization"); h != "" {
				t.Errorf("Authorization = %q, want none", h)
			}
			form, err := url.ParseQuery(string(got.Body))
			if err != nil {
				t.Fatal(err)
			}
			wantKeys := []string{"client_assertion", "client_assertion_type", "client_id", "grant_type", "scope"}
			if len(form) != len(wantKeys) {
				t.Errorf("body has %v, want exactly %v", form, wantKeys)
			}
			if form.Get("client_assertion_type") != ClientAssertionType || form.Get("client_id") != testClientID ||
				form.Has("client_secret") || form.Get("grant_type") != "client_credentials" {
				t.Errorf("body = %v", form)
			}
			hdr, claims, all := decodeAssertion(t, form.Get("client_assertion"), tc.wantAlg, tc.verify)
			switch {
			case tc.wantKID == "-" && hdr.KeyID != "":
				t.Errorf("kid = %q, want none", hdr.KeyID)
			case tc.wantKID != "-" && hdr.KeyID != tc.wantKID:
				t.Errorf("kid = %q, want %q", hdr.KeyID, tc.wantKID)
			}
			if typ, _ := hdr.ExtraHeaders["typ"].(string); typ != "JWT" {
				t.Errorf("typ = %q, want JWT", typ)
			}
			aud := strings.ReplaceAll(tc.wantAud, "{url}", v.URL)
			if claims.Issuer != testClientID || claims.Subject != testClientID {
				t.Errorf("iss, sub = %q, %q; want the client id", claims.Issuer, claims.Subject)
			}
			if len(claims.Audience) != 1 || claims.Audience[0] != aud {
				t.Errorf("aud = %v, want %q", claims.Audience, aud)
			}
			if _, isString := all["aud"].(string); !isString {
				t.Errorf("aud is %T, want a single string (some servers take no array)", all["aud"])
			}
			if !claims.IssuedAt.Time().Equal(now) || !claims.NotBefore.Time().Equal(now) || !claims.Expiry.Time().Equal(now.Add(tc.wantTTL)) {
				t.Errorf("iat, nbf, exp = %s, %s, %s; want %s and %s later", claims.IssuedAt.Time(), claims.NotBefore.Time(), claims.Expiry.Time(), now, tc.wantTTL)
			}
			if len(claims.ID) < 22 {
				t.Errorf("jti = %q, want 128 random bits", claims.ID)
			}
		})
	}
}

// TestClientAssertionUnique checks that every assertion has its own jti,
// as servers that detect replay require.
func TestClientAssertionUnique(t *testing.T) {
	t.Parallel()
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	v := newFakeVendor(t, replyJSON(http.StatusOK, okBody))
	c := New()
	seen := map[string]bool{}
	for range 20 {
		if _, err := c.Exchange(context.Background(), Request{TokenURL: v.URL, GrantType: "client_credentials", ClientID: "cid", AuthStyle: AuthPrivateKeyJWT, Signer: ek}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range v.requests() {
		form, _ := url.ParseQuery(string(r.Body))
		_, claims, _ := decodeAssertion(t, form.Get("client_assertion"), jose.ES256, &ek.PublicKey)
		if seen[claims.ID] {
			t.Fatalf("jti %q repeated", claims.ID)
		}
		seen[claims.ID] = true
	}
}

// TestClientAuthBadRequest checks Requests whose client authentication
// cannot be made: a plain error before anything is sent, naming what to
// fix, never a secret.
func TestClientAuthBadRequest(t *testing.T) {
	t.Parallel()
	rk := testRSAKey(t)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ek224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	v := newFakeVendor(t, replyJSON(http.StatusOK, okBody))
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"private_key_jwt without a signer", Request{AuthStyle: AuthPrivateKeyJWT, ClientID: "c"}, "needs a signing key"},
		{"private_key_jwt without a client id", Request{AuthStyle: AuthPrivateKeyJWT, Signer: ek}, "needs a client id"},
		{"an algorithm the key cannot sign", Request{AuthStyle: AuthPrivateKeyJWT, ClientID: "c", Signer: ek, SigningAlgorithm: "RS256"}, `cannot sign "RS256"`},
		{"RSA asked for ES256", Request{AuthStyle: AuthPrivateKeyJWT, ClientID: "c", Signer: rk, SigningAlgorithm: "ES256"}, `cannot sign "ES256"`},
		{"alg none", Request{AuthStyle: AuthPrivateKeyJWT, ClientID: "c", Signer: rk, SigningAlgorithm: "none"}, `cannot sign "none"`},
		{"a P-224 key", Request{AuthStyle: AuthPrivateKeyJWT, ClientID: "c", Signer: ek224}, "curve JWS does not use"},
		{"a 1024-bit RSA key", Request{AuthStyle: AuthPrivateKeyJWT, ClientID: "c", Signer: small}, "has 1024 bits"},
		{"a signer that fails", Request{AuthStyle: AuthPrivateKeyJWT, ClientID: "c", Signer: failingSigner{ek}, KeyID: "k"}, "the signer failed"},
		{"client_secret_jwt without a secret", Request{AuthStyle: AuthClientSecretJWT, ClientID: "c"}, "needs a client secret"},
		{"client_secret_jwt with a short secret", Request{AuthStyle: AuthClientSecretJWT, ClientID: "c", ClientSecret: testClientSecret}, "at least 32 bytes"},
		{"client_secret_jwt HS384 with a 35-byte secret", Request{AuthStyle: AuthClientSecretJWT, ClientID: "c", ClientSecret: hmacSecret, SigningAlgorithm: "HS384"}, "at least 48 bytes"},
		{"client_secret_jwt RS256", Request{AuthStyle: AuthClientSecretJWT, ClientID: "c", ClientSecret: hmacSecret, SigningAlgorithm: "RS256"}, "HS256, HS384 or HS512"},
		{"an assertion in a JSON body", Request{AuthStyle: AuthPrivateKeyJWT, ClientID: "c", Signer: ek, BodyFormat: FormatJSON}, "takes a form body"},
		{"a lifetime over the maximum", Request{AuthStyle: AuthPrivateKeyJWT, ClientID: "c", Signer: ek, AssertionLifetime: time.Hour}, "not between 0 and 10m0s"},
		{"params set the assertion", Request{AuthStyle: AuthPrivateKeyJWT, ClientID: "c", Signer: ek, Params: map[string]string{"client_assertion": testAPIKey}}, `cannot set "client_assertion"`},
		{"an Authorization header beside the assertion", Request{AuthStyle: AuthPrivateKeyJWT, ClientID: "c", Signer: ek, Headers: map[string]string{"Authorization": "Bearer " + testAPIKey}}, "second client authentication"},
		{"none with a secret", Request{AuthStyle: AuthNone, ClientID: "c", ClientSecret: testClientSecret}, "sends no client secret"},
		{"none without a client id", Request{AuthStyle: AuthNone}, "needs a client id"},
		{"tls_client_auth without a certificate", Request{AuthStyle: AuthTLSClient, ClientID: "c"}, "needs a client certificate and key"},
		{"tls_client_auth with a secret", Request{AuthStyle: AuthTLSClient, ClientID: "c", ClientSecret: testClientSecret, TLS: &TLSConfig{ClientCertificatePEM: "x", ClientKeyPEM: "y"}}, "sends no client secret"},
		{"self_signed_tls_client_auth without a client id", Request{AuthStyle: AuthSelfSignedTLSClient}, "needs a client id"},
		{"response field refresh_token", Request{ClientID: "c", ResponseFields: []string{"instance_url", "refresh_token"}}, "refresh_token cannot be kept"},
		{"empty response field", Request{ClientID: "c", ResponseFields: []string{""}}, "empty name"},
		{"too many response fields", Request{ClientID: "c", ResponseFields: make([]string, MaxResponseFields+1)}, "at most 32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := tc.req
			r.TokenURL, r.GrantType = v.URL+"/token", "client_credentials"
			_, err := New().Exchange(context.Background(), r)
			if err == nil {
				t.Fatal("Exchange succeeded, want an error")
			}
			if f := Classify(err); f != FailureRequest {
				t.Errorf("Classify = %q, want %q (%v)", f, FailureRequest, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			for _, s := range []string{testClientSecret, testAPIKey, hmacSecret, "5ecr3t-k3y"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q holds a secret", err)
				}
			}
		})
	}
	t.Cleanup(func() {
		if n := len(v.requests()); n != 0 {
			t.Errorf("vendor got %d requests from bad Requests, want 0", n)
		}
	})
}

// TestNoAssertionInErrors sends assertions to vendors that echo them, in
// part or whole, and checks no error shows them, nor the secret that keys
// an HS256 one.
func TestNoAssertionInErrors(t *testing.T) {
	t.Parallel()
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	echo := func(part func(a string) string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			form, _ := url.ParseQuery(string(body))
			out, _ := json.Marshal(map[string]string{"error": "invalid_client", "error_description": "bad assertion " + part(form.Get("client_assertion"))})
			replyJSON(http.StatusUnauthorized, string(out))(w, r)
		}
	}
	dot := func(a string, i int) string { return strings.Split(a, ".")[i] }
	tests := []struct {
		name  string
		reply http.HandlerFunc
		style AuthStyle
	}{
		{"whole assertion", echo(func(a string) string { return a }), AuthPrivateKeyJWT},
		{"signature only", echo(func(a string) string { return dot(a, 2) }), AuthPrivateKeyJWT},
		{"header and payload", echo(func(a string) string { return dot(a, 0) + "." + dot(a, 1) }), AuthPrivateKeyJWT},
		{"URL-escaped", echo(url.QueryEscape), AuthPrivateKeyJWT},
		{"the HS256 assertion", echo(func(a string) string { return a }), AuthClientSecretJWT},
		{"the HS256 secret", echo(func(string) string { return hmacSecret }), AuthClientSecretJWT},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var sent string
			v := newFakeVendor(t, func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				form, _ := url.ParseQuery(string(body))
				sent = form.Get("client_assertion")
				r.Body = io.NopCloser(strings.NewReader(string(body)))
				tc.reply(w, r)
			})
			r := Request{TokenURL: v.URL, GrantType: "client_credentials", ClientID: "cid", AuthStyle: tc.style, Signer: ek, KeyID: "k"}
			if tc.style == AuthClientSecretJWT {
				r.Signer, r.ClientSecret = nil, hmacSecret
			}
			_, err := New().Exchange(context.Background(), r)
			if err == nil {
				t.Fatal("no error")
			}
			if Classify(err) != FailureClient {
				t.Errorf("Classify = %q, want client", Classify(err))
			}
			msg := fmt.Sprintf("%v %+v %#v", err, err, err)
			for _, s := range []string{sent, dot(sent, 2), dot(sent, 0) + "." + dot(sent, 1), hmacSecret} {
				if strings.Contains(msg, s) {
					t.Errorf("error shows %q: %s", s, msg)
				}
			}
			if !strings.Contains(err.Error(), redacted) {
				t.Errorf("error %q does not show %s", err, redacted)
			}
		})
	}
}

func TestRequestStringNewFields(t *testing.T) {
	t.Parallel()
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	const key = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"
	r := Request{
		TokenURL: "https://v.example/token", GrantType: "client_credentials", ClientID: "c",
		AuthStyle: AuthPrivateKeyJWT, Signer: ek, KeyID: "kid-1", ResponseFields: []string{"instance_url"},
		TLS: &TLSConfig{ClientCertificatePEM: "CERT", ClientKeyPEM: key, CABundlePEM: "CA"},
	}
	d, _ := ek.Bytes()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		got := fmt.Sprintf(verb, r)
		// The private scalar as bytes and in decimal (what big.Int's
		// String, ecdsa.PrivateKey.D's, would print).
		for _, s := range []string{"MIGHAgEAMBMG", fmt.Sprint(d), new(big.Int).SetBytes(d).String()} {
			if strings.Contains(got, s) {
				t.Errorf("%s of a Request = %q holds key material", verb, got)
			}
		}
		for _, s := range []string{"kid-1", "instance_url", "client certificate", "CA bundle"} {
			if !strings.Contains(got, s) {
				t.Errorf("%s of a Request = %q lacks %q", verb, got, s)
			}
		}
	}
	// Secrets covers the client key.
	found := false
	for _, s := range r.Secrets() {
		found = found || s == key
	}
	if !found {
		t.Error("Secrets does not list the client key")
	}
}
