package model

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
)

// Settings is a Config with every default filled in: what a grant uses.
// Each tagged field is the row of the same name in effect (filled from the
// table, see fill); the rest are derived.
type Settings struct {
	Preset *providers.Preset
	// Grant is GrantType's row of the grant table.
	Grant *Grant

	Environment            string            `json:"environment"`
	GrantType              string            `json:"grant_type"`
	TokenURL               string            `json:"token_url"`
	ClientID               string            `json:"client_id"`
	Scopes                 []string          `json:"scopes"`
	AuthStyle              string            `json:"auth_style"`
	BasicEncoding          string            `json:"basic_encoding"`
	BodyFormat             string            `json:"body_format"`
	GrantTypeInQuery       bool              `json:"grant_type_in_query"`
	ExtraParams            map[string]string `json:"extra_params"`
	DefaultTTL             time.Duration     `json:"default_ttl"`
	MaxTTL                 time.Duration     `json:"max_ttl"`
	ExpirySkew             time.Duration     `json:"expiry_skew"`
	AuthorizeURL           string            `json:"authorize_url"`
	RetryLostRefresh       bool              `json:"retry_lost_refresh"`
	KeepAlive              time.Duration     `json:"keepalive_interval"`
	UsePKCE                bool              `json:"use_pkce"`
	RevocationURL          string            `json:"revocation_url"`
	RevokeOnDelete         bool              `json:"revoke_on_delete"`
	DeviceAuthorizationURL string            `json:"device_authorization_url"`

	// HeaderNames are the extra headers' names, sorted.
	HeaderNames []string
	// Trust is who may answer at the endpoints: TrustOf(ca_bundle); Routing
	// the extra headers that go with every request: RoutingOf(extra_headers).
	Trust, Routing string
}

var settingsIndex = jsonIndex(reflect.TypeFor[Settings]())

func init() {
	for name := range settingsIndex {
		if f, ok := byName[name]; !ok || f.Holder != InConfig {
			panic("model: Settings." + name + " is not a config field of the table")
		}
	}
}

// InEffect lists, by field name, the values s puts in effect, as the API
// shows them.
func (s *Settings) InEffect() map[string]any {
	out := make(map[string]any, len(settingsIndex))
	v := reflect.ValueOf(s).Elem()
	for name, idx := range settingsIndex {
		out[name] = v.FieldByIndex(idx).Interface()
	}
	return out
}

// UsesSecret reports whether the client authenticates with its secret
// (not a key or a certificate).
func (s *Settings) UsesSecret() bool {
	switch s.AuthStyle {
	case providers.AuthBasic, providers.AuthBody, AuthClientSecretJWT:
		return true
	}
	return false
}

// UsesKey reports whether the client signs assertions with a key held in
// Vault.
func (s *Settings) UsesKey() bool { return s.AuthStyle == AuthPrivateKeyJWT }

// UsesCertificate reports whether the client authenticates with mTLS.
func (s *Settings) UsesCertificate() bool {
	return s.AuthStyle == AuthTLSClient || s.AuthStyle == AuthSelfSignedTLSClient
}

// SignsAssertions reports whether the client sends a client assertion.
func (s *Settings) SignsAssertions() bool {
	return s.AuthStyle == AuthPrivateKeyJWT || s.AuthStyle == AuthClientSecretJWT
}

// RetriesLostAnswer says whether a refresh of e whose answer was lost is
// retried once at once: only where it matters, for a vendor seen to rotate
// refresh tokens, and unless the operator turned it off.
func (s *Settings) RetriesLostAnswer(e *Entry) bool {
	return s.RetryLostRefresh && s.Grant.HoldsRefreshToken && e.Status.RotationSeen
}

// Static reports whether the credential serves a user-minted token.
func (s *Settings) Static() bool { return s.Grant != nil && !s.Grant.CallsVendor }

// Client authentication methods beyond the preset's basic and body.
const (
	AuthNone                = string(tokenclient.AuthNone)
	AuthPrivateKeyJWT       = string(tokenclient.AuthPrivateKeyJWT)
	AuthClientSecretJWT     = string(tokenclient.AuthClientSecretJWT)
	AuthTLSClient           = string(tokenclient.AuthTLSClient)
	AuthSelfSignedTLSClient = string(tokenclient.AuthSelfSignedTLSClient)
)

// AuthStyles lists every auth_style a config takes.
func AuthStyles() []string {
	return []string{providers.AuthBasic, providers.AuthBody, AuthNone, AuthPrivateKeyJWT, AuthClientSecretJWT, AuthTLSClient, AuthSelfSignedTLSClient}
}

// Resolve fills the preset's defaults into c and validates the result. Its
// errors are the operator's to fix and say how.
func (c *Config) Resolve() (*Settings, error) {
	name := c.Provider
	if name == "" {
		name = "generic"
	}
	p, ok := providers.Get(name)
	if !ok {
		return nil, fmt.Errorf("unknown provider %q; use one of: %s", c.Provider, strings.Join(providers.Names(), ", "))
	}
	s := c.fill(p)
	if err := c.resolveURLs(s); err != nil {
		return nil, err
	}
	if err := c.checkStyle(s); err != nil {
		return nil, err
	}
	if s.Static() {
		// A user-minted token needs nothing else: no endpoint is called.
		return s, nil
	}
	if err := c.checkRequired(s); err != nil {
		return nil, err
	}
	if err := c.checkExtras(s); err != nil {
		return nil, err
	}
	return s, nil
}

// ResolveAsConnection resolves an app's client config c as its
// connections do: each brings its own refresh token.
func (c *Config) ResolveAsConnection() (*Settings, error) {
	x := *c
	if x.RefreshToken == "" {
		x.RefreshToken = "a connection's"
	}
	return x.Resolve()
}

// fill is c's settings with the table's defaults where c leaves a field
// out.
func (c *Config) fill(p *providers.Preset) *Settings {
	s := &Settings{Preset: p}
	v := reflect.ValueOf(s).Elem()
	for name, idx := range settingsIndex {
		val := byName[name].InEffect(c, p)
		if val == nil {
			continue
		}
		v.FieldByIndex(idx).Set(reflect.ValueOf(val).Convert(v.FieldByIndex(idx).Type()))
	}
	s.Grant, _ = GrantOf(s.GrantType)
	s.Trust, s.Routing = TrustOf(c.CABundle), RoutingOf(c.ExtraHeaders)
	return s
}

// checkStyle checks the values that say how the request is made.
func (c *Config) checkStyle(s *Settings) error {
	p := s.Preset
	if err := oneOf("grant_type", s.GrantType, p.GrantTypes...); err != nil {
		return fmt.Errorf("%w (provider %s)", err, p.Name)
	}
	for _, f := range fields {
		if f.Holder == InConfig && f.Allowed != nil {
			if err := oneOf(f.Name, fmt.Sprint(f.InEffect(c, p)), f.Allowed()...); err != nil {
				return err
			}
		}
	}
	if err := c.checkClientAuth(s); err != nil {
		return err
	}
	for _, f := range fields {
		if f.Holder != InConfig {
			continue
		}
		if d, ok := f.Value(c).(time.Duration); ok && d < 0 {
			return fmt.Errorf("%s cannot be negative", f.Name)
		}
	}
	if c.UsePKCE != nil && *c.UsePKCE && s.AuthorizeURL == "" {
		return fmt.Errorf("use_pkce needs an authorization flow; set authorize_url")
	}
	return nil
}

// checkClientAuth checks that c carries what its auth_style needs, and
// its TLS and response-field settings.
func (c *Config) checkClientAuth(s *Settings) error {
	if t := c.TLSConfig(); t != nil {
		if err := t.Validate(); err != nil {
			return err
		}
	}
	switch {
	case s.UsesCertificate() && (c.TLSClientCertificate == "" || c.TLSClientKey == ""):
		return fmt.Errorf("auth_style=%s needs tls_client_certificate and tls_client_key (PEM)", s.AuthStyle)
	case s.AuthStyle == AuthClientSecretJWT && len(c.ClientSecret) < 32:
		return fmt.Errorf("auth_style=client_secret_jwt signs with the client secret (HS256), which must be at least 32 bytes")
	}
	if (c.TLSClientCertificate == "") != (c.TLSClientKey == "") {
		return fmt.Errorf("give tls_client_certificate and tls_client_key together")
	}
	kept := append(append([]string(nil), c.ResponseFields...), c.SecretResponseFields...)
	for _, f := range kept {
		switch f {
		case "access_token", "token_type", "expires_at", "expires_in", "scope", "refresh_token":
			return fmt.Errorf("response_fields cannot name %q: it is handed out (or kept) already", f)
		}
	}
	return tokenclient.CheckResponseFields(kept)
}

// checkRequired checks that c has what its vendor and grant need.
func (c *Config) checkRequired(s *Settings) error {
	p := s.Preset
	if s.TokenURL == "" {
		return fmt.Errorf("token_url is required for provider %s, e.g. %s", p.Name, p.Example)
	}
	if err := ValidateTokenURL(s.TokenURL); err != nil {
		return err
	}
	if c.ClientID == "" {
		return fmt.Errorf("client_id is required, e.g. %s", p.Example)
	}
	if c.ClientSecret == "" && s.UsesSecret() && (p.Requires(providers.FieldClientSecret) || s.Grant.NeedsClientSecret) {
		return fmt.Errorf("client_secret is required for grant_type=%s with provider %s", s.GrantType, p.Name)
	}
	// A vendor with an authorization or device flow gets its refresh
	// token from exchange/<name> or device/<name>, so the config may come
	// first.
	connectable := s.AuthorizeURL != "" || s.DeviceAuthorizationURL != ""
	if c.RefreshToken == "" && !connectable && (p.Requires(providers.FieldRefreshToken) || s.Grant.HoldsRefreshToken) {
		return fmt.Errorf("refresh_token is required for grant_type=%s with provider %s", s.GrantType, p.Name)
	}
	if len(c.Scopes) == 0 && p.Requires(providers.FieldScopes) {
		return fmt.Errorf("scopes are required for provider %s, e.g. %s", p.Name, p.Example)
	}
	if p.APIKeyHeader == "" && c.APIKey != "" {
		return fmt.Errorf("provider %s takes no api_key; send custom headers with extra_headers=<Header>=<value>", p.Name)
	}
	if c.APIKey == "" && p.Requires(providers.FieldAPIKey) {
		return fmt.Errorf("api_key is required for provider %s (sent as %s), e.g. %s", p.Name, p.APIKeyHeader, p.Example)
	}
	return nil
}

// checkExtras checks extra_params and extra_headers, and lists the header
// names in s.
func (c *Config) checkExtras(s *Settings) error {
	for k := range c.ExtraParams {
		if grantParam(k) {
			return fmt.Errorf("extra_params cannot set %q; use the config field for it", k)
		}
	}
	for k := range c.ExtraHeaders {
		if err := checkHeader(k, s); err != nil {
			return err
		}
		s.HeaderNames = append(s.HeaderNames, k)
	}
	sort.Strings(s.HeaderNames)
	return nil
}

func checkHeader(k string, s *Settings) error {
	if strings.EqualFold(k, "Authorization") && s.AuthStyle == providers.AuthBasic {
		return fmt.Errorf("extra_headers cannot set Authorization while auth_style=basic; use auth_style=body or drop the header")
	}
	if k == "" || strings.ContainsAny(k, " \t\r\n:") {
		return fmt.Errorf("extra_headers has an invalid header name %q", k)
	}
	if Routes(k) {
		// A shared front end (a CDN, an ingress) routes by these: one
		// would send every secret of the request to another tenant
		// behind the same address without changing token_url.
		return fmt.Errorf("extra_headers cannot set %s: it would change where the request goes; set token_url instead", http.CanonicalHeaderKey(k))
	}
	switch http.CanonicalHeaderKey(k) {
	case "Content-Type", "Content-Length", "Transfer-Encoding":
		// The body_format decides these; overriding them would make
		// the vendor misread every request.
		return fmt.Errorf("extra_headers cannot set %s; it follows from body_format", http.CanonicalHeaderKey(k))
	}
	return nil
}

// Routes reports whether a header can decide where a request goes at a
// front end that several tenants share: Host and the Forwarded family and
// their X- variants (X-Forwarded-Host, X-Forwarded-Server,
// X-Original-Url, X-Rewrite-Url, X-Host, X-HTTP-Host-Override, ...): any
// header with host, forwarded, original or rewrite among the words of its
// name, split at "-" or "_".
func Routes(header string) bool {
	// Some front ends take "_" for "-" in a header's name.
	for _, w := range strings.FieldsFunc(strings.ToLower(header), func(r rune) bool { return r == '-' || r == '_' }) {
		switch w {
		case "host", "forwarded", "original", "rewrite":
			return true
		}
	}
	return false
}

// TLSConfig is c's TLS settings for the token client, or nil.
func (c *Config) TLSConfig() *tokenclient.TLSConfig {
	if c.TLSClientCertificate == "" && c.TLSClientKey == "" && c.CABundle == "" {
		return nil
	}
	return &tokenclient.TLSConfig{ClientCertificatePEM: c.TLSClientCertificate, ClientKeyPEM: c.TLSClientKey, CABundlePEM: c.CABundle}
}

// ValidateTokenURL accepts https URLs, and http only on a loopback host
// (tests and local demos): anything else would send client secrets in the
// clear.
func ValidateTokenURL(raw string) error { return validateURL("token_url", raw) }

func validateURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%s %q is not an absolute URL; use https://host/path", field, raw)
	}
	if u.User != nil {
		return fmt.Errorf("%s must not carry credentials; use client_id and client_secret", field)
	}
	if u.Fragment != "" {
		return fmt.Errorf("%s must not have a #fragment", field)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if IsLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%s must use https (http is only allowed on a loopback host): %s", field, u.Redacted())
	default:
		return fmt.Errorf("%s must use https, not %q", field, u.Scheme)
	}
}

// IsLoopback reports whether host is localhost or a loopback address.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func pick(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

func oneOf(field, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%s %q is not supported; use one of: %s", field, v, strings.Join(allowed, ", "))
}

// grantParam reports whether a request parameter is one the client or a
// grant sets itself: extra_params may not set it.
func grantParam(k string) bool {
	switch k {
	case "grant_type", "client_id", "client_secret", "scope":
		return true
	}
	for _, g := range grants {
		if slices.Contains(g.Params, k) {
			return true
		}
	}
	return false
}
