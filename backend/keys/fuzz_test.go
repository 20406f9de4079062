package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzJWKS checks the JWKS output two ways. A key made from the fuzzer's
// bytes (a P-256 scalar) is published and read back: one key, the same
// kid, the same public key, no private member. And any JWKS ParseJWKS
// accepts, written again from its public keys and read back, gives the
// same keys, never a private one.
func FuzzJWKS(f *testing.F) {
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	raw, _ := ek.Bytes()
	k, _ := Generate(ES256, 0, time.Unix(0, 0))
	s := Set{Current: k}
	out, _ := s.JWKS(time.Unix(0, 0))
	f.Add(raw, out)
	f.Add(make([]byte, 32), []byte(`{"keys":[]}`))
	f.Add([]byte{1}, []byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}`))
	f.Add([]byte{}, []byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB"}]}`))
	f.Add([]byte{}, []byte(`{"keys":[{"kty":"oct","k":"AAAA"}]}`))
	f.Add([]byte{}, []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`))

	f.Fuzz(func(t *testing.T, scalar, jwks []byte) {
		if priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), scalar); err == nil {
			key, err := newKey(priv, ES256, "", time.Unix(0, 0), true)
			if err != nil {
				t.Fatalf("newKey: %v", err)
			}
			out, err := (Set{Current: key}).JWKS(time.Unix(0, 0))
			if err != nil {
				t.Fatalf("JWKS: %v", err)
			}
			checkPublicOnly(t, out)
			back, err := ParseJWKS(out)
			if err != nil || len(back) != 1 {
				t.Fatalf("ParseJWKS of our own JWKS: %d keys, %v", len(back), err)
			}
			if back[0].ID != key.ID() || back[0].Algorithm != ES256 || back[0].Use != "sig" {
				t.Errorf("read back %+v, want kid %s", back[0], key.ID())
			}
			if !back[0].Key.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
				t.Error("read back another public key")
			}
		}

		keys, err := ParseJWKS(jwks)
		if err != nil {
			return
		}
		set := Set{}
		for i, pk := range keys {
			kid := pk.ID
			if kid == "" || checkKeyID(kid) != nil {
				continue
			}
			alg := pk.Algorithm
			if alg == "" || checkAlgorithm(pk.Key, alg) != nil {
				alg = defaultAlgorithm(pk.Key)
			}
			pub := &Key{id: kid, alg: alg, public: pk.Key, retireAt: time.Unix(int64(i)+10, 0)}
			if checkAlgorithm(pub.public, alg) != nil {
				continue
			}
			set.Previous = append(set.Previous, pub)
		}
		out, err := set.JWKS(time.Unix(0, 0))
		if err != nil {
			t.Fatalf("JWKS of parsed public keys: %v", err)
		}
		checkPublicOnly(t, out)
		again, err := ParseJWKS(out)
		if err != nil {
			t.Fatalf("ParseJWKS of our own output: %v\n%s", err, out)
		}
		if len(again) != len(set.Previous) {
			t.Fatalf("%d keys came back, want %d", len(again), len(set.Previous))
		}
		for i, pk := range again {
			w := set.Previous[i]
			if pk.ID != w.id || pk.Algorithm != w.alg || !pk.Key.(interface{ Equal(crypto.PublicKey) bool }).Equal(w.public) {
				t.Errorf("key %d came back as %+v, want %v", i, pk, w)
			}
		}
	})
}

// checkPublicOnly fails if a JWKS has a private JWK member.
func checkPublicOnly(t *testing.T, jwks []byte) {
	t.Helper()
	var set struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatalf("our JWKS is not JSON: %v", err)
	}
	for _, k := range set.Keys {
		for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"} {
			if _, ok := k[m]; ok {
				t.Fatalf("JWKS has private member %q: %s", m, jwks)
			}
		}
		if use := strings.Trim(string(k["use"]), `"`); use != "sig" {
			t.Errorf("use = %q, want sig", use)
		}
	}
}
