// Package model is what a credential is, declared once: its fields (one
// row each, fields.go), its grants (one row each, grant.go), the settings
// a config resolves to with its preset and its app, where each of its
// secrets may be sent, the stored entry, the app, and the lease rule. It
// holds no storage and no Vault framework: backend/store keeps it, backend
// acts on it, and the root package turns its rows into paths.
package model

import (
	"maps"
	"reflect"
	"slices"
	"time"
)

// Config is what an operator wrote. Empty fields mean "the preset's
// default", so a preset change reaches every config that did not override
// it. Every field has a row in the field table (fields.go) under its JSON
// name, or is one of the few the plugin records itself (internalFields).
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

	AssertionAudience      string      `json:"assertion_audience,omitempty"`
	TLSClientCertificate   string      `json:"tls_client_certificate,omitempty"`
	TLSClientKey           string      `json:"tls_client_key,omitempty"`
	CABundle               string      `json:"ca_bundle,omitempty"`
	Issuer                 string      `json:"issuer,omitempty"`
	Discovered             *Discovered `json:"discovered,omitempty"`
	RevocationURL          string      `json:"revocation_url,omitempty"`
	RevokeOnDelete         *bool       `json:"revoke_on_delete,omitempty"`
	DeviceAuthorizationURL string      `json:"device_authorization_url,omitempty"`
	ResponseFields         []string    `json:"response_fields,omitempty"`
	SecretResponseFields   []string    `json:"secret_response_fields,omitempty"`

	// Bound is where each secret the config holds was written or issued
	// for, by field: it is never sent anywhere else, whatever the config
	// or its app later says (backend/outbound checks every request).
	Bound Bindings `json:"bound,omitempty"`
}

// Discovered is what an issuer's metadata said, when it was fetched.
type Discovered struct {
	TokenURL               string `json:"token_url,omitempty"`
	AuthorizeURL           string `json:"authorize_url,omitempty"`
	RevocationURL          string `json:"revocation_url,omitempty"`
	DeviceAuthorizationURL string `json:"device_authorization_url,omitempty"`
	// MTLSAliases are the mutual-TLS endpoints (RFC 8705 section 5), by
	// their metadata name (token_endpoint, ...): a client that presents a
	// certificate sends there.
	MTLSAliases map[string]string `json:"mtls_endpoint_aliases,omitempty"`
	AuthMethods []string          `json:"auth_methods,omitempty"`
	PKCEMethods []string          `json:"pkce_methods,omitempty"`
	FetchedAt   time.Time         `json:"fetched_at"`
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

// Clone returns a deep copy of c.
func (c *Config) Clone() Config {
	return deepCopy(reflect.ValueOf(*c)).Interface().(Config)
}

// SameRequest reports whether c and o make the vendor the same request:
// every field the table marks as sent is equal. A change of what is sent
// drops the cached token (it was issued for other credentials or scopes)
// and resets the credential's backoff (the vendor deserves a fresh try); a
// change of lease settings does neither. It compares effective configs (a
// connection's with its app's merged in), so which app supplies a setting
// does not matter, only what is sent.
func (c *Config) SameRequest(o *Config) bool {
	for _, f := range fields {
		if f.Holder == InConfig && f.Sent && !f.Equal(c, o) {
			return false
		}
	}
	return true
}

// SecretsSet names the secret fields that hold a value.
func (c *Config) SecretsSet() []string {
	var out []string
	for _, f := range fields {
		if f.Holder == InConfig && f.Secret && f.IsSet(c) {
			out = append(out, f.Name)
		}
	}
	return out
}

// Secrets lists every secret value of the config, for redaction.
func (c *Config) Secrets() []string {
	var out []string
	for _, f := range fields {
		if f.Holder != InConfig || !f.Secret {
			continue
		}
		switch v := f.Get(c).(type) {
		case string:
			out = append(out, v)
		case map[string]string:
			for _, k := range slices.Sorted(maps.Keys(v)) {
				out = append(out, v[k])
			}
		}
	}
	return out
}

// Effective is the config a connection of app a acts with: the app's
// fields where the connection may not set them or leaves them unset, the
// connection's where it sets them (its extra_params merged over the
// app's), and each secret with the binding of whichever holds it. A
// self-contained config is itself.
func (c *Config) Effective(a *App) Config {
	if c.App == "" || a == nil {
		return *c
	}
	eff := a.Config.Clone()
	for _, f := range fields {
		if f.Holder != InConfig || !f.In(OnConnection) {
			continue
		}
		switch {
		case f.ConnectionOnly():
			f.copyField(&eff, c)
		case !f.IsSet(c):
		case f.Kind == Pairs:
			merged := maps.Clone(f.Get(&eff).(map[string]string))
			if merged == nil {
				merged = map[string]string{}
			}
			maps.Copy(merged, f.Get(c).(map[string]string))
			f.slot(&eff).Set(reflect.ValueOf(merged))
		default:
			f.copyField(&eff, c)
		}
	}
	// Each secret keeps the binding of whichever holds it: the app's
	// client secrets the app's, the account's refresh token its own.
	for name, d := range c.Bound {
		if f, ok := byName[name]; ok && f.ConnectionOnly() {
			if eff.Bound == nil {
				eff.Bound = Bindings{}
			}
			eff.Bound[name] = d.Clone()
		}
	}
	return eff
}

// OverridesNothing reports whether a connection's config takes every
// setting from its app.
func (c *Config) OverridesNothing() bool {
	for _, f := range fields {
		if f.Holder == InConfig && f.Shared() && f.IsSet(c) {
			return false
		}
	}
	return true
}

// AsConnection is c converted into a connection of app: what one account
// holds stays (with its bindings), what the app supplies goes.
func (c *Config) AsConnection(app string) Config {
	out := Config{App: app}
	for _, f := range fields {
		if f.Holder == InConfig && f.In(OnConnection) && f.Name != "app" {
			f.copyField(&out, c)
		}
	}
	for name, d := range c.Bound {
		if f, ok := byName[name]; ok && f.In(OnConnection) {
			if out.Bound == nil {
				out.Bound = Bindings{}
			}
			out.Bound[name] = d.Clone()
		}
	}
	return out
}

func (c *Config) discovered() Discovered {
	if c.Discovered == nil {
		return Discovered{}
	}
	return *c.Discovered
}

// deepCopy copies v, following pointers, slices and maps.
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		out := reflect.New(v.Type().Elem())
		out.Elem().Set(deepCopy(v.Elem()))
		return out
	case reflect.Slice:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(deepCopy(v.Index(i)))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return reflect.Zero(v.Type())
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			out.SetMapIndex(it.Key(), deepCopy(it.Value()))
		}
		return out
	case reflect.Struct:
		// Unexported fields (a time.Time's) are copied as they are.
		out := reflect.New(v.Type()).Elem()
		out.Set(v)
		for i := range v.NumField() {
			if out.Field(i).CanSet() {
				out.Field(i).Set(deepCopy(v.Field(i)))
			}
		}
		return out
	}
	return v
}
