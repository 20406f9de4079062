package tokenclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// AuthStyle says how the client authenticates to the token endpoint.
type AuthStyle string

const (
	// AuthBasic sends the client credentials in an Authorization: Basic
	// header, the method every OAuth2 server must support (RFC 6749 2.3.1).
	AuthBasic AuthStyle = "basic"
	// AuthBody sends client_id and client_secret as body parameters.
	AuthBody AuthStyle = "body"
)

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
	// would silently replace.
	Headers map[string]string
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
	return out
}

// String describes the request without its secrets, so that a Request
// that ends up in a log line or a test failure leaks nothing.
func (r Request) String() string {
	return fmt.Sprintf("tokenclient.Request{TokenURL: %s, GrantType: %q, ClientID: %q, AuthStyle: %q, BodyFormat: %q, Params: %v, Headers: %v}",
		displayURL(r.TokenURL), r.GrantType, r.ClientID, r.AuthStyle, r.BodyFormat, sortedKeys(r.Params), sortedKeys(r.Headers))
}

// GoString is String, so that %#v does not print the secrets either.
func (r Request) GoString() string { return r.String() }

// build turns r into an HTTP request. basic is the base64 credential of an
// Authorization: Basic header, "" for AuthBody. Its errors describe a bad
// Request and never hold a secret value.
func (r Request) build(ctx context.Context, userAgent string) (req *http.Request, u *url.URL, basic string, err error) {
	u, err = parseTokenURL(r.TokenURL)
	if err != nil {
		return nil, nil, "", err
	}
	style := r.AuthStyle
	if style == "" {
		style = AuthBasic
	}
	if style != AuthBasic && style != AuthBody {
		return nil, nil, "", fmt.Errorf("unknown auth style %q: use %q or %q", style, AuthBasic, AuthBody)
	}
	enc := r.BasicEncoding
	if enc == "" {
		enc = EncodingRFC6749
	}
	if enc != EncodingRFC6749 && enc != EncodingRaw {
		return nil, nil, "", fmt.Errorf("unknown basic encoding %q: use %q or %q", enc, EncodingRFC6749, EncodingRaw)
	}
	format := r.BodyFormat
	if format == "" {
		format = FormatForm
	}
	if format != FormatForm && format != FormatJSON {
		return nil, nil, "", fmt.Errorf("unknown body format %q: use %q or %q", format, FormatForm, FormatJSON)
	}
	if r.GrantType == "" {
		return nil, nil, "", errors.New("the request has no grant type")
	}
	for k := range r.Params {
		if k == "" {
			return nil, nil, "", errors.New("a grant parameter has an empty name")
		}
		if reservedParams[k] {
			return nil, nil, "", fmt.Errorf("grant parameters cannot set %q: it comes from the request's own field", k)
		}
	}
	for k, v := range r.Headers {
		if !validHeaderName(k) {
			return nil, nil, "", fmt.Errorf("extra header name %q is not a valid HTTP header name", k)
		}
		// The value is secret: name the header, never show the value.
		if !validHeaderValue(v) {
			return nil, nil, "", fmt.Errorf("extra header %q has a value with control characters", k)
		}
		if style == AuthBasic && http.CanonicalHeaderKey(k) == "Authorization" {
			return nil, nil, "", errors.New("an extra Authorization header would replace the Basic client authentication: use auth style body")
		}
	}

	params := make(map[string]string, len(r.ExtraParams)+len(r.Params)+4)
	for k, v := range r.ExtraParams {
		if _, grant := r.Params[k]; k == "" || reservedParams[k] || grant {
			continue
		}
		params[k] = v
	}
	for k, v := range r.Params {
		params[k] = v
	}
	if scope := joinScopes(r.Scopes); scope != "" {
		params[paramScope] = scope
	}
	if r.GrantTypeInQuery {
		addGrantTypeToQuery(u, r.GrantType)
	} else {
		params[paramGrantType] = r.GrantType
	}
	if style == AuthBody {
		if r.ClientID != "" {
			params[paramClientID] = r.ClientID
		}
		if r.ClientSecret != "" {
			params[paramClientSecret] = r.ClientSecret
		}
	}

	var body []byte
	var contentType string
	switch format {
	case FormatJSON:
		contentType = "application/json"
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		// Servers compare values byte for byte; \u003c for < is valid JSON
		// but needlessly different from what the operator configured.
		enc.SetEscapeHTML(false)
		if err := enc.Encode(params); err != nil {
			return nil, nil, "", fmt.Errorf("encoding the JSON body: %w", err)
		}
		body = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	default:
		contentType = "application/x-www-form-urlencoded"
		values := make(url.Values, len(params))
		for k, v := range params {
			values.Set(k, v)
		}
		body = []byte(values.Encode())
	}

	req, err = http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		// Not wrapped: net/http's message would repeat the whole URL.
		return nil, nil, "", fmt.Errorf("building the request to %s failed", displayEndpoint(u))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", userAgent)
	if style == AuthBasic {
		basic = basicCredentials(r.ClientID, r.ClientSecret, enc)
		req.Header.Set("Authorization", "Basic "+basic)
	}
	for _, k := range sortedKeys(r.Headers) {
		if http.CanonicalHeaderKey(k) == "Host" {
			// net/http ignores a Host in the header map.
			req.Host = r.Headers[k]
			continue
		}
		req.Header.Set(k, r.Headers[k])
	}
	return req, u, basic, nil
}

// parseTokenURL accepts only absolute http(s) URLs without user info. Its
// errors do not wrap url.Parse's, which quote the whole URL: an operator
// may have put a key in its query string.
func parseTokenURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("the request has no token URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("the token URL is not a valid URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("the token URL %s is not an absolute http or https URL", displayEndpoint(u))
	}
	if u.User != nil {
		// net/http would turn user info into Basic auth, silently replacing
		// or adding to the client authentication the Request asks for.
		return nil, fmt.Errorf("the token URL %s carries user info: put credentials in the client id and secret", displayEndpoint(u))
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
