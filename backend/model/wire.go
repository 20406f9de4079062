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
	d := Destination{Trust: s.Trust, Routing: s.Routing, Audience: AssertionAudience(c, s)}
	for _, e := range endpoints {
		if u := e.in(s); e.secrets && u != "" && !slices.Contains(d.Endpoints, u) {
			d.Endpoints = append(d.Endpoints, u)
		}
	}
	return d
}

// AccountDestination is where an account's refresh token goes with s: the
// token endpoint, and the revocation endpoint to revoke it at. A flow that
// connects an account binds its device code or code verifier here when it
// starts, and the refresh token it gets when it ends, wherever the
// credential sends by then.
func AccountDestination(s *Settings) Destination {
	d := Destination{Trust: s.Trust, Routing: s.Routing, Endpoints: []string{s.TokenURL}}
	if s.RevocationURL != "" && s.RevocationURL != s.TokenURL {
		d.Endpoints = append(d.Endpoints, s.RevocationURL)
	}
	return d
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
		for _, e := range endpoints {
			pairs = append(pairs, pair{e.name, e.in(cs), e.in(os)})
		}
		pairs = append(pairs, pair{"issuer", c.Issuer, o.Issuer})
	} else {
		// An app with grant_type=refresh_token does not resolve without
		// a connection's refresh token: what its issuer's metadata says
		// counts too.
		for _, f := range roleFields(Endpoint) {
			pairs = append(pairs, pair{f.Name, fmt.Sprint(f.Value(c)), fmt.Sprint(f.Value(o))})
		}
		cd, od := c.discovered(), o.discovered()
		for _, e := range endpoints {
			pairs = append(pairs, pair{"discovered " + e.name, e.discovered(cd, false), e.discovered(od, false)})
			if e.secrets {
				pairs = append(pairs, pair{"discovered mutual-TLS " + e.name, cd.MTLSAliases[e.metadata], od.MTLSAliases[e.metadata]})
			}
		}
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
	for _, e := range endpoints {
		if was, now := e.discovered(old, false), e.discovered(*d, false); was != now {
			out = append(out, fmt.Sprintf("%s=%s (was %s)", e.name, now, was))
		}
		if was, now := old.MTLSAliases[e.metadata], d.MTLSAliases[e.metadata]; e.secrets && was != now {
			out = append(out, fmt.Sprintf("mutual-TLS %s=%s (was %s)", e.name, now, was))
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
