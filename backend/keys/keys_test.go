package keys

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// One RSA key per size is enough for every test: generating is slow.
var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func testRSA(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey
}

func pemOf(t testing.TB, typ string, der []byte) string {
	t.Helper()
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func pkcs8(t testing.TB, k any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(t, "PRIVATE KEY", der)
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		alg     Algorithm
		bits    int
		wantErr string
		check   func(t *testing.T, pub crypto.PublicKey)
	}{
		{alg: ES256, check: func(t *testing.T, pub crypto.PublicKey) {
			if k, ok := pub.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
				t.Errorf("public key %T, want P-256", pub)
			}
		}},
		{alg: ES384, check: func(t *testing.T, pub crypto.PublicKey) {
			if k, ok := pub.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P384() {
				t.Errorf("public key %T, want P-384", pub)
			}
		}},
		{alg: EdDSA, check: func(t *testing.T, pub crypto.PublicKey) {
			if _, ok := pub.(ed25519.PublicKey); !ok {
				t.Errorf("public key %T, want Ed25519", pub)
			}
		}},
		{alg: RS256, check: func(t *testing.T, pub crypto.PublicKey) {
			if k, ok := pub.(*rsa.PublicKey); !ok || k.N.BitLen() != DefaultRSABits {
				t.Errorf("public key %T, want %d-bit RSA", pub, DefaultRSABits)
			}
		}},
		{alg: RS256, bits: 3072, check: func(t *testing.T, pub crypto.PublicKey) {
			if k, ok := pub.(*rsa.PublicKey); !ok || k.N.BitLen() != 3072 {
				t.Errorf("public key %T, want 3072-bit RSA", pub)
			}
		}},
		{alg: RS256, bits: 1024, wantErr: "2048, 3072 or 4096 bits, not 1024"},
		{alg: RS256, bits: 2047, wantErr: "not 2047"},
		{alg: ES256, bits: 256, wantErr: "fixed size"},
		{alg: "HS256", wantErr: `unknown key algorithm "HS256"`},
		{alg: "", wantErr: `unknown key algorithm ""`},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%d", tc.alg, tc.bits), func(t *testing.T) {
			t.Parallel()
			k, err := Generate(tc.alg, tc.bits, t0)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, k.Public())
			if k.Algorithm() != tc.alg || k.Signer() == nil || k.Imported() || !k.Created().Equal(t0) {
				t.Errorf("key = %v", k)
			}
			want, _ := Thumbprint(k.Public())
			if k.ID() != want || len(k.ID()) != 43 {
				t.Errorf("ID = %q, want the thumbprint %q", k.ID(), want)
			}
			verifySigns(t, k)
		})
	}
}

// verifySigns signs a JWT with the key and verifies it with the key's
// public JWK from the Set's JWKS, as a vendor would.
func verifySigns(t *testing.T, k *Key) {
	t.Helper()
	set := Set{Current: k}
	jwks, err := set.JWKS(t0)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Algorithm()), Key: k.Signer()},
		(&jose.SignerOptions{}).WithHeader("kid", k.ID()))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(jwt.Claims{Subject: "x"}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	var ks jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &ks); err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(k.Algorithm())})
	if err != nil {
		t.Fatal(err)
	}
	found := ks.Key(parsed.Headers[0].KeyID)
	if len(found) != 1 {
		t.Fatalf("JWKS has %d keys with kid %q", len(found), parsed.Headers[0].KeyID)
	}
	var c jwt.Claims
	if err := parsed.Claims(found[0].Key, &c); err != nil || c.Subject != "x" {
		t.Fatalf("verifying with the published key: %v", err)
	}
}

// TestThumbprintRFC7638 checks the kid derivation against RFC 7638
// section 3.1's example.
func TestThumbprintRFC7638(t *testing.T) {
	t.Parallel()
	n, _ := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
	got, err := Thumbprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Errorf("Thumbprint = %q, want %q", got, want)
	}
}

func TestImport(t *testing.T) {
	t.Parallel()
	rk := testRSA(t)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ek384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ek521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	_, edk, _ := ed25519.GenerateKey(rand.Reader)
	xk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	sec1, _ := x509.MarshalECPrivateKey(ek)
	ecParams := pemOf(t, "EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07})
	pubDER, _ := x509.MarshalPKIXPublicKey(&ek.PublicKey)
	thumbRSA, _ := Thumbprint(&rk.PublicKey)

	tests := []struct {
		name    string
		pem     string
		alg     Algorithm
		kid     string
		wantAlg Algorithm
		wantKID string
		wantErr string
	}{
		{name: "PKCS #8 RSA", pem: pkcs8(t, rk), wantAlg: RS256, wantKID: thumbRSA},
		{name: "PKCS #1 RSA", pem: pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)), wantAlg: RS256, wantKID: thumbRSA},
		{name: "RSA as PS256", pem: pkcs8(t, rk), alg: PS256, wantAlg: PS256},
		{name: "SEC 1 EC", pem: pemOf(t, "EC PRIVATE KEY", sec1), wantAlg: ES256},
		{name: "openssl ecparam output with EC PARAMETERS first", pem: ecParams + pemOf(t, "EC PRIVATE KEY", sec1), wantAlg: ES256},
		{name: "PKCS #8 EC P-256", pem: pkcs8(t, ek), wantAlg: ES256},
		{name: "PKCS #8 EC P-384", pem: pkcs8(t, ek384), wantAlg: ES384},
		{name: "PKCS #8 Ed25519", pem: pkcs8(t, edk), wantAlg: EdDSA},
		{name: "a given kid is kept", pem: pkcs8(t, ek), kid: "vendor-kid-1", wantAlg: ES256, wantKID: "vendor-kid-1"},
		{name: "key beside its certificate", pem: pemOf(t, "CERTIFICATE", []byte{1, 2, 3}) + pkcs8(t, ek), wantAlg: ES256},
		{name: "P-521 refused", pem: pkcs8(t, ek521), wantErr: "not on P-256 or P-384"},
		{name: "1024-bit RSA refused", pem: pkcs8(t, small), wantErr: "has 1024 bits"},
		{name: "X25519 refused", pem: pkcs8(t, xk), wantErr: "cannot sign"},
		{name: "wrong algorithm for the key", pem: pkcs8(t, ek), alg: RS256, wantErr: "EC P-256 key cannot sign RS256"},
		{name: "RSA cannot ES256", pem: pkcs8(t, rk), alg: ES256, wantErr: "RSA key cannot sign ES256"},
		{name: "encrypted PKCS #8", pem: pemOf(t, "ENCRYPTED PRIVATE KEY", []byte{1}), wantErr: "encrypted"},
		{name: "legacy encrypted PEM", pem: "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n", wantErr: "encrypted"},
		{name: "public key", pem: pemOf(t, "PUBLIC KEY", pubDER), wantErr: "holds a public key"},
		{name: "two keys", pem: pkcs8(t, ek) + pkcs8(t, ek384), wantErr: "more than one private key"},
		{name: "not PEM", pem: "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", wantErr: "not a PEM private key"},
		{name: "empty", pem: "", wantErr: "not a PEM private key"},
		{name: "garbage in a PRIVATE KEY block", pem: pemOf(t, "PRIVATE KEY", []byte("not DER at all")), wantErr: "PRIVATE KEY block does not parse"},
		{name: "SEC 1 label on PKCS #8", pem: strings.ReplaceAll(pkcs8(t, ek), "PRIVATE KEY", "EC PRIVATE KEY"), wantErr: "EC PRIVATE KEY block does not parse"},
		{name: "other block", pem: pemOf(t, "OPENSSH PRIVATE KEY", []byte{1}), wantErr: `"OPENSSH PRIVATE KEY" block`},
		{name: "kid with a newline", pem: pkcs8(t, ek), kid: "a\nb", wantErr: "printable ASCII"},
		{name: "kid too long", pem: pkcs8(t, ek), kid: strings.Repeat("k", MaxKeyIDLen+1), wantErr: "at most"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, err := Import(tc.pem, tc.alg, tc.kid, t0)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				// No error quotes the PEM's body.
				for _, line := range strings.Split(tc.pem, "\n") {
					if len(line) > 16 && !strings.HasPrefix(line, "-----") && strings.Contains(err.Error(), line) {
						t.Errorf("error %q quotes the PEM", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Algorithm() != tc.wantAlg || !k.Imported() {
				t.Errorf("key = %v, want %s imported", k, tc.wantAlg)
			}
			if tc.wantKID != "" && k.ID() != tc.wantKID {
				t.Errorf("ID = %q, want %q", k.ID(), tc.wantKID)
			}
			verifySigns(t, k)
		})
	}
}

// privateStrings are the forms in which a key's private half could leak:
// its PKCS #8 DER in base64 (standard and URL), and its secret numbers as
// JWK members would write them.
func privateStrings(t *testing.T, k *Key) []string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k.Signer())
	if err != nil {
		t.Fatal(err)
	}
	// The DER's first bytes are a fixed header; its private part follows
	// (for EC and Ed25519, the scalar or seed is checked below instead).
	var out []string
	if std := base64.StdEncoding.EncodeToString(der); len(std) >= 120 {
		out = append(out, std[40:80], base64.RawURLEncoding.EncodeToString(der)[40:80])
	}
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	switch p := k.Signer().(type) {
	case *rsa.PrivateKey:
		out = append(out, b64(p.D.Bytes()), b64(p.Primes[0].Bytes()), p.D.String()[:30])
	case *ecdsa.PrivateKey:
		raw, _ := p.Bytes()
		out = append(out, b64(raw), fmt.Sprint(raw))
	case ed25519.PrivateKey:
		out = append(out, b64(p.Seed()), fmt.Sprint([]byte(p.Seed())))
	}
	return out
}

// TestNoPrivateMaterial checks every way a key or set is shown: printing
// by any verb, encoding a Key directly, the JWKS and one JWK.
func TestNoPrivateMaterial(t *testing.T) {
	t.Parallel()
	var all []*Key
	for _, alg := range []Algorithm{ES256, ES384, EdDSA} {
		k, err := Generate(alg, 0, t0)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, k)
	}
	rk, err := Import(pkcs8(t, testRSA(t)), "", "", t0)
	if err != nil {
		t.Fatal(err)
	}
	all = append(all, rk)
	for _, k := range all {
		t.Run(string(k.Algorithm()), func(t *testing.T) {
			t.Parallel()
			next, _ := Generate(ES256, 0, t0)
			set := &Set{Current: k}
			if err := set.Stage(next); err != nil {
				t.Fatal(err)
			}
			jwks, err := set.JWKS(t0)
			if err != nil {
				t.Fatal(err)
			}
			jwk, err := k.JWK()
			if err != nil {
				t.Fatal(err)
			}
			// A Key is opaque to encoding/json, which is what this
			// checks: it fails once an exported field or a marshaler
			// shows key material.
			direct, _ := json.Marshal(k) //nolint:staticcheck // SA9005: see above
			holder := struct{ K *Key }{k}
			shown := map[string]string{
				"JWKS":          string(jwks),
				"JWK":           string(jwk),
				"json of a Key": string(direct),
			}
			for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
				shown[verb+" of the Key"] = fmt.Sprintf(verb, k)
				shown[verb+" of the Set"] = fmt.Sprintf(verb, set)
				shown[verb+" of a Set value"] = fmt.Sprintf(verb, *set)
				shown[verb+" of a struct holding the Key"] = fmt.Sprintf(verb, holder)
			}
			secrets := append(privateStrings(t, k), privateStrings(t, next)...)
			for what, s := range shown {
				for _, secret := range secrets {
					if strings.Contains(s, secret) {
						t.Errorf("%s holds private material: %s", what, s)
					}
				}
			}
			for _, member := range []string{`"d"`, `"p"`, `"q"`, `"dp"`, `"dq"`, `"qi"`, `"k"`} {
				if strings.Contains(string(jwks), member) || strings.Contains(string(jwk), member) {
					t.Errorf("JWK output has the private member %s: %s", member, jwks)
				}
			}
			if string(direct) != "{}" {
				t.Errorf("json.Marshal of a Key = %s, want {}", direct)
			}
			if !strings.Contains(shown["%v of the Key"], k.ID()) {
				t.Errorf("String does not name the key: %s", shown["%v of the Key"])
			}
		})
	}
}

func TestRotate(t *testing.T) {
	t.Parallel()
	gen := func() *Key {
		k, err := Generate(ES256, 0, t0)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	a, b, c := gen(), gen(), gen()
	set := &Set{Current: a}
	ids := func(at time.Time) []string {
		var out []string
		for _, k := range set.Published(at) {
			out = append(out, k.ID())
		}
		return out
	}
	same := func(got []string, want ...*Key) bool {
		if len(got) != len(want) {
			return false
		}
		for i, k := range want {
			if got[i] != k.ID() {
				return false
			}
		}
		return true
	}

	// Rotate to b with an hour's overlap: a stays published, public only.
	if err := set.Rotate(b, t0, time.Hour); err != nil {
		t.Fatal(err)
	}
	if set.Current != b || len(set.Previous) != 1 || set.Previous[0].Signer() != nil || set.Previous[0].ID() != a.ID() {
		t.Fatalf("after rotation: %v", set)
	}
	if a.Signer() == nil {
		t.Error("rotation changed the caller's Key")
	}
	if got := ids(t0.Add(59 * time.Minute)); !same(got, b, a) {
		t.Errorf("published in the overlap = %v", got)
	}
	if got := ids(t0.Add(time.Hour)); !same(got, b) {
		t.Errorf("published after the overlap = %v", got)
	}
	if !set.NextRetirement().Equal(t0.Add(time.Hour)) {
		t.Errorf("NextRetirement = %s", set.NextRetirement())
	}

	// Stage c: published before it signs; Rotate(nil) promotes it.
	if err := set.Stage(c); err != nil {
		t.Fatal(err)
	}
	if got := ids(t0); !same(got, b, c, a) {
		t.Errorf("published with a staged key = %v", got)
	}
	if err := set.Rotate(nil, t0.Add(30*time.Minute), 0); err != nil {
		t.Fatal(err)
	}
	if set.Current != c || set.Next != nil {
		t.Fatalf("staged key not promoted: %v", set)
	}
	// Zero overlap retires b at once; a is still in its overlap.
	if got := ids(t0.Add(30 * time.Minute)); !same(got, c, a) {
		t.Errorf("published after a zero-overlap rotation = %v", got)
	}
	if set.Prune(t0.Add(30*time.Minute)) || !set.Prune(t0.Add(2*time.Hour)) || len(set.Previous) != 0 {
		t.Errorf("Prune: %v", set)
	}

	for name, fn := range map[string]func() error{
		"nothing to rotate to": func() error { return (&Set{Current: gen()}).Rotate(nil, t0, 0) },
		"negative overlap":     func() error { return (&Set{Current: gen()}).Rotate(gen(), t0, -time.Second) },
		"public-only key":      func() error { return (&Set{Current: gen()}).Rotate(gen().publicOnly(), t0, 0) },
		"same key again":       func() error { s := &Set{Current: c}; return s.Rotate(c, t0, time.Hour) },
		"stage the current":    func() error { s := &Set{Current: c}; return s.Stage(c) },
		"stage public-only":    func() error { return (&Set{}).Stage(gen().publicOnly()) },
	} {
		if err := fn(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}

	// Rotating in a loop keeps at most MaxPrevious previous keys.
	loop := &Set{Current: gen()}
	for i := range MaxPrevious + 3 {
		if err := loop.Rotate(gen(), t0.Add(time.Duration(i)*time.Second), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if len(loop.Previous) != MaxPrevious {
		t.Errorf("%d previous keys, want %d", len(loop.Previous), MaxPrevious)
	}
}

func TestStorableRoundTrip(t *testing.T) {
	t.Parallel()
	cur, _ := Import(pkcs8(t, testRSA(t)), PS256, "my-kid", t0)
	prev, _ := Generate(ES256, 0, t0)
	next, _ := Generate(EdDSA, 0, t0)
	set := &Set{Current: prev}
	if err := set.Rotate(cur, t0, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := set.Stage(next); err != nil {
		t.Fatal(err)
	}
	// Held by value in a stored struct, as a credential entry would.
	type entry struct {
		Name string `json:"name"`
		Keys Set    `json:"keys"`
	}
	raw, err := json.Marshal(entry{Name: "x", Keys: *set})
	if err != nil {
		t.Fatal(err)
	}
	var back entry
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	got := back.Keys
	if got.Current == nil || got.Next == nil || len(got.Previous) != 1 {
		t.Fatalf("round trip lost keys: %v from %s", got, raw)
	}
	for _, pair := range [][2]*Key{{set.Current, got.Current}, {set.Next, got.Next}, {set.Previous[0], got.Previous[0]}} {
		w, g := pair[0], pair[1]
		if g.ID() != w.ID() || g.Algorithm() != w.Algorithm() || !g.Created().Equal(w.Created()) ||
			g.Imported() != w.Imported() || !g.RetireAt().Equal(w.RetireAt()) || (g.Signer() == nil) != (w.Signer() == nil) {
			t.Errorf("key %v came back as %v", w, g)
		}
		if !g.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(w.Public()) {
			t.Errorf("key %s came back with another public key", w.ID())
		}
	}
	a, _ := set.JWKS(t0)
	b, _ := got.JWKS(t0)
	if string(a) != string(b) {
		t.Errorf("JWKS changed across storage:\n%s\n%s", a, b)
	}
	verifySigns(t, got.Current)
	if strings.Contains(string(raw), `"previous":[{"kid":"`+set.Previous[0].ID()+`","alg":"ES256","created":"2026-05-01T12:00:00Z","retire_at":"2026-05-01T14:00:00Z","private_pkcs8"`) {
		t.Error("a previous key was stored with its private key")
	}

	for name, data := range map[string]string{
		"newer schema":     `{"version":2}`,
		"no schema":        `{}`,
		"not JSON":         `nope`,
		"broken private":   `{"version":1,"current":{"kid":"k","alg":"ES256","private_pkcs8":"AAAA"}}`,
		"broken public":    `{"version":1,"previous":[{"kid":"k","alg":"ES256","public_pkix":"AAAA"}]}`,
		"no kid":           `{"version":1,"previous":[{"alg":"ES256"}]}`,
		"wrong stored alg": strings.Replace(string(raw), `"alg":"EdDSA"`, `"alg":"ES256"`, 1),
	} {
		var s Set
		err := json.Unmarshal([]byte(data), &s)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if name == "newer schema" && !strings.Contains(err.Error(), "upgrade the plugin") {
			t.Errorf("newer schema: %v", err)
		}
	}
}

func TestParseJWKS(t *testing.T) {
	t.Parallel()
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	priv, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ek, KeyID: "x", Algorithm: "ES256"}}})
	oct, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "h"}}})
	pub, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &ek.PublicKey, KeyID: "x", Algorithm: "ES256", Use: "sig"}}})
	tests := []struct {
		name, data, wantErr string
		want                int
	}{
		{name: "public", data: string(pub), want: 1},
		{name: "empty set", data: `{"keys":[]}`, want: 0},
		{name: "private key", data: string(priv), wantErr: "private material"},
		{name: "symmetric key", data: string(oct), wantErr: "private material"},
		{name: "not JSON", data: `{`, wantErr: "not a JWKS"},
		{name: "too large", data: `{"keys":[],"x":"` + strings.Repeat("a", MaxJWKSBytes) + `"}`, wantErr: "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseJWKS([]byte(tc.data))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) != tc.want {
				t.Fatalf("got %d keys, %v; want %d", len(got), err, tc.want)
			}
		})
	}
}

// A key staged for a time is published at once and signs from that time
// on; the key it replaces stays published for the overlap counted from
// then, and the stored set keeps all of it.
func TestStagedKeySignsFromItsTime(t *testing.T) {
	t.Parallel()
	a, _ := Generate(ES256, 0, t0)
	b, _ := Generate(ES256, 0, t0)
	c, _ := Generate(ES256, 0, t0)
	d := model.Destination{Endpoints: []string{"https://as.example/token"}, Trust: model.SystemTrust, Audience: "https://as.example/token"}
	b.Bind(d)
	set := &Set{Current: a}
	if err := set.StageFor(b, t0.Add(10*time.Minute), time.Hour, t0); err != nil {
		t.Fatal(err)
	}
	if set.Signing(t0.Add(9*time.Minute)) != a || set.Signing(t0.Add(10*time.Minute)) != b {
		t.Errorf("signing before and at the staged key's time: %v, %v", set.Signing(t0.Add(9*time.Minute)), set.Signing(t0.Add(10*time.Minute)))
	}
	published := func(at time.Time) []string {
		var out []string
		for _, k := range set.Published(at) {
			out = append(out, k.ID())
		}
		return out
	}
	if got := published(t0); len(got) != 2 {
		t.Errorf("the staged key is not published at once: %v", got)
	}
	// Stored and read back, the staged key keeps its time and binding.
	raw, err := set.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var back Set
	if err := back.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	if !back.Next.ActivateAt().Equal(t0.Add(10*time.Minute)) || back.Next.Bound() == nil || !back.Next.Bound().Equal(d) {
		t.Errorf("the stored staged key lost its time or binding: %v %v", back.Next.ActivateAt(), back.Next.Bound())
	}
	// Promoted late, the replaced key's overlap counts from when the
	// staged key began to sign.
	if ok, err := back.Promote(t0.Add(30*time.Minute), false); err != nil || !ok {
		t.Fatalf("Promote = %v, %v", ok, err)
	}
	if back.Current.ID() != b.ID() || back.Next != nil || !back.Previous[0].RetireAt().Equal(t0.Add(70*time.Minute)) {
		t.Errorf("after the promotion: %v, previous retires at %v", back, back.Previous[0].RetireAt())
	}
	// Staging over a key whose time has not come drops it (it never
	// signed); over one whose time came, promotes it first.
	s2 := &Set{Current: a}
	_ = s2.StageFor(b, t0.Add(time.Hour), time.Hour, t0)
	if err := s2.StageFor(c, t0.Add(2*time.Hour), time.Hour, t0.Add(time.Minute)); err != nil || s2.Current != a || s2.Next != c {
		t.Errorf("restaging a key that never signed: %v %v", s2, err)
	}
	if err := s2.StageFor(b2(t), t0.Add(3*time.Hour), time.Hour, t0.Add(2*time.Hour)); err != nil || s2.Current != c {
		t.Errorf("staging after a staged key's time came: %v %v", s2, err)
	}
	if ok, _ := (&Set{Current: a}).Promote(t0, true); ok {
		t.Error("promoted with nothing staged")
	}
}

func b2(t *testing.T) *Key {
	t.Helper()
	k, err := Generate(ES256, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
