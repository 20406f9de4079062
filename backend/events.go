package backend

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// The hooks below turn a change of a credential's state into its event
// (feed.go) and its metrics, one call from each place a change is made;
// each runs under the credential's lock, before the change is stored and
// answered.

// onRefused records a refused or failed grant of name: a refresh token
// the vendor refused (invalid_grant) needs reauthorization; a client the
// vendor refused (invalid_client) is about to break every connection that
// uses it, announced once until a grant with it succeeds again. next is
// the entry failed will store; the hook marks what it announced.
func (m *Manager) onRefused(ctx context.Context, s logical.Storage, name string, e, next *model.Entry, gerr *GrantError) {
	app := e.Config.App
	if next.Status.NeedsReauthorization && !e.Status.NeedsReauthorization {
		code, desc := vendorRefusal(gerr)
		m.emit(ctx, s, model.NewEvent(model.EventReauthNeeded, name, app, e.Config.Metadata, m.now()).WithError(code, desc))
		next.Announced = model.EventReauthNeeded
	}
	if isInvalidClient(gerr.Err) {
		if _, seen := m.rejected.LoadOrStore(rejectedKey(name, app), m.now()); !seen {
			code, desc := vendorRefusal(gerr)
			m.emit(ctx, s, model.NewEvent(model.EventClientRejected, name, app, nil, m.now()).WithError(code, desc))
		}
	}
}

// onGrantFailed counts a failed background refresh.
func (m *Manager) onGrantFailed(name string, l *locked, md mode) {
	if md == modeProactive {
		m.metrics.backgroundDone(l.e.Config.App, false, m.now())
	}
}

// onGranted records a grant that succeeded for name: next is the entry
// about to be stored. A connection announced as needing reauthorization
// has recovered; a rejected client works again; the token it replaces
// had used this much of its life.
func (m *Manager) onGranted(ctx context.Context, s logical.Storage, name string, l *locked, next *model.Entry, md mode, sentAt time.Time) {
	e := l.e
	app := e.Config.App
	if t := e.Token; t != nil && t.ExpiresAt.After(t.ObtainedAt) {
		m.metrics.lifeUsed.WithLabelValues(triggerOf(md)).Observe(float64(sentAt.Sub(t.ObtainedAt)) / float64(t.ExpiresAt.Sub(t.ObtainedAt)))
	}
	if md == modeProactive {
		m.metrics.backgroundDone(app, true, m.now())
	}
	m.rejected.Delete(rejectedKey(name, app))
	if e.Announced == model.EventReauthNeeded {
		ev := model.NewEvent(model.EventRecovered, name, app, e.Config.Metadata, m.now())
		ev.Data.Via = "refresh"
		m.emit(ctx, s, ev)
		next.Announced = ""
	}
}

// onConnected records an account connected by a code exchange or an
// approved device flow (via), into next, the entry about to be stored.
func (m *Manager) onConnected(ctx context.Context, s logical.Storage, name string, next *model.Entry, via string) {
	ev := model.NewEvent(model.EventConnected, name, next.Config.App, next.Config.Metadata, m.now())
	ev.Data.Via = via
	m.emit(ctx, s, ev)
	next.Announced = ""
	m.rejected.Delete(rejectedKey(name, next.Config.App))
}

// onDeleting records that name, which is e, is being deleted: before the
// delete, as every event goes before its change.
func (m *Manager) onDeleting(ctx context.Context, s logical.Storage, name string, e *model.Entry) {
	m.emit(ctx, s, model.NewEvent(model.EventDeleted, name, e.Config.App, e.Config.Metadata, m.now()))
}

// onDeleted forgets what was announced of name, which was e.
func (m *Manager) onDeleted(name string, e *model.Entry) {
	if e.Config.App == "" {
		// Its own client is gone with it; an app's is still used by
		// the other connections.
		m.rejected.Delete(rejectedKey(name, ""))
	}
}

// onHeld records that a refresh token the vendor issued for name is held
// in memory after its write failed. The event's own write is likely to
// fail too; it waits in memory, in order, before the one that says the
// token was stored.
func (m *Manager) onHeld(ctx context.Context, s logical.Storage, name string, e *model.Entry) {
	m.emit(ctx, s, model.NewEvent(model.EventTokenHeld, name, e.Config.App, e.Config.Metadata, m.now()))
}

// onStored records that name's held refresh token was stored.
func (m *Manager) onStored(ctx context.Context, s logical.Storage, name string, e *model.Entry) {
	m.emit(ctx, s, model.NewEvent(model.EventTokenStored, name, e.Config.App, e.Config.Metadata, m.now()))
}

// rejectedKey is whose client a refusal is about: the app's, or a
// self-contained credential's own ("/" and its name, which no app name
// can be).
func rejectedKey(name, app string) string {
	if app != "" {
		return app
	}
	return "/" + name
}

// vendorRefusal is a refusal's OAuth error code and description, for an
// event: the vendor's description, already redacted of every secret of
// the request by tokenclient, or what failed when the vendor said
// nothing.
func vendorRefusal(gerr *GrantError) (string, string) {
	var ve *tokenclient.Error
	if errors.As(gerr.Err, &ve) {
		desc := ve.Description
		if desc == "" {
			desc = ve.Status
		}
		return ve.Code, desc
	}
	return gerr.VendorCode(), gerr.Err.Error()
}
