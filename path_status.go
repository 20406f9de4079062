package vendoroauth

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// maxUnhealthyListed bounds the unhealthy names a status answer lists; the
// rest are paged with after.
const maxUnhealthyListed = 100

// pathStatus returns status and status/<app>: how credentials are doing,
// by app and state, with the unhealthy ones by name, so an operator sees
// the plugin work without a metrics stack. No answer grows with the number
// of healthy connections; a connection's own counters are at its config
// read.
func pathStatus(b *vendorBackend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "status/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "status",
			},
			Fields: statusFields(),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Callback:                    b.handleStatus,
					Summary:                     "Counts by app and state, the unhealthy credentials, and every self-contained credential's counters (no secrets).",
					DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "read"},
				},
			},
			HelpSynopsis:    pathStatusHelpSyn,
			HelpDescription: pathStatusHelpDesc,
		},
		{
			Pattern: "status/" + appName,
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "app-status",
			},
			Fields: withAppField(statusFields()),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Callback:                    b.handleAppStatus,
					Summary:                     "One app's connections by state, and its unhealthy connections a page at a time.",
					DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "read"},
				},
			},
			HelpSynopsis:    pathAppStatusHelpSyn,
			HelpDescription: pathAppStatusHelpDesc,
		},
	}
}

func statusFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		fieldStateFilter: {Type: framework.TypeString, Description: "List only the unhealthy credentials in this state: refreshing, backing_off, needs_reauthorization, static_expired or app_missing."},
		fieldAfter:       {Type: framework.TypeString, Description: "List the unhealthy names after this one."},
		fieldLimit:       {Type: framework.TypeInt, Description: "At most this many unhealthy names (default and maximum 100)."},
	}
}

func (b *vendorBackend) handleStatus(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	apps := map[string]interface{}{}
	var warnings []string
	for _, app := range b.creds.AppsWithConnections() {
		a, err := b.creds.App(ctx, req.Storage, app)
		if err != nil {
			return nil, err
		}
		h := b.creds.Health(app, a == nil)
		apps[app] = countsOf(h)
		if a == nil {
			warnings = append(warnings, appMissingWarning(mountOf(req), app, h.Total))
		}
	}
	self := b.creds.Health("", false)
	unhealthy, next := pageUnhealthy(self.Unhealthy, d)
	// Self-contained credentials are few; each keeps its counters here.
	creds := map[string]interface{}{}
	page, err := b.creds.ListPage(ctx, req.Storage, "", "", maxListPage)
	if err != nil {
		return nil, err
	}
	for _, name := range page.Keys {
		if len(name) > 0 && name[len(name)-1] == '/' {
			continue // an app's folder
		}
		e, err := b.creds.Get(ctx, req.Storage, name)
		if err != nil {
			return nil, err
		}
		if e == nil {
			continue
		}
		if creds[name], err = credentialStatus(ctx, b, req, name, e); err != nil {
			return nil, err
		}
	}
	return &logical.Response{Data: map[string]interface{}{
		"apps":             apps,
		"self_contained":   countsOf(self),
		"credentials":      creds,
		"unhealthy":        unhealthy,
		"next":             next,
		"schedule_loaded":  self.Complete,
		"scheduled":        b.creds.Scheduled(),
		"counted_since":    b.started.UTC().Format(time.RFC3339),
		"counters_at_read": "connections' counters are at their config read",
	}, Warnings: warnings}, nil
}

// appMissingWarning says that app's n connections get no token: the app
// does not exist.
func appMissingWarning(mount, app string, n int) string {
	return fmt.Sprintf("there is no app %q: its %d connection(s) under %sconfig/%s/ get no token until it is written again with vault write %sapps/%s (or they are deleted)", app, n, mount, app, mount, app)
}

func (b *vendorBackend) handleAppStatus(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	app := d.Get(fieldApp).(string)
	a, err := b.creds.App(ctx, req.Storage, app)
	if err != nil {
		return nil, err
	}
	h := b.creds.Health(app, a == nil)
	var warnings []string
	changed := ""
	switch {
	case a != nil:
		changed = discoveryChanged(mountOf(req), app, &a.Config)
	case h.Total > 0:
		warnings = append(warnings, appMissingWarning(mountOf(req), app, h.Total))
	default:
		// A typo must not read as a healthy app without connections.
		// Until the index holds every name, storage says whether any
		// connection is named under it.
		n, err := b.creds.ConnectionCount(ctx, req.Storage, app)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, logical.CodedError(http.StatusNotFound, fmt.Sprintf("there is no app %q and no connection is named under it; vault list %sapps/ lists the apps", app, mountOf(req)))
		}
		warnings = append(warnings, appMissingWarning(mountOf(req), app, n))
	}
	unhealthy, next := pageUnhealthy(h.Unhealthy, d)
	return &logical.Response{Warnings: warnings, Data: map[string]interface{}{
		"app":                 app,
		"counts":              countsOf(h),
		"unhealthy":           unhealthy,
		"next":                next,
		"schedule_loaded":     h.Complete,
		"counted_since":       b.started.UTC().Format(time.RFC3339),
		fieldDiscoveryChanged: changed,
	}}, nil
}

func countsOf(h backend.AppHealth) map[string]interface{} {
	out := map[string]interface{}{"total": h.Total}
	for st, n := range h.Counts {
		out[st] = n
	}
	return out
}

// pageUnhealthy sorts the unhealthy names, filters them by the state asked
// for and returns one page, with the name to pass as after for the next.
func pageUnhealthy(bad map[string]string, d *framework.FieldData) ([]map[string]interface{}, string) {
	want := d.Get(fieldStateFilter).(string)
	names := make([]string, 0, len(bad))
	for name, st := range bad {
		if want == "" || st == want {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	limit := d.Get(fieldLimit).(int)
	if limit <= 0 || limit > maxUnhealthyListed {
		limit = maxUnhealthyListed
	}
	after := d.Get(fieldAfter).(string)
	i := sort.SearchStrings(names, after)
	if i < len(names) && names[i] == after {
		i++
	}
	out := []map[string]interface{}{}
	next := ""
	for ; i < len(names) && len(out) < limit; i++ {
		out = append(out, map[string]interface{}{"name": names[i], "state": bad[names[i]]})
	}
	if i < len(names) && len(out) > 0 {
		next = names[i-1]
	}
	return out, next
}

// credentialStatus is one credential's counters and health. A
// credential converted into a connection of an app keeps its name and
// shows its app and the app's provider.
func credentialStatus(ctx context.Context, b *vendorBackend, req *logical.Request, name string, e *model.Entry) (map[string]interface{}, error) {
	st := b.creds.Stats(name)
	provider := e.Config.Provider
	if e.Config.App != "" {
		_, s, _, err := b.creds.Effective(ctx, req.Storage, name, &e.Config)
		if err != nil {
			return nil, err
		}
		provider = ""
		if s != nil {
			provider = s.Preset.Name
		}
	}
	return map[string]interface{}{
		fieldProvider:           provider,
		fieldApp:                e.Config.App,
		"reads":                 st.Reads,
		"cache_hits":            st.CacheHits,
		"upstream_grants":       st.Grants,
		"failures":              st.Failures,
		"token_expires_at":      formatTime(tokenExpiry(e)),
		"last_refreshed_at":     formatTime(e.Status.LastRefreshedAt),
		"needs_reauthorization": e.Status.NeedsReauthorization,
		"next_refresh_at":       formatTime(b.creds.NextRefresh(name)),
		"backoff_until":         formatTime(laterThanNow(st.RetryAt)),
	}, nil
}

func laterThanNow(t time.Time) time.Time {
	if t.Before(time.Now()) {
		return time.Time{}
	}
	return t
}

const pathStatusHelpSyn = `Show how the credentials are doing: counts by app and state, the unhealthy ones.`

const pathStatusHelpDesc = `
apps: for each app with connections (config/<app>/<account>), how many are
healthy, refreshing, backing_off (after vendor failures),
needs_reauthorization, static_expired or app_missing (the app was deleted).
self_contained: the same for the credentials whose names are under no app
(config/<name>), a credential converted into a connection of an app
included: it keeps its name. unhealthy: those that are not healthy, a page
at a time (after, limit, state). credentials: each of them with its app
(for a converted one) and provider, reads, cache_hits, upstream_grants and
failures by vendor error code (counted on this node since counted_since),
token_expires_at, last_refreshed_at, needs_reauthorization, next_refresh_at
and backoff_until. A connection's own counters are at its config read;
status/<app> lists an app's unhealthy connections. schedule_loaded: the
index and the refresh schedule hold every credential (after a start they
are loaded in the background); scheduled: how many credentials are on the
refresh schedule. No secret is shown.
`

const pathAppStatusHelpSyn = `Show how an app's connections are doing.`

const pathAppStatusHelpDesc = `
counts: how many of the app's connections (the names under
config/<app>/) are healthy, refreshing, backing_off, needs_reauthorization,
static_expired or app_missing (all of them, when the app was deleted);
unhealthy: those that are not healthy, by name, a page at a time (after,
limit), optionally only one state (state=needs_reauthorization).
discovery_changed: when the app's issuer now names other endpoints, what
changed and how to adopt them (the app keeps the ones it had). An app that
does not exist and has no connection is a 404. The answer does not grow
with the number of healthy connections.
`
