package model

import (
	"fmt"
	"slices"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// Request is the wire mapping: the token request for the credential's
// grant, with every field the table marks as sent in its place. A new
// field the vendor is sent is a row of the table and a line here.
func (c *Config) Request(s *Settings) tokenclient.Request {
	r := tokenclient.Request{
		TokenURL:         s.TokenURL,
		GrantType:        s.Grant.Wire,
		ClientID:         c.ClientID,
		ClientSecret:     c.ClientSecret,
		AuthStyle:        tokenclient.AuthStyle(s.AuthStyle),
		BasicEncoding:    tokenclient.BasicEncoding(s.BasicEncoding),
		BodyFormat:       tokenclient.BodyFormat(s.BodyFormat),
		GrantTypeInQuery: s.GrantTypeInQuery,
		Scopes:           s.Scopes,
		ExtraParams:      c.ExtraParams,
		Headers:          map[string]string{},
		TLS:              c.TLSConfig(),
		Audience:         c.AssertionAudience,
		ResponseFields:   append(slices.Clone(c.ResponseFields), c.SecretResponseFields...),
	}
	if s.Grant.HoldsRefreshToken {
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

// DestinationChanges lists where a config sends its secrets and users that
// differs between c and o, as "field=new (was old)": the resolved
// endpoints when both configs resolve, else the fields that choose them
// (and what an issuer's metadata said), so any change still shows; then
// the assertions' audience, and who may answer at the endpoints. The
// client certificate and key say who the client is, not where it sends;
// the key is a secret, given again with the rest.
func (c *Config) DestinationChanges(o *Config) []string {
	type pair struct{ field, was, now string }
	var pairs []pair
	cs, cerr := c.Resolve()
	os, oerr := o.Resolve()
	if cerr == nil && oerr == nil {
		pairs = []pair{{"token_url", cs.TokenURL, os.TokenURL}, {"authorize_url", cs.AuthorizeURL, os.AuthorizeURL},
			{"revocation_url", cs.RevocationURL, os.RevocationURL}, {"device_authorization_url", cs.DeviceAuthorizationURL, os.DeviceAuthorizationURL},
			{"issuer", c.Issuer, o.Issuer}}
	} else {
		// An app with grant_type=refresh_token does not resolve without
		// a connection's refresh token: what its issuer's metadata says
		// counts too.
		for _, f := range roleFields(Endpoint) {
			pairs = append(pairs, pair{f.Name, fmt.Sprint(f.Value(c)), fmt.Sprint(f.Value(o))})
		}
		cd, od := c.discovered(), o.discovered()
		pairs = append(pairs,
			pair{"discovered token_url", cd.TokenURL, od.TokenURL}, pair{"discovered authorize_url", cd.AuthorizeURL, od.AuthorizeURL},
			pair{"discovered revocation_url", cd.RevocationURL, od.RevocationURL},
			pair{"discovered device_authorization_url", cd.DeviceAuthorizationURL, od.DeviceAuthorizationURL})
	}
	for _, f := range roleFields(Audience) {
		pairs = append(pairs, pair{f.Name, fmt.Sprint(f.Value(c)), fmt.Sprint(f.Value(o))})
	}
	var out []string
	for _, p := range pairs {
		if p.was != p.now {
			out = append(out, fmt.Sprintf("%s=%s (was %s)", p.field, p.now, p.was))
		}
	}
	// A PEM does not fit in a message: say that it changed.
	for _, f := range roleFields(Trust) {
		if !f.Equal(c, o) {
			out = append(out, f.Name+" (changed)")
		}
	}
	return out
}

// DiscoveryChanges lists where c's secrets would go differently with d in
// place of its Discovered: the resolved endpoints, so one an explicit
// field overrides does not count; when c does not resolve, any discovered
// endpoint that differs.
func (c *Config) DiscoveryChanges(d *Discovered) []string {
	before, after := c.Clone(), c.Clone()
	after.Discovered = d
	for _, x := range []*Config{&before, &after} {
		if x.RefreshToken == "" {
			x.RefreshToken = "a connection's" // resolved as an app's connections are
		}
	}
	if _, err := before.Resolve(); err == nil {
		if _, err := after.Resolve(); err == nil {
			return before.DestinationChanges(&after)
		}
	}
	var out []string
	old := c.discovered()
	for _, f := range []struct{ field, was, now string }{
		{"token_url", old.TokenURL, d.TokenURL}, {"authorize_url", old.AuthorizeURL, d.AuthorizeURL},
		{"revocation_url", old.RevocationURL, d.RevocationURL}, {"device_authorization_url", old.DeviceAuthorizationURL, d.DeviceAuthorizationURL},
	} {
		if f.was != f.now {
			out = append(out, fmt.Sprintf("%s=%s (was %s)", f.field, f.now, f.was))
		}
	}
	return out
}

func roleFields(r Role) []*Field {
	var out []*Field
	for _, f := range fields {
		if f.Holder == InConfig && f.Role == r {
			out = append(out, f)
		}
	}
	return out
}
