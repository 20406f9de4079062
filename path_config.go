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
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
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

// configFields are config/<name>'s fields: every row a credential or a
// connection may write, and the name.
func configFields() map[string]*framework.FieldSchema {
	out := schemaFor(model.OnCredential | model.OnConnection)
	out[fieldName] = &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "Name of the credential; tokens are read at token/<name>.",
		Required:    true,
	}
	return out
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

func (b *vendorBackend) handleConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get(fieldName).(string)
	mount := mountOf(req)
	if resp := keysAreNotFields(req, "import-key/"+name); resp != nil {
		return resp, nil
	}
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	disc, resp, err := b.discoverFor(ctx, req, d, "config/"+name)
	if err != nil || resp != nil {
		return resp, err
	}
	// What an earlier release stored of the credential is bound to where
	// it goes now, before the write can change that.
	if err := b.creds.BindBefore(ctx, req.Storage, name); err != nil {
		return nil, err
	}
	w := &configWrite{b: b, ctx: ctx, req: req, d: d, name: name, disc: disc}
	_, err = b.creds.Update(ctx, req.Storage, name, w.update)
	var ue *userError
	if errors.As(err, &ue) {
		return logical.ErrorResponse(fmt.Sprintf("%sconfig/%s was not changed: %s", mount, name, ue.msg)), nil
	}
	if err != nil {
		return nil, err
	}
	b.Logger().Info("credential configured", "name", name, "vendor", w.vendor, "operation", string(req.Operation))
	return b.afterWrite(ctx, req, name, "", w.moved, nil, w.keyCheck)
}

// configWrite is one write of config/<name>: update applies it to the
// entry under the name's lock, and records what the answer says.
type configWrite struct {
	b    *vendorBackend
	ctx  context.Context
	req  *logical.Request
	d    *framework.FieldData
	name string
	disc *model.Discovered
	// vendor is the preset in effect; moved: the write changed where the
	// credential's secrets go.
	vendor   string
	moved    bool
	keyCheck func() string
}

func (w *configWrite) update(cur *model.Entry) (*model.Entry, error) {
	b, ctx, req, mount := w.b, w.ctx, w.req, mountOf(w.req)
	next := &model.Entry{Config: model.Config{Provider: "generic"}}
	var before model.Config
	if cur != nil {
		before = cur.Config
		next = cur
	}
	if err := applyApp(mount, w.name, &next.Config, req, w.d); err != nil {
		return nil, err
	}
	if err := applyConfig(&next.Config, model.OnCredential|model.OnConnection, req, w.d); err != nil {
		return nil, err
	}
	applyDiscovered(&next.Config, w.disc, req)
	eff, settings, rerr, err := b.creds.Effective(ctx, req.Storage, w.name, &next.Config)
	if err != nil {
		return nil, err
	}
	if rerr != nil {
		return nil, &userError{msg: describe(mount, rerr)}
	}
	w.vendor = settings.Preset.Name
	w.keyCheck = func() string {
		return b.keysSignHere(ctx, req, backend.KeyOwner(w.name, &eff), &eff, settings, "rotate-key/"+w.name, "import-key/"+w.name)
	}
	if cur != nil {
		beforeEff, _, _, err := b.creds.Effective(ctx, req.Storage, w.name, &before)
		if err != nil {
			return nil, err
		}
		if err := checkDestination(&beforeEff, &eff, &next.Config, req); err != nil {
			return nil, err
		}
		w.moved = len(beforeEff.DestinationChanges(&eff)) > 0
		// A token got with other credentials or another endpoint must
		// not be handed out for the new ones.
		if !beforeEff.SameRequest(&eff) {
			next.Token = nil
			next.Status = model.Status{}
		}
	}
	bindSecrets(&next.Config, &before, settings, req)
	if err := applyStaticToken(next, settings, w.d, b.now()); err != nil {
		return nil, err
	}
	return next, nil
}

// afterWrite answers a config or app write that was stored: flows under
// way that a move left behind are cancelled, and the warnings say so, what
// else the write left undone (earlier ones first), and what stops the
// client's key from signing where it sends now.
func (b *vendorBackend) afterWrite(ctx context.Context, req *logical.Request, name, app string, moved bool, warnings []string, keyCheck func() string) (*logical.Response, error) {
	if moved {
		w, err := b.cancelFlows(ctx, req, name, app)
		if err != nil {
			return nil, err
		}
		if w != "" {
			warnings = append(warnings, w)
		}
	}
	if w := keyCheck(); w != "" {
		warnings = append(warnings, w)
	}
	if len(warnings) == 0 {
		return nil, nil
	}
	return &logical.Response{Warnings: warnings}, nil
}

// cancelFlows ends the flows under way of credential name, or of every
// connection of app, after a write moved where they send: they were
// started for the old destination, and their code verifiers and device
// codes go nowhere else. It says how many it ended, "" for none.
func (b *vendorBackend) cancelFlows(ctx context.Context, req *logical.Request, name, app string) (string, error) {
	var n int
	var err error
	if app != "" {
		n, err = b.creds.CancelAppFlows(ctx, req.Storage, app)
	} else {
		n, err = b.creds.CancelFlows(ctx, req.Storage, name)
	}
	if n == 0 {
		return "", err
	}
	b.Logger().Info("cancelled flows a write moved away from", "name", name, "app", app, "flows", n)
	return fmt.Sprintf("%d authorization or device flow(s) under way were cancelled: they were started for where the secrets went before this write; start them again with %sauthorize/ or %sdevice/", n, mountOf(req), mountOf(req)), err
}

// keysAreNotFields refuses a write that carries a signing key: a key is
// imported with its own operation, which the shipped operator policy does
// not grant, because whoever chooses the key of a client registered by its
// JWKS is that client.
func keysAreNotFields(req *logical.Request, importPath string) *logical.Response {
	for _, f := range []string{fieldSigningKey, fieldSigningAlg} {
		if _, ok := req.Data[f]; ok {
			return logical.ErrorResponse(fmt.Sprintf("%s is not a field of %s: import a key with vault write %s%s signing_key=@key.pem [algorithm=...]; whoever may import or rotate a client's key is that client, to a vendor that trusts its JWKS, so a policy that may write the config need not grant it",
				f, req.Path, mountOf(req), importPath))
		}
	}
	return nil
}

// keysSignHere says, for a client that signs its assertions with a key
// held in Vault, what stops it from signing where it sends after this
// write: no key yet, or a key made for where it sent before (it signs
// nothing anywhere else). "" when the key signs here, or the client
// signs no assertions.
func (b *vendorBackend) keysSignHere(ctx context.Context, req *logical.Request, owner string, eff *model.Config, s *model.Settings, rotatePath, importPath string) string {
	if !s.UsesKey() {
		return ""
	}
	set, err := b.creds.Keys(ctx, req.Storage, owner)
	if err != nil {
		return ""
	}
	k := set.Signing(b.now())
	how := fmt.Sprintf("vault write -f %s%s (then register its public key at the vendor, or let it fetch the JWKS), or vault write %s%s signing_key=@key.pem", mountOf(req), rotatePath, mountOf(req), importPath)
	switch {
	case k == nil:
		return "it has no signing key yet: make one with " + how
	case k.Bound() != nil && !k.Bound().Covers(model.ClientDestination(eff, s)):
		moved := fmt.Sprintf("vault write %s%s destination=%s (then register its public key at the vendor, or let it fetch the JWKS), or vault write %s%s destination=%s signing_key=@key.pem",
			mountOf(req), rotatePath, model.DisplayURL(s.TokenURL), mountOf(req), importPath, model.DisplayURL(s.TokenURL))
		return fmt.Sprintf("its signing key was made for %s, and signs for nowhere else: whoever holds the client's key makes one for where it sends now with %s", *k.Bound(), moved)
	}
	return ""
}

// discoverFor fetches the metadata of the issuer a write names (before
// taking the credential's lock: it is a network call), or nil when the
// write does not set one.
func (b *vendorBackend) discoverFor(ctx context.Context, req *logical.Request, d *framework.FieldData, path string) (*model.Discovered, *logical.Response, error) {
	v, ok := d.GetOk(fieldIssuer)
	issuer := strings.TrimSpace(fmt.Sprint(v))
	if !ok || issuer == "" {
		return nil, nil, nil
	}
	var probe model.Config
	_ = applyConfig(&probe, model.OnCredential|model.OnApp, req, d) // for its ca_bundle and client certificate
	disc, err := b.creds.Discover(ctx, issuer, &probe)
	if err != nil {
		return nil, logical.ErrorResponse(fmt.Sprintf("%s%s was not changed: the metadata of issuer %s could not be used: %s", mountOf(req), path, issuer, describe(mountOf(req), err))), nil
	}
	return disc, nil, nil
}

// applyDiscovered records an issuer's metadata; clearing issuer drops it.
func applyDiscovered(c *model.Config, disc *model.Discovered, req *logical.Request) {
	switch {
	case disc != nil:
		c.Discovered = disc
	case sentEmpty(req, fieldIssuer):
		c.Discovered = nil
	}
}

// applyApp makes c a connection of the app its name or its app field
// names, refusing what belongs to the app. Converting a self-contained
// credential drops its own client settings and secrets: from then on the
// app's are used.
func applyApp(mount, name string, c *model.Config, req *logical.Request, d *framework.FieldData) error {
	app := model.AppOf(name)
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
	for _, f := range model.Fields() {
		if _, ok := req.Data[f.Name]; ok && f.AppOwned() {
			owned = append(owned, f.Name)
		}
	}
	if len(owned) > 0 {
		held := model.Names(func(f *model.Field) bool { return f.In(model.OnConnection) && f.Name != fieldApp })
		return &userError{msg: fmt.Sprintf("%s belong to the app: write them to %sapps/%s; a connection holds %s",
			strings.Join(owned, ", "), mount, app, strings.Join(held, ", "))}
	}
	if c.App == "" {
		// Converted: what the app supplies goes.
		*c = c.AsConnection(app)
	}
	return nil
}

// bindSecrets records where the secrets a write gives (or changes) were
// written for: where they go with s, the settings the write leaves in
// effect. The others keep their bindings.
func bindSecrets(c, before *model.Config, s *model.Settings, req *logical.Request) {
	c.Bind(s, func(field string) bool {
		f, _ := model.Lookup(field)
		_, given := req.Data[field]
		return given || !f.Equal(c, before)
	})
}

// checkDestination refuses a write that changes where the stored secrets
// are sent (the token endpoint, the authorization endpoint) unless it
// carries those secrets again: whoever may write the config but not read
// its secrets must not be able to point them at a host of their choosing.
// A secret set to "" in the same write counts as given (it is cleared).
func checkDestination(before, after, stored *model.Config, req *logical.Request) error {
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
	// A signing key held in Vault cannot be given again: it stays bound
	// to where it was made for and signs nothing anywhere else; the
	// write's answer says to make one for the new destination.
	return nil
}

// applyConfig copies into c the config fields of scope the request
// carries. The app a credential belongs to is not among them: applyApp
// sets it, refusing what it may not become.
func applyConfig(c *model.Config, scope model.Scope, req *logical.Request, d *framework.FieldData) error {
	keep := func(f *model.Field) bool { return f.In(scope) && f.Name != fieldApp }
	if err := applyFields(c, model.InConfig, keep, req, d); err != nil {
		return err
	}
	// Stored as the default it is, so reads and older releases see it.
	if c.Provider == "" {
		c.Provider = "generic"
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
func applyStaticToken(e *model.Entry, s *model.Settings, d *framework.FieldData, now time.Time) error {
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
	e.Token = &model.Token{AccessToken: tok, TokenType: "Bearer", ObtainedAt: now, ExpiresAt: exp}
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
		showInEffect(data, s)
	}
	if err := b.addHealth(ctx, req, name, e, data); err != nil {
		return nil, err
	}
	return &logical.Response{Data: data, Warnings: warnings}, nil
}

// configData is what a config read shows of c, the effective config (a
// connection's with its app's merged in): settings and whether each
// secret is set, never a secret.
func configData(c model.Config, e *model.Entry) map[string]interface{} {
	data := readFields(&c, model.InConfig, func(f *model.Field) bool { return f.In(model.OnCredential | model.OnConnection) })
	g, known := model.GrantOf(c.GrantType)
	data["access_token_set"] = known && !g.CallsVendor && e != nil && e.Token != nil
	data["discovered_at"] = discoveredAt(c.Discovered)
	return data
}

func discoveredAt(d *model.Discovered) string {
	if d == nil {
		return ""
	}
	return formatTime(d.FetchedAt)
}

// addHealth adds a credential's status to a config read: what is stored
// (token, last refresh, the last vendor error if it came after it,
// reauthorization) and what this node counts.
func (b *vendorBackend) addHealth(ctx context.Context, req *logical.Request, name string, e *model.Entry, data map[string]interface{}) error {
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

func tokenExpiry(e *model.Entry) time.Time {
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

const pathConfigHelpSyn = `Configure a vendor credential: client ID and secret, refresh token, endpoint.`

// pathConfigHelpDesc names the secrets from the model's table.
var pathConfigHelpDesc = `
Stores one OAuth2 credential under a name. Secrets (` + strings.Join(model.Names(configSecret), ", ") + `)
are write-only: a read shows whether each is set, and extra_headers' names,
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

func configSecret(f *model.Field) bool {
	return f.Secret && f.In(model.OnCredential|model.OnConnection) && f.Holder == model.InConfig
}

const pathConfigListHelpSyn = `List configured credentials.`

const pathConfigListHelpDesc = `Lists the names of all credentials written to config/<name>.`
