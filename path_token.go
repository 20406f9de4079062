package vendoroauth

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend"
)

// secretTokenType is the lease type of tokens handed out by token/<name>.
const secretTokenType = "vendoroauth_token"

// pathToken returns the token/<name> path, where readers get an access
// token under a lease.
func pathToken(b *vendorBackend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "token/" + credentialName,
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "token",
			},
			Fields: map[string]*framework.FieldSchema{
				fieldName: {
					Type:        framework.TypeString,
					Description: "Name of the credential, as written to config/<name>.",
					Required:    true,
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Callback:                    b.handleTokenRead,
					Summary:                     "Get a valid access token for the credential.",
					DisplayAttrs: &framework.DisplayAttributes{
						OperationVerb: "read",
					},
					Responses: map[int][]framework.Response{
						http.StatusOK: {{
							Description: "OK",
							Fields:      tokenResponseFields(),
						}},
					},
				},
			},
			HelpSynopsis:    pathTokenHelpSyn,
			HelpDescription: pathTokenHelpDesc,
		},
	}
}

func tokenResponseFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		fieldAccessToken: {
			Type:        framework.TypeString,
			Description: "The vendor's access token.",
			DisplayAttrs: &framework.DisplayAttributes{
				Name:      "Access token",
				Sensitive: true,
			},
		},
		fieldTokenType: {
			Type:        framework.TypeString,
			Description: "Token type, normalised (bearer becomes Bearer).",
		},
		fieldExpiresAt: {
			Type:        framework.TypeString,
			Description: "When the vendor says the token expires (RFC 3339).",
		},
		fieldScope: {
			Type:        framework.TypeString,
			Description: "Scopes the vendor granted, as it sent them.",
		},
	}
}

// secretToken is the lease of a handed-out token. It is renewable, up to
// the token's lease end and never beyond (backend/lease.go): Vault
// Agent's and Vault Proxy's caches keep only renewable secrets, and a
// copy they keep is dropped when that end comes. A reader re-reads
// token/<name> for the next token.
func secretToken(b *vendorBackend) *framework.Secret {
	return &framework.Secret{
		Type:   secretTokenType,
		Fields: tokenResponseFields(),
		Renew:  b.handleTokenRenew,
		Revoke: b.handleTokenRevoke,
	}
}

// internalObtained and internalExpires are the lease's record of which
// token it holds.
const (
	internalObtained = "obtained_at"
	internalExpires  = "expires_at"
)

// handleTokenRenew extends a lease to its token's lease end, while that
// token is the one handed out or was replaced by a successor (not
// dropped); it never calls a vendor.
func (b *vendorBackend) handleTokenRenew(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	name, _ := req.Secret.InternalData[fieldName].(string)
	raw, _ := req.Secret.InternalData[internalObtained].(string)
	obtained, err := time.Parse(time.RFC3339Nano, raw)
	if name == "" || err != nil {
		return logical.ErrorResponse("this lease does not say which token it holds (it predates renewable leases); read token/<name> again"), nil
	}
	// Leases from before expires_at was recorded renew only while their
	// token is the one handed out.
	expires, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(req.Secret.InternalData[internalExpires]))
	ttl, err := b.creds.Renew(ctx, req.Storage, name, obtained, expires)
	if err != nil {
		return tokenError(mountOf(req), name, err)
	}
	resp := &logical.Response{Secret: req.Secret}
	resp.Secret.TTL = ttl
	resp.Secret.MaxTTL = b.now().Add(ttl).Sub(req.Secret.IssueTime)
	return resp, nil
}

// handleTokenRevoke ends a lease without touching the token: every reader
// of the name shares the same vendor token, so revoking it at the vendor
// for one lease would break all the others. Use refresh or a config change
// to stop handing out a token.
func (b *vendorBackend) handleTokenRevoke(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	return nil, nil
}

func (b *vendorBackend) handleTokenRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get(fieldName).(string)
	res, err := b.creds.Token(ctx, req.Storage, name, b.writable)
	b.creds.CountRead(res, err)
	if err != nil {
		return tokenError(mountOf(req), name, err)
	}
	return b.tokenResponse(mountOf(req), name, res), nil
}

func (b *vendorBackend) tokenResponse(mount, name string, res *backend.Result) *logical.Response {
	data := map[string]interface{}{
		fieldAccessToken: res.Token.AccessToken,
		fieldTokenType:   res.Token.TokenType,
		fieldExpiresAt:   res.Token.ExpiresAt.UTC().Format(time.RFC3339),
		fieldScope:       res.Token.Scope,
	}
	// The response fields the config keeps; they cannot shadow the
	// token's own (the config refuses those names).
	maps.Copy(data, res.Token.HandedOutFields())
	resp := b.Secret(secretTokenType).Response(data, map[string]interface{}{
		fieldName:        name,
		internalObtained: res.Token.ObtainedAt.UTC().Format(time.RFC3339Nano),
		internalExpires:  res.Token.ExpiresAt.UTC().Format(time.RFC3339Nano),
	})
	resp.Secret.TTL = res.TTL
	resp.Secret.MaxTTL = res.TTL
	resp.Secret.Renewable = res.Renewable
	resp.Warnings = append(resp.Warnings, resultWarnings(mount, res)...)
	return resp
}

const pathTokenHelpSyn = `Get a valid access token for a configured credential.`

const pathTokenHelpDesc = `
Returns access_token, token_type, expires_at and scope under a lease that
ends at the token's hand-out end: its expiry minus expiry_skew minus 3% of its
life, capped by max_ttl. The lease can be renewed up to that end, never beyond
it (so Vault Agent's and Vault Proxy's caches can keep it); read again after it
for the next token.

The token is cached and shared by every reader of the name; the plugin calls
the vendor only when the cached token is close to expiry (or when none is
cached), and concurrent readers wait for one call. Revoking a lease does not
revoke the token at the vendor, because other readers hold the same token.
`
