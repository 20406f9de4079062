package tokenclient

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
	"github.com/go-jose/go-jose/v4/jwt"
)

// ClientAssertionType is the client_assertion_type of a JWT client
// assertion (RFC 7523 section 2.2).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// DefaultAssertionLifetime is how long a client assertion is valid when
// the Request does not say. A minute covers clock skew and a slow network;
// an assertion is used once, at once.
const DefaultAssertionLifetime = 60 * time.Second

// MaxAssertionLifetime is the longest AssertionLifetime a Request may ask
// for: a longer-lived assertion is a longer-lived bearer credential if it
// leaks, and servers refuse them anyway.
const MaxAssertionLifetime = 10 * time.Minute

// clientAssertion makes the signed assertion of a JWT client
// authentication: iss = sub = client_id, the audience, a unique jti, iat
// and exp (RFC 7523 section 3). Its errors never hold key material or the
// client secret.
func (r Request) clientAssertion(style AuthStyle, aud string, now time.Time) (string, error) {
	alg, key, err := r.assertionKey(style)
	if err != nil {
		return "", err
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	kid := r.KeyID
	if kid == "" && style == AuthPrivateKeyJWT {
		if kid, err = Thumbprint(r.Signer.Public()); err != nil {
			return "", err
		}
	}
	if kid != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		return "", fmt.Errorf("%s: cannot sign with %s: %s", style, alg, signingProblem(err))
	}
	life := r.AssertionLifetime
	if life == 0 {
		life = DefaultAssertionLifetime
	}
	jti, err := newJTI()
	if err != nil {
		return "", err
	}
	issued := jwt.NewNumericDate(now)
	claims := jwt.Claims{
		Issuer:    r.ClientID,
		Subject:   r.ClientID,
		Audience:  jwt.Audience{aud},
		ID:        jti,
		IssuedAt:  issued,
		NotBefore: issued,
		Expiry:    jwt.NewNumericDate(now.Add(life)),
	}
	out, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("%s: signing the client assertion failed: %s", style, signingProblem(err))
	}
	return out, nil
}

// assertionKey picks the algorithm and the go-jose key for the style.
func (r Request) assertionKey(style AuthStyle) (jose.SignatureAlgorithm, any, error) {
	if style == AuthClientSecretJWT {
		alg := jose.SignatureAlgorithm(r.SigningAlgorithm)
		if alg == "" {
			alg = jose.HS256
		}
		var min int
		switch alg {
		case jose.HS256:
			min = 32
		case jose.HS384:
			min = 48
		case jose.HS512:
			min = 64
		default:
			return "", nil, fmt.Errorf("client_secret_jwt signs with HS256, HS384 or HS512, not %q", alg)
		}
		// RFC 7518 section 3.2: the key must be at least as long as the
		// hash; go-jose would refuse it later with a vaguer message.
		if len(r.ClientSecret) < min {
			return "", nil, fmt.Errorf("client_secret_jwt with %s needs a client secret of at least %d bytes (RFC 7518 section 3.2); this one has %d", alg, min, len(r.ClientSecret))
		}
		return alg, []byte(r.ClientSecret), nil
	}
	alg, err := signingAlgorithm(r.Signer.Public(), r.SigningAlgorithm)
	if err != nil {
		return "", nil, err
	}
	// go-jose signs in-memory keys itself; any other crypto.Signer (a
	// KMS, an HSM) goes through its opaque signer, which also turns
	// ECDSA's ASN.1 signatures into JWS's fixed-size ones.
	switch k := r.Signer.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
		return alg, k, nil
	default:
		return alg, cryptosigner.Opaque(r.Signer), nil
	}
}

// SigningAlgorithmFor returns the JWS algorithm for a public key: want if
// the key can sign it, else, for an empty want, the key's usual one
// (RS256, ES256, ES384, ES512 or EdDSA). Config validation can call it to
// refuse a key and algorithm that do not go together.
func SigningAlgorithmFor(pub crypto.PublicKey, want string) (string, error) {
	alg, err := signingAlgorithm(pub, want)
	return string(alg), err
}

func signingAlgorithm(pub crypto.PublicKey, want string) (jose.SignatureAlgorithm, error) {
	var allowed []jose.SignatureAlgorithm
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return "", fmt.Errorf("the RSA signing key has %d bits; at least 2048 are needed", k.N.BitLen())
		}
		allowed = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			allowed = []jose.SignatureAlgorithm{jose.ES256}
		case elliptic.P384():
			allowed = []jose.SignatureAlgorithm{jose.ES384}
		case elliptic.P521():
			allowed = []jose.SignatureAlgorithm{jose.ES512}
		default:
			return "", errors.New("the EC signing key is on a curve JWS does not use: use P-256, P-384 or P-521")
		}
	case ed25519.PublicKey:
		allowed = []jose.SignatureAlgorithm{jose.EdDSA}
	default:
		return "", fmt.Errorf("a %T signing key cannot sign a JWS: use RSA, ECDSA or Ed25519", pub)
	}
	if want == "" {
		return allowed[0], nil
	}
	for _, a := range allowed {
		if string(a) == want {
			return a, nil
		}
	}
	return "", fmt.Errorf("the signing key cannot sign %q: it signs %v", want, allowed)
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of a public key,
// base64url without padding: the kid a key gets when none is given.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("cannot compute the key's thumbprint: %s", signingProblem(err))
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// newJTI is a unique assertion id: 128 random bits.
func newJTI() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("no randomness for the assertion id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// signingProblem is a signing error's message. go-jose's and the
// standard library's say what went wrong without the key, but a custom
// crypto.Signer's error is not ours to trust, so only known ones pass.
func signingProblem(err error) string {
	switch {
	case errors.Is(err, jose.ErrUnsupportedAlgorithm):
		return "unsupported algorithm"
	case errors.Is(err, jose.ErrUnsupportedKeyType):
		return "unsupported key type"
	case errors.Is(err, jose.ErrInvalidKeySize):
		return "the key is too short for the algorithm"
	default:
		return "the signer failed"
	}
}
