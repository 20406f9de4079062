// Package nullbackend is the benchmark's yardstick: a Vault secrets backend
// that does nothing but hand out a fixed secret shaped like a vendoroauth
// token. Served by the same SDK and plugin.ServeMultiplex as the real
// plugin (see bench/nullplugin), it measures what Vault, the plugin
// protocol and the SDK's framework cost on their own, so the real plugin's
// throughput can be judged against the most a plugin could reach.
package nullbackend

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Version is the version the null plugin reports to Vault and is
// registered with.
const Version = "v0.0.0-null"

// SecretType is the lease type of the fixed secret.
const SecretType = "null_token"

// TTL is the lease of the fixed secret: a fresh vendoroauth token's lease
// with the stand-in's default one-hour tokens and the default 30s skew.
const TTL = time.Hour - 30*time.Second

// The fixed secret has the field names and value sizes of a vendoroauth
// token read against the generic stand-in: an access token of 43
// characters, "Bearer", an RFC 3339 time and an empty scope.
var (
	accessToken = "generic-at-" + strings.Repeat("n", 32)
	expiresAt   = time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
)

// Factory makes one mount of the null backend. Like the real plugin, every
// call returns an independent backend, because one process serves every
// mount.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := New()
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

// New returns an unconfigured null backend, for in-process benchmarks that
// call Setup themselves.
func New() *framework.Backend {
	b := &framework.Backend{
		Help:           "Hands out a fixed secret, for benchmarks.",
		BackendType:    logical.TypeLogical,
		RunningVersion: Version,
	}
	fields := map[string]*framework.FieldSchema{
		"name": {Type: framework.TypeString, Description: "Ignored.", Required: true},
	}
	b.Paths = []*framework.Path{
		{
			// token/<name>: the fixed secret under a lease renewable up to
			// its first end, as vendoroauth's token/<name> hands out.
			Pattern: "token/" + framework.GenericNameRegex("name"),
			Fields:  fields,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
						resp := b.Secret(SecretType).Response(data(), nil)
						resp.Secret.TTL = TTL
						resp.Secret.MaxTTL = TTL
						resp.Secret.Renewable = true
						return resp, nil
					},
				},
			},
		},
		{
			// static/<name>: the same data without a lease, to show what
			// Vault's lease bookkeeping costs.
			Pattern: "static/" + framework.GenericNameRegex("name"),
			Fields:  fields,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
						return &logical.Response{Data: data()}, nil
					},
				},
			},
		},
	}
	b.Secrets = []*framework.Secret{{
		Type: SecretType,
		Fields: map[string]*framework.FieldSchema{
			"access_token": {Type: framework.TypeString},
			"token_type":   {Type: framework.TypeString},
			"expires_at":   {Type: framework.TypeString},
			"scope":        {Type: framework.TypeString},
		},
		// A renewal extends a lease to its first end and never beyond,
		// as vendoroauth's does.
		Renew: func(_ context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
			left := time.Until(req.Secret.IssueTime.Add(TTL)).Truncate(time.Second)
			if left < time.Second {
				return logical.ErrorResponse("lease ended"), nil
			}
			resp := &logical.Response{Secret: req.Secret}
			resp.Secret.TTL = left
			return resp, nil
		},
		Revoke: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
			return nil, nil
		},
	}}
	return b
}

// data is a fresh map per response: Vault may change what it is handed.
func data() map[string]interface{} {
	return map[string]interface{}{
		"access_token": accessToken,
		"token_type":   "Bearer",
		"expires_at":   expiresAt,
		"scope":        "",
	}
}
