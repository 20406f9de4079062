package vendoroauth

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/keys"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
)

// defaultKeyOverlap is how long a rotated-away public key stays published.
const defaultKeyOverlap = 24 * time.Hour

// defaultKeyActivation is how long a new key is published before it signs:
// a vendor that caches the client's JWKS must have it by then. Keycloak
// fetches a JWKS again for an unknown kid at most every 10 s, Okta and
// Auth0 on an unknown kid; ten minutes covers those with room, and a
// vendor that caches longer gets a longer activate_after.
const defaultKeyActivation = 10 * time.Minute

// jwksPaths are the unauthenticated paths: public keys, which a vendor
// fetches to verify private_key_jwt assertions without a Vault token.
var jwksPaths = []string{"jwks/*", "apps/+/jwks"}

// pathKeys returns rotate-key/<name>, import-key/<name>, jwks/<name> and
// the same under apps/<app>/: the signing keys of private_key_jwt clients,
// born in Vault (whose private half never leaves it) or imported, and
// their public JWKS. Making or importing a key is not a config field: to a
// vendor that trusts a client's JWKS, whoever chooses the key is the
// client, so it is an operation a policy grants on its own.
func pathKeys(b *vendorBackend) []*framework.Path {
	takeOver := map[string]*framework.FieldSchema{
		fieldDestination: {Type: framework.TypeString, Description: "The token endpoint the new key is for: where the client sends now. Needed when the client has moved since its current key was made: a key signs for where its client sent when it was made, and a config write (which cannot choose a key) may have moved it."},
		fieldOverlap:     {Type: framework.TypeDurationSecond, Default: int(defaultKeyOverlap.Seconds()), Description: "How long the key it replaces stays published once the new key signs, for assertions signed just before."},
		fieldActivateAfter: {Type: framework.TypeDurationSecond, Default: int(defaultKeyActivation.Seconds()),
			Description: "How long the new key is published before it signs, so that a vendor caching the JWKS has it by then; 0 signs at once. A client with no key, or whose key was made for where it sent before, signs with the new key at once."},
	}
	rotateFields := withFields(takeOver, map[string]*framework.FieldSchema{
		fieldAlgorithm:      {Type: framework.TypeString, Default: "ES256", Description: "RS256, PS256, ES256, ES384 or EdDSA."},
		fieldActivateStaged: {Type: framework.TypeBool, Description: "Make the key published and waiting for its time sign now, instead of making a new one."},
	})
	importFields := withFields(takeOver, map[string]*framework.FieldSchema{
		fieldSigningKey: {Type: framework.TypeString, Required: true, Description: "The private key (PEM: PKCS#8, PKCS#1 or SEC1, unencrypted) to sign assertions with. Write-only.", DisplayAttrs: &framework.DisplayAttributes{Name: "Signing key", Sensitive: true}},
		fieldAlgorithm:  {Type: framework.TypeString, Description: "The key's algorithm (RS256, PS256, ES256, ES384, EdDSA); defaults to the one the key implies."},
	})
	keyOp := func(verb, summary string, cb framework.OperationFunc) map[logical.Operation]framework.OperationHandler {
		return map[logical.Operation]framework.OperationHandler{logical.UpdateOperation: &framework.PathOperation{
			Callback: cb, Summary: summary, DisplayAttrs: &framework.DisplayAttributes{OperationVerb: verb},
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
			Operations:   keyOp("rotate", "Generate a new signing key for a credential inside Vault: published at once, signing after activate_after.", b.handleRotateKey),
			HelpSynopsis: pathRotateKeyHelpSyn, HelpDescription: pathRotateKeyHelpDesc,
		},
		{
			Pattern:      "apps/" + appName + "/rotate-key",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "app-signing-key"},
			Fields:       withAppField(rotateFields),
			Operations:   keyOp("rotate", "Generate a new signing key for an app inside Vault: published at once, signing after activate_after.", b.handleRotateKey),
			HelpSynopsis: pathRotateKeyHelpSyn, HelpDescription: pathRotateKeyHelpDesc,
		},
		{
			Pattern:      "import-key/" + credentialName,
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "signing-key"},
			Fields:       withName(importFields),
			Operations:   keyOp("import", "Import a signing key for a credential: published at once, signing after activate_after.", b.handleImportKey),
			HelpSynopsis: pathImportKeyHelpSyn, HelpDescription: pathImportKeyHelpDesc,
		},
		{
			Pattern:      "apps/" + appName + "/import-key",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "app-signing-key"},
			Fields:       withAppField(importFields),
			Operations:   keyOp("import", "Import a signing key for an app: published at once, signing after activate_after.", b.handleImportKey),
			HelpSynopsis: pathImportKeyHelpSyn, HelpDescription: pathImportKeyHelpDesc,
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
	return withFields(f, map[string]*framework.FieldSchema{fieldName: {Type: framework.TypeString, Description: "Name of the credential.", Required: true}})
}

// withFields is a copy of a with b's fields added.
func withFields(a, b map[string]*framework.FieldSchema) map[string]*framework.FieldSchema {
	out := make(map[string]*framework.FieldSchema, len(a)+len(b))
	maps.Copy(out, a)
	maps.Copy(out, b)
	return out
}

// keyClient is whose keys a request's path names, and where they may sign
// for: an app's, as its connections send, or a self-contained
// credential's (a connection signs with its app's). A key is bound to
// where its client sends when it is made.
type keyClient struct {
	owner string
	bound model.Destination
	// tokenURL is where the client sends now.
	tokenURL string
}

// keyClientOf resolves the client a key request is for; a response is
// the caller's mistake.
func (b *vendorBackend) keyClientOf(ctx context.Context, req *logical.Request, d *framework.FieldData) (*keyClient, *logical.Response, error) {
	mount := mountOf(req)
	if v, ok := d.GetOk(fieldApp); ok {
		name := v.(string)
		a, err := b.creds.App(ctx, req.Storage, name)
		if err != nil {
			return nil, nil, err
		}
		if a == nil {
			return nil, logical.ErrorResponse(fmt.Sprintf("there is no app %q; create it with vault write %sapps/%s first", name, mount, name)), nil
		}
		s, err := a.Config.ResolveAsConnection()
		if err != nil {
			return nil, logical.ErrorResponse(fmt.Sprintf("app %q does not work as stored (%s); fix it with vault write %sapps/%s first: a key is made for where its client sends", name, err, mount, name)), nil
		}
		return &keyClient{owner: store.AppKeyOwner(name), bound: model.ClientDestination(&a.Config, s), tokenURL: s.TokenURL}, nil, nil
	}
	name := d.Get(fieldName).(string)
	e, err := b.creds.Get(ctx, req.Storage, name)
	if err != nil {
		return nil, nil, err
	}
	if e == nil {
		return nil, logical.ErrorResponse(fmt.Sprintf("no credential named %q; write it first with vault write %sconfig/%s", name, mount, name)), nil
	}
	if e.Config.App != "" {
		return nil, logical.ErrorResponse(fmt.Sprintf("credential %q signs with the keys of its app %q: use %sapps/%s/rotate-key, %sapps/%s/import-key and %sapps/%s/jwks",
			name, e.Config.App, mount, e.Config.App, mount, e.Config.App, mount, e.Config.App)), nil
	}
	eff, s, rerr, err := b.creds.Effective(ctx, req.Storage, name, &e.Config)
	if err != nil {
		return nil, nil, err
	}
	if rerr != nil {
		return nil, logical.ErrorResponse(fmt.Sprintf("%s; a key is made for where its client sends", describe(mount, &backend.ConfigError{Name: name, Err: rerr}))), nil
	}
	return &keyClient{owner: backend.KeyOwner(name, &e.Config), bound: model.ClientDestination(&eff, s), tokenURL: s.TokenURL}, nil, nil
}

// confirmMove refuses a new key for a client that moved since its key was
// made, unless the request names where the client sends now: the move
// was a config write, which may not choose where the client's assertions
// go, and a routine rotation must not adopt it unseen. A response is the
// caller's to read.
func (b *vendorBackend) confirmMove(ctx context.Context, req *logical.Request, d *framework.FieldData, c *keyClient) (*logical.Response, error) {
	set, err := b.creds.Keys(ctx, req.Storage, c.owner)
	if err != nil {
		return nil, err
	}
	k := set.Signing(b.now())
	given := strings.TrimSpace(d.Get(fieldDestination).(string))
	switch {
	case given != "" && given != c.tokenURL:
		return logical.ErrorResponse(fmt.Sprintf("destination %s is not where the client sends now (%s); a key is made for where its client sends", model.DisplayURL(given), model.DisplayURL(c.tokenURL))), nil
	case given != "" || k == nil || k.Bound() == nil || k.Bound().Covers(c.bound):
		return nil, nil
	}
	return logical.ErrorResponse(fmt.Sprintf("the client now sends to %s, and its key was made for %s: a config write moved it, and a key signs for wherever it is made. If the move is yours, say so: vault write %s%s destination=%s; if it is not, look at who wrote the config",
		c.bound, *k.Bound(), mountOf(req), req.Path, model.DisplayURL(c.tokenURL))), nil
}

func keyChange(d *framework.FieldData, bound model.Destination) backend.KeyChange {
	return backend.KeyChange{
		Bound:         bound,
		ActivateAfter: time.Duration(d.Get(fieldActivateAfter).(int)) * time.Second,
		Overlap:       time.Duration(d.Get(fieldOverlap).(int)) * time.Second,
	}
}

// lockKeyOwner takes the lock of the credential or app a key request's
// path names (Manager.LockKeyOwner): the key operation, from reading the
// owner to storing the key, is serialised with the owner's delete.
func (b *vendorBackend) lockKeyOwner(ctx context.Context, d *framework.FieldData) (func(), error) {
	if v, ok := d.GetOk(fieldApp); ok {
		return b.creds.LockKeyOwner(ctx, v.(string), true)
	}
	return b.creds.LockKeyOwner(ctx, d.Get(fieldName).(string), false)
}

func (b *vendorBackend) handleRotateKey(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	unlock, err := b.lockKeyOwner(ctx, d)
	if err != nil {
		return nil, err
	}
	defer unlock()
	c, resp, err := b.keyClientOf(ctx, req, d)
	if err != nil || resp != nil {
		return resp, err
	}
	if d.Get(fieldActivateStaged).(bool) {
		k, err := b.creds.ActivateStaged(ctx, req.Storage, c.owner)
		if err != nil {
			return tokenError(mountOf(req), c.owner, err)
		}
		if k == nil {
			return logical.ErrorResponse("no key is published and waiting to sign; make one with vault write -f " + mountOf(req) + req.Path), nil
		}
		b.Logger().Info("a staged signing key signs now", "owner", c.owner, "kid", k.ID())
		return b.keyResponse(req, c, k)
	}
	if resp, err := b.confirmMove(ctx, req, d, c); err != nil || resp != nil {
		return resp, err
	}
	k, err := b.creds.RotateKey(ctx, req.Storage, c.owner, d.Get(fieldAlgorithm).(string), keyChange(d, c.bound))
	if err != nil {
		return tokenError(mountOf(req), c.owner, err)
	}
	b.Logger().Info("generated a signing key", "owner", c.owner, "kid", k.ID(), "algorithm", string(k.Algorithm()))
	return b.keyResponse(req, c, k)
}

func (b *vendorBackend) handleImportKey(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	unlock, err := b.lockKeyOwner(ctx, d)
	if err != nil {
		return nil, err
	}
	defer unlock()
	c, resp, err := b.keyClientOf(ctx, req, d)
	if err != nil || resp != nil {
		return resp, err
	}
	if resp, err := b.confirmMove(ctx, req, d, c); err != nil || resp != nil {
		return resp, err
	}
	k, err := b.creds.ImportKey(ctx, req.Storage, c.owner, d.Get(fieldSigningKey).(string), d.Get(fieldAlgorithm).(string), keyChange(d, c.bound))
	if err != nil {
		var ie *backend.InputError
		if errors.As(err, &ie) {
			return logical.ErrorResponse(fmt.Sprintf("%s%s was not changed: %s", mountOf(req), req.Path, ie.Msg)), nil
		}
		return nil, err
	}
	b.Logger().Info("imported a signing key", "owner", c.owner, "kid", k.ID(), "algorithm", string(k.Algorithm()))
	return b.keyResponse(req, c, k)
}

// keyResponse says what a key operation made: the key, where it signs for,
// where to find it published, and from when it signs.
func (b *vendorBackend) keyResponse(req *logical.Request, c *keyClient, k *keys.Key) (*logical.Response, error) {
	owner, signsFor := c.owner, c.bound
	if b := k.Bound(); b != nil {
		signsFor = *b
	}
	pub, _ := k.PublicPEM()
	signsFrom := formatTime(b.now())
	if at := k.ActivateAt(); !at.IsZero() {
		signsFrom = formatTime(at)
	}
	return &logical.Response{Data: map[string]interface{}{
		"kid": k.ID(), fieldAlgorithm: string(k.Algorithm()), "public_key": pub,
		"jwks_path": jwksPathOf(mountOf(req), owner), "signs_from": signsFrom, "signs_for": signsFor.String(),
	}}, nil
}

// handleJWKS serves the published keys to anyone: a vendor fetches them
// without a Vault token. Whatever publishes none (no such name, a
// connection, a credential or app without keys) gets the same 404, so the
// path does not tell anyone which accounts and apps exist. The lookup
// caches nothing and decodes no private key: anyone may call it, as often
// and with as many names as they like.
func (b *vendorBackend) handleJWKS(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	var name string
	v, isApp := d.GetOk(fieldApp)
	if isApp {
		name = v.(string)
	} else {
		name = d.Get(fieldName).(string)
	}
	raw, err := b.creds.PublishedJWKS(ctx, req.Storage, name, isApp)
	if err != nil || raw == nil {
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
half never leaves Vault, bound to where the client sends now: it signs
assertions for that token endpoint and audience only. The new key is
published at the JWKS path at once and signs after activate_after (default
10m), so a vendor that caches the JWKS has it before the first assertion it
signs; activate_staged=true makes a waiting key sign now. A client with no
key yet, or whose key was made for where it sent before, signs with the new
key at once. Once the new key signs, the previous public key stays published
for the overlap (default 24h). Returns the kid, the public key (PEM), the
JWKS path to register at the vendor and signs_from.

Whoever may rotate or import a client's key is that client, to a vendor that
trusts its JWKS: grant rotate-key and import-key only to those who hold the
client.
`

const pathImportKeyHelpSyn = `Import a private_key_jwt signing key.`

const pathImportKeyHelpDesc = `
Imports a private key (signing_key, PEM: PKCS#8, PKCS#1 or SEC1, unencrypted)
when the key cannot be born in Vault (rotate-key), for example one the vendor
already has registered. A key that does not parse or cannot sign is refused
before anything is stored. Like a rotated key, it is bound to where the
client sends now, published at once and signs after activate_after (0 signs
at once); the key is write-only.
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
