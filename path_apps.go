package vendoroauth

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
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
				// Forwarded: its connections' counts are the active node's
				// (its index and what it knows of refreshes in flight), which
				// a standby does not have.
				logical.ReadOperation: &framework.PathOperation{
					Callback:                    b.handleAppRead,
					Summary:                     "Read an app's settings and its connections' counts; secrets are shown only as set or not.",
					DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "read"},
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
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

// appFields are apps/<app>'s fields: every row an app may write, and the
// app's name.
func appFields() map[string]*framework.FieldSchema {
	f := schemaFor(model.OnApp)
	f[fieldApp] = &framework.FieldSchema{Type: framework.TypeString, Description: "Name of the app; its connections are config/<app>/<account>.", Required: true}
	return f
}

func (b *vendorBackend) appExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	a, err := b.creds.App(ctx, req.Storage, d.Get(fieldApp).(string))
	return a != nil, err
}

func (b *vendorBackend) handleAppWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get(fieldApp).(string)
	mount := mountOf(req)
	if resp := keysAreNotFields(req, "apps/"+name+"/import-key"); resp != nil {
		return resp, nil
	}
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	disc, resp, err := b.discoverFor(ctx, req, d, "apps/"+name)
	if err != nil || resp != nil {
		return resp, err
	}
	w := &appWrite{b: b, ctx: ctx, req: req, d: d, name: name, disc: disc}
	// What an earlier release stored of the app and its connections is
	// bound to where it goes now, before the write can change that.
	if err := b.creds.BindAppBefore(ctx, req.Storage, name); err != nil {
		return nil, err
	}
	_, err = b.creds.UpdateApp(ctx, req.Storage, name, w.update)
	var ue *userError
	if errors.As(err, &ue) {
		return logical.ErrorResponse(fmt.Sprintf("%sapps/%s was not changed: %s", mount, name, ue.msg)), nil
	}
	if err != nil {
		return nil, err
	}
	b.Logger().Info("app configured", "app", name, "operation", string(req.Operation), "client_secret_rotated", w.rotated)
	var warnings []string
	if w.dropped {
		warnings = append(warnings, fmt.Sprintf("%sapps/%s: the previous client_secret is not kept for an overlap: it was written for where the app sent its secrets before this write, and is never sent to the new destination", mount, name))
	}
	return b.afterWrite(ctx, req, "", name, w.moved, warnings, w.keyCheck)
}

// appWrite is one write of apps/<name>: update applies it to the app
// under its lock, and records what the answer says.
type appWrite struct {
	b    *vendorBackend
	ctx  context.Context
	req  *logical.Request
	d    *framework.FieldData
	name string
	disc *model.Discovered
	// rotated: a new client secret, the previous one kept for the
	// overlap; dropped: the previous one not kept; moved: the write
	// changed where the app's secrets go.
	rotated, dropped, moved bool
	keyCheck                func() string
}

func (w *appWrite) update(cur *model.App) (*model.App, error) {
	next := &model.App{Config: model.Config{Provider: "generic"}}
	var beforeApp *model.App
	if cur != nil {
		next = cur
		beforeApp = cur.Clone()
	}
	before := next.Config.Clone()
	if err := applyConfig(&next.Config, model.OnApp, w.req, w.d); err != nil {
		return nil, err
	}
	if err := applyFields(next, model.InApp, func(*model.Field) bool { return true }, w.req, w.d); err != nil {
		return nil, err
	}
	applyDiscovered(&next.Config, w.disc, w.req)
	if err := next.Validate(); err != nil {
		return nil, &userError{msg: err.Error()}
	}
	settings, err := next.Config.ResolveAsConnection()
	if err != nil {
		return nil, &userError{msg: err.Error()}
	}
	bindSecrets(&next.Config, &before, settings, w.req)
	if err := w.notify(beforeApp, next); err != nil {
		return nil, err
	}
	app := next.Config
	w.keyCheck = func() string {
		return w.b.keysSignHere(w.ctx, w.req, store.AppKeyOwner(w.name), &app, settings, "apps/"+w.name+"/rotate-key", "apps/"+w.name+"/import-key")
	}
	if cur == nil {
		return next, nil
	}
	if err := checkDestination(&before, &next.Config, &next.Config, w.req); err != nil {
		return nil, err
	}
	secretChanged := before.ClientSecret != "" && next.Config.ClientSecret != before.ClientSecret
	switch {
	case len(before.DestinationChanges(&next.Config)) > 0:
		// Every secret kept was written for the old destination: it is
		// never sent to the new one, not even once on invalid_client.
		w.moved = true
		w.dropped = next.HasPrevious(w.b.now()) || secretChanged
		next.DropPrevious()
	case secretChanged:
		// A new secret reaches every connection at once; the old one is
		// kept for the overlap, for a vendor that does not know the new
		// one yet.
		w.rotated = next.KeepPrevious(&before, w.b.now())
	}
	return next, nil
}

func (b *vendorBackend) handleAppRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get(fieldApp).(string)
	a, err := b.creds.App(ctx, req.Storage, name)
	if err != nil || a == nil {
		return nil, err
	}
	onApp := func(f *model.Field) bool { return f.In(model.OnApp) }
	data := readFields(&a.Config, model.InConfig, onApp)
	maps.Copy(data, readFields(a, model.InApp, onApp))
	data["discovered_at"] = discoveredAt(a.Config.Discovered)
	var warnings []string
	if s, err := a.Config.ResolveAsConnection(); err == nil {
		showInEffect(data, s)
	} else if err := a.Validate(); err != nil {
		warnings = append(warnings, "this app does not work as stored: "+err.Error())
	}
	data["previous_client_secret_until"] = ""
	if a.HasPrevious(b.now()) {
		data["previous_client_secret_until"] = formatTime(a.PreviousUntil)
	}
	data[fieldDiscoveryChanged] = discoveryChanged(mountOf(req), name, &a.Config)
	h := b.creds.Health(name, false)
	data["connections"] = countsOf(h)
	return &logical.Response{Data: data, Warnings: warnings}, nil
}

func (b *vendorBackend) handleAppDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get(fieldApp).(string)
	// Its connections stay: what an earlier release stored of them is
	// bound now, while they still resolve to where they went.
	if err := b.creds.BindAppBefore(ctx, req.Storage, name); err != nil {
		return nil, err
	}
	if err := b.creds.DeleteApp(ctx, req.Storage, name); err != nil {
		return nil, err
	}
	b.Logger().Info("app deleted", "app", name)
	var warnings []string
	if n, err := b.creds.ConnectionCount(ctx, req.Storage, name); err != nil {
		return nil, err
	} else if n > 0 {
		warnings = append(warnings, fmt.Sprintf("%d connection(s) under %sconfig/%s/ stay and get no token until the app is written again with vault write %sapps/%s; status/%s counts them as app_missing; delete them with vault delete %sconfig/%s/<account> if they are not to come back",
			n, mountOf(req), name, mountOf(req), name, name, mountOf(req), name))
	}
	// The flows under way were started for it: whatever app is written
	// under the name next, they end here.
	w, err := b.cancelFlows(ctx, req, "", name)
	if err != nil {
		return nil, err
	}
	if w != "" {
		warnings = append(warnings, w)
	}
	if len(warnings) == 0 {
		return nil, nil
	}
	return &logical.Response{Warnings: warnings}, nil
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

// pathAppsHelpDesc names the fields that move an app and the secrets a
// write must give again from the model's table, so that it cannot drift.
var pathAppsHelpDesc = `
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

A write that changes where the app's secrets go (` + strings.Join(model.Names(movesApp), ", ") + `)
must give ` + strings.Join(model.Names(appSecret), ", ") + ` again, keeps no
previous client_secret (it was written for the old destination), and cancels
the connections' authorizations and device flows under way. Every secret is
bound to where it was written or issued for: connections' refresh tokens are
never sent to a token endpoint, or a server a CA bundle vouches for, other
than the one they were issued for (after such a change they need connecting
again), nor revoked at a revocation endpoint other than the one in effect
when they were stored, also when the app is deleted and written anew. Signing
keys are made with apps/<app>/rotate-key and apps/<app>/import-key.
`

func movesApp(f *model.Field) bool {
	return f.Decides() && f.In(model.OnApp) && f.Holder == model.InConfig
}
func appSecret(f *model.Field) bool {
	return f.Secret && f.In(model.OnApp) && f.Holder == model.InConfig
}

const pathAppsListHelpSyn = `List the apps.`

const pathAppsListHelpDesc = `Lists the names of all apps, a page at a time (after, limit).`
