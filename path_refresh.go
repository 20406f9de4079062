package vendoroauth

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// pathRefresh returns refresh/<name>, which gets a new token now.
func pathRefresh(b *vendorBackend) []*framework.Path {
	return []*framework.Path{{
		Pattern: "refresh/" + credentialName,
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationSuffix: "token",
		},
		Fields: map[string]*framework.FieldSchema{
			fieldName: {Type: framework.TypeString, Description: "Name of the credential.", Required: true},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
				Callback:                    b.handleRefresh,
				Summary:                     "Get a new token from the vendor now, whatever the cache holds.",
				DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "refresh"},
			},
		},
		HelpSynopsis:    pathRefreshHelpSyn,
		HelpDescription: pathRefreshHelpDesc,
	}}
}

func (b *vendorBackend) handleRefresh(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	name := d.Get(fieldName).(string)
	res, err := b.creds.Refresh(ctx, req.Storage, name, b.writable())
	if err != nil {
		return tokenError(mountOf(req), name, err)
	}
	return &logical.Response{Data: map[string]interface{}{
		fieldExpiresAt: res.Token.ExpiresAt.UTC().Format(time.RFC3339),
		fieldScope:     res.Token.Scope,
	}, Warnings: resultWarnings(mountOf(req), res)}, nil
}

const pathRefreshHelpSyn = `Get a new token for a credential now.`

const pathRefreshHelpDesc = `
Calls the vendor at once, even if the cached token is still good (for example
after the vendor revoked it), and stores the result. Readers of token/<name>
get the new token from then on. Returns only the new expires_at and scope.
It skips the backoff after failures, and is how an operator retries a refresh
whose outcome was unknown. A credential that needs reauthorization, or a
static token, cannot be refreshed.
`
