package vendoroauth

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend"
)

// defaultKeyOverlap is how long a rotated-away public key stays published.
const defaultKeyOverlap = 24 * time.Hour

// jwksPaths are the unauthenticated paths: public keys, which a vendor
// fetches to verify private_key_jwt assertions without a Vault token.
var jwksPaths = []string{"jwks/*", "apps/+/jwks"}

// pathKeys returns rotate-key/<name>, jwks/<name> and the same under
// apps/<app>/: signing keys born in Vault for private_key_jwt, whose
// private half never leaves it, and their public JWKS.
func pathKeys(b *vendorBackend) []*framework.Path {
	rotateFields := map[string]*framework.FieldSchema{
		fieldAlgorithm: {Type: framework.TypeString, Default: "ES256", Description: "RS256, PS256, ES256, ES384 or EdDSA."},
		fieldOverlap:   {Type: framework.TypeDurationSecond, Default: int(defaultKeyOverlap.Seconds()), Description: "How long the previous public key stays published, for vendors that cache the JWKS."},
	}
	rotateOp := func(summary string) map[logical.Operation]framework.OperationHandler {
		return map[logical.Operation]framework.OperationHandler{logical.UpdateOperation: &framework.PathOperation{
			Callback: b.handleRotateKey, Summary: summary, DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "rotate"},
			ForwardPerformanceStandby: true, ForwardPerformanceSecondary: true,
		}}
	}
	jwksOp := map[logical.Operation]framework.OperationHandler{logical.ReadOperation: &framework.PathOperation{
		Callback: b.handleJWKS, Summary: "The public keys that verify the client's assertions (JWKS); no token needed.",
		DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"},
	}}
	return []*framework.Path{
		{
			Pattern:      "rotate-key/" + credentialName,
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "signing-key"},
			Fields:       withName(rotateFields),
			Operations:   rotateOp("Generate a new signing key for a credential inside Vault; the previous public key stays published for the overlap."),
			HelpSynopsis: pathRotateKeyHelpSyn, HelpDescription: pathRotateKeyHelpDesc,
		},
		{
			Pattern:      "apps/" + appName + "/rotate-key",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "app-signing-key"},
			Fields:       withAppField(rotateFields),
			Operations:   rotateOp("Generate a new signing key for an app inside Vault; the previous public key stays published for the overlap."),
			HelpSynopsis: pathRotateKeyHelpSyn, HelpDescription: pathRotateKeyHelpDesc,
		},
		{
			Pattern:      "jwks/" + credentialName,
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "jwks"},
			Fields:       withName(map[string]*framework.FieldSchema{}),
			Operations:   jwksOp,
			HelpSynopsis: pathJWKSHelpSyn, HelpDescription: pathJWKSHelpDesc,
		},
		{
			Pattern:      "apps/" + appName + "/jwks",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "app-jwks"},
			Fields:       withAppField(map[string]*framework.FieldSchema{}),
			Operations:   jwksOp,
			HelpSynopsis: pathJWKSHelpSyn, HelpDescription: pathJWKSHelpDesc,
		},
	}
}

func withName(f map[string]*framework.FieldSchema) map[string]*framework.FieldSchema {
	out := map[string]*framework.FieldSchema{fieldName: {Type: framework.TypeString, Description: "Name of the credential.", Required: true}}
	for k, v := range f {
		out[k] = v
	}
	return out
}

// keyOwner is whose keys a request's path names: an app's, or a
// self-contained credential's (a connection signs with its app's).
func (b *vendorBackend) keyOwner(ctx context.Context, req *logical.Request, d *framework.FieldData) (string, *logical.Response, error) {
	if v, ok := d.GetOk(fieldApp); ok {
		name := v.(string)
		a, err := b.creds.App(ctx, req.Storage, name)
		if err != nil {
			return "", nil, err
		}
		if a == nil {
			return "", logical.ErrorResponse(fmt.Sprintf("there is no app %q; create it with vault write %sapps/%s first", name, mountOf(req), name)), nil
		}
		return "app/" + name, nil, nil
	}
	name := d.Get(fieldName).(string)
	e, err := b.creds.Get(ctx, req.Storage, name)
	if err != nil {
		return "", nil, err
	}
	if e == nil {
		return "", nil, nil
	}
	if e.Config.App != "" {
		return "", logical.ErrorResponse(fmt.Sprintf("credential %q signs with the keys of its app %q: use %sapps/%s/rotate-key and %sapps/%s/jwks", name, e.Config.App, mountOf(req), e.Config.App, mountOf(req), e.Config.App)), nil
	}
	return backend.KeyOwner(name, &e.Config), nil, nil
}

func (b *vendorBackend) handleRotateKey(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	owner, resp, err := b.keyOwner(ctx, req, d)
	if err != nil || resp != nil {
		return resp, err
	}
	if owner == "" {
		return logical.ErrorResponse(fmt.Sprintf("no credential named %q; write it first with vault write %sconfig/%s", d.Get(fieldName), mountOf(req), d.Get(fieldName))), nil
	}
	k, err := b.creds.RotateKey(ctx, req.Storage, owner, d.Get(fieldAlgorithm).(string), time.Duration(d.Get(fieldOverlap).(int))*time.Second)
	if err != nil {
		return tokenError(mountOf(req), owner, err)
	}
	b.Logger().Info("generated a signing key", "owner", owner, "kid", k.ID(), "algorithm", string(k.Algorithm()))
	pub, _ := k.PublicPEM()
	return &logical.Response{Data: map[string]interface{}{
		"kid": k.ID(), fieldAlgorithm: string(k.Algorithm()), "public_key": pub,
		"jwks_path": jwksPathOf(mountOf(req), owner),
	}}, nil
}

// handleJWKS serves the published keys to anyone: a vendor fetches them
// without a Vault token. Whatever publishes none (no such name, a
// connection, a credential or app without keys) gets the same 404, so the
// path does not tell anyone which accounts and apps exist.
func (b *vendorBackend) handleJWKS(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	owner, err := b.publishingOwner(ctx, req, d)
	if err != nil || owner == "" {
		return nil, err
	}
	set, err := b.creds.Keys(ctx, req.Storage, owner)
	if err != nil {
		return nil, err
	}
	now := b.now()
	if len(set.Published(now)) == 0 {
		return nil, nil
	}
	raw, err := set.JWKS(now)
	if err != nil {
		return nil, err
	}
	// Served as the document itself, as a vendor fetching jwks_uri
	// expects, not wrapped in Vault's response envelope.
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPContentType: "application/jwk-set+json",
		logical.HTTPRawBody:     raw,
		logical.HTTPStatusCode:  200,
	}}, nil
}

// publishingOwner is whose keys a JWKS path may publish: an app that
// exists, or a self-contained credential that exists; "" for anything
// else. Unlike keyOwner, it says nothing about why.
func (b *vendorBackend) publishingOwner(ctx context.Context, req *logical.Request, d *framework.FieldData) (string, error) {
	if v, ok := d.GetOk(fieldApp); ok {
		a, err := b.creds.App(ctx, req.Storage, v.(string))
		if err != nil || a == nil {
			return "", err
		}
		return "app/" + v.(string), nil
	}
	name := d.Get(fieldName).(string)
	e, err := b.creds.Get(ctx, req.Storage, name)
	if err != nil || e == nil || e.Config.App != "" {
		return "", err
	}
	return backend.KeyOwner(name, &e.Config), nil
}

// jwksPathOf is the URL path a vendor fetches owner's JWKS from.
func jwksPathOf(mount, owner string) string {
	if app, ok := cutPrefix(owner, "app/"); ok {
		return "/v1/" + mount + "apps/" + app + "/jwks"
	}
	name, _ := cutPrefix(owner, "cred/")
	return "/v1/" + mount + "jwks/" + name
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return s, false
}

const pathRotateKeyHelpSyn = `Generate a new private_key_jwt signing key inside Vault.`

const pathRotateKeyHelpDesc = `
Generates a key pair (ES256 unless algorithm says otherwise) whose private
half never leaves Vault, and makes it the one that signs the client's
assertions at once. The previous public key stays published at the JWKS
path for the overlap (default 24h), so a vendor that cached the JWKS keeps
accepting assertions until it fetches it again. Returns the kid, the public
key (PEM) and the JWKS path to register at the vendor.
`

const pathJWKSHelpSyn = `The public keys of a client's private_key_jwt assertions, as a JWKS.`

const pathJWKSHelpDesc = `
Unauthenticated, so a vendor can fetch it as the client's jwks_uri:
<vault address>/v1/<mount>/jwks/<name>, or /v1/<mount>/apps/<app>/jwks for an
app. It holds public keys only: the current one and those within their
overlap after a rotation. Anything without published keys (no such name, a
connection, which signs with its app's keys, a credential or app without a
key) is a 404 alike, so the path does not reveal which names exist;
rotate-key, which needs a token, says which.
`
