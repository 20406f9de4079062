// Package backend holds what Vault does not see: the stored credential, the
// cached token, and the logic that decides when and how to get a new one.
package backend

import (
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
)

// SchemaVersion is written into every stored entry so later versions can
// upgrade old ones. Version 2 moved the last vendor error to status/<name>
// and open authorizations to authz/<name>/, so recording an error or
// starting an authorization no longer rewrites the secrets.
const SchemaVersion = 2

// StoragePrefix is where credentials live; it is seal-wrapped.
const StoragePrefix = "creds/"

// Defaults for a config that leaves a setting out.
const (
	DefaultTTL        = 10 * time.Minute
	DefaultExpirySkew = 30 * time.Second
)

// Config is what an operator wrote. Empty fields mean "the preset's
// default", so a preset change reaches every config that did not override it.
type Config struct {
	Provider         string            `json:"provider"`
	Environment      string            `json:"environment,omitempty"`
	GrantType        string            `json:"grant_type,omitempty"`
	TokenURL         string            `json:"token_url,omitempty"`
	ClientID         string            `json:"client_id"`
	ClientSecret     string            `json:"client_secret,omitempty"`
	RefreshToken     string            `json:"refresh_token,omitempty"`
	APIKey           string            `json:"api_key,omitempty"`
	Scopes           []string          `json:"scopes,omitempty"`
	AuthStyle        string            `json:"auth_style,omitempty"`
	BasicEncoding    string            `json:"basic_encoding,omitempty"`
	BodyFormat       string            `json:"body_format,omitempty"`
	GrantTypeInQuery *bool             `json:"grant_type_in_query,omitempty"`
	ExtraParams      map[string]string `json:"extra_params,omitempty"`
	ExtraHeaders     map[string]string `json:"extra_headers,omitempty"`
	DefaultTTL       time.Duration     `json:"default_ttl,omitempty"`
	MaxTTL           time.Duration     `json:"max_ttl,omitempty"`
	ExpirySkew       *time.Duration    `json:"expiry_skew,omitempty"`
	AuthorizeURL     string            `json:"authorize_url,omitempty"`
	// UsePKCE: nil means on, for every authorization flow (a server that
	// does not know PKCE must ignore its parameters, RFC 6749 3.1).
	UsePKCE *bool `json:"use_pkce,omitempty"`
	// RetryLostRefresh: nil means the default, true.
	RetryLostRefresh *bool `json:"retry_lost_refresh,omitempty"`
	// KeepAlive: nil means DefaultKeepAlive; 0 turns keep-alives off.
	KeepAlive *time.Duration `json:"keepalive_interval,omitempty"`

	// App makes this a connection of an app (apps/<app>): the client's
	// settings and secrets come from the app, the config holds one
	// account's refresh token, scopes, parameters and metadata.
	App string `json:"app,omitempty"`
	// Metadata is non-secret key=value pairs, such as the partner's own
	// customer id.
	Metadata map[string]string `json:"metadata,omitempty"`
	// RefreshTokenFor is the token endpoint the refresh token was written
	// or issued for: it is never sent anywhere else, whatever the config
	// or its app later says.
	RefreshTokenFor string `json:"refresh_token_for,omitempty"`
	// RevokeURLFor is the revocation endpoint in effect when the refresh
	// token was written or issued: deleting the credential revokes it
	// there only. Empty for refresh tokens stored before it was recorded
	// (or when no revocation endpoint was known): those are revoked only
	// at a revocation endpoint on the host of their token endpoint.
	RevokeURLFor string `json:"revoke_url_for,omitempty"`

	// AssertionAudience overrides the aud of private_key_jwt and
	// client_secret_jwt client assertions (the token endpoint).
	AssertionAudience string `json:"assertion_audience,omitempty"`
	// TLSClientCertificate (PEM) and TLSClientKey (PEM, secret) for
	// tls_client_auth and self_signed_tls_client_auth (RFC 8705); CABundle
	// (PEM) for endpoints whose certificates a public CA did not sign.
	TLSClientCertificate string `json:"tls_client_certificate,omitempty"`
	TLSClientKey         string `json:"tls_client_key,omitempty"`
	CABundle             string `json:"ca_bundle,omitempty"`
	// Issuer is the authorization server whose metadata (RFC 8414, OpenID
	// Discovery) filled Discovered; explicit URL fields win over it.
	Issuer     string      `json:"issuer,omitempty"`
	Discovered *Discovered `json:"discovered,omitempty"`
	// RevocationURL (RFC 7009) overrides the discovered one;
	// RevokeOnDelete (nil: true) revokes the refresh token there when the
	// credential is deleted.
	RevocationURL  string `json:"revocation_url,omitempty"`
	RevokeOnDelete *bool  `json:"revoke_on_delete,omitempty"`
	// DeviceAuthorizationURL (RFC 8628) overrides the discovered one.
	DeviceAuthorizationURL string `json:"device_authorization_url,omitempty"`
	// ResponseFields are fields of the token response to keep and hand out
	// beside access_token; SecretResponseFields the same, treated as
	// secrets (never logged or shown in a config read), id_token among
	// them.
	ResponseFields       []string `json:"response_fields,omitempty"`
	SecretResponseFields []string `json:"secret_response_fields,omitempty"`
}

// Discovered is what an issuer's metadata said, when it was fetched.
type Discovered struct {
	TokenURL               string    `json:"token_url,omitempty"`
	AuthorizeURL           string    `json:"authorize_url,omitempty"`
	RevocationURL          string    `json:"revocation_url,omitempty"`
	DeviceAuthorizationURL string    `json:"device_authorization_url,omitempty"`
	AuthMethods            []string  `json:"auth_methods,omitempty"`
	PKCEMethods            []string  `json:"pkce_methods,omitempty"`
	FetchedAt              time.Time `json:"fetched_at"`
	// CheckedAt is when the active node last tried to fetch the metadata
	// again in the background; Failures how many of those tries in a row
	// failed, for the backoff.
	CheckedAt time.Time `json:"checked_at,omitempty"`
	Failures  int       `json:"failures,omitempty"`
	// Changed lists, as DestinationChanges does, the endpoints a later
	// fetch named that differ from those above: they are not used until
	// an operator writes the issuer again with the secrets.
	Changed []string `json:"changed,omitempty"`
}

// SameRequest reports whether c and o make the vendor the same request:
// same endpoint, same client and account credentials, same parameters and
// headers. Every field of Config is either listed here or in notSent
// (a test checks), so a new field cannot be forgotten: a change of what is
// sent drops the cached token (it was issued for other credentials or
// scopes) and resets the credential's backoff (the vendor deserves a
// fresh try), a change of lease settings does neither.
func (c *Config) SameRequest(o *Config) bool {
	return c.sentScalars() == o.sentScalars() &&
		slices.Equal(c.Scopes, o.Scopes) &&
		maps.Equal(c.ExtraParams, o.ExtraParams) &&
		maps.Equal(c.ExtraHeaders, o.ExtraHeaders) &&
		slices.Equal(c.ResponseFields, o.ResponseFields) &&
		slices.Equal(c.SecretResponseFields, o.SecretResponseFields)
}

// sentScalars are the single-valued fields SameRequest compares, in a
// comparable struct; a pointer's value counts (nil is "").
type sentScalars struct {
	provider, environment, grantType, tokenURL, clientID, clientSecret, refreshToken, apiKey string
	authStyle, basicEncoding, bodyFormat, grantTypeInQuery                                   string
	assertionAudience, tlsClientCertificate, tlsClientKey, caBundle, issuer                  string
}

func (c *Config) sentScalars() sentScalars {
	return sentScalars{
		c.Provider, c.Environment, c.GrantType, c.TokenURL, c.ClientID, c.ClientSecret, c.RefreshToken, c.APIKey,
		c.AuthStyle, c.BasicEncoding, c.BodyFormat, boolText(c.GrantTypeInQuery),
		c.AssertionAudience, c.TLSClientCertificate, c.TLSClientKey, c.CABundle, c.Issuer,
	}
}

func boolText(b *bool) string {
	if b == nil {
		return ""
	}
	return strconv.FormatBool(*b)
}

// notSent lists the Config fields that are not part of the vendor's
// request: how a token is handed out, and what the plugin records about a
// credential. SameRequest compares effective configs (a connection's with
// its app's merged in), so which app supplies a setting does not matter,
// only what is sent.
var notSent = []string{"DefaultTTL", "MaxTTL", "ExpirySkew", "RetryLostRefresh", "KeepAlive", "Metadata", "App", "RefreshTokenFor", "RevokeURLFor",
	// What the issuer said and where else secrets go (checked as
	// destinations, not as the token request).
	"Discovered", "RevocationURL", "RevokeOnDelete", "DeviceAuthorizationURL",
	// How an account is connected, not how its tokens are got: a token
	// obtained before a change of these is still the one the vendor
	// would issue (a schema 1 entry keeps use_pkce=false, its app
	// leaves it on, and its conversion keeps the cached token).
	"AuthorizeURL", "UsePKCE"}

// DestinationChanges lists where a config sends its secrets and users that
// differs between c and o, as "field=new (was old)": the resolved token
// and authorization endpoints when both configs resolve, else the raw
// fields that choose them, so any change still shows. Who may answer at an
// endpoint counts too: ca_bundle decides which hosts are trusted to be the
// endpoints, and assertion_audience where a client assertion (a
// credential) is valid. The client certificate and key say who the client
// is, not where it sends; the key is a secret, given again with the rest.
func (c *Config) DestinationChanges(o *Config) []string {
	type pair struct{ field, was, now string }
	var fields []pair
	cs, cerr := c.Resolve()
	os, oerr := o.Resolve()
	if cerr == nil && oerr == nil {
		fields = []pair{{"token_url", cs.TokenURL, os.TokenURL}, {"authorize_url", cs.AuthorizeURL, os.AuthorizeURL},
			{"revocation_url", cs.RevocationURL, os.RevocationURL}, {"device_authorization_url", cs.DeviceAuthorizationURL, os.DeviceAuthorizationURL}}
	} else {
		// An app with grant_type=refresh_token does not resolve without
		// a connection's refresh token: what its issuer's metadata says
		// counts too.
		cd, od := c.discovered(), o.discovered()
		fields = []pair{{"provider", c.Provider, o.Provider}, {"environment", c.Environment, o.Environment},
			{"token_url", c.TokenURL, o.TokenURL}, {"authorize_url", c.AuthorizeURL, o.AuthorizeURL},
			{"revocation_url", c.RevocationURL, o.RevocationURL}, {"device_authorization_url", c.DeviceAuthorizationURL, o.DeviceAuthorizationURL},
			{"discovered token_url", cd.TokenURL, od.TokenURL}, {"discovered authorize_url", cd.AuthorizeURL, od.AuthorizeURL},
			{"discovered revocation_url", cd.RevocationURL, od.RevocationURL},
			{"discovered device_authorization_url", cd.DeviceAuthorizationURL, od.DeviceAuthorizationURL}}
	}
	fields = append(fields, pair{"issuer", c.Issuer, o.Issuer}, pair{"assertion_audience", c.AssertionAudience, o.AssertionAudience})
	var out []string
	for _, f := range fields {
		if f.was != f.now {
			out = append(out, fmt.Sprintf("%s=%s (was %s)", f.field, f.now, f.was))
		}
	}
	if c.CABundle != o.CABundle {
		// A PEM does not fit in a message: say that it changed.
		out = append(out, "ca_bundle (changed)")
	}
	return out
}

func (c *Config) discovered() Discovered {
	if c.Discovered == nil {
		return Discovered{}
	}
	return *c.Discovered
}

// SecretsSet names the write-only fields that hold a value.
func (c *Config) SecretsSet() []string {
	var out []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{providers.FieldClientSecret, c.ClientSecret != ""},
		{providers.FieldRefreshToken, c.RefreshToken != ""},
		{providers.FieldAPIKey, c.APIKey != ""},
		{"extra_headers", len(c.ExtraHeaders) > 0},
		{"tls_client_key", c.TLSClientKey != ""},
	} {
		if f.set {
			out = append(out, f.name)
		}
	}
	return out
}

// Token is a cached access token.
type Token struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	Scope       string    `json:"scope,omitempty"`
	ExpiresAt   time.Time `json:"expires_at"`
	ObtainedAt  time.Time `json:"obtained_at"`
	// Replaces is when the token this one replaced by a refresh was
	// obtained (zero when it replaced none: the first token, or one after
	// the previous was dropped). Leases of that token keep renewing to
	// their own end; those of any other earlier token do not.
	Replaces time.Time `json:"replaces,omitzero"`
	// Fields and SecretFields are the response fields the config asked to
	// keep (response_fields, secret_response_fields).
	Fields       map[string]string `json:"fields,omitempty"`
	SecretFields map[string]string `json:"secret_fields,omitempty"`
}

// Status is the part of a credential's health that decides what the
// plugin may do, stored with the tokens it is about.
type Status struct {
	LastRefreshedAt time.Time `json:"last_refreshed_at,omitempty"`
	// NeedsReauthorization is set when the vendor refused the refresh
	// token with invalid_grant: it is dead, calling again cannot help, and
	// a human must connect the account again or write a new one.
	NeedsReauthorization bool `json:"needs_reauthorization,omitempty"`
	// ReauthReason is the vendor's refusal, for the message.
	ReauthReason string `json:"reauth_reason,omitempty"`
	// RotationSeen records that the vendor has rotated this credential's
	// refresh token, so a refresh whose outcome is unknown may have killed
	// the stored one.
	RotationSeen bool `json:"rotation_seen,omitempty"`
	// OutcomeUnknownAt is when a refresh of a rotating credential was sent
	// and no answer came back (after the one prompt retry, if any): the
	// stored refresh token may be dead, and the plugin does not call the
	// vendor on its own until an operator acts or an answer clears it.
	OutcomeUnknownAt time.Time `json:"outcome_unknown_at,omitempty"`
}

// Problem is the last failed vendor call of a credential, stored on its own
// (status/<name>, not seal-wrapped: it holds no secret) so recording it
// does not rewrite the secrets.
type Problem struct {
	LastError     string    `json:"last_error,omitempty"`
	LastErrorCode string    `json:"last_error_code,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitempty"`
}

// Authorization is an authorization-code flow started with authorize/<name>
// and not yet exchanged, stored at authz/<name>/<hash of its state>.
type Authorization struct {
	RedirectURI  string    `json:"redirect_uri"`
	Scopes       []string  `json:"scopes,omitempty"`
	CodeVerifier string    `json:"code_verifier,omitempty"`
	ExpiresAt    time.Time `json:"expires_at"`
	// App and Metadata shape a connection the exchange creates or
	// reconnects.
	App      string            `json:"app,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Entry is one credential as stored: config, cached token and the status
// that goes with them in a single storage entry, so a rotated refresh
// token and the access token it came with are written together or not at
// all.
type Entry struct {
	Version int    `json:"version"`
	Config  Config `json:"config"`
	Token   *Token `json:"token,omitempty"`
	Status  Status `json:"status"`

	// legacy holds what a version 1 entry kept inline, until the next
	// write moves it to its own keys.
	legacy *legacyParts
}

// legacyParts are a version 1 entry's inline error and open
// authorizations.
type legacyParts struct {
	Problem        Problem
	Authorizations map[string]*Authorization
}

// Clone returns a deep copy, so cached entries can be shared read-only.
func (e *Entry) Clone() *Entry {
	out := *e
	out.Config = e.Config.clone()
	if e.Token != nil {
		t := *e.Token
		t.Fields, t.SecretFields = maps.Clone(t.Fields), maps.Clone(t.SecretFields)
		out.Token = &t
	}
	return &out
}

func (c Config) clone() Config {
	c.Scopes = slices.Clone(c.Scopes)
	c.ExtraParams = maps.Clone(c.ExtraParams)
	c.ExtraHeaders = maps.Clone(c.ExtraHeaders)
	c.Metadata = maps.Clone(c.Metadata)
	c.GrantTypeInQuery = clonePtr(c.GrantTypeInQuery)
	c.ExpirySkew = clonePtr(c.ExpirySkew)
	c.RetryLostRefresh = clonePtr(c.RetryLostRefresh)
	c.KeepAlive = clonePtr(c.KeepAlive)
	c.UsePKCE = clonePtr(c.UsePKCE)
	c.RevokeOnDelete = clonePtr(c.RevokeOnDelete)
	c.ResponseFields = slices.Clone(c.ResponseFields)
	c.SecretResponseFields = slices.Clone(c.SecretResponseFields)
	if c.Discovered != nil {
		d := *c.Discovered
		d.AuthMethods, d.PKCEMethods, d.Changed = slices.Clone(d.AuthMethods), slices.Clone(d.PKCEMethods), slices.Clone(d.Changed)
		c.Discovered = &d
	}
	return c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// Settings is a Config with every default filled in: what a grant uses.
type Settings struct {
	Preset           *providers.Preset
	Environment      string
	GrantType        string
	TokenURL         string
	ClientID         string
	Scopes           []string
	AuthStyle        string
	BasicEncoding    string
	BodyFormat       string
	GrantTypeInQuery bool
	ExtraParams      map[string]string
	HeaderNames      []string
	DefaultTTL       time.Duration
	MaxTTL           time.Duration
	ExpirySkew       time.Duration
	AuthorizeURL     string
	RetryLostRefresh bool
	KeepAlive        time.Duration
	UsePKCE          bool
	// Where else the credential's secrets go, resolved like TokenURL:
	// explicit, else discovered.
	RevocationURL          string
	DeviceAuthorizationURL string
	RevokeOnDelete         bool
}

// usesSecret reports whether the client authenticates with its secret
// (not a key or a certificate).
func (s *Settings) usesSecret() bool {
	switch s.AuthStyle {
	case providers.AuthBasic, providers.AuthBody, AuthClientSecretJWT:
		return true
	}
	return false
}

// usesKey reports whether the client signs assertions with a key born in
// (or imported into) Vault.
func (s *Settings) usesKey() bool { return s.AuthStyle == AuthPrivateKeyJWT }

// usesCertificate reports whether the client authenticates with mTLS.
func (s *Settings) usesCertificate() bool {
	return s.AuthStyle == AuthTLSClient || s.AuthStyle == AuthSelfSignedTLSClient
}

// retriesLostAnswer says whether a refresh of e whose answer was lost is
// retried once at once: only where it matters, for a vendor seen to rotate
// refresh tokens, and unless the operator turned it off.
func (s *Settings) retriesLostAnswer(e *Entry) bool {
	return s.RetryLostRefresh && s.GrantType == providers.GrantRefreshToken && e.Status.RotationSeen
}

// Static reports whether the credential serves a user-minted token.
func (s *Settings) Static() bool { return s.GrantType == providers.GrantStatic }

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
	s := c.withDefaults(p)
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

// withDefaults is c's settings with the preset's defaults where c leaves
// them out.
func (c *Config) withDefaults(p *providers.Preset) *Settings {
	s := &Settings{
		Preset:           p,
		Environment:      pick(c.Environment, p.DefaultEnvironment),
		GrantType:        pick(c.GrantType, p.DefaultGrantType()),
		ClientID:         c.ClientID,
		Scopes:           c.Scopes,
		AuthStyle:        pick(c.AuthStyle, p.AuthStyle),
		BasicEncoding:    pick(c.BasicEncoding, p.BasicEncoding),
		BodyFormat:       pick(c.BodyFormat, p.BodyFormat),
		GrantTypeInQuery: derefOr(c.GrantTypeInQuery, p.GrantTypeInQuery),
		ExtraParams:      c.ExtraParams,
		DefaultTTL:       DefaultTTL,
		MaxTTL:           c.MaxTTL,
		ExpirySkew:       derefOr(c.ExpirySkew, DefaultExpirySkew),
		RetryLostRefresh: derefOr(c.RetryLostRefresh, true),
		KeepAlive:        derefOr(c.KeepAlive, DefaultKeepAlive),
		UsePKCE:          derefOr(c.UsePKCE, true),
		RevokeOnDelete:   derefOr(c.RevokeOnDelete, true),
	}
	if c.DefaultTTL > 0 {
		s.DefaultTTL = c.DefaultTTL
	}
	return s
}

func derefOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// resolveURLs picks every endpoint: explicit, else discovered, else the
// preset's; and checks them.
func (c *Config) resolveURLs(s *Settings) error {
	p := s.Preset
	if c.Environment != "" && len(p.TokenURLs) == 0 {
		return fmt.Errorf("provider %s has no environments; drop environment and set token_url", p.Name)
	}
	presetURL, err := p.TokenURL(c.Environment)
	if err != nil {
		return err
	}
	d := c.Discovered
	if d == nil {
		d = &Discovered{}
	}
	s.TokenURL = pick(c.TokenURL, pick(d.TokenURL, presetURL))
	s.AuthorizeURL = pick(c.AuthorizeURL, pick(d.AuthorizeURL, p.AuthorizeURL))
	s.RevocationURL = pick(c.RevocationURL, d.RevocationURL)
	s.DeviceAuthorizationURL = pick(c.DeviceAuthorizationURL, d.DeviceAuthorizationURL)
	for _, u := range []struct{ field, url string }{
		{"authorize_url", s.AuthorizeURL}, {"revocation_url", s.RevocationURL}, {"device_authorization_url", s.DeviceAuthorizationURL},
	} {
		if u.url == "" {
			continue
		}
		if err := validateURL(u.field, u.url); err != nil {
			return err
		}
	}
	return nil
}

// checkStyle checks the values that say how the request is made.
func (c *Config) checkStyle(s *Settings) error {
	p := s.Preset
	if err := oneOf("grant_type", s.GrantType, p.GrantTypes...); err != nil {
		return fmt.Errorf("%w (provider %s)", err, p.Name)
	}
	for _, f := range []struct {
		field, v string
		allowed  []string
	}{
		{"auth_style", s.AuthStyle, AuthStyles()},
		{"basic_encoding", s.BasicEncoding, []string{providers.EncodingRFC6749, providers.EncodingRaw}},
		{"body_format", s.BodyFormat, []string{providers.FormatForm, providers.FormatJSON}},
	} {
		if err := oneOf(f.field, f.v, f.allowed...); err != nil {
			return err
		}
	}
	if err := c.checkClientAuth(s); err != nil {
		return err
	}
	if c.MaxTTL < 0 || c.DefaultTTL < 0 || s.ExpirySkew < 0 || s.KeepAlive < 0 {
		return fmt.Errorf("default_ttl, max_ttl, expiry_skew and keepalive_interval cannot be negative")
	}
	if c.UsePKCE != nil && *c.UsePKCE && s.AuthorizeURL == "" {
		return fmt.Errorf("use_pkce needs an authorization flow; set authorize_url")
	}
	return nil
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
	if c.ClientSecret == "" && s.usesSecret() && (p.Requires(providers.FieldClientSecret) || s.GrantType == providers.GrantClientCredentials) {
		return fmt.Errorf("client_secret is required for grant_type=%s with provider %s", s.GrantType, p.Name)
	}
	// A vendor with an authorization or device flow gets its refresh
	// token from exchange/<name> or device/<name>, so the config may come
	// first.
	connectable := s.AuthorizeURL != "" || s.DeviceAuthorizationURL != ""
	if c.RefreshToken == "" && !connectable && (p.Requires(providers.FieldRefreshToken) || s.GrantType == providers.GrantRefreshToken) {
		return fmt.Errorf("refresh_token is required for grant_type=refresh_token with provider %s", p.Name)
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
		switch k {
		case "grant_type", "client_id", "client_secret", "scope", "refresh_token", "code", "redirect_uri", "code_verifier":
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
	switch http.CanonicalHeaderKey(k) {
	case "Host", "X-Forwarded-Host", "Forwarded", "X-Original-Url", "X-Rewrite-Url", "X-Original-Host", "X-Host":
		// A shared front end (a CDN, an ingress) routes by these: one
		// would send every secret of the request to another tenant
		// behind the same address without changing token_url.
		return fmt.Errorf("extra_headers cannot set %s: it would change where the request goes; set token_url instead", http.CanonicalHeaderKey(k))
	case "Content-Type", "Content-Length", "Transfer-Encoding":
		// The body_format decides these; overriding them would make
		// the vendor misread every request.
		return fmt.Errorf("extra_headers cannot set %s; it follows from body_format", http.CanonicalHeaderKey(k))
	}
	return nil
}

// Request builds the token request for the credential's grant.
func (c *Config) Request(s *Settings) tokenclient.Request {
	r := tokenclient.Request{
		TokenURL:         s.TokenURL,
		GrantType:        s.GrantType,
		ClientID:         c.ClientID,
		ClientSecret:     c.ClientSecret,
		AuthStyle:        tokenclient.AuthStyle(s.AuthStyle),
		BasicEncoding:    tokenclient.BasicEncoding(s.BasicEncoding),
		BodyFormat:       tokenclient.BodyFormat(s.BodyFormat),
		GrantTypeInQuery: s.GrantTypeInQuery,
		Scopes:           s.Scopes,
		ExtraParams:      c.ExtraParams,
		Headers:          map[string]string{},
	}
	if s.GrantType == providers.GrantRefreshToken {
		r.Params = map[string]string{"refresh_token": c.RefreshToken}
	}
	for k, v := range c.ExtraHeaders {
		r.Headers[k] = v
	}
	if s.Preset.APIKeyHeader != "" && c.APIKey != "" {
		r.Headers[s.Preset.APIKeyHeader] = c.APIKey
	}
	return r
}

// Secrets lists every secret value of the config, for redaction.
func (c *Config) Secrets() []string {
	out := []string{c.ClientSecret, c.RefreshToken, c.APIKey, c.TLSClientKey}
	for _, v := range c.ExtraHeaders {
		out = append(out, v)
	}
	return out
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
		if isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%s must use https (http is only allowed on a loopback host): %s", field, u.Redacted())
	default:
		return fmt.Errorf("%s must use https, not %q", field, u.Scheme)
	}
}

// parseHost is the host of a URL.
func parseHost(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	return u.Host, nil
}

func isLoopback(host string) bool {
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

// Clone returns a deep copy of c.
func (c *Config) Clone() Config { return c.clone() }
