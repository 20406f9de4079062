package vendoroauth

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// Feed reads: at most maxEventsPage events an answer.
const (
	maxEventsPage     = 1000
	defaultEventsPage = 100
)

// pathEvents returns events (the self-contained credentials' feed) and
// events/<app> (an app's): every change of a connection's state, in order,
// read with a cursor.
func pathEvents(b *vendorBackend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "events/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "events",
			},
			Fields: eventsFields(),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:     b.handleEvents,
					Summary:      "Read the self-contained credentials' events in order, after a cursor.",
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"},
				},
			},
			HelpSynopsis:    pathEventsHelpSyn,
			HelpDescription: pathEventsHelpDesc,
		},
		{
			Pattern: "events/" + appName,
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "app-events",
			},
			Fields: withAppField(eventsFields()),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:     b.handleEvents,
					Summary:      "Read one app's events (its connections' changes of state) in order, after a cursor.",
					DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"},
				},
			},
			HelpSynopsis:    pathEventsHelpSyn,
			HelpDescription: pathEventsHelpDesc,
		},
	}
}

func eventsFields() map[string]*framework.FieldSchema {
	return map[string]*framework.FieldSchema{
		fieldAfter: {Type: framework.TypeString, Description: "The cursor of the last event read (an answer's next); events after it are returned. Empty or 0: from the first event the feed holds."},
		fieldLimit: {Type: framework.TypeInt, Description: fmt.Sprintf("At most this many events (default %d, maximum %d).", defaultEventsPage, maxEventsPage)},
	}
}

// handleEvents answers one page of a feed. It reads storage only, so any
// node answers it, with the same cursors.
func (b *vendorBackend) handleEvents(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if resp := rejectUnknownFields(req, d); resp != nil {
		return resp, nil
	}
	app := ""
	if raw, ok := d.GetOk(fieldApp); ok {
		app = raw.(string)
	}
	mount := mountOf(req)
	path := strings.TrimSuffix("events/"+app, "/")
	var after uint64
	if raw := strings.TrimSpace(d.Get(fieldAfter).(string)); raw != "" {
		n, err := strconv.ParseUint(raw, 10, 64)
		if err != nil {
			return logical.ErrorResponse(fmt.Sprintf("%s%s: after=%q is not a cursor; give the next of the previous answer, or leave it out to read from the start", mount, path, raw)), nil
		}
		after = n
	}
	limit := d.Get(fieldLimit).(int)
	if limit <= 0 {
		limit = defaultEventsPage
	}
	if limit > maxEventsPage {
		limit = maxEventsPage
	}
	page, err := b.creds.Events(ctx, req.Storage, app, after, limit)
	if err != nil {
		return nil, err
	}
	if app != "" && after == 0 && len(page.Events) == 0 && page.First == 1 {
		// An empty feed of an app that does not exist is a typo, not a
		// quiet app: a poller must learn it. A deleted app's feed keeps
		// its events, and is read as any other.
		a, err := b.creds.App(ctx, req.Storage, app)
		if err != nil {
			return nil, err
		}
		if a == nil {
			return nil, logical.CodedError(http.StatusNotFound, fmt.Sprintf("there is no app %q and its feed holds no event; vault list %sapps/ lists the apps", app, mount))
		}
	}
	events := make([]map[string]interface{}, 0, len(page.Events))
	for _, ev := range page.Events {
		events = append(events, eventData(ev))
	}
	data := map[string]interface{}{
		"events": events,
		"next":   strconv.FormatUint(page.Next, 10),
		"more":   page.More,
		"first":  strconv.FormatUint(page.First, 10),
		"missed": page.Missed,
	}
	resp := &logical.Response{Data: data}
	if page.Missed > 0 {
		status := "status"
		if app != "" {
			status += "/" + app
		}
		resp.AddWarning(fmt.Sprintf("%d event(s) after cursor %d were pruned before they were read (a feed keeps at most %d events and none older than %s): resync from vault read %s%s (the unhealthy connections and their states) and %s, then read on from next",
			page.Missed, after, backend.FeedMaxEvents, backend.FeedMaxAge, mount, status, listHint(mount, app)))
	}
	if app != "" {
		if dl, err := b.creds.Delivery(ctx, req.Storage, app); err == nil && dl != nil {
			data["webhooks"] = map[string]interface{}{
				"delivered":     strconv.FormatUint(dl.Delivered, 10),
				"failing_since": formatTime(dl.FailingSince),
				"last_error":    dl.LastError,
				"dropped":       dl.Dropped,
			}
		}
	}
	return resp, nil
}

// listHint is how to list what a feed is about.
func listHint(mount, app string) string {
	if app == "" {
		return "vault list " + mount + "config"
	}
	return "vault list " + mount + "config/" + app
}

// eventData is an event as the API shows it; the same fields a webhook
// delivers (model.Event.Payload).
func eventData(ev *model.Event) map[string]interface{} {
	data := map[string]interface{}{}
	if ev.Data.App != "" {
		data["app"] = ev.Data.App
		data["account"] = ev.Data.Account
	}
	data["connection"] = ev.Data.Connection
	if len(ev.Data.Metadata) > 0 {
		data["metadata"] = ev.Data.Metadata
	}
	for k, v := range map[string]string{"via": ev.Data.Via, "error_code": ev.Data.ErrorCode, "error_description": ev.Data.ErrorDescription} {
		if v != "" {
			data[k] = v
		}
	}
	return map[string]interface{}{
		"id":        ev.ID,
		"cursor":    ev.Cursor(),
		"type":      ev.Type,
		"timestamp": ev.Timestamp.UTC().Format(time.RFC3339Nano),
		"data":      data,
	}
}

const pathEventsHelpSyn = `Read a feed of events: every change of a connection's state, in order.`

var pathEventsHelpDesc = fmt.Sprintf(`
events/<app> is the feed of the app's connections; events (no app) is the
self-contained credentials'. Each change of state is one event, written with
the change: %s.
No event holds a secret.

Read with after=<cursor> (the next of the previous answer) and limit; the
answer has the events, next, more (a full page: read again at once), first
(the first event the feed still holds) and missed. A feed keeps at most
%d events and none older than %s; a reader whose cursor fell behind
what was pruned gets the events from the first one held, missed > 0 and a
warning: resync from status/<app> and the LIST of config/<app>/.

An app with notify_url gets every event as a signed webhook (Standard
Webhooks); events/<app> shows how far they got (webhooks).
`, strings.Join(model.EventTypes(), ", "), backend.FeedMaxEvents, backend.FeedMaxAge)
