package keys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// MaxJWKSBytes bounds a JWKS ParseJWKS reads.
const MaxJWKSBytes = 64 << 10

// jwk is the public JWK of a key, with kid, alg and use=sig.
func (k *Key) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.public, KeyID: k.id, Algorithm: string(k.alg), Use: "sig"}
}

// JWK is the key's public JWK (RFC 7517), for showing an operator one key.
func (k *Key) JWK() ([]byte, error) {
	out, err := k.jwk().MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("key %q cannot be written as a JWK", k.id)
	}
	return out, nil
}

// JWKS is the JSON Web Key Set (RFC 7517 section 5) of the keys published
// at now: public halves only, by construction (each JWK is made from the
// public key alone).
func (s Set) JWKS(now time.Time) ([]byte, error) {
	set := struct {
		Keys []jose.JSONWebKey `json:"keys"`
	}{Keys: []jose.JSONWebKey{}}
	for _, k := range s.Published(now) {
		set.Keys = append(set.Keys, k.jwk())
	}
	out, err := json.Marshal(set)
	if err != nil {
		return nil, errors.New("the key set cannot be written as a JWKS")
	}
	return out, nil
}

// PublicKey is one key of a parsed JWKS.
type PublicKey struct {
	ID        string
	Algorithm Algorithm
	Use       string
	Key       any // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// ParseJWKS reads a JWKS of public signing keys, as Set.JWKS writes and
// as a vendor would read it. It refuses private or symmetric keys, keys
// of types this package does not sign with, and sets over MaxJWKSBytes.
func ParseJWKS(data []byte) ([]PublicKey, error) {
	if len(data) > MaxJWKSBytes {
		return nil, fmt.Errorf("the JWKS is larger than %d KiB", MaxJWKSBytes>>10)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, errors.New("not a JWKS")
	}
	out := make([]PublicKey, 0, len(set.Keys))
	for i, k := range set.Keys {
		if !k.IsPublic() {
			return nil, fmt.Errorf("key %d of the JWKS holds private material", i)
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			return nil, fmt.Errorf("key %d of the JWKS is a %T, not a signing public key", i, k.Key)
		}
		if err := checkKeyType(k.Key); err != nil {
			return nil, fmt.Errorf("key %d of the JWKS: %w", i, err)
		}
		out = append(out, PublicKey{ID: k.KeyID, Algorithm: Algorithm(k.Algorithm), Use: k.Use, Key: k.Key})
	}
	return out, nil
}
