package vendoroauth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend"
)

// pathApps returns apps/<app> and apps/: one OAuth client that many
// connections share (a partner connecting its own customers' accounts).
func pathApps(b *vendorBackend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "apps/" + appName,
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "app",
			},
			Fields:         appFields(),
			ExistenceCheck: b.appExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{
					Callback:                    b.handleAppWrite,
					Summary:                     "Store a new app: an OAuth client whose connections hold one account each.",
					DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "create"},
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.handleAppWrite,
					Summary:                     "Change an app; fields left out keep their values. A new client_secret reaches every connection at once.",
					DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "update"},
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
				logical.ReadOperation: &framework.PathOperation{
					Callback:     b.handleAppRead,
					Summary:      "Read an app's settings; secrets are shown only as set or not.",
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"},
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback:                    b.handleAppDelete,
					Summary:                     "Delete an app. Its connections stay, and fail until it is written again.",
					DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "delete"},
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
				},
			},
			HelpSynopsis:    pathAppsHelpSyn,
			HelpDescription: pathAppsHelpDesc,
		},
		{
			Pattern: "apps/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "apps",
			},
			Fields: listFields(),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback:     b.handleAppList,
					Summary:      "List the apps, a page at a time.",
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "list"},
				},
			},
			HelpSynopsis:    pathAppsListHelpSyn,
			HelpDescription: pathAppsListHelpDesc,
		},
	}
}

// appClientFields are the config fields an app takes: what belongs to the
// client.
var appClientFields = []string{fieldProvider, fieldEnvironment, fieldGrantType, fieldTokenURL, fieldClientID, fieldClientSecret,
	fieldAPIKey, fieldScopes, fieldAuthStyle, fieldBasicEncoding, fieldBodyFormat, fieldGrantTypeInQuery, fieldExtraParams,
	fieldExtraHeaders, fieldDefaultTTL, fieldMaxTTL, fieldAuthorizeURL, fieldUsePKCE, fieldExpirySkew, fieldKeepAlive, fieldRetryLostRefresh,
	fieldAssertionAudience, fieldTLSCert, fieldTLSKey, fieldCABundle, fieldIssuer, fieldRevocationURL, fieldRevokeOnDelete,
	fieldDeviceURL, fieldResponseFields, fieldSecretFields, fieldSigningKey, fieldSigningAlg}

func appFields() map[string]*framework.FieldSchema {
	all := configFields()
	f := map[string]*framework.FieldSchema{
		fieldApp: {Type: framework.TypeString, Description: "Name of the app; its connections are config/<app>/<account>.", Required: true},
		fieldRedirectURIs: {
			Type:         framework.TypeCommaStringSlice,
			Description:  "The only redirect URIs an authorization of the app's connections may use, compared exactly: https, or http on a loopback host.",
			DisplayAttrs: &framework.DisplayAttributes{Name: "Allowed redirect URIs"},
		},
		fieldSecretOverlap: {
			Type:         framework.TypeDurationSecond,
			Description:  fmt.Sprintf("How long the previous client_secret is kept after a new one is written, tried once when the vendor refuses the new one with invalid_client. Default %s; 0 keeps none.", backend.DefaultSecretOverlap),
			DisplayAttrs: &framework.DisplayAttributes{Name: "Client secret overlap"},
		},
		fieldRefreshConc: {
			Type:         framework.TypeInt,
			Description:  "At most this many background refreshes of the app's connections at a time (default 4).",
			DisplayAttrs: &framework.DisplayAttributes{Name: "Refresh concurrency"},
		},
		fieldRefreshRate: {
			Type:         framework.TypeFloat,
			Description:  "At most this many background refreshes of the app's connections a second (default 10).",
			DisplayAttrs: &framework.DisplayAttributes{Name: "Refresh rate"},
		},
	}
	for _, name := range appClientFields {
		f[name] = all[name]
	}
	return f
}

func (b *vendorBackend) appExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	a, err := b.creds.App(ctx, req.Storage, d.Get(fieldApp).(string))
	return a != nil, err
}

func (b *vendorBackend) handleAppWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	name := d.Get(fieldApp).(string)
	mount := mountOf(req)
	disc, resp, err := b.discoverFor(ctx, req, d, "apps/"+name)
	if err != nil || resp != nil {
		return resp, err
	}
	var rotated, dropped bool
	_, err = b.creds.UpdateApp(ctx, req.Storage, name, func(cur *backend.App) (*backend.App, error) {
		next := &backend.App{Config: backend.Config{Provider: "generic"}}
		if cur != nil {
			next = cur
		}
		before := next.Config.Clone()
		if err := applyConfig(&next.Config, req, d); err != nil {
			return nil, err
		}
		if err := applyAppFields(next, req, d); err != nil {
			return nil, err
		}
		applyDiscovered(&next.Config, disc, req)
		if err := next.Validate(); err != nil {
			return nil, &userError{msg: err.Error()}
		}
		if cur == nil {
			return next, nil
		}
		if err := checkDestination(&before, &next.Config, &next.Config, req); err != nil {
			return nil, err
		}
		secretChanged := before.ClientSecret != "" && next.Config.ClientSecret != before.ClientSecret
		switch {
		case len(before.DestinationChanges(&next.Config)) > 0:
			// Every secret kept was written for the old destination: it
			// is never sent to the new one, not even once on
			// invalid_client.
			dropped = next.HasPrevious(b.now()) || secretChanged
			next.DropPrevious()
		case secretChanged:
			// A new secret reaches every connection at once; the old one
			// is kept for the overlap, for a vendor that does not know
			// the new one yet.
			rotated = next.KeepPrevious(&before, b.now())
		}
		return next, nil
	})
	var ue *userError
	if errors.As(err, &ue) {
		return logical.ErrorResponse(fmt.Sprintf("%sapps/%s was not changed: %s", mount, name, ue.msg)), nil
	}
	if err != nil {
		return nil, err
	}
	if resp, err := b.importSigningKey(ctx, req, d, "app/"+name, "apps/"+name); resp != nil || err != nil {
		return resp, err
	}
	b.Logger().Info("app configured", "app", name, "operation", string(req.Operation), "client_secret_rotated", rotated)
	if dropped {
		return &logical.Response{Warnings: []string{fmt.Sprintf("%sapps/%s: the previous client_secret is not kept for an overlap: it was written for where the app sent its secrets before this write, and is never sent to the new destination", mount, name)}}, nil
	}
	return nil, nil
}

// applyAppFields copies the app-only fields the request carries.
func applyAppFields(a *backend.App, req *logical.Request, d *framework.FieldData) error {
	if v, ok := d.GetOk(fieldRedirectURIs); ok {
		var uris []string
		for _, u := range v.([]string) {
			if u = strings.TrimSpace(u); u != "" {
				uris = append(uris, u)
			}
		}
		slices.Sort(uris)
		a.AllowedRedirectURIs = slices.Compact(uris)
	}
	if v, ok := d.GetOk(fieldSecretOverlap); ok {
		if v.(int) < 0 {
			return &userError{msg: fieldSecretOverlap + " cannot be negative"}
		}
		dur := time.Duration(v.(int)) * time.Second
		a.SecretOverlap = &dur
	}
	if sentEmpty(req, fieldSecretOverlap) {
		a.SecretOverlap = nil
	}
	if v, ok := d.GetOk(fieldRefreshConc); ok {
		a.RefreshConcurrency = v.(int)
	}
	if v, ok := d.GetOk(fieldRefreshRate); ok {
		a.RefreshRate = v.(float64)
	}
	return nil
}

func (b *vendorBackend) handleAppRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get(fieldApp).(string)
	a, err := b.creds.App(ctx, req.Storage, name)
	if err != nil || a == nil {
		return nil, err
	}
	data := configData(a.Config, nil)
	delete(data, "refresh_token_set")
	delete(data, "access_token_set")
	delete(data, fieldApp)
	delete(data, fieldMetadata)
	var warnings []string
	if s, err := a.Config.Resolve(); err == nil {
		showSettings(data, s)
	} else if err := a.Validate(); err != nil {
		warnings = append(warnings, "this app does not work as stored: "+err.Error())
	}
	data[fieldRedirectURIs] = nonNil(a.AllowedRedirectURIs)
	data[fieldSecretOverlap] = int64(a.Overlap().Seconds())
	data["previous_client_secret_until"] = ""
	if a.PreviousClientSecret != "" && b.now().Before(a.PreviousUntil) {
		data["previous_client_secret_until"] = formatTime(a.PreviousUntil)
	}
	data[fieldRefreshConc], data[fieldRefreshRate] = a.RefreshConcurrency, a.RefreshRate
	data[fieldDiscoveryChanged] = discoveryChanged(mountOf(req), name, &a.Config)
	h := b.creds.Health(name)
	data["connections"] = countsOf(h)
	return &logical.Response{Data: data, Warnings: warnings}, nil
}

func (b *vendorBackend) handleAppDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get(fieldApp).(string)
	if err := b.creds.DeleteApp(ctx, req.Storage, name); err != nil {
		return nil, err
	}
	b.Logger().Info("app deleted", "app", name)
	return nil, nil
}

func (b *vendorBackend) handleAppList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	names, err := b.creds.ListApps(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	limit := d.Get(fieldLimit).(int)
	if limit <= 0 || limit > maxListPage {
		limit = maxListPage
	}
	page := backend.PageOf(names, d.Get(fieldAfter).(string), limit)
	resp := logical.ListResponse(page.Keys)
	if page.Next != "" {
		resp.Data["next"] = page.Next
	}
	return resp, nil
}

const pathAppsHelpSyn = `Configure an app: one OAuth client whose connections each hold one account.`

const pathAppsHelpDesc = `
An app holds what belongs to the OAuth client: provider, environment,
client_id, client_secret, api_key, token_url and authorize_url overrides,
client authentication and request style, secret extra_headers, default
scopes, use_pkce (on by default) and allowed_redirect_uris (exact matches).
Secrets are write-only.

Its connections are config/<app>/<account>: each holds one account's refresh
token, scopes override, extra_params and metadata. Connect an account with
authorize/<app>/<account> and exchange/<app>/<account>; no config is needed
first. A new client_secret reaches every connection with one write; the
previous one is kept for client_secret_overlap (default 24h) and tried once
if the vendor refuses the new one with invalid_client.

A write that changes where the app's secrets go (provider, environment,
token_url, authorize_url, revocation_url, device_authorization_url, issuer,
ca_bundle, assertion_audience) must give client_secret, api_key and
extra_headers again, and keeps no previous client_secret: it was written for
the old destination. Connections' refresh tokens are never sent to a token endpoint other
than the one they were issued for (after such a change they need connecting
again), nor revoked at a revocation endpoint other than the one in effect
when they were stored, also when the app is deleted and written anew.
`

const pathAppsListHelpSyn = `List the apps.`

const pathAppsListHelpDesc = `Lists the names of all apps, a page at a time (after, limit).`
