// Package keys holds the signing keys a credential authenticates with by
// private_key_jwt (RFC 7523): generated inside Vault, so that the private
// key never exists anywhere else, or imported once, write-only.
//
// A Set is what a credential stores: the current key, which signs; an
// optional staged next key, published before it signs so that a vendor
// caching the JWKS has it in time; and previous keys, public halves only,
// published for an overlap window after a rotation so that assertions
// signed just before it still verify. The storable form (MarshalJSON)
// holds the private keys and belongs in seal-wrapped storage; the JWKS
// (Set.JWKS) and every String and GoString hold public material only.
package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// Algorithm is a JWS signature algorithm (RFC 7518 section 3.1).
type Algorithm string

// The algorithms a key can have. RS256 and ES256 are what vendors take
// (Okta, Auth0, Entra ID, Keycloak); the others are for imported keys.
const (
	RS256 Algorithm = "RS256"
	PS256 Algorithm = "PS256"
	ES256 Algorithm = "ES256"
	ES384 Algorithm = "ES384"
	EdDSA Algorithm = "EdDSA"
)

// Algorithms lists the algorithms Generate takes.
func Algorithms() []Algorithm { return []Algorithm{RS256, PS256, ES256, ES384, EdDSA} }

// RSA key sizes Generate takes; DefaultRSABits when none is given.
const (
	DefaultRSABits = 2048
	MinRSABits     = 2048
	MaxRSABits     = 4096
)

// MaxKeyIDLen bounds a given kid; a thumbprint is 43 characters.
const MaxKeyIDLen = 128

// Key is one signing key. A current or staged key holds its private half;
// a previous key only its public half. Key's fields are unexported and it
// has no MarshalJSON, so encoding one directly writes nothing; its String
// and GoString never show private material.
type Key struct {
	id       string
	alg      Algorithm
	created  time.Time
	imported bool
	signer   crypto.Signer // nil for a public-only key
	public   crypto.PublicKey
	// retireAt is when a previous key stops being published.
	retireAt time.Time
	// activateAt is when a staged key starts to sign, and overlap how
	// long the key it replaces stays published after that; zero for a
	// key staged to be promoted by hand.
	activateAt time.Time
	overlap    time.Duration
	// bound is where the key may sign client assertions for: the
	// endpoints, who may answer there and the audience it was born or
	// imported for; nil for a key stored by an older release.
	bound *model.Destination
}

// Bound is where the key may sign for, or nil when it was stored without
// (by an older release).
func (k *Key) Bound() *model.Destination { return k.bound }

// ActivateAt is when a staged key starts to sign (zero: when promoted).
func (k *Key) ActivateAt() time.Time { return k.activateAt }

// Bind makes d where k may sign for.
func (k *Key) Bind(d model.Destination) {
	d = d.Clone()
	k.bound = &d
}

// ID is the key's kid: the RFC 7638 SHA-256 thumbprint of its public key,
// unless one was given at import.
func (k *Key) ID() string { return k.id }

// Algorithm is the algorithm the key signs with.
func (k *Key) Algorithm() Algorithm { return k.alg }

// Created is when the key was generated or imported.
func (k *Key) Created() time.Time { return k.created }

// Imported reports whether the key came from Import rather than Generate.
func (k *Key) Imported() bool { return k.imported }

// RetireAt is when a previous key leaves the JWKS; zero for a key that
// signs or is staged.
func (k *Key) RetireAt() time.Time { return k.retireAt }

// Signer is the key's private half, for signing; nil for a public-only
// (previous) key. Only signatures come out of it.
func (k *Key) Signer() crypto.Signer { return k.signer }

// Public is the key's public half.
func (k *Key) Public() crypto.PublicKey { return k.public }

// String describes the key by its public facts.
func (k *Key) String() string {
	if k == nil {
		return "<nil>"
	}
	private := "none"
	if k.signer != nil {
		private = "[redacted]"
	}
	s := fmt.Sprintf("keys.Key{ID: %q, Algorithm: %s, Created: %s, Imported: %t, Private: %s",
		k.id, k.alg, k.created.UTC().Format(time.RFC3339), k.imported, private)
	if !k.retireAt.IsZero() {
		s += ", RetireAt: " + k.retireAt.UTC().Format(time.RFC3339)
	}
	return s + "}"
}

// GoString is String, so that %#v does not print the private key.
func (k *Key) GoString() string { return k.String() }

// publicOnly is k without its private half.
func (k *Key) publicOnly() *Key {
	c := *k
	c.signer = nil
	return &c
}

// Generate makes a new key inside the process. bits applies to RS256 and
// PS256 (0 means DefaultRSABits; 2048, 3072 or 4096) and must be 0 for
// the others.
func Generate(alg Algorithm, bits int, now time.Time) (*Key, error) {
	var (
		signer crypto.Signer
		err    error
	)
	switch alg {
	case RS256, PS256:
		if bits == 0 {
			bits = DefaultRSABits
		}
		if bits != 2048 && bits != 3072 && bits != 4096 {
			return nil, fmt.Errorf("an RSA key has 2048, 3072 or 4096 bits, not %d", bits)
		}
		signer, err = rsa.GenerateKey(rand.Reader, bits)
	case ES256, ES384, EdDSA:
		if bits != 0 {
			return nil, fmt.Errorf("%s keys have a fixed size: give no bit count", alg)
		}
		switch alg {
		case ES256:
			signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		case ES384:
			signer, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		default:
			_, signer, err = ed25519.GenerateKey(rand.Reader)
		}
	default:
		return nil, fmt.Errorf("unknown key algorithm %q: use one of %s", alg, algList())
	}
	if err != nil {
		return nil, fmt.Errorf("generating the %s key failed: %w", alg, err)
	}
	return newKey(signer, alg, "", now, false)
}

func algList() string {
	names := make([]string, 0, len(Algorithms()))
	for _, a := range Algorithms() {
		names = append(names, string(a))
	}
	return strings.Join(names, ", ")
}

// Import reads a PEM private key: PKCS #8 ("PRIVATE KEY"), PKCS #1 ("RSA
// PRIVATE KEY") or SEC 1 ("EC PRIVATE KEY"), unencrypted. alg "" means
// the key's usual algorithm (RS256 for RSA, ES256 or ES384 by curve,
// EdDSA for Ed25519); an RSA key may be PS256. kid "" means the
// thumbprint; give one to keep the kid a vendor already has on record.
// Certificates and EC PARAMETERS blocks beside the key are ignored. Its
// errors never quote the PEM.
func Import(pemText string, alg Algorithm, kid string, now time.Time) (*Key, error) {
	signer, err := ParsePrivateKeyPEM(pemText)
	if err != nil {
		return nil, err
	}
	if alg == "" {
		alg = defaultAlgorithm(signer.Public())
	}
	return newKey(signer, alg, kid, now, true)
}

// ParsePrivateKeyPEM reads the one private key of a PEM text, as Import
// does.
func ParsePrivateKeyPEM(pemText string) (crypto.Signer, error) {
	rest := []byte(pemText)
	var found *pem.Block
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch {
		case block.Type == "CERTIFICATE", block.Type == "EC PARAMETERS":
			continue
		case strings.Contains(block.Type, "ENCRYPTED"), strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED"):
			return nil, errors.New("the private key is encrypted: give it decrypted (openssl pkey -in key.pem)")
		case block.Type == "PRIVATE KEY", block.Type == "RSA PRIVATE KEY", block.Type == "EC PRIVATE KEY":
			if found != nil {
				return nil, errors.New("the PEM holds more than one private key: give one")
			}
			found = block
		case strings.Contains(block.Type, "PUBLIC KEY"):
			return nil, errors.New("the PEM holds a public key: give the private key")
		default:
			return nil, fmt.Errorf("the PEM holds a %q block: want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY", printable(block.Type))
		}
	}
	if found == nil {
		return nil, errors.New("not a PEM private key: no -----BEGIN PRIVATE KEY----- block")
	}
	var (
		key any
		err error
	)
	switch found.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(found.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(found.Bytes)
	default:
		key, err = x509.ParseECPrivateKey(found.Bytes)
	}
	if err != nil {
		// x509's messages name the structure, never the key's bytes, but
		// say it in one fixed sentence per format.
		return nil, fmt.Errorf("the %s block does not parse as a private key", found.Type)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T cannot sign: use an RSA, ECDSA or Ed25519 key", key)
	}
	if err := checkKeyType(signer.Public()); err != nil {
		return nil, err
	}
	return signer, nil
}

// printable keeps a PEM type fit for a message.
func printable(s string) string {
	if len(s) > 40 {
		s = s[:40]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return '?'
		}
		return r
	}, s)
}

// checkKeyType refuses keys no algorithm here signs with.
func checkKeyType(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < MinRSABits || n > MaxRSABits {
			return fmt.Errorf("the RSA key has %d bits: use %d to %d", n, MinRSABits, MaxRSABits)
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return errors.New("the EC key is not on P-256 or P-384")
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("a %T key cannot sign here: use RSA, ECDSA P-256/P-384 or Ed25519", pub)
	}
	return nil
}

func defaultAlgorithm(pub crypto.PublicKey) Algorithm {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return RS256
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P384() {
			return ES384
		}
		return ES256
	default:
		return EdDSA
	}
}

// checkAlgorithm refuses an algorithm the key cannot sign.
func checkAlgorithm(pub crypto.PublicKey, alg Algorithm) error {
	ok := false
	switch k := pub.(type) {
	case *rsa.PublicKey:
		ok = alg == RS256 || alg == PS256
	case *ecdsa.PublicKey:
		ok = (alg == ES256 && k.Curve == elliptic.P256()) || (alg == ES384 && k.Curve == elliptic.P384())
	case ed25519.PublicKey:
		ok = alg == EdDSA
	}
	if !ok {
		return fmt.Errorf("a %s key cannot sign %s", keyKind(pub), alg)
	}
	return nil
}

func keyKind(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("%d-bit RSA", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "EC " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

func newKey(signer crypto.Signer, alg Algorithm, kid string, now time.Time, imported bool) (*Key, error) {
	pub := signer.Public()
	if err := checkKeyType(pub); err != nil {
		return nil, err
	}
	if err := checkAlgorithm(pub, alg); err != nil {
		return nil, err
	}
	if kid == "" {
		var err error
		if kid, err = Thumbprint(pub); err != nil {
			return nil, err
		}
	} else if err := checkKeyID(kid); err != nil {
		return nil, err
	}
	return &Key{id: kid, alg: alg, created: now.UTC().Truncate(time.Second), imported: imported, signer: signer, public: pub}, nil
}

func checkKeyID(kid string) error {
	if len(kid) > MaxKeyIDLen {
		return fmt.Errorf("a key id is at most %d characters", MaxKeyIDLen)
	}
	for _, r := range kid {
		if r < ' ' || r > '~' {
			return errors.New("a key id is printable ASCII")
		}
	}
	return nil
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of a public key,
// base64url without padding.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", errors.New("cannot compute the key's thumbprint")
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// PublicPEM is the key's public half as a PEM "PUBLIC KEY" (PKIX), for
// vendor consoles that take a PEM rather than a JWKS.
func (k *Key) PublicPEM() (string, error) {
	der, err := x509.MarshalPKIXPublicKey(k.public)
	if err != nil {
		return "", errors.New("cannot encode the public key")
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}
