// Package vendoroauth is a Vault secrets engine that keeps SaaS vendors'
// OAuth2 client secrets and refresh tokens, and hands out short-lived access
// tokens under Vault leases. This package holds what Vault sees: the
// factory and the paths. The credential store, token cache and refresh
// logic live in package backend; what differs per vendor in providers.
package vendoroauth

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// operationPrefix prefixes the plugin's OpenAPI operation ids.
const operationPrefix = "vendor-oauth"

// vendorBackend is one mount of the plugin.
type vendorBackend struct {
	*framework.Backend
	creds   *backend.Manager
	started time.Time
}

// Factory returns a logical.Factory for the plugin reporting version as its
// running version. Every call to the factory makes an independent backend,
// because one plugin process serves many mounts.
func Factory(version string) logical.Factory {
	return func(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
		b := newBackend(conf, version)
		if err := b.Setup(ctx, conf); err != nil {
			return nil, err
		}
		return b, nil
	}
}

func newBackend(conf *logical.BackendConfig, version string) *vendorBackend {
	b := &vendorBackend{started: time.Now()}
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			SealWrapStorage: []string{backend.StoragePrefix},
		},
		Paths: framework.PathAppend(
			pathConfig(b),
			pathToken(b),
			pathAuthorize(b),
			pathRefresh(b),
			pathStatus(b),
		),
		PeriodicFunc:   b.periodic,
		Secrets:        []*framework.Secret{secretToken(b)},
		Invalidate:     b.invalidate,
		Clean:          b.clean,
		RunningVersion: version,
	}
	ua := "vault-plugin-secrets-vendoroauth/" + version
	b.creds = backend.NewManager(conf.Logger, tokenclient.New(tokenclient.WithUserAgent(ua)))
	return b
}

// now is the backend's clock, the manager's in tests.
func (b *vendorBackend) now() time.Time { return b.creds.Now() }

func (b *vendorBackend) invalidate(_ context.Context, key string) {
	b.creds.Invalidate(key)
}

// periodic refreshes tokens ahead of need on the node that can write.
func (b *vendorBackend) periodic(ctx context.Context, req *logical.Request) error {
	return b.creds.Tick(ctx, req.Storage, b.writable())
}

func (b *vendorBackend) clean(context.Context) {
	b.creds.Reset()
}

// writable reports whether this node may write the mount's storage. A
// performance standby, or a performance secondary for a replicated mount,
// may not: a read that would refresh a token there is forwarded instead.
func (b *vendorBackend) writable() bool {
	sys := b.System()
	if sys == nil {
		return true
	}
	state := sys.ReplicationState()
	if state.HasState(consts.ReplicationPerformanceStandby) {
		return false
	}
	if state.HasState(consts.ReplicationPerformanceSecondary) && !sys.LocalMount() {
		return false
	}
	return true
}

const backendHelp = `
The vendoroauth secrets engine keeps OAuth2 client credentials and refresh
tokens for SaaS vendors and hands out short-lived access tokens.

Write a credential once to config/<name>; read token/<name> to get a valid
access token under a lease. The client secret, refresh token and API key
never leave Vault.
`
