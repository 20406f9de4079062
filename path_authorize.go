package vendoroauth

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend"
)

// pathAuthorize returns authorize/<name> and exchange/<name>: connecting a
// user's account at the vendor with an OAuth2 authorization-code flow.
func pathAuthorize(b *vendorBackend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "authorize/" + credentialName,
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "authorization",
			},
			Fields: map[string]*framework.FieldSchema{
				fieldName: {Type: framework.TypeString, Description: "Name of the credential.", Required: true},
				fieldRedirectURI: {
					Type:         framework.TypeString,
					Description:  "Where the vendor sends the user back with the code: your app's callback, registered with the vendor.",
					Required:     true,
					DisplayAttrs: &framework.DisplayAttributes{Name: "Redirect URI"},
				},
				fieldScopes: {
					Type:         framework.TypeCommaStringSlice,
					Description:  "Scopes to ask the user for; defaults to the preset's (penbox: offline_access).",
					DisplayAttrs: &framework.DisplayAttributes{Name: "Scopes"},
				},
				fieldState: {
					Type:         framework.TypeString,
					Description:  "Opaque anti-forgery value (16-512 characters); generated when left out.",
					DisplayAttrs: &framework.DisplayAttributes{Name: "State"},
				},
				fieldApp: {
					Type:         framework.TypeString,
					Description:  "For a new connection named without its app: the app it belongs to. A name <app>/<account> implies it.",
					DisplayAttrs: &framework.DisplayAttributes{Name: "App"},
				},
				fieldMetadata: {
					Type:         framework.TypeKVPairs,
					Description:  "Non-secret key=value pairs merged into the connection's metadata by the exchange (for example your own customer id).",
					DisplayAttrs: &framework.DisplayAttributes{Name: "Metadata"},
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Callback:                    b.handleAuthorize,
					Summary:                     "Start connecting an account: returns the vendor's authorization URL.",
					DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "start"},
					Responses: map[int][]framework.Response{http.StatusOK: {{
						Description: "OK",
						Fields: map[string]*framework.FieldSchema{
							"url":            {Type: framework.TypeString, Description: "Send the user here."},
							fieldState:       {Type: framework.TypeString, Description: "State to pass to exchange/<name> with the code."},
							fieldExpiresAt:   {Type: framework.TypeString, Description: "When the state stops being accepted (RFC 3339)."},
							fieldRedirectURI: {Type: framework.TypeString, Description: "The redirect URI the code will be bound to."},
						},
					}}},
				},
			},
			HelpSynopsis:    pathAuthorizeHelpSyn,
			HelpDescription: pathAuthorizeHelpDesc,
		},
		{
			Pattern: "exchange/" + credentialName,
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "authorization-code",
			},
			Fields: map[string]*framework.FieldSchema{
				fieldName: {Type: framework.TypeString, Description: "Name of the credential.", Required: true},
				fieldCode: {
					Type:         framework.TypeString,
					Description:  "The authorization code from the redirect, as sent or URL-encoded.",
					Required:     true,
					DisplayAttrs: &framework.DisplayAttributes{Name: "Code", Sensitive: true},
				},
				fieldState: {
					Type:         framework.TypeString,
					Description:  "The state from the redirect; must match one authorize/<name> returned.",
					Required:     true,
					DisplayAttrs: &framework.DisplayAttributes{Name: "State"},
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Callback:                    b.handleExchange,
					Summary:                     "Finish connecting an account: exchange the code and store the tokens.",
					DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "exchange"},
				},
			},
			HelpSynopsis:    pathExchangeHelpSyn,
			HelpDescription: pathExchangeHelpDesc,
		},
	}
}

func (b *vendorBackend) handleAuthorize(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	name := d.Get(fieldName).(string)
	var scopes []string
	for _, s := range d.Get(fieldScopes).([]string) {
		scopes = append(scopes, strings.Fields(s)...)
	}
	res, err := b.creds.Authorize(ctx, req.Storage, name, backend.AuthorizeRequest{
		RedirectURI: strings.TrimSpace(d.Get(fieldRedirectURI).(string)),
		Scopes:      scopes,
		State:       d.Get(fieldState).(string),
		App:         strings.TrimSpace(d.Get(fieldApp).(string)),
		Metadata:    d.Get(fieldMetadata).(map[string]string),
	})
	if err != nil {
		return tokenError(mountOf(req), name, err)
	}
	return &logical.Response{Data: map[string]interface{}{
		"url":            res.URL,
		fieldState:       res.State,
		fieldExpiresAt:   res.ExpiresAt.UTC().Format(time.RFC3339),
		fieldRedirectURI: d.Get(fieldRedirectURI).(string),
	}}, nil
}

func (b *vendorBackend) handleExchange(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	name := d.Get(fieldName).(string)
	res, err := b.creds.Exchange(ctx, req.Storage, name, strings.TrimSpace(d.Get(fieldCode).(string)), d.Get(fieldState).(string), b.writable())
	if err != nil {
		return tokenError(mountOf(req), name, err)
	}
	// No secret comes back: readers get the token from token/<name>.
	return &logical.Response{Data: map[string]interface{}{
		fieldExpiresAt: res.Token.ExpiresAt.UTC().Format(time.RFC3339),
		fieldScope:     res.Token.Scope,
		"connected":    true,
	}}, nil
}

const pathAuthorizeHelpSyn = `Start connecting a user's account at the vendor (OAuth2 authorization code).`

const pathAuthorizeHelpDesc = `
Returns the vendor's authorization URL for the credential's client, with
response_type=code, the redirect_uri, the scopes (default: the preset's, for
penbox offline_access), a state (generated unless given) and an S256 code
challenge (unless use_pkce=false on the app or config). For a connection
(<app>/<account>) no config is needed first: the name's first part is the
app, whose allowed_redirect_uris must list the redirect_uri exactly, and metadata is
kept on the connection the exchange creates. Send the user to the URL; the
vendor redirects back to redirect_uri with code and state. Pass both to
exchange/<name> within 10 minutes. The state is stored on its own, for this
name only, and works once.
`

const pathExchangeHelpSyn = `Finish connecting an account: exchange the authorization code for tokens.`

const pathExchangeHelpDesc = `
Checks the state against the open authorizations of the credential, exchanges
the code (URL-decoded if it arrives encoded) at the token endpoint, and stores
the refresh token and access token. Nothing secret is returned; read
token/<name> for the access token. A wrong, used or expired state, or a code
the vendor refuses, is an error and changes nothing.
`
