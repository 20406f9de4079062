package vendoroauth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
)

// pathConfig returns the config/<name> and config/ paths, where operators
// write a vendor credential once.
func pathConfig(b *vendorBackend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "config/" + credentialName,
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "config",
			},
			Fields:         configFields(),
			ExistenceCheck: b.configExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Callback:                    b.handleConfigWrite,
					Summary:                     "Store a new vendor credential.",
					DisplayAttrs: &framework.DisplayAttributes{
						OperationVerb: "create",
					},
				},
				logical.UpdateOperation: &framework.PathOperation{
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Callback:                    b.handleConfigWrite,
					Summary:                     "Change a vendor credential; fields left out keep their values.",
					DisplayAttrs: &framework.DisplayAttributes{
						OperationVerb: "update",
					},
				},
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.handleConfigRead,
					Summary:  "Read a credential's settings and status; secrets are shown only as set or not.",
					DisplayAttrs: &framework.DisplayAttributes{
						OperationVerb: "read",
					},
				},
				logical.DeleteOperation: &framework.PathOperation{
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Callback:                    b.handleConfigDelete,
					Summary:                     "Delete a vendor credential and its cached token.",
					DisplayAttrs: &framework.DisplayAttributes{
						OperationVerb: "delete",
					},
				},
			},
			HelpSynopsis:    pathConfigHelpSyn,
			HelpDescription: pathConfigHelpDesc,
		},
		{
			Pattern: "config/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "configs",
			},
			Fields: listFields(),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.handleConfigList,
					Summary:  "List the names of configured credentials.",
					DisplayAttrs: &framework.DisplayAttributes{
						OperationVerb: "list",
					},
				},
			},
			HelpSynopsis:    pathConfigListHelpSyn,
			HelpDescription: pathConfigListHelpDesc,
		},
		{
			Pattern: "config/" + appName + "/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "app-connections",
			},
			Fields: withAppField(listFields()),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.handleConfigList,
					Summary:  "List the connections of an app, a page at a time.",
					DisplayAttrs: &framework.DisplayAttributes{
						OperationVerb: "list",
					},
				},
			},
			HelpSynopsis:    pathConfigListHelpSyn,
			HelpDescription: pathConfigListHelpDesc,
		},
	}
}

// listFields are a LIST's paging parameters.
func listFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		fieldAfter: {Type: framework.TypeString, Description: "List the names after this one (the last name of the previous page)."},
		fieldLimit: {Type: framework.TypeInt, Description: fmt.Sprintf("At most this many names (default and maximum %d).", maxListPage)},
	}
}

func withAppField(f map[string]*framework.FieldSchema) map[string]*framework.FieldSchema {
	f[fieldApp] = &framework.FieldSchema{Type: framework.TypeString, Description: "The app whose connections to list.", Required: true}
	return f
}

// maxListPage bounds a LIST answer.
const maxListPage = 1000

func configFields() map[string]*framework.FieldSchema {
	out := map[string]*framework.FieldSchema{}
	for _, part := range []map[string]*framework.FieldSchema{clientFields(), requestFields(), connectionAndAuthFields(), vendorFields()} {
		for k, v := range part {
			out[k] = v
		}
	}
	return out
}

// The config fields, in parts: the client and its grant; how the request
// is made, with its lease settings; connections and client
// authentication; what else the vendor publishes.
func clientFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		fieldName: {
			Type:        framework.TypeString,
			Description: "Name of the credential; tokens are read at token/<name>.",
			Required:    true,
		},
		fieldProvider: {
			Type:        framework.TypeString,
			Description: "Vendor preset: " + strings.Join(providers.Names(), ", ") + ". Presets fill in the token URL, grant type and request style; every other field overrides them.",
			Default:     "generic",
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "Provider",
			},
		},
		fieldEnvironment: {
			Type:        framework.TypeString,
			Description: "Vendor environment whose token URL to use (for example production or staging); defaults to the preset's.",
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "Environment",
			},
		},
		fieldGrantType: {
			Type:          framework.TypeString,
			Description:   "OAuth2 grant: client_credentials, refresh_token, or static (serve a user-minted access_token until it expires). Defaults to the preset's.",
			AllowedValues: []interface{}{providers.GrantClientCredentials, providers.GrantRefreshToken, providers.GrantStatic},
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "Grant type",
			},
		},
		fieldTokenURL: {
			Type:        framework.TypeString,
			Description: "Token endpoint URL. Must be https, except on a loopback host. Defaults to the preset's for the environment.",
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "Token URL",
			},
		},
		fieldClientID: {
			Type:        framework.TypeString,
			Description: "OAuth2 client ID.",
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "Client ID",
			},
		},
		fieldClientSecret: {
			Type:        framework.TypeString,
			Description: "OAuth2 client secret. Write-only: reads show client_secret_set.",
			DisplayAttrs: &framework.DisplayAttributes{
				Name:      "Client secret",
				Sensitive: true,
			},
		},
		fieldRefreshToken: {
			Type:        framework.TypeString,
			Description: "Refresh token for grant_type=refresh_token. Write-only; replaced automatically when the vendor rotates it.",
			DisplayAttrs: &framework.DisplayAttributes{
				Name:      "Refresh token",
				Sensitive: true,
			},
		},
		fieldAPIKey: {
			Type:        framework.TypeString,
			Description: "API key for vendors whose preset sends one as a header (boldpenguin: x-api-key). Write-only.",
			DisplayAttrs: &framework.DisplayAttributes{
				Name:      "API key",
				Sensitive: true,
			},
		},
		fieldScopes: {
			Type:        framework.TypeCommaStringSlice,
			Description: "Scopes to request, as a list or comma-separated; sent space-separated.",
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "Scopes",
			},
		},
		fieldAuthStyle: {
			Type:          framework.TypeString,
			Description:   "How the client authenticates: basic (HTTP Basic header), body (client_id and client_secret as parameters), none (a public client), private_key_jwt (an assertion signed by a key born in Vault: rotate-key, or imported with signing_key), client_secret_jwt (an assertion signed with the client secret), tls_client_auth or self_signed_tls_client_auth (a client certificate, RFC 8705). Defaults to the preset's.",
			AllowedValues: []interface{}{providers.AuthBasic, providers.AuthBody, backend.AuthNone, backend.AuthPrivateKeyJWT, backend.AuthClientSecretJWT, backend.AuthTLSClient, backend.AuthSelfSignedTLSClient},
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "Client authentication",
			},
		},
	}
}

func requestFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		fieldBasicEncoding: {
			Type:          framework.TypeString,
			Description:   "With auth_style=basic: rfc6749 form-encodes the id and secret first (RFC 6749 2.3.1); raw does not, which many servers require.",
			AllowedValues: []interface{}{providers.EncodingRFC6749, providers.EncodingRaw},
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "Basic encoding",
			},
		},
		fieldBodyFormat: {
			Type:          framework.TypeString,
			Description:   "Request body format: form (application/x-www-form-urlencoded) or json.",
			AllowedValues: []interface{}{providers.FormatForm, providers.FormatJSON},
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "Body format",
			},
		},
		fieldGrantTypeInQuery: {
			Type:        framework.TypeBool,
			Description: "Send grant_type in the URL query string instead of the body.",
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "Grant type in query",
			},
		},
		fieldExtraParams: {
			Type:        framework.TypeKVPairs,
			Description: "Extra request parameters as key=value pairs (for example audience=...). They cannot replace grant_type, client_id, client_secret or scope.",
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "Extra parameters",
			},
		},
		fieldExtraHeaders: {
			Type:        framework.TypeKVPairs,
			Description: "Extra request headers as name=value pairs. Values are write-only: reads list the header names only.",
			DisplayAttrs: &framework.DisplayAttributes{
				Name:      "Extra headers",
				Sensitive: true,
			},
		},
		fieldDefaultTTL: {
			Type:        framework.TypeDurationSecond,
			Description: fmt.Sprintf("Lifetime to assume when the vendor sends no expires_in. Default %s.", backend.DefaultTTL),
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "Default TTL",
			},
		},
		fieldMaxTTL: {
			Type:        framework.TypeDurationSecond,
			Description: "Cap on the lease of a token read; 0 means the token's remaining life (and the mount's max).",
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "Max TTL",
			},
		},
		fieldAuthorizeURL: {
			Type:        framework.TypeString,
			Description: "Authorization endpoint for authorize/<name>; defaults to the preset's (penbox: https://connect.penbox.io/authorize).",
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "Authorize URL",
			},
		},
		fieldUsePKCE: {
			Type:        framework.TypeBool,
			Description: "Send a PKCE S256 code challenge with authorize/<name> and its verifier with the exchange.",
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "Use PKCE",
			},
		},
		fieldAccessToken: {
			Type:        framework.TypeString,
			Description: "For grant_type=static: a token minted at the vendor by hand. Write-only; give expires_at or ttl with it.",
			DisplayAttrs: &framework.DisplayAttributes{
				Name:      "Access token",
				Sensitive: true,
			},
		},
		fieldExpiresAt: {
			Type:        framework.TypeString,
			Description: "For grant_type=static: when access_token expires (RFC 3339).",
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "Expires at",
			},
		},
	}
}

func connectionAndAuthFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		fieldTTL: {
			Type:        framework.TypeDurationSecond,
			Description: "For grant_type=static: how long access_token stays valid from now (instead of expires_at).",
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "TTL",
			},
		},
		fieldKeepAlive: {
			Type:        framework.TypeDurationSecond,
			Description: fmt.Sprintf("For grant_type=refresh_token: refresh this often even when nobody reads the token, because vendors expire refresh tokens that go unused. Default %s; 0 turns it off; \"\" returns to the default.", backend.DefaultKeepAlive),
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "Keep-alive interval",
			},
		},
		fieldApp: {
			Type:        framework.TypeString,
			Description: "Make this credential a connection of the app apps/<app>: the client's settings and secrets come from the app; the config keeps one account's refresh_token, scopes, extra_params and metadata. A name <app>/<account> implies it. Converting a self-contained credential drops its own client secret and client settings.",
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "App",
			},
		},
		fieldMetadata: {
			Type:        framework.TypeKVPairs,
			Description: "Non-secret key=value pairs about the account (for example your own customer id); shown on reads.",
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "Metadata",
			},
		},
		fieldRetryLostRefresh: {
			Type: framework.TypeBool,
			Description: "Retry a refresh once, at once, when it was sent and no answer came back, for a vendor seen to rotate refresh tokens. Default true: a vendor with rotation leeway still accepts the old refresh token for a while, so only a prompt retry saves the chain. " +
				"Set false for a vendor that revokes live tokens when a rotated-away refresh token is presented. \"\" returns to the default.",
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "Retry a lost refresh",
			},
		},
		fieldAssertionAudience: {
			Type:         framework.TypeString,
			Description:  "The aud of private_key_jwt and client_secret_jwt assertions; defaults to the token endpoint.",
			DisplayAttrs: &framework.DisplayAttributes{Name: "Assertion audience"},
		},
		fieldSigningKey: {
			Type:         framework.TypeString,
			Description:  "For auth_style=private_key_jwt: a private key (PEM: PKCS#8, PKCS#1 or SEC1, unencrypted) to sign assertions with, when the key cannot be born in Vault (rotate-key). Write-only; the previous key stays published for the overlap.",
			DisplayAttrs: &framework.DisplayAttributes{Name: "Signing key", Sensitive: true},
		},
		fieldSigningAlg: {
			Type:         framework.TypeString,
			Description:  "The algorithm of an imported signing_key (RS256, PS256, ES256, ES384, EdDSA); defaults to the one the key implies.",
			DisplayAttrs: &framework.DisplayAttributes{Name: "Signing algorithm"},
		},
		fieldTLSCert: {
			Type:         framework.TypeString,
			Description:  "For tls_client_auth and self_signed_tls_client_auth: the client certificate (PEM, leaf first).",
			DisplayAttrs: &framework.DisplayAttributes{Name: "TLS client certificate"},
		},
		fieldTLSKey: {
			Type:         framework.TypeString,
			Description:  "The client certificate's private key (PEM). Write-only.",
			DisplayAttrs: &framework.DisplayAttributes{Name: "TLS client key", Sensitive: true},
		},
		fieldCABundle: {
			Type:         framework.TypeString,
			Description:  "CA certificates (PEM) trusted for the token, authorization, revocation and device endpoints instead of the system's: for endpoints a public CA did not sign.",
			DisplayAttrs: &framework.DisplayAttributes{Name: "CA bundle"},
		},
		fieldIssuer: {
			Type:         framework.TypeString,
			Description:  "An authorization server's issuer URL: its metadata (RFC 8414, then OpenID Discovery) fills token_url, authorize_url, revocation_url and device_authorization_url; explicit fields win. Fetched when the config or app is written, never on a read. An app's is fetched again daily by the active node: new auth and PKCE methods are taken, moved endpoints are not (discovery_changed at apps/<app> says what moved) until the app is written again with issuer= and its secrets.",
			DisplayAttrs: &framework.DisplayAttributes{Name: "Issuer"},
		},
		fieldRevocationURL: {
			Type:         framework.TypeString,
			Description:  "RFC 7009 revocation endpoint (defaults to the discovered one): deleting the credential revokes its refresh token there.",
			DisplayAttrs: &framework.DisplayAttributes{Name: "Revocation URL"},
		},
		fieldRevokeOnDelete: {
			Type:         framework.TypeBool,
			Description:  "Revoke the refresh token at the vendor when the credential is deleted, where a revocation endpoint is known. Default true; \"\" returns to it.",
			DisplayAttrs: &framework.DisplayAttributes{Name: "Revoke on delete"},
		},
	}
}

func vendorFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		fieldDeviceURL: {
			Type:         framework.TypeString,
			Description:  "RFC 8628 device authorization endpoint for device/<name> (defaults to the discovered one).",
			DisplayAttrs: &framework.DisplayAttributes{Name: "Device authorization URL"},
		},
		fieldResponseFields: {
			Type:         framework.TypeCommaStringSlice,
			Description:  "Fields of the token response to keep and return beside access_token at token/<name> (for example instance_url,uid).",
			DisplayAttrs: &framework.DisplayAttributes{Name: "Response fields"},
		},
		fieldSecretFields: {
			Type:         framework.TypeCommaStringSlice,
			Description:  "Like response_fields, for values that are secrets (id_token, say): returned at token/<name>, never logged or shown elsewhere.",
			DisplayAttrs: &framework.DisplayAttributes{Name: "Secret response fields"},
		},
		fieldExpirySkew: {
			Type:        framework.TypeDurationSecond,
			Description: fmt.Sprintf("How long before the vendor's expiry a token stops being handed out; leases end this much early. Default %s; at most a tenth of the token's life is used.", backend.DefaultExpirySkew),
			DisplayAttrs: &framework.DisplayAttributes{
				Name: "Expiry skew",
			},
		},
	}
}

func (b *vendorBackend) configExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	e, err := b.creds.Get(ctx, req.Storage, d.Get(fieldName).(string))
	if err != nil {
		return false, err
	}
	return e != nil, nil
}

// userError is an operator mistake found while applying a write; it becomes
// a 400 and nothing is stored.
type userError struct{ msg string }

func (e *userError) Error() string { return e.msg }

// appOwned are the fields that belong to an app, not to one of its
// connections.
var appOwned = []string{fieldProvider, fieldEnvironment, fieldGrantType, fieldTokenURL, fieldClientID, fieldClientSecret,
	fieldAPIKey, fieldAuthStyle, fieldBasicEncoding, fieldBodyFormat, fieldGrantTypeInQuery, fieldExtraHeaders,
	fieldAuthorizeURL, fieldUsePKCE, fieldAccessToken, fieldExpiresAt, fieldTTL,
	fieldAssertionAudience, fieldTLSCert, fieldTLSKey, fieldCABundle, fieldIssuer, fieldRevocationURL, fieldRevokeOnDelete,
	fieldDeviceURL, fieldResponseFields, fieldSecretFields, fieldSigningKey, fieldSigningAlg}

func (b *vendorBackend) handleConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	name := d.Get(fieldName).(string)
	mount := mountOf(req)
	disc, resp, err := b.discoverFor(ctx, req, d, name)
	if err != nil || resp != nil {
		return resp, err
	}
	var vendor string
	var owner string
	_, err = b.creds.Update(ctx, req.Storage, name, func(cur *backend.Entry) (*backend.Entry, error) {
		next := &backend.Entry{Config: backend.Config{Provider: "generic"}}
		var before backend.Config
		if cur != nil {
			before = cur.Config
			next = cur
		}
		if err := applyApp(mount, name, &next.Config, req, d); err != nil {
			return nil, err
		}
		if err := applyConfig(&next.Config, req, d); err != nil {
			return nil, err
		}
		applyDiscovered(&next.Config, disc, req)
		owner = backend.KeyOwner(name, &next.Config)
		eff, settings, rerr, err := b.creds.Effective(ctx, req.Storage, name, &next.Config)
		if err != nil {
			return nil, err
		}
		if rerr != nil {
			return nil, &userError{msg: describe(mount, rerr)}
		}
		vendor = settings.Preset.Name
		if cur != nil {
			beforeEff, _, _, err := b.creds.Effective(ctx, req.Storage, name, &before)
			if err != nil {
				return nil, err
			}
			if err := checkDestination(&beforeEff, &eff, &next.Config, req); err != nil {
				return nil, err
			}
			// A token got with other credentials or another endpoint
			// must not be handed out for the new ones.
			if !beforeEff.SameRequest(&eff) {
				next.Token = nil
				next.Status = backend.Status{}
			}
		}
		bindRefreshToken(&next.Config, &before, settings, req)
		if err := applyStaticToken(next, settings, d, b.now()); err != nil {
			return nil, err
		}
		return next, nil
	})
	var ue *userError
	if errors.As(err, &ue) {
		return logical.ErrorResponse(fmt.Sprintf("%sconfig/%s was not changed: %s", mount, name, ue.msg)), nil
	}
	if err != nil {
		return nil, err
	}
	if resp, err := b.importSigningKey(ctx, req, d, owner, "config/"+name); resp != nil || err != nil {
		return resp, err
	}
	b.Logger().Info("credential configured", "name", name, "vendor", vendor, "operation", string(req.Operation))
	return nil, nil
}

// discoverFor fetches the metadata of the issuer a write names (before
// taking the credential's lock: it is a network call), or nil when the
// write does not set one.
func (b *vendorBackend) discoverFor(ctx context.Context, req *logical.Request, d *framework.FieldData, path string) (*backend.Discovered, *logical.Response, error) {
	v, ok := d.GetOk(fieldIssuer)
	issuer := strings.TrimSpace(fmt.Sprint(v))
	if !ok || issuer == "" {
		return nil, nil, nil
	}
	var probe backend.Config
	_ = applyConfig(&probe, req, d) // for its ca_bundle and client certificate
	disc, err := b.creds.Discover(ctx, issuer, &probe)
	if err != nil {
		return nil, logical.ErrorResponse(fmt.Sprintf("%s%s was not changed: the metadata of issuer %s could not be used: %s", mountOf(req), path, issuer, describe(mountOf(req), err))), nil
	}
	return disc, nil, nil
}

// applyDiscovered records an issuer's metadata; clearing issuer drops it.
func applyDiscovered(c *backend.Config, disc *backend.Discovered, req *logical.Request) {
	switch {
	case disc != nil:
		c.Discovered = disc
	case sentEmpty(req, fieldIssuer):
		c.Discovered = nil
	}
}

// importSigningKey makes a signing_key given in a write owner's signing
// key.
func (b *vendorBackend) importSigningKey(ctx context.Context, req *logical.Request, d *framework.FieldData, owner, path string) (*logical.Response, error) {
	v, ok := d.GetOk(fieldSigningKey)
	if !ok || strings.TrimSpace(v.(string)) == "" {
		return nil, nil
	}
	k, err := b.creds.ImportKey(ctx, req.Storage, owner, v.(string), d.Get(fieldSigningAlg).(string), defaultKeyOverlap)
	var ie *backend.InputError
	if errors.As(err, &ie) {
		return logical.ErrorResponse(fmt.Sprintf("%s%s was written, but its %s", mountOf(req), path, ie.Msg)), nil
	}
	if err != nil {
		return nil, err
	}
	b.Logger().Info("imported a signing key", "owner", owner, "kid", k.ID())
	return nil, nil
}

// applyApp makes c a connection of the app its name or its app field
// names, refusing what belongs to the app. Converting a self-contained
// credential drops its own client settings and secrets: from then on the
// app's are used.
func applyApp(mount, name string, c *backend.Config, req *logical.Request, d *framework.FieldData) error {
	app := backend.AppOf(name)
	if v, ok := d.GetOk(fieldApp); ok {
		given := strings.TrimSpace(v.(string))
		switch {
		case app != "" && given != app:
			return &userError{msg: fmt.Sprintf("%q is a connection of app %q by its name; app=%q does not match", name, app, given)}
		case given == "" && c.App != "":
			return &userError{msg: fmt.Sprintf("a connection cannot leave its app %q; delete it and write a self-contained credential", c.App)}
		case c.App != "" && given != c.App:
			// Its refresh token was issued to the other app's client.
			return &userError{msg: fmt.Sprintf("a connection cannot move to another app: %q is a connection of app %q; delete it and connect the account again under app %q", name, c.App, given)}
		}
		app = given
	}
	if app == "" {
		app = c.App
	}
	if app == "" {
		return nil
	}
	var owned []string
	for _, f := range appOwned {
		if _, ok := req.Data[f]; ok {
			owned = append(owned, f)
		}
	}
	if len(owned) > 0 {
		return &userError{msg: fmt.Sprintf("%s belong to the app: write them to %sapps/%s; a connection holds refresh_token, scopes, extra_params, metadata and lease settings",
			strings.Join(owned, ", "), mount, app)}
	}
	if c.App == "" {
		// Converted: what the app supplies goes.
		*c = backend.Config{
			App: app, RefreshToken: c.RefreshToken, RefreshTokenFor: c.RefreshTokenFor, RevokeURLFor: c.RevokeURLFor, Scopes: c.Scopes, ExtraParams: c.ExtraParams,
			Metadata: c.Metadata, DefaultTTL: c.DefaultTTL, MaxTTL: c.MaxTTL, ExpirySkew: c.ExpirySkew, KeepAlive: c.KeepAlive,
			RetryLostRefresh: c.RetryLostRefresh,
		}
	}
	return nil
}

// bindRefreshToken records which token and revocation endpoints a refresh
// token written now is for; a kept one keeps its endpoints.
func bindRefreshToken(c, before *backend.Config, s *backend.Settings, req *logical.Request) {
	switch {
	case c.RefreshToken == "":
		c.RefreshTokenFor, c.RevokeURLFor = "", ""
	case req.Data[fieldRefreshToken] != nil || c.RefreshToken != before.RefreshToken || c.RefreshTokenFor == "":
		c.RefreshTokenFor, c.RevokeURLFor = s.TokenURL, s.RevocationURL
	}
}

// checkDestination refuses a write that changes where the stored secrets
// are sent (the token endpoint, the authorization endpoint) unless it
// carries those secrets again: whoever may write the config but not read
// its secrets must not be able to point them at a host of their choosing.
// A secret set to "" in the same write counts as given (it is cleared).
func checkDestination(before, after, stored *backend.Config, req *logical.Request) error {
	changed := before.DestinationChanges(after)
	if len(changed) == 0 {
		return nil
	}
	// The secrets the credential will still send, but were not given in
	// this write: they were written for the old destination.
	var missing []string
	for _, f := range stored.SecretsSet() {
		if _, ok := req.Data[f]; !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return &userError{msg: fmt.Sprintf("this write changes where the credential's secrets are sent: %s; give %s again in the same write (or set them to \"\" to clear them)",
			strings.Join(changed, ", "), strings.Join(missing, ", "))}
	}
	// A key held in Vault cannot be given again, and an assertion it
	// signs for the vendor's audience is as good as a secret to whoever
	// receives it.
	if _, imported := req.Data[fieldSigningKey]; after.AuthStyle == backend.AuthPrivateKeyJWT && !imported {
		return &userError{msg: fmt.Sprintf("this write changes where the credential's client assertions are sent: %s; they are signed with a key held in Vault, which a write cannot give again: import a key with %s in the same write, or delete the credential and create it anew (a new key, which the vendor must trust again)",
			strings.Join(changed, ", "), fieldSigningKey)}
	}
	return nil
}

// applyConfig copies the fields the request carries into c. A field sent
// as "" returns to the preset's default; for the typed fields
// (grant_type_in_query, expiry_skew, retry_lost_refresh) that is the only
// way back, since their zero values are settings of their own.
func applyConfig(c *backend.Config, req *logical.Request, d *framework.FieldData) error {
	applyStrings(c, d)
	applyLists(c, d)
	applyBools(c, req, d)
	return applyDurations(c, req, d)
}

func applyStrings(c *backend.Config, d *framework.FieldData) {
	for field, dst := range map[string]*string{
		fieldProvider: &c.Provider, fieldEnvironment: &c.Environment, fieldGrantType: &c.GrantType, fieldTokenURL: &c.TokenURL,
		fieldClientID: &c.ClientID, fieldClientSecret: &c.ClientSecret, fieldRefreshToken: &c.RefreshToken, fieldAPIKey: &c.APIKey,
		fieldAuthStyle: &c.AuthStyle, fieldBasicEncoding: &c.BasicEncoding, fieldBodyFormat: &c.BodyFormat, fieldAuthorizeURL: &c.AuthorizeURL,
		fieldAssertionAudience: &c.AssertionAudience, fieldTLSCert: &c.TLSClientCertificate, fieldTLSKey: &c.TLSClientKey,
		fieldCABundle: &c.CABundle, fieldIssuer: &c.Issuer, fieldRevocationURL: &c.RevocationURL, fieldDeviceURL: &c.DeviceAuthorizationURL,
	} {
		if v, ok := d.GetOk(field); ok {
			*dst = strings.TrimSpace(v.(string))
		}
	}
	if c.Provider == "" {
		c.Provider = "generic"
	}
}

func applyLists(c *backend.Config, d *framework.FieldData) {
	if v, ok := d.GetOk(fieldScopes); ok {
		var scopes []string
		for _, s := range v.([]string) {
			scopes = append(scopes, strings.Fields(s)...)
		}
		c.Scopes = scopes
	}
	for field, dst := range map[string]*[]string{fieldResponseFields: &c.ResponseFields, fieldSecretFields: &c.SecretResponseFields} {
		if v, ok := d.GetOk(field); ok {
			*dst = nil
			for _, f := range v.([]string) {
				if f = strings.TrimSpace(f); f != "" {
					*dst = append(*dst, f)
				}
			}
		}
	}
	for field, dst := range map[string]*map[string]string{fieldMetadata: &c.Metadata, fieldExtraParams: &c.ExtraParams, fieldExtraHeaders: &c.ExtraHeaders} {
		if v, ok := d.GetOk(field); ok {
			*dst = v.(map[string]string)
		}
	}
}

// applyBools sets the optional booleans the request carries; "" returns
// one to its default (nil).
func applyBools(c *backend.Config, req *logical.Request, d *framework.FieldData) {
	for field, dst := range map[string]**bool{
		fieldUsePKCE: &c.UsePKCE, fieldRevokeOnDelete: &c.RevokeOnDelete, fieldGrantTypeInQuery: &c.GrantTypeInQuery, fieldRetryLostRefresh: &c.RetryLostRefresh,
	} {
		if v, ok := d.GetOk(field); ok {
			b := v.(bool)
			*dst = &b
		}
		if sentEmpty(req, field) {
			*dst = nil
		}
	}
}

func applyDurations(c *backend.Config, req *logical.Request, d *framework.FieldData) error {
	seconds := func(field string) (time.Duration, bool, error) {
		v, ok := d.GetOk(field)
		if !ok {
			return 0, false, nil
		}
		if v.(int) < 0 {
			return 0, false, &userError{msg: field + " cannot be negative"}
		}
		return time.Duration(v.(int)) * time.Second, true, nil
	}
	for field, dst := range map[string]*time.Duration{fieldDefaultTTL: &c.DefaultTTL, fieldMaxTTL: &c.MaxTTL} {
		dur, ok, err := seconds(field)
		if err != nil {
			return err
		}
		if ok {
			*dst = dur
		}
	}
	for field, dst := range map[string]**time.Duration{fieldExpirySkew: &c.ExpirySkew, fieldKeepAlive: &c.KeepAlive} {
		dur, ok, err := seconds(field)
		if err != nil {
			return err
		}
		if ok {
			*dst = &dur
		}
		if sentEmpty(req, field) {
			*dst = nil
		}
	}
	return nil
}

// sentEmpty reports whether the request set field to "".
func sentEmpty(req *logical.Request, field string) bool {
	v, ok := req.Data[field]
	if !ok {
		return false
	}
	s, isString := v.(string)
	return isString && strings.TrimSpace(s) == ""
}

// applyStaticToken stores a user-minted token for grant_type=static.
func applyStaticToken(e *backend.Entry, s *backend.Settings, d *framework.FieldData, now time.Time) error {
	raw, hasToken := d.GetOk(fieldAccessToken)
	expRaw, hasExp := d.GetOk(fieldExpiresAt)
	ttlRaw, hasTTL := d.GetOk(fieldTTL)
	if !s.Static() {
		if hasToken || hasExp || hasTTL {
			return &userError{msg: "access_token, expires_at and ttl are only for grant_type=static"}
		}
		return nil
	}
	if !hasToken {
		if hasExp || hasTTL {
			return &userError{msg: "give the new access_token with expires_at or ttl"}
		}
		if e.Token == nil || e.Token.AccessToken == "" {
			return &userError{msg: "grant_type=static needs access_token with expires_at or ttl; " + s.Preset.StaticHint}
		}
		return nil
	}
	tok := strings.TrimSpace(raw.(string))
	if tok == "" {
		return &userError{msg: "access_token is empty"}
	}
	var exp time.Time
	switch {
	case hasExp && hasTTL:
		return &userError{msg: "give expires_at or ttl, not both"}
	case hasExp:
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(expRaw.(string)))
		if err != nil {
			return &userError{msg: "expires_at must be an RFC 3339 time such as 2026-11-24T09:00:00Z"}
		}
		exp = t
	case hasTTL:
		if ttlRaw.(int) <= 0 {
			return &userError{msg: "ttl must be positive"}
		}
		exp = now.Add(time.Duration(ttlRaw.(int)) * time.Second)
	default:
		return &userError{msg: "give expires_at or ttl with access_token, so the plugin knows when it stops working"}
	}
	if !exp.After(now) {
		return &userError{msg: "that access_token has already expired; " + s.Preset.StaticHint}
	}
	e.Token = &backend.Token{AccessToken: tok, TokenType: "Bearer", ObtainedAt: now, ExpiresAt: exp}
	e.Status.LastRefreshedAt = now
	return nil
}

func (b *vendorBackend) handleConfigRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get(fieldName).(string)
	e, err := b.creds.Get(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, nil
	}
	eff, s, rerr, err := b.creds.Effective(ctx, req.Storage, name, &e.Config)
	if err != nil {
		return nil, err
	}
	data := configData(eff, e)
	var warnings []string
	if rerr != nil {
		warnings = append(warnings, "this config does not work as stored: "+describe(mountOf(req), rerr))
	} else {
		showSettings(data, s)
	}
	if err := b.addHealth(ctx, req, name, e, data); err != nil {
		return nil, err
	}
	return &logical.Response{Data: data, Warnings: warnings}, nil
}

// configData is what a config read shows of c, the effective config (a
// connection's with its app's merged in): settings and whether each
// secret is set, never a secret.
func configData(c backend.Config, e *backend.Entry) map[string]interface{} {
	return map[string]interface{}{
		fieldProvider:          c.Provider,
		fieldEnvironment:       c.Environment,
		fieldGrantType:         c.GrantType,
		fieldTokenURL:          c.TokenURL,
		fieldClientID:          c.ClientID,
		fieldScopes:            nonNil(c.Scopes),
		fieldAuthStyle:         c.AuthStyle,
		fieldBasicEncoding:     c.BasicEncoding,
		fieldBodyFormat:        c.BodyFormat,
		fieldGrantTypeInQuery:  c.GrantTypeInQuery != nil && *c.GrantTypeInQuery,
		fieldExtraParams:       nonNilMap(c.ExtraParams),
		"extra_header_names":   headerNames(c.ExtraHeaders),
		"client_secret_set":    c.ClientSecret != "",
		"refresh_token_set":    c.RefreshToken != "",
		"api_key_set":          c.APIKey != "",
		"access_token_set":     c.GrantType == providers.GrantStatic && e != nil && e.Token != nil,
		fieldAuthorizeURL:      c.AuthorizeURL,
		fieldUsePKCE:           c.UsePKCE == nil || *c.UsePKCE,
		fieldDefaultTTL:        int64(c.DefaultTTL.Seconds()),
		fieldMaxTTL:            int64(c.MaxTTL.Seconds()),
		fieldRetryLostRefresh:  c.RetryLostRefresh == nil || *c.RetryLostRefresh,
		fieldApp:               c.App,
		fieldMetadata:          nonNilMap(c.Metadata),
		fieldAssertionAudience: c.AssertionAudience,
		fieldTLSCert:           c.TLSClientCertificate,
		"tls_client_key_set":   c.TLSClientKey != "",
		fieldCABundle:          c.CABundle,
		fieldIssuer:            c.Issuer,
		fieldRevocationURL:     c.RevocationURL,
		fieldRevokeOnDelete:    c.RevokeOnDelete == nil || *c.RevokeOnDelete,
		fieldDeviceURL:         c.DeviceAuthorizationURL,
		fieldResponseFields:    nonNil(c.ResponseFields),
		fieldSecretFields:      nonNil(c.SecretResponseFields),
		"discovered_at":        discoveredAt(c.Discovered),
	}
}

func discoveredAt(d *backend.Discovered) string {
	if d == nil {
		return ""
	}
	return formatTime(d.FetchedAt)
}

// showSettings overwrites data with what is in effect, preset defaults
// included.
func showSettings(data map[string]interface{}, s *backend.Settings) {
	data[fieldEnvironment] = s.Environment
	data[fieldGrantType] = s.GrantType
	data[fieldTokenURL] = s.TokenURL
	data[fieldScopes] = nonNil(s.Scopes)
	data[fieldAuthStyle] = s.AuthStyle
	data[fieldBasicEncoding] = s.BasicEncoding
	data[fieldBodyFormat] = s.BodyFormat
	data[fieldGrantTypeInQuery] = s.GrantTypeInQuery
	data[fieldDefaultTTL] = int64(s.DefaultTTL.Seconds())
	data[fieldExpirySkew] = int64(s.ExpirySkew.Seconds())
	data[fieldKeepAlive] = int64(s.KeepAlive.Seconds())
	data[fieldAuthorizeURL] = s.AuthorizeURL
	data[fieldUsePKCE] = s.UsePKCE
	data[fieldRevocationURL] = s.RevocationURL
	data[fieldDeviceURL] = s.DeviceAuthorizationURL
}

// addHealth adds a credential's status to a config read: what is stored
// (token, last refresh, the last vendor error if it came after it,
// reauthorization) and what this node counts.
func (b *vendorBackend) addHealth(ctx context.Context, req *logical.Request, name string, e *backend.Entry, data map[string]interface{}) error {
	p, err := b.creds.Problem(ctx, req.Storage, name)
	if err != nil {
		return err
	}
	open, err := b.creds.CountAuthorizations(ctx, req.Storage, name, e)
	if err != nil {
		return err
	}
	data["token_expires_at"] = formatTime(tokenExpiry(e))
	data["last_refreshed_at"] = formatTime(e.Status.LastRefreshedAt)
	data["last_error"], data["last_error_code"], data["last_error_at"] = "", "", ""
	if p != nil && p.LastErrorAt.After(e.Status.LastRefreshedAt) {
		data["last_error"], data["last_error_code"], data["last_error_at"] = p.LastError, p.LastErrorCode, formatTime(p.LastErrorAt)
	}
	data["needs_reauthorization"] = e.Status.NeedsReauthorization
	data["open_authorizations"] = open
	st := b.creds.Stats(name)
	data["reads"], data["cache_hits"], data["upstream_grants"], data["failures"] = st.Reads, st.CacheHits, st.Grants, st.Failures
	data["next_refresh_at"] = formatTime(b.creds.NextRefresh(name))
	data["backoff_until"] = formatTime(laterThanNow(st.RetryAt))
	return nil
}

func (b *vendorBackend) handleConfigDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get(fieldName).(string)
	vendor := ""
	if e, err := b.creds.Get(ctx, req.Storage, name); err == nil && e != nil {
		if _, settings, _, err := b.creds.Effective(ctx, req.Storage, name, &e.Config); err == nil && settings != nil {
			vendor = settings.Preset.Name
		}
	}
	revoked, err := b.creds.Delete(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	b.Logger().Info("credential deleted", "name", name, "vendor", vendor, "refresh_token_revoked", revoked.Tried && revoked.Err == nil)
	switch {
	case revoked.Tried && revoked.Err != nil:
		return &logical.Response{Warnings: []string{fmt.Sprintf("the credential was deleted, but revoking its refresh token at the vendor failed: %s; revoke it in the vendor's console if it must stop working", describe(mountOf(req), revoked.Err))}}, nil
	case revoked.Tried:
		return &logical.Response{Data: map[string]interface{}{"refresh_token_revoked": true}}, nil
	case revoked.NotSent:
		return &logical.Response{Warnings: []string{fmt.Sprintf("the credential was deleted, but its refresh token was not revoked: it would go to %s, and it was stored for %s, where the plugin may only send it; revoke it in the vendor's console if it must stop working", revoked.Endpoint, revoked.BoundTo)}}, nil
	}
	return nil, nil
}

func (b *vendorBackend) handleConfigList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	app := ""
	if v, ok := d.GetOk(fieldApp); ok {
		app = v.(string)
	}
	limit := d.Get(fieldLimit).(int)
	if limit <= 0 || limit > maxListPage {
		limit = maxListPage
	}
	page, err := b.creds.ListPage(ctx, req.Storage, app, d.Get(fieldAfter).(string), limit)
	if err != nil {
		return nil, err
	}
	resp := logical.ListResponse(page.Keys)
	if page.Next != "" {
		resp.Data["next"] = page.Next
	}
	return resp, nil
}

func tokenExpiry(e *backend.Entry) time.Time {
	if e.Token == nil {
		return time.Time{}
	}
	return e.Token.ExpiresAt
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func headerNames(h map[string]string) []string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sortStrings(names)
	return names
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

const pathConfigHelpSyn = `Configure a vendor credential: client ID and secret, refresh token, endpoint.`

const pathConfigHelpDesc = `
Stores one OAuth2 credential under a name. Secrets (client_secret,
refresh_token, api_key, extra_headers values) are write-only: reads show
client_secret_set, refresh_token_set, api_key_set and extra_header_names,
never a value.

A provider preset (generic, officernd, boldpenguin, eshopbox, penbox) fills in
the vendor's token URL, grant type and request style; any field you set
overrides the preset. Updates change only the fields you send. Changing a
field that decides which token the vendor issues (credentials, endpoint,
scopes, request style) drops the cached token.

Reads also show the credential's status: token_expires_at,
last_refreshed_at and last_error.

Example:

  vault write vendoroauth/config/officernd provider=officernd \
      client_id=... client_secret=... scopes=officernd.api.read
`

const pathConfigListHelpSyn = `List configured credentials.`

const pathConfigListHelpDesc = `Lists the names of all credentials written to config/<name>.`
