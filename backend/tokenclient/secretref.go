package tokenclient

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// SecretRef names one secret a Request carries, or one value derived from
// a secret (a client assertion is the signing key's, or with
// client_secret_jwt the client secret's), so that a caller can say where
// each may be sent.
type SecretRef string

// The secrets a Request can carry beside its Params and Headers values.
const (
	ClientSecretRef SecretRef = "client_secret"
	TLSKeyRef       SecretRef = "tls_client_key"
	SigningKeyRef   SecretRef = "signing_key"
	// RevokedTokenRef is the token a revocation request revokes.
	RevokedTokenRef SecretRef = "revoked token"
)

// ParamRef names the value of a grant parameter (refresh_token, code,
// code_verifier, device_code, ...).
func ParamRef(name string) SecretRef { return SecretRef("param " + name) }

// HeaderRef names the value of a request header, by its canonical name.
func HeaderRef(name string) SecretRef { return SecretRef("header " + http.CanonicalHeaderKey(name)) }

// String is what a message calls the secret.
func (r SecretRef) String() string {
	switch {
	case strings.HasPrefix(string(r), "param "):
		return strings.TrimPrefix(string(r), "param ")
	case strings.HasPrefix(string(r), "header "):
		return "value of the " + strings.TrimPrefix(string(r), "header ") + " header"
	case r == SigningKeyRef:
		return "client assertion (signed by the signing key)"
	}
	return string(r)
}

// SecretRefs lists every secret r carries, and every value derived from
// one, in a stable order: the client secret, each Params value, each
// Headers value, the TLS client key and the signing key. It is what the
// request puts on the wire; a caller that knows where each may go checks
// them all before sending.
func (r Request) SecretRefs() []SecretRef {
	var out []SecretRef
	if r.ClientSecret != "" {
		out = append(out, ClientSecretRef)
	}
	for _, k := range sortedKeys(r.Params) {
		out = append(out, ParamRef(k))
	}
	headers := make([]string, 0, len(r.Headers))
	for k := range r.Headers {
		headers = append(headers, k)
	}
	sort.Strings(headers)
	for _, k := range headers {
		out = append(out, HeaderRef(k))
	}
	if r.TLS != nil && r.TLS.ClientKeyPEM != "" {
		out = append(out, TLSKeyRef)
	}
	if r.Signer != nil {
		out = append(out, SigningKeyRef)
	}
	return out
}

// SignsWith reports whether the request's client assertion is derived
// from ref: the signing key's, or with client_secret_jwt the client
// secret's.
func (r Request) SignsWith(ref SecretRef) bool {
	switch r.AuthStyle {
	case AuthPrivateKeyJWT:
		return ref == SigningKeyRef
	case AuthClientSecretJWT:
		return ref == ClientSecretRef
	}
	return false
}

// AssertionAudience is the aud the request's client assertion names when
// sent to endpoint: Audience, else the token endpoint without its query
// and fragment (OpenID Connect Core section 9), else endpoint's.
func (r Request) AssertionAudience(endpoint string) string {
	if r.Audience != "" {
		return r.Audience
	}
	if u, err := url.Parse(r.TokenURL); err == nil && u.Host != "" {
		return u.Scheme + "://" + u.Host + u.EscapedPath()
	}
	if u, err := url.Parse(endpoint); err == nil {
		return u.Scheme + "://" + u.Host + u.EscapedPath()
	}
	return endpoint
}
