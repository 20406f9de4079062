package model

import (
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
)

// Grant is one row of the grant table: what the plugin knows about one way
// of getting a token. Code asks a grant for its facts; no code outside
// this package and the presets compares a grant type to a name (a test
// checks).
type Grant struct {
	// Name is the grant as a config names it (grant_type=) and messages
	// show it.
	Name string
	// Wire is the grant_type the vendor is sent.
	Wire string
	// Configurable: a config or app may name it in grant_type; the others
	// run as steps of a flow (authorize and exchange, device).
	Configurable bool
	// CallsVendor: the plugin asks the vendor for tokens; false for a
	// token minted by hand, served until it expires.
	CallsVendor bool
	// HoldsRefreshToken: the credential keeps a refresh token, sends it
	// to get tokens, rotates it when the vendor does, revokes it on
	// delete, and needs the account connected again when the vendor
	// refuses it.
	HoldsRefreshToken bool
	// NeedsClientSecret: a client that authenticates with its secret must
	// have one for this grant.
	NeedsClientSecret bool
	// KeepsAlive: refreshed every keepalive_interval even when unused,
	// because vendors expire refresh tokens that go unused.
	KeepsAlive bool
	// RefusalMeans is what invalid_grant means for it, for the advice.
	RefusalMeans Refusal
	// Params are the request parameters the grant sends beside the
	// client's, by name (their values are secrets); extra_params may not
	// set them.
	Params []string
}

// Refusal is what the vendor's invalid_grant means for a grant.
type Refusal uint8

const (
	// RefusalConfig: the grant itself was refused; the client's settings
	// are wrong.
	RefusalConfig Refusal = iota
	// RefusalReauth: the refresh token is dead; the account must be
	// connected again.
	RefusalReauth
	// RefusalCode: the code is used, expired or for another redirect URI;
	// the user must consent again.
	RefusalCode
)

var grants = []*Grant{
	{Name: providers.GrantClientCredentials, Wire: providers.GrantClientCredentials, Configurable: true, CallsVendor: true, NeedsClientSecret: true, RefusalMeans: RefusalConfig},
	{Name: providers.GrantRefreshToken, Wire: providers.GrantRefreshToken, Configurable: true, CallsVendor: true, HoldsRefreshToken: true, KeepsAlive: true, RefusalMeans: RefusalReauth, Params: []string{"refresh_token"}},
	{Name: providers.GrantStatic, Configurable: true},
	{Name: providers.GrantAuthorizationCode, Wire: providers.GrantAuthorizationCode, CallsVendor: true, RefusalMeans: RefusalCode, Params: []string{"code", "redirect_uri", "code_verifier"}},
	{Name: providers.GrantDeviceCode, Wire: tokenclient.GrantTypeDeviceCode, CallsVendor: true, RefusalMeans: RefusalConfig, Params: []string{"device_code"}},
}

var grantByName = func() map[string]*Grant {
	m := map[string]*Grant{}
	for _, g := range grants {
		m[g.Name] = g
	}
	return m
}()

// GrantOf returns the grant called name.
func GrantOf(name string) (*Grant, bool) {
	g, ok := grantByName[name]
	return g, ok
}

// MustGrant returns the grant called name, which the table must have.
func MustGrant(name string) *Grant {
	g, ok := grantByName[name]
	if !ok {
		panic("model: no grant " + name)
	}
	return g
}

// Grants lists every grant.
func Grants() []*Grant { return grants }

// ConfigurableGrants lists the grants a config may name.
func ConfigurableGrants() []string {
	var out []string
	for _, g := range grants {
		if g.Configurable {
			out = append(out, g.Name)
		}
	}
	return out
}

// ConnectedGrant is the grant a credential holds once an account was
// connected to it.
func ConnectedGrant() *Grant {
	for _, g := range grants {
		if g.HoldsRefreshToken {
			return g
		}
	}
	panic("model: no grant holds a refresh token")
}
