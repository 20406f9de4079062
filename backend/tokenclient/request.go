package tokenclient

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// AuthStyle says how the client authenticates to the token endpoint.
type AuthStyle string

const (
	// AuthBasic sends the client credentials in an Authorization: Basic
	// header, the method every OAuth2 server must support (RFC 6749 2.3.1).
	AuthBasic AuthStyle = "basic"
	// AuthBody sends client_id and client_secret as body parameters.
	AuthBody AuthStyle = "body"
	// AuthNone sends only client_id in the body, for public clients (RFC
	// 8414's "none"); a ClientSecret is refused rather than dropped.
	AuthNone AuthStyle = "none"
	// AuthPrivateKeyJWT sends a client assertion JWT signed by Signer
	// (RFC 7523 section 2.2, OpenID Connect Core section 9).
	AuthPrivateKeyJWT AuthStyle = "private_key_jwt"
	// AuthClientSecretJWT sends a client assertion JWT signed with HMAC
	// keyed by the client secret (OpenID Connect Core section 9).
	AuthClientSecretJWT AuthStyle = "client_secret_jwt"
	// AuthTLSClient authenticates with a client certificate from a CA the
	// server trusts (RFC 8705 section 2.1): client_id in the body, TLS
	// with a client certificate.
	AuthTLSClient AuthStyle = "tls_client_auth"
	// AuthSelfSignedTLSClient authenticates with a self-signed client
	// certificate the server has registered (RFC 8705 section 2.2). On the
	// wire it is AuthTLSClient.
	AuthSelfSignedTLSClient AuthStyle = "self_signed_tls_client_auth"
)

// AuthStyles lists every AuthStyle, for validation and help texts.
func AuthStyles() []AuthStyle {
	return []AuthStyle{AuthBasic, AuthBody, AuthNone, AuthPrivateKeyJWT, AuthClientSecretJWT, AuthTLSClient, AuthSelfSignedTLSClient}
}

// sendsClientIDInBody reports whether the style puts client_id in the
// body: every style but Basic, where the header carries it.
func (s AuthStyle) sendsClientIDInBody() bool { return s != AuthBasic }

// isJWT reports whether the style sends a client assertion.
func (s AuthStyle) isJWT() bool { return s == AuthPrivateKeyJWT || s == AuthClientSecretJWT }

// isTLS reports whether the style authenticates by client certificate.
func (s AuthStyle) isTLS() bool { return s == AuthTLSClient || s == AuthSelfSignedTLSClient }

// BasicEncoding says how the client id and secret are encoded before they
// are joined and base64-encoded for Basic auth.
type BasicEncoding string

const (
	// EncodingRFC6749 form-encodes the id and secret first, as RFC 6749
	// 2.3.1 requires.
	EncodingRFC6749 BasicEncoding = "rfc6749"
	// EncodingRaw joins the id and secret as they are, as RFC 7617 does and
	// as many servers expect: it only differs for ids and secrets that hold
	// characters form encoding changes.
	EncodingRaw BasicEncoding = "raw"
)

// BodyFormat is the encoding of the request body.
type BodyFormat string

const (
	// FormatForm sends application/x-www-form-urlencoded, as RFC 6749
	// requires.
	FormatForm BodyFormat = "form"
	// FormatJSON sends an application/json object of strings, for vendors
	// that only take JSON.
	FormatJSON BodyFormat = "json"
)

// Body parameter names that only the Request's own fields set.
const (
	paramGrantType    = "grant_type"
	paramClientID     = "client_id"
	paramClientSecret = "client_secret"
	paramScope        = "scope"
)

// Parameters of a client assertion (RFC 7521 section 4.2).
const (
	paramClientAssertionType = "client_assertion_type"
	paramClientAssertion     = "client_assertion"
)

// assertionParams may not come from Params or ExtraParams when the
// Request sends an assertion of its own.
var assertionParams = map[string]bool{paramClientAssertionType: true, paramClientAssertion: true}

// reservedParams may not come from Params or ExtraParams: letting them
// would undo the choices the Request's fields express (an ExtraParams
// client_secret would put the secret in the body of a Basic-auth request).
var reservedParams = map[string]bool{
	paramGrantType:    true,
	paramClientID:     true,
	paramClientSecret: true,
	paramScope:        true,
}

// Request is one call to a token endpoint.
type Request struct {
	// TokenURL is the absolute http or https URL of the token endpoint.
	TokenURL string
	// GrantType is sent as grant_type.
	GrantType string
	// ClientID identifies the client.
	ClientID string
	// ClientSecret may be empty for a public client: Basic auth then sends
	// "id:" and a body request sends no client_secret.
	ClientSecret string
	// AuthStyle is where the client credentials go; empty means AuthBasic.
	AuthStyle AuthStyle
	// BasicEncoding applies to AuthBasic; empty means EncodingRFC6749.
	BasicEncoding BasicEncoding
	// BodyFormat is the body's encoding; empty means FormatForm.
	BodyFormat BodyFormat
	// GrantTypeInQuery sends grant_type in the URL query string instead of
	// the body, for vendors that route on it. It is never sent in both.
	GrantTypeInQuery bool
	// Scopes are sent as one space-separated scope parameter, or not at all
	// when empty.
	Scopes []string
	// Params are the grant's parameters (refresh_token, code, redirect_uri,
	// code_verifier, ...). Their values are secret. They may not set
	// grant_type, client_id, client_secret or scope.
	Params map[string]string
	// ExtraParams are operator-configured body parameters. They never
	// override grant_type, client_id, client_secret, scope or a Params key:
	// those are dropped from ExtraParams.
	ExtraParams map[string]string
	// Headers are extra request headers. Their values are secret (an
	// x-api-key, for one). They are applied last, so they may replace
	// Accept, Content-Type or User-Agent; "Host" sets the Host the server
	// sees. An Authorization header is refused with AuthBasic, which it
	// would silently replace, and with the assertion and certificate
	// styles, where it would be a second authentication method.
	Headers map[string]string

	// The fields below are optional: left zero, a request is built exactly
	// as without them.

	// Signer signs the client assertion of AuthPrivateKeyJWT. The private
	// key never leaves it: only signatures are made.
	Signer crypto.Signer
	// SigningAlgorithm is the assertion's JWS alg. Empty means the one the
	// key implies: RS256 for RSA, ES256/ES384/ES512 for the P-256/P-384/
	// P-521 curves, EdDSA for Ed25519, and HS256 for AuthClientSecretJWT.
	// An RSA key may also sign RS384, RS512, PS256, PS384 or PS512.
	SigningAlgorithm string
	// KeyID is the assertion's kid header. Empty means, for
	// AuthPrivateKeyJWT, the RFC 7638 SHA-256 thumbprint of the Signer's
	// public key (what backend/keys derives too), and no kid for
	// AuthClientSecretJWT.
	KeyID string
	// Audience is the assertion's aud. Empty means TokenURL without its
	// query and fragment, as OpenID Connect Core section 9 says: for
	// revocation and device requests too, unless TokenURL is empty, when
	// it is the endpoint being called.
	Audience string
	// AssertionLifetime is how long an assertion is valid (exp - iat).
	// Zero means DefaultAssertionLifetime; more than MaxAssertionLifetime
	// is refused.
	AssertionLifetime time.Duration
	// TLS is the request's TLS beyond the defaults: a client certificate
	// (RFC 8705) and the CAs trusted for the server. Nil means the Client's
	// own transport, unchanged.
	TLS *TLSConfig
	// ResponseFields names token response fields to keep in Token.Extra
	// (instance_url, uid, id_token, ...). refresh_token cannot be named.
	ResponseFields []string
}

// Secrets returns every secret value the request carries: the client
// secret, the Params values and the Headers values, non-empty only and in a
// stable order. Callers use it to redact.
func (r Request) Secrets() []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	add(r.ClientSecret)
	for _, k := range sortedKeys(r.Params) {
		add(r.Params[k])
	}
	for _, k := range sortedKeys(r.Headers) {
		add(r.Headers[k])
	}
	if r.TLS != nil {
		add(r.TLS.ClientKeyPEM)
	}
	return out
}

// String describes the request without its secrets, so that a Request
// that ends up in a log line or a test failure leaks nothing.
func (r Request) String() string {
	s := fmt.Sprintf("tokenclient.Request{TokenURL: %s, GrantType: %q, ClientID: %q, AuthStyle: %q, BodyFormat: %q, Params: %v, Headers: %v",
		displayURL(r.TokenURL), r.GrantType, r.ClientID, r.AuthStyle, r.BodyFormat, sortedKeys(r.Params), sortedKeys(r.Headers))
	// The optional fields show only when set, and never a key: a Signer
	// is named by its kid, a TLS config by what it holds.
	if r.Signer != nil {
		s += fmt.Sprintf(", Signer: %s", redacted)
	}
	if r.KeyID != "" {
		s += fmt.Sprintf(", KeyID: %q", r.KeyID)
	}
	if r.TLS != nil {
		s += ", TLS: " + r.TLS.String()
	}
	if len(r.ResponseFields) > 0 {
		s += fmt.Sprintf(", ResponseFields: %v", r.ResponseFields)
	}
	return s + "}"
}

// GoString is String, so that %#v does not print the secrets either.
func (r Request) GoString() string { return r.String() }

// call says what a request is for: the token endpoint (a grant), or one
// of the other endpoints that take the same client authentication.
type call struct {
	// noun names the endpoint in messages: "token endpoint".
	noun string
	// urlNoun names its URL in messages: "token URL".
	urlNoun string
	// endpoint is the URL to post to.
	endpoint string
	// grant sends grant_type (and GrantTypeInQuery applies).
	grant bool
	// params are the call's own parameters (secret values); nil means the
	// Request's Params.
	params map[string]string
	// extra sends ExtraParams; scopes sends Scopes.
	extra, scopes bool
}

// tokenCall is a grant at the token endpoint: what Exchange sends.
func (r Request) tokenCall() call {
	return call{noun: "token endpoint", urlNoun: "token URL", endpoint: r.TokenURL, grant: true, extra: true, scopes: true}
}

// built is a request ready to send, with what redaction needs to know.
type built struct {
	req *http.Request
	u   *url.URL
	// basic is the base64 credential of an Authorization: Basic header,
	// "" when there is none.
	basic string
	// assertion is the client assertion JWT, "" when there is none.
	assertion string
}

// secrets is every secret the built request carries: the Request's, its
// Basic credential and its assertion (whole and by part, since a vendor
// may echo only the part it could not parse).
func (b *built) secrets(r Request, own map[string]string) []string {
	out := append(r.Secrets(), b.basic)
	for _, k := range sortedKeys(own) {
		out = append(out, own[k])
	}
	if b.assertion != "" {
		out = append(out, b.assertion)
		if i := strings.LastIndexByte(b.assertion, '.'); i > 0 {
			out = append(out, b.assertion[:i], b.assertion[i+1:])
		}
	}
	return expandSecrets(out)
}

// buildCall turns r into an HTTP request for c. Its errors describe a bad
// Request and never hold a secret value.
func (r Request) buildCall(ctx context.Context, userAgent string, c call, now time.Time) (*built, error) {
	u, err := parseEndpointURL(c.urlNoun, c.endpoint)
	if err != nil {
		return nil, err
	}
	style, enc, format, err := r.encodings()
	if err != nil {
		return nil, err
	}
	if c.grant && r.GrantType == "" {
		return nil, errors.New("the request has no grant type")
	}
	own := c.params
	if own == nil {
		own = r.Params
	}
	if err := checkOwnParams(own, style); err != nil {
		return nil, err
	}
	if err := r.checkHeaders(style); err != nil {
		return nil, err
	}
	if err := r.checkClientAuth(style); err != nil {
		return nil, err
	}
	if err := checkResponseFields(r.ResponseFields); err != nil {
		return nil, err
	}

	params := r.bodyParams(c, style, own, u)
	b := &built{u: u}
	if style.isJWT() {
		b.assertion, err = r.clientAssertion(style, r.AssertionAudience(u.String()), now)
		if err != nil {
			return nil, err
		}
		params[paramClientAssertionType] = ClientAssertionType
		params[paramClientAssertion] = b.assertion
	}
	body, contentType, err := encodeBody(format, params)
	if err != nil {
		return nil, err
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		// Not wrapped: net/http's message would repeat the whole URL.
		return nil, fmt.Errorf("building the request to %s failed", displayEndpoint(u))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", userAgent)
	if style == AuthBasic {
		b.basic = basicCredentials(r.ClientID, r.ClientSecret, enc)
		req.Header.Set("Authorization", "Basic "+b.basic)
	}
	for _, k := range sortedKeys(r.Headers) {
		if http.CanonicalHeaderKey(k) == "Host" {
			// net/http ignores a Host in the header map.
			req.Host = r.Headers[k]
			continue
		}
		req.Header.Set(k, r.Headers[k])
	}
	b.req = req
	return b, nil
}

// encodings returns the request's auth style, Basic encoding and body
// format with their defaults applied, refusing unknown ones.
func (r Request) encodings() (AuthStyle, BasicEncoding, BodyFormat, error) {
	style := r.AuthStyle
	if style == "" {
		style = AuthBasic
	}
	known := false
	for _, s := range AuthStyles() {
		known = known || s == style
	}
	if !known {
		return "", "", "", fmt.Errorf("unknown auth style %q: use %q or %q", style, AuthBasic, AuthBody)
	}
	enc := r.BasicEncoding
	if enc == "" {
		enc = EncodingRFC6749
	}
	if enc != EncodingRFC6749 && enc != EncodingRaw {
		return "", "", "", fmt.Errorf("unknown basic encoding %q: use %q or %q", enc, EncodingRFC6749, EncodingRaw)
	}
	format := r.BodyFormat
	if format == "" {
		format = FormatForm
	}
	if format != FormatForm && format != FormatJSON {
		return "", "", "", fmt.Errorf("unknown body format %q: use %q or %q", format, FormatForm, FormatJSON)
	}
	return style, enc, format, nil
}

// checkOwnParams refuses a call's own parameters that would set what the
// Request's fields (or, with an assertion, the assertion) set.
func checkOwnParams(own map[string]string, style AuthStyle) error {
	for k := range own {
		if k == "" {
			return errors.New("a grant parameter has an empty name")
		}
		if reservedParams[k] || (style.isJWT() && assertionParams[k]) {
			return fmt.Errorf("grant parameters cannot set %q: it comes from the request's own field", k)
		}
	}
	return nil
}

// checkHeaders refuses extra headers that are not valid HTTP, or an
// Authorization header beside the client authentication of style.
func (r Request) checkHeaders(style AuthStyle) error {
	for k, v := range r.Headers {
		if !validHeaderName(k) {
			return fmt.Errorf("extra header name %q is not a valid HTTP header name", k)
		}
		// The value is secret: name the header, never show the value.
		if !validHeaderValue(v) {
			return fmt.Errorf("extra header %q has a value with control characters", k)
		}
		if http.CanonicalHeaderKey(k) == "Authorization" {
			switch {
			case style == AuthBasic:
				return errors.New("an extra Authorization header would replace the Basic client authentication: use auth style body")
			case style.isJWT() || style.isTLS():
				return fmt.Errorf("an extra Authorization header would be a second client authentication beside %s", style)
			}
		}
	}
	return nil
}

// bodyParams are the body parameters of call c, but for a client
// assertion: ExtraParams that nothing else sets, the call's own, scope,
// grant_type and the client credentials style puts in the body. With
// GrantTypeInQuery, grant_type goes into u's query instead.
func (r Request) bodyParams(c call, style AuthStyle, own map[string]string, u *url.URL) map[string]string {
	params := make(map[string]string, len(r.ExtraParams)+len(own)+6)
	if c.extra {
		for k, v := range r.ExtraParams {
			if _, grant := own[k]; k == "" || reservedParams[k] || grant || (style.isJWT() && assertionParams[k]) {
				continue
			}
			params[k] = v
		}
	}
	for k, v := range own {
		params[k] = v
	}
	if c.scopes {
		if scope := joinScopes(r.Scopes); scope != "" {
			params[paramScope] = scope
		}
	}
	if c.grant {
		if r.GrantTypeInQuery {
			addGrantTypeToQuery(u, r.GrantType)
		} else {
			params[paramGrantType] = r.GrantType
		}
	}
	if style.sendsClientIDInBody() && r.ClientID != "" {
		params[paramClientID] = r.ClientID
	}
	if style == AuthBody && r.ClientSecret != "" {
		params[paramClientSecret] = r.ClientSecret
	}
	return params
}

// encodeBody encodes params as format and returns the body and its
// Content-Type.
func encodeBody(format BodyFormat, params map[string]string) ([]byte, string, error) {
	if format == FormatJSON {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		// Servers compare values byte for byte; \u003c for < is valid JSON
		// but needlessly different from what the operator configured.
		enc.SetEscapeHTML(false)
		if err := enc.Encode(params); err != nil {
			return nil, "", fmt.Errorf("encoding the JSON body: %w", err)
		}
		return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), "application/json", nil
	}
	values := make(url.Values, len(params))
	for k, v := range params {
		values.Set(k, v)
	}
	return []byte(values.Encode()), "application/x-www-form-urlencoded", nil
}

// checkClientAuth refuses a Request whose fields cannot make the client
// authentication its style asks for, before anything is signed or sent.
func (r Request) checkClientAuth(style AuthStyle) error {
	var err error
	switch {
	case style == AuthNone:
		err = r.checkNoneAuth()
	case style.isJWT():
		err = r.checkJWTAuth(style)
	case style.isTLS():
		err = r.checkTLSAuth(style)
	}
	if err != nil {
		return err
	}
	if (style.isJWT() || style.isTLS()) && r.BodyFormat == FormatJSON {
		// RFC 7523 and 8705 define form parameters; no server we know of
		// takes an assertion in JSON.
		return fmt.Errorf("%s takes a form body, not %s", style, FormatJSON)
	}
	if r.AssertionLifetime < 0 || r.AssertionLifetime > MaxAssertionLifetime {
		return fmt.Errorf("the assertion lifetime %s is not between 0 and %s", r.AssertionLifetime, MaxAssertionLifetime)
	}
	return nil
}

// checkNoneAuth is checkClientAuth for AuthNone.
func (r Request) checkNoneAuth() error {
	switch {
	case r.ClientSecret != "":
		return errors.New("auth style none sends no client secret: clear the secret or use a style that sends it")
	case r.ClientID == "":
		return errors.New("auth style none needs a client id")
	}
	return nil
}

// checkJWTAuth is checkClientAuth for the assertion styles.
func (r Request) checkJWTAuth(style AuthStyle) error {
	switch {
	case r.ClientID == "":
		return fmt.Errorf("%s needs a client id: it is the assertion's issuer and subject", style)
	case style == AuthPrivateKeyJWT && r.Signer == nil:
		return errors.New("private_key_jwt needs a signing key")
	case style == AuthClientSecretJWT && r.ClientSecret == "":
		return errors.New("client_secret_jwt needs a client secret: it keys the assertion's HMAC")
	}
	return nil
}

// checkTLSAuth is checkClientAuth for the certificate styles.
func (r Request) checkTLSAuth(style AuthStyle) error {
	switch {
	case r.ClientID == "":
		return fmt.Errorf("%s needs a client id: RFC 8705 sends it in the body", style)
	case r.TLS == nil || r.TLS.ClientCertificatePEM == "":
		return fmt.Errorf("%s needs a client certificate and key", style)
	case r.ClientSecret != "":
		return fmt.Errorf("%s sends no client secret: clear the secret, or use basic or body for a secret", style)
	}
	return nil
}

// parseEndpointURL accepts only absolute http(s) URLs without user info;
// noun names the URL in messages ("token URL", "revocation endpoint URL").
// Its errors do not wrap url.Parse's, which quote the whole URL: an
// operator may have put a key in its query string.
func parseEndpointURL(noun, raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("the request has no %s", noun)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("the %s is not a valid URL", noun)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("the %s %s is not an absolute http or https URL", noun, displayEndpoint(u))
	}
	if u.User != nil {
		// net/http would turn user info into Basic auth, silently replacing
		// or adding to the client authentication the Request asks for.
		return nil, fmt.Errorf("the %s %s carries user info: put credentials in the client id and secret", noun, displayEndpoint(u))
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}

// addGrantTypeToQuery appends grant_type to the query string as it is,
// rather than re-encoding it, so that parameters already in the token URL
// reach the server byte for byte and in their order.
func addGrantTypeToQuery(u *url.URL, grantType string) {
	if q, _ := url.ParseQuery(u.RawQuery); q.Has(paramGrantType) {
		return
	}
	pair := paramGrantType + "=" + url.QueryEscape(grantType)
	if u.RawQuery == "" {
		u.RawQuery = pair
	} else {
		u.RawQuery += "&" + pair
	}
	u.ForceQuery = false
}

// basicCredentials is the base64 part of an Authorization: Basic header.
func basicCredentials(id, secret string, enc BasicEncoding) string {
	if enc == EncodingRFC6749 {
		id, secret = url.QueryEscape(id), url.QueryEscape(secret)
	}
	return base64.StdEncoding.EncodeToString([]byte(id + ":" + secret))
}

// joinScopes drops empty scopes, which would otherwise send doubled spaces
// that strict servers refuse.
func joinScopes(scopes []string) string {
	var kept []string
	for _, s := range scopes {
		if s = strings.TrimSpace(s); s != "" {
			kept = append(kept, s)
		}
	}
	return strings.Join(kept, " ")
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue refuses the control characters that would end or split
// the header; net/http refuses them too, but only after dialling.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// displayEndpoint shows a URL as scheme://host/path: the query and user
// info may hold keys, and the path is enough to tell endpoints apart.
func displayEndpoint(u *url.URL) string {
	if u == nil {
		return ""
	}
	if u.Host == "" {
		return sanitize(u.EscapedPath(), maxLocationLen, nil)
	}
	return sanitize(u.Scheme+"://"+u.Host+u.EscapedPath(), maxLocationLen, nil)
}

// displayURL is displayEndpoint for a URL that may not parse.
func displayURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return displayEndpoint(u)
}
