// Package vendoroauth is a Vault secrets engine that keeps SaaS vendors'
// OAuth2 client secrets and refresh tokens, and hands out short-lived access
// tokens under Vault leases. This package holds what Vault sees: the
// factory and the paths. The credential store, token cache and refresh
// logic live in package backend; what differs per vendor in providers.
package vendoroauth

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// operationPrefix prefixes the plugin's OpenAPI operation ids.
const operationPrefix = "vendor-oauth"

// vendorBackend is one mount of the plugin.
type vendorBackend struct {
	*framework.Backend
	creds   *backend.Manager
	started time.Time
	// storage is the mount's storage, for the last write Close tries.
	storage logical.Storage
}

// Factory returns a logical.Factory for the plugin reporting version as its
// running version. Every call to the factory makes an independent backend,
// because one plugin process serves many mounts.
func Factory(version string) logical.Factory {
	return func(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
		if conf.System != nil {
			conf.System = &localMountOnce{SystemView: conf.System}
		}
		b := newBackend(conf, version)
		if err := b.Setup(ctx, conf); err != nil {
			return nil, err
		}
		return b, nil
	}
}

func newBackend(conf *logical.BackendConfig, version string) *vendorBackend {
	b := &vendorBackend{started: time.Now(), storage: conf.StorageView}
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			SealWrapStorage: []string{store.EntryPrefix, store.AppPrefix, store.AuthzPrefix, store.KeysPrefix, store.DevicePrefix},
			Unauthenticated: jwksPaths,
		},
		Paths: framework.PathAppend(
			pathConfig(b),
			pathToken(b),
			pathAuthorize(b),
			pathRefresh(b),
			pathStatus(b),
			pathApps(b),
			pathKeys(b),
			pathDevice(b),
			pathEvents(b),
			pathMetrics(b),
		),
		InitializeFunc: b.initialize,
		PeriodicFunc:   b.periodic,
		Secrets:        []*framework.Secret{secretToken(b)},
		Invalidate:     b.invalidate,
		Clean:          b.clean,
		RunningVersion: version,
	}
	ua := "vault-plugin-secrets-vendoroauth/" + version
	b.creds = backend.NewManager(conf.Logger, tokenclient.New(tokenclient.WithUserAgent(ua)))
	b.creds.SetVersion(version)
	b.creds.SetUserAgent(ua)
	return b
}

// now is the backend's clock, the manager's in tests.
func (b *vendorBackend) now() time.Time { return b.creds.Now() }

func (b *vendorBackend) invalidate(_ context.Context, key string) {
	b.creds.Invalidate(key)
}

// initialize starts, on the node that can write, the load of the index
// and the refresh schedule and the refresher, at once rather than at
// Vault's first periodic call (up to a minute later): until the load has
// finished, LIST pages are read from storage and no keep-alive is
// scheduled.
func (b *vendorBackend) initialize(_ context.Context, req *logical.InitializationRequest) error {
	b.creds.Start(req.Storage, b.writable())
	return nil
}

// periodic refreshes tokens ahead of need on the node that can write.
func (b *vendorBackend) periodic(ctx context.Context, req *logical.Request) error {
	writable := b.writable()
	err := b.creds.Tick(ctx, req.Storage, writable)
	b.creds.TickNotify(req.Storage, writable)
	return err
}

// clean ends the backend's lifetime (unmount, seal, step-down): vendor
// calls in flight are cancelled and no new one starts.
func (b *vendorBackend) clean(context.Context) {
	b.creds.Close(b.storage)
}

// HandleRequest serves one request. One plugin process serves every mount
// (and the SDK's gRPC server does not recover panics), so a panic in a
// handler would take every mount down, and with it any rotated refresh
// token held in memory: it is recovered here and becomes a 500 for this
// request alone. Locks are released by defers as the panic unwinds.
func (b *vendorBackend) HandleRequest(ctx context.Context, req *logical.Request) (resp *logical.Response, err error) {
	defer b.recoverPanic("request", req, &err)
	if req != nil && nameTooLong(req.Path) != "" {
		return b.nameTooLongResponse(req), nil
	}
	resp, err = b.Backend.HandleRequest(ctx, req)
	if errors.Is(err, logical.ErrUnsupportedPath) {
		if msg := badName(req.Path); msg != "" {
			return logical.ErrorResponse(msg), nil
		}
	}
	return resp, err
}

// nameTooLongResponse answers a request whose path holds a name longer
// than maxNameLen before anything looks it up: no such name can exist. An
// unauthenticated JWKS read gets the 404 of any name that publishes no
// keys (the path tells nobody anything), the rest a 400 that says why.
func (b *vendorBackend) nameTooLongResponse(req *logical.Request) *logical.Response {
	if req.Operation == logical.ReadOperation && isJWKSPath(req.Path) {
		return nil
	}
	return logical.ErrorResponse(fmt.Sprintf("%s%s: a name (a credential's, an app's or an account's) is at most %d characters", mountOf(req), truncateForMessage(req.Path), maxNameLen))
}

// isJWKSPath reports whether path is one of the unauthenticated JWKS
// paths (jwksPaths).
func isJWKSPath(path string) bool {
	parts := strings.Split(path, "/")
	return parts[0] == "jwks" || (len(parts) == 3 && parts[0] == "apps" && parts[2] == "jwks")
}

// truncateForMessage keeps a caller's path short enough to quote.
func truncateForMessage(path string) string {
	if len(path) > 2*maxNameLen {
		return strings.ToValidUTF8(path[:2*maxNameLen], "") + "…"
	}
	return path
}

// HandleExistenceCheck is guarded like HandleRequest.
func (b *vendorBackend) HandleExistenceCheck(ctx context.Context, req *logical.Request) (checkFound, exists bool, err error) {
	defer b.recoverPanic("existence check", req, &err)
	return b.Backend.HandleExistenceCheck(ctx, req)
}

// InvalidateKey is guarded like HandleRequest.
func (b *vendorBackend) InvalidateKey(ctx context.Context, key string) {
	defer b.recoverPanic("invalidation", nil, nil)
	b.Backend.InvalidateKey(ctx, key)
}

// Cleanup is guarded like HandleRequest.
func (b *vendorBackend) Cleanup(ctx context.Context) {
	defer b.recoverPanic("cleanup", nil, nil)
	b.Backend.Cleanup(ctx)
}

func (b *vendorBackend) recoverPanic(what string, req *logical.Request, errp *error) {
	r := recover()
	if r == nil {
		return
	}
	path, op := "", ""
	if req != nil {
		path, op = req.Path, string(req.Operation)
	}
	b.Logger().Error("internal error: a handler panicked; this request failed, the plugin keeps serving",
		"work", what, "operation", op, "path", path, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	if errp != nil {
		*errp = fmt.Errorf("internal error in the vendoroauth plugin while handling %s %s; the request was stopped and the plugin keeps serving; the Vault log has the details", op, path)
	}
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

// localMountOnce asks Vault once whether the mount is local. The SDK asks
// on every request to an operation marked ForwardPerformanceSecondary (all
// of ours that may write or lease), and in a plugin process each answer is
// a gRPC round trip to Vault: measured, it cost a cached token read about
// 15% of its throughput. A mount's locality is fixed when it is created.
// The SDK's client answers false when the call fails, so a false answer is
// asked again after a minute rather than kept for the mount's life.
type localMountOnce struct {
	logical.SystemView
	mu      sync.Mutex
	local   bool
	askedAt time.Time
}

func (v *localMountOnce) LocalMount() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.askedAt.IsZero() || (!v.local && time.Since(v.askedAt) > time.Minute) {
		v.local = v.SystemView.LocalMount()
		v.askedAt = time.Now()
	}
	return v.local
}
