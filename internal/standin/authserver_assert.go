package standin

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// jwksCache is a client's JWKS as last fetched.
type jwksCache struct {
	mu        sync.Mutex
	keys      []jose.JSONWebKey
	loaded    bool
	fetchedAt time.Time
}

var (
	asymmetricAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.ES384, jose.EdDSA}
	hmacAlgs       = []jose.SignatureAlgorithm{jose.HS256}
)

// verifyAssertion checks a client_assertion (RFC 7523 sections 2.2 and 3)
// and returns its client and the method it used.
func (a *AuthServer) verifyAssertion(req *endpointRequest) (*authClientRecord, string, *oauthError) {
	tok, c, e := a.parseAssertion(req)
	if e != nil {
		return nil, "", e
	}
	hdr := tok.Headers[0]
	method := MethodPrivateKeyJWT
	allowed := asymmetricAlgs
	if c.Method == MethodClientSecretJWT {
		method, allowed = MethodClientSecretJWT, hmacAlgs
	}
	if strings.HasPrefix(hdr.Algorithm, "HS") {
		method = MethodClientSecretJWT
	}
	if method != c.Method {
		return c, method, nil // authenticate reports the wrong method
	}
	if len(c.Algorithms) > 0 {
		allowed = nil
		for _, s := range c.Algorithms {
			allowed = append(allowed, jose.SignatureAlgorithm(s))
		}
	}
	if !algIn(allowed, hdr.Algorithm) {
		return nil, "", a.badAssertion(RejectAlgorithm, "the assertion is signed with %s; this client's are %v", hdr.Algorithm, allowed)
	}
	claims, e := a.assertionClaims(tok, c, method)
	if e != nil {
		return nil, "", e
	}
	now := a.now()
	if e := a.checkAssertionClaims(c, req, claims, now); e != nil {
		return nil, "", e
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, exp := range a.jtis {
		if now.After(exp.Add(assertionLeeway)) {
			delete(a.jtis, k)
		}
	}
	key := c.ID + "\x00" + claims.ID
	if _, seen := a.jtis[key]; seen {
		a.stats.Rejections[RejectReplay]++
		return nil, "", errClient(false, "", "the assertion's jti was already used: an assertion is good for one request")
	}
	a.jtis[key] = claims.Expiry.Time()
	a.stats.AssertionsVerified++
	return c, method, nil
}

// badAssertion counts a rejected assertion under reason and returns the
// invalid_client error to answer with.
func (a *AuthServer) badAssertion(reason, format string, args ...any) *oauthError {
	return a.reject(reason, errClient(false, "", fmt.Sprintf(format, args...)))
}

// parseAssertion parses a request's client_assertion, unverified, and
// finds the client it is issued by.
func (a *AuthServer) parseAssertion(req *endpointRequest) (*jwt.JSONWebToken, *authClientRecord, *oauthError) {
	bad := func(reason, format string, args ...any) (*jwt.JSONWebToken, *authClientRecord, *oauthError) {
		return nil, nil, a.badAssertion(reason, format, args...)
	}
	if t := req.param("client_assertion_type"); t != clientAssertionTypeJWT {
		return bad(RejectAssertionFormat, "client_assertion_type must be %s", clientAssertionTypeJWT)
	}
	raw := req.param("client_assertion")
	if raw == "" {
		return bad(RejectAssertionFormat, "client_assertion is missing")
	}
	// Parsed with every algorithm we know, so that a wrong one is told
	// apart from a malformed token; the client's own list is checked next.
	all := append(append([]jose.SignatureAlgorithm{}, asymmetricAlgs...), jose.HS256, jose.HS384, jose.HS512, jose.RS384, jose.RS512, jose.ES512, jose.PS384, jose.PS512)
	tok, err := jwt.ParseSigned(raw, all)
	if err != nil {
		if strings.Count(raw, ".") == 2 {
			return bad(RejectAlgorithm, "client_assertion is not signed with a supported algorithm (alg none is never accepted)")
		}
		return bad(RejectAssertionFormat, "client_assertion is not a compact JWS")
	}
	if len(tok.Headers) != 1 {
		return bad(RejectAssertionFormat, "client_assertion must have exactly one signature")
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return bad(RejectAssertionFormat, "the client_assertion's claims are not a JSON object of the registered types")
	}
	a.mu.Lock()
	c := a.clients[unverified.Issuer]
	a.mu.Unlock()
	if c == nil {
		return bad(RejectUnknownClient, "the assertion's issuer is not a registered client")
	}
	if id := req.param("client_id"); req.has("client_id") && id != c.ID {
		return bad(RejectIssuer, "client_id does not match the assertion's issuer")
	}
	return tok, c, nil
}

// assertionClaims verifies the assertion's signature, with the client
// secret for client_secret_jwt or else a key of the client's JWKS, and
// returns its claims.
func (a *AuthServer) assertionClaims(tok *jwt.JSONWebToken, c *authClientRecord, method string) (jwt.Claims, *oauthError) {
	var claims jwt.Claims
	if method == MethodClientSecretJWT {
		if err := tok.Claims([]byte(c.Secret), &claims); err != nil {
			return claims, a.badAssertion(RejectSignature, "the assertion's signature does not verify with the client secret")
		}
		return claims, nil
	}
	hdr := tok.Headers[0]
	key, e := a.assertionKey(c, hdr)
	if e != nil {
		return claims, e
	}
	if err := tok.Claims(key, &claims); err == nil {
		return claims, nil
	}
	// The key of that kid may have been replaced: fetch once more.
	if !a.refetch(c) {
		return claims, a.badAssertion(RejectSignature, "the assertion's signature does not verify with key %q of the client's JWKS", hdr.KeyID)
	}
	if key, e = a.assertionKey(c, hdr); e != nil {
		return claims, e
	}
	if err := tok.Claims(key, &claims); err != nil {
		return claims, a.badAssertion(RejectSignature, "the assertion's signature does not verify with key %q of the client's JWKS", hdr.KeyID)
	}
	return claims, nil
}

// checkAssertionClaims checks a verified assertion's registered claims at
// now; the jti is checked for replay by the caller.
func (a *AuthServer) checkAssertionClaims(c *authClientRecord, req *endpointRequest, claims jwt.Claims, now time.Time) *oauthError {
	switch {
	case claims.Issuer != c.ID || claims.Subject != c.ID:
		return a.badAssertion(RejectIssuer, "the assertion's iss and sub must both be the client_id")
	case !a.audienceOK(c, req, claims.Audience):
		return a.badAssertion(RejectAudience, "the assertion's aud %v is not this server (want the token endpoint URL or the issuer)", []string(claims.Audience))
	case claims.Expiry == nil:
		return a.badAssertion(RejectExpired, "the assertion has no exp")
	case !now.Before(claims.Expiry.Time().Add(assertionLeeway)):
		return a.badAssertion(RejectExpired, "the assertion expired at %s", claims.Expiry.Time().UTC().Format(time.RFC3339))
	case claims.IssuedAt == nil:
		return a.badAssertion(RejectLifetime, "the assertion has no iat")
	case claims.IssuedAt.Time().After(now.Add(assertionLeeway)):
		return a.badAssertion(RejectNotYetValid, "the assertion's iat is in the future")
	case claims.NotBefore != nil && claims.NotBefore.Time().After(now.Add(assertionLeeway)):
		return a.badAssertion(RejectNotYetValid, "the assertion's nbf is in the future")
	case claims.Expiry.Time().Sub(claims.IssuedAt.Time()) > a.opts.MaxAssertionLifetime:
		return a.badAssertion(RejectLifetime, "the assertion lives %s; at most %s is accepted", claims.Expiry.Time().Sub(claims.IssuedAt.Time()), a.opts.MaxAssertionLifetime)
	case claims.ID == "":
		return a.badAssertion(RejectMissingJTI, "the assertion has no jti")
	}
	return nil
}

func algIn(list []jose.SignatureAlgorithm, alg string) bool {
	for _, a := range list {
		if string(a) == alg {
			return true
		}
	}
	return false
}

// audienceOK checks aud against the client's audiences, or by default the
// issuer, any listener's token endpoint, and the endpoint called.
func (a *AuthServer) audienceOK(c *authClientRecord, req *endpointRequest, aud jwt.Audience) bool {
	want := c.Audiences
	if len(want) == 0 {
		want = []string{a.Issuer(), req.called}
		for _, l := range []Listener{Plain, TLS, MutualTLS} {
			want = append(want, a.Endpoints(l).Token)
		}
	}
	for _, w := range want {
		if aud.Contains(w) {
			return true
		}
	}
	return false
}

// assertionKey finds the verification key for an assertion header in the
// client's JWKS, fetching it first or again for a kid it lacks.
func (a *AuthServer) assertionKey(c *authClientRecord, hdr jose.Header) (any, *oauthError) {
	pick := func() (any, bool) {
		c.jwks.mu.Lock()
		defer c.jwks.mu.Unlock()
		for _, k := range c.jwks.keys {
			if hdr.KeyID != "" && k.KeyID != hdr.KeyID {
				continue
			}
			if k.Algorithm != "" && k.Algorithm != hdr.Algorithm {
				continue
			}
			if k.Use != "" && k.Use != "sig" {
				continue
			}
			if !keyFitsAlg(k.Key, hdr.Algorithm) {
				continue
			}
			return k.Key, true
		}
		return nil, false
	}
	c.jwks.mu.Lock()
	loaded := c.jwks.loaded
	c.jwks.mu.Unlock()
	if !loaded {
		if e := a.fetchJWKS(c); e != nil {
			return nil, e
		}
	}
	if k, ok := pick(); ok {
		return k, nil
	}
	if a.refetch(c) {
		if k, ok := pick(); ok {
			return k, nil
		}
	}
	return nil, a.reject(RejectUnknownKey, errClient(false, "", fmt.Sprintf("the client's JWKS has no %s key with kid %q", hdr.Algorithm, hdr.KeyID)))
}

// refetch fetches the client's JWKS again if it has a URL and the last
// fetch is older than JWKSRefetchInterval, and reports whether it did.
func (a *AuthServer) refetch(c *authClientRecord) bool {
	if c.JWKSURL == "" {
		return false
	}
	c.jwks.mu.Lock()
	recent := c.jwks.loaded && time.Since(c.jwks.fetchedAt) < a.opts.JWKSRefetchInterval
	c.jwks.mu.Unlock()
	if recent {
		return false
	}
	return a.fetchJWKS(c) == nil
}

// fetchJWKS fetches and replaces the client's JWKS. A fetch that fails
// keeps the last keys.
func (a *AuthServer) fetchJWKS(c *authClientRecord) *oauthError {
	if c.JWKSURL == "" {
		return a.reject(RejectJWKS, errClient(false, "", "the client has no JWKS"))
	}
	a.mu.Lock()
	a.stats.JWKSFetches++
	a.mu.Unlock()
	fail := func(format string, args ...any) *oauthError {
		return a.reject(RejectJWKS, errClient(false, "", "fetching the client's JWKS failed: "+fmt.Sprintf(format, args...)))
	}
	req, err := http.NewRequest(http.MethodGet, c.JWKSURL, nil)
	if err != nil {
		return fail("bad URL")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := a.jwksHTTP.Do(req)
	if err != nil {
		return fail("%v", err)
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBody+1))
	switch {
	case err != nil:
		return fail("%v", err)
	case resp.StatusCode != http.StatusOK:
		return fail("HTTP %d", resp.StatusCode)
	case len(body) > maxJWKSBody:
		return fail("larger than %d bytes", maxJWKSBody)
	}
	keys, err := parseClientJWKS(body)
	if err != nil {
		return fail("%v", err)
	}
	c.jwks.mu.Lock()
	c.jwks.keys, c.jwks.loaded, c.jwks.fetchedAt = keys, true, time.Now()
	c.jwks.mu.Unlock()
	return nil
}

// parseClientJWKS reads a client's JWKS strictly: public signing keys
// only. A JWKS with private material in it is refused outright, as a
// server should refuse a client that publishes its private key.
func parseClientJWKS(body []byte) ([]jose.JSONWebKey, error) {
	var raw struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil || raw.Keys == nil {
		return nil, errors.New("not a JWKS")
	}
	for i, k := range raw.Keys {
		for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"} {
			if _, ok := k[m]; ok {
				return nil, fmt.Errorf("key %d has the private member %q", i, m)
			}
		}
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, errors.New("a key does not parse")
	}
	for i, k := range set.Keys {
		if !k.IsPublic() {
			return nil, fmt.Errorf("key %d is not a public key", i)
		}
	}
	return set.Keys, nil
}

// keyFitsAlg reports whether a public key can verify alg.
func keyFitsAlg(key any, alg string) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		return (alg == "ES256" && k.Curve.Params().BitSize == 256) || (alg == "ES384" && k.Curve.Params().BitSize == 384) || (alg == "ES512" && k.Curve.Params().BitSize == 521)
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// parsePEMCertificates reads the CERTIFICATE blocks of a PEM text.
func parsePEMCertificates(s string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
