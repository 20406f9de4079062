// Package providers holds what differs between OAuth2 vendors: one
// declarative Preset per vendor, registered from its own file. A preset only
// supplies defaults; a credential's config may override any of them.
package providers

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Grant types a credential can use.
const (
	GrantClientCredentials = "client_credentials"
	GrantRefreshToken      = "refresh_token"
	// GrantStatic serves an access token the user minted at the vendor,
	// until it expires; nothing is ever requested from the vendor.
	GrantStatic = "static"
	// GrantAuthorizationCode and GrantDeviceCode connect an account: a
	// user consents and the plugin gets the account's refresh token. A
	// config does not name them; authorize/ and device/ run them.
	GrantAuthorizationCode = "authorization_code"
	GrantDeviceCode        = "device_code"
)

// Client authentication styles, basic encodings and body formats, spelled as
// the config fields take them.
const (
	AuthBasic       = "basic"
	AuthBody        = "body"
	EncodingRFC6749 = "rfc6749"
	EncodingRaw     = "raw"
	FormatForm      = "form"
	FormatJSON      = "json"
)

// Config fields a preset can make required.
const (
	FieldClientSecret = "client_secret"
	FieldRefreshToken = "refresh_token"
	FieldScopes       = "scopes"
	FieldAPIKey       = "api_key"
	FieldTokenURL     = "token_url"
)

// Preset is everything the plugin knows about one vendor's token endpoint.
type Preset struct {
	// Name is what users write as provider=<name>.
	Name string
	// DisplayName is how messages name the vendor.
	DisplayName string
	// TokenURLs maps an environment to its token endpoint. Empty for
	// generic, whose users must give token_url.
	TokenURLs map[string]string
	// DefaultEnvironment picks from TokenURLs when a config names none.
	DefaultEnvironment string
	// GrantTypes lists the grants the vendor supports; the first is the
	// default.
	GrantTypes []string
	// AuthStyle, BasicEncoding and BodyFormat say how the vendor expects
	// client credentials and parameters.
	AuthStyle     string
	BasicEncoding string
	BodyFormat    string
	// GrantTypeInQuery sends grant_type in the query string, not the body.
	GrantTypeInQuery bool
	// Required lists config fields the vendor cannot do without, beyond
	// client_id and what the grant type needs.
	Required []string
	// APIKeyHeader is the header that carries the api_key field; empty
	// when the vendor has no API key.
	APIKeyHeader string
	// ErrorHints maps a vendor error code, or "http_<status>" for errors
	// without a code, to what the operator should fix.
	ErrorHints map[string]string
	// Example is a config a user of this vendor would write, for docs and
	// error messages.
	Example string
	// AuthorizeURL is the vendor's OAuth2 authorization endpoint, for
	// connecting a user's account with authorize/<name> and
	// exchange/<name>. Empty when the vendor has no such flow.
	AuthorizeURL string
	// AuthorizeScopes are requested at authorization when the caller asks
	// for none (offline_access, so a refresh token comes back).
	AuthorizeScopes []string
	// StaticHint tells a user how to mint a new token by hand at the vendor,
	// for grant_type=static.
	StaticHint string
}

var (
	mu       sync.RWMutex
	registry = map[string]*Preset{}
)

// Register adds a preset. Each vendor's file calls it from init; a second
// preset with the same name is a programming error.
func Register(p Preset) {
	mu.Lock()
	defer mu.Unlock()
	if p.Name == "" || len(p.GrantTypes) == 0 {
		panic("providers: a preset needs a name and at least one grant type")
	}
	if _, dup := registry[p.Name]; dup {
		panic("providers: preset registered twice: " + p.Name)
	}
	cp := p
	registry[p.Name] = &cp
}

// Get returns the preset called name.
func Get(name string) (*Preset, bool) {
	mu.RLock()
	defer mu.RUnlock()
	p, ok := registry[name]
	return p, ok
}

// Names lists the registered presets, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// DefaultGrantType is the grant a config gets when it names none.
func (p *Preset) DefaultGrantType() string { return p.GrantTypes[0] }

// SupportsGrant reports whether the vendor takes grant type g.
func (p *Preset) SupportsGrant(g string) bool {
	for _, x := range p.GrantTypes {
		if x == g {
			return true
		}
	}
	return false
}

// Environments lists the preset's environments, sorted.
func (p *Preset) Environments() []string {
	envs := make([]string, 0, len(p.TokenURLs))
	for e := range p.TokenURLs {
		envs = append(envs, e)
	}
	sort.Strings(envs)
	return envs
}

// TokenURL returns the token endpoint for env ("" means the default).
func (p *Preset) TokenURL(env string) (string, error) {
	if len(p.TokenURLs) == 0 {
		return "", nil
	}
	if env == "" {
		env = p.DefaultEnvironment
	}
	u, ok := p.TokenURLs[env]
	if !ok {
		return "", fmt.Errorf("provider %s has no environment %q; use one of: %s", p.Name, env, strings.Join(p.Environments(), ", "))
	}
	return u, nil
}

// Requires reports whether field is in the preset's required list.
func (p *Preset) Requires(field string) bool {
	for _, f := range p.Required {
		if f == field {
			return true
		}
	}
	return false
}

// Hint returns what to fix for a vendor error code or HTTP status, or "".
func (p *Preset) Hint(code string, status int) string {
	if h, ok := p.ErrorHints[code]; ok && code != "" {
		return h
	}
	if h, ok := p.ErrorHints[fmt.Sprintf("http_%d", status)]; ok {
		return h
	}
	return ""
}
