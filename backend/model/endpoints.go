package model

import (
	"fmt"
	"reflect"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
)

// endpoint is one URL a config resolves: the row of the table that sets it
// explicitly (and the fields of the same name in Settings, in effect, and
// in Discovered, what an issuer's metadata said), its name in that
// metadata, what the preset gives when neither does, and whether the
// client's secrets go there (not to the authorization endpoint, where
// only the user goes).
//
// An endpoint the client's secrets go to may have a mutual-TLS alias in
// the metadata (RFC 8705 section 5, mtls_endpoint_aliases): a client that
// authenticates with its certificate uses it in place of the endpoint
// (unless the endpoint is set explicitly). The alias is then the endpoint
// in effect, so it is where the client's secrets are bound to and where
// the gate lets them go (ClientDestination, AccountDestination): nothing
// beside the endpoint table knows about aliases.
type endpoint struct {
	name     string
	metadata string
	preset   func(p *providers.Preset, env string) (string, error)
	secrets  bool
}

// endpoints are a config's URLs, in the order messages name them.
var endpoints = []endpoint{
	{name: "token_url", metadata: "token_endpoint", secrets: true, preset: func(p *providers.Preset, env string) (string, error) { return p.TokenURL(env) }},
	{name: "authorize_url", metadata: "authorization_endpoint", preset: func(p *providers.Preset, _ string) (string, error) { return p.AuthorizeURL, nil }},
	{name: "revocation_url", metadata: "revocation_endpoint", secrets: true},
	{name: "device_authorization_url", metadata: "device_authorization_endpoint", secrets: true},
}

// MTLSAliasNames are the metadata names of the endpoints a mutual-TLS
// alias is used for.
func MTLSAliasNames() []string {
	var out []string
	for _, e := range endpoints {
		if e.secrets {
			out = append(out, e.metadata)
		}
	}
	return out
}

var discoveredIndex = jsonIndex(reflect.TypeFor[Discovered]())

// checkEndpoints reports an endpoint that is not an Endpoint row with a
// field of its name in Settings and in Discovered (CheckTable).
func checkEndpoints() []string {
	var problems []string
	for _, e := range endpoints {
		f, ok := byName[e.name]
		_, inSettings := settingsIndex[e.name]
		_, inDiscovered := discoveredIndex[e.name]
		if !ok || f.Role != Endpoint || !inSettings || !inDiscovered {
			problems = append(problems, "endpoint "+e.name+" is not an Endpoint row with a Settings and a Discovered field")
		}
	}
	return problems
}

// in is e's URL in effect in s.
func (e endpoint) in(s *Settings) string {
	return reflect.ValueOf(s).Elem().FieldByIndex(settingsIndex[e.name]).String()
}

// discovered is e's URL in what an issuer's metadata said: its
// mutual-TLS alias, for a client that presents a certificate (mtls), when
// the metadata has one.
func (e endpoint) discovered(d Discovered, mtls bool) string {
	if alias := d.MTLSAliases[e.metadata]; mtls && e.secrets && alias != "" {
		return alias
	}
	return reflect.ValueOf(d).FieldByIndex(discoveredIndex[e.name]).String()
}

// resolveURLs picks every endpoint: explicit, else discovered, else the
// preset's; and checks them. The environment is shown where it picked the
// token URL (from several) and wherever the config named it: a read gives
// back what was written, so a declarative tool sees no change on a re-run.
func (c *Config) resolveURLs(s *Settings) error {
	p := s.Preset
	if c.Environment != "" && len(p.TokenURLs) == 0 {
		return fmt.Errorf("provider %s has no environments; drop environment and set token_url", p.Name)
	}
	if c.Environment == "" && len(p.TokenURLs) < 2 {
		s.Environment = ""
	}
	d := c.discovered()
	v := reflect.ValueOf(s).Elem()
	for _, e := range endpoints {
		u := pick(byName[e.name].Get(c).(string), e.discovered(d, s.UsesCertificate()))
		if u == "" && e.preset != nil {
			var err error
			if u, err = e.preset(p, c.Environment); err != nil {
				return err
			}
		} else if e.name == "token_url" && c.Environment == "" {
			s.Environment = "" // the token URL is not an environment's
		}
		v.FieldByIndex(settingsIndex[e.name]).SetString(u)
		// The token URL is checked with what the grant needs.
		if u != "" && e.name != "token_url" {
			if err := validateURL(e.name, u); err != nil {
				return err
			}
		}
	}
	return nil
}
