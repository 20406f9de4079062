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

// Bindings says, for the secrets of a request built from c (Request),
// where each may be sent: the binding of the field it came from, by what
// the request calls it. A secret c holds without a binding has none here,
// and a request that would carry it is not sent.
func (c *Config) Bindings(s *Settings) map[tokenclient.SecretRef]Destination {
	out := map[tokenclient.SecretRef]Destination{}
	add := func(ref tokenclient.SecretRef, field string) {
		if d, ok := c.Bound[field]; ok {
			out[ref] = d
		}
	}
	add(tokenclient.ClientSecretRef, "client_secret")
	add(tokenclient.ParamRef("refresh_token"), "refresh_token")
	add(tokenclient.TLSKeyRef, "tls_client_key")
	for k := range c.ExtraHeaders {
		add(tokenclient.HeaderRef(k), "extra_headers")
	}
	if s.Preset.APIKeyHeader != "" && c.APIKey != "" {
		add(tokenclient.HeaderRef(s.Preset.APIKeyHeader), "api_key")
	}
	return out
}

// ClientDestination is where a client's secrets go with s: the token,
// revocation and device authorization endpoints, who may answer there,
// and the audience of its assertions.
func ClientDestination(c *Config, s *Settings) Destination {
	d := Destination{Trust: s.Trust, Audience: AssertionAudience(c, s)}
	for _, u := range []string{s.TokenURL, s.RevocationURL, s.DeviceAuthorizationURL} {
		if u != "" && !slices.Contains(d.Endpoints, u) {
			d.Endpoints = append(d.Endpoints, u)
		}
	}
	return d
}

// AccountDestination is where an account's refresh token goes with s: the
// token endpoint, and the revocation endpoint to revoke it at.
func AccountDestination(s *Settings) Destination {
	d := Destination{Trust: s.Trust, Endpoints: []string{s.TokenURL}}
	if s.RevocationURL != "" && s.RevocationURL != s.TokenURL {
		d.Endpoints = append(d.Endpoints, s.RevocationURL)
	}
	return d
}

// FlowDestination is where a pending flow's secrets (a device code, a
// code verifier and the code it unlocks) go with s: the token endpoint.
func FlowDestination(s *Settings) Destination {
	return Destination{Trust: s.Trust, Endpoints: []string{s.TokenURL}}
}

// AssertionAudience is the aud of c's client assertions with s.
func AssertionAudience(c *Config, s *Settings) string {
	return c.Request(s).AssertionAudience(s.TokenURL)
}

// Bind records where c's secrets were written for: each secret field that
// given reports (the write carried it) or that holds no binding yet is
// bound to where it goes with s (a client's secrets to the client's
// destination, an account's refresh token to the account's); the others
// keep theirs; a secret no longer set loses its binding.
func (c *Config) Bind(s *Settings, given func(field string) bool) {
	next := Bindings{}
	for _, f := range fields {
		if f.Holder != InConfig || !f.Secret || !f.IsSet(c) {
			continue
		}
		if d, ok := c.Bound[f.Name]; ok && !given(f.Name) {
			next[f.Name] = d
			continue
		}
		if f.ConnectionOnly() {
			next[f.Name] = AccountDestination(s)
		} else {
			next[f.Name] = ClientDestination(c, s)
		}
	}
	c.Bound = nil
	if len(next) > 0 {
		c.Bound = next
	}
}

// DestinationChanges lists where a config sends its secrets and users that
// differs between c and o, as "field=new (was old)": the resolved
// endpoints when both configs resolve, else the fields that choose them
// (and what an issuer's metadata said), so any change still shows; then
// the assertions' audience, who may answer at the endpoints, and the
// headers that go with every request. The client certificate and key say
// who the client is, not where it sends; the key is a secret, given again
// with the rest.
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
	// A PEM or a header's value does not fit in a message: say that it
	// changed. A header goes with every request, and a front end that
	// several tenants share may route on one.
	for _, f := range append(roleFields(Trust), roleFields(Routing)...) {
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
