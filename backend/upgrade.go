package backend

import (
	"context"
	"errors"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/keys"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
)

// Binding what an older release stored. The release before bindings kept
// secrets without their destination: a refresh token knew its token and
// revocation endpoints only, a client secret, an API key, header values, a
// TLS key and a signing key nothing. Each is bound to where it goes as it
// resolves (model.Entry.BindUpgrade, model.App.BindUpgrade,
// keys.Set.BindUnbound), and stored so, before anything can change where
// that is:
//
//   - a write that may change where a holder's secrets go (a config or app
//     write, an app delete) first stores the bindings of what the holder
//     keeps, as they resolve before the write: the entry and, for a
//     self-contained credential, its signing keys; for an app, the app, its
//     keys and its connections;
//   - the active node's first load after a start stores every binding, and
//     once all are stored writes the upgrade mark, after which neither
//     does this work again.
//
// Until a secret's binding is stored, what it resolves to now is what it
// was stored for: any change since the upgrade went through one of the
// writes above.

// upgraded reports whether the upgrade mark is written (remembered once
// it is: the mark is never removed).
func (m *Manager) upgraded(ctx context.Context, s logical.Storage) bool {
	if m.allBound.Load() {
		return true
	}
	ok, err := store.Of(s).Upgraded(ctx)
	if err == nil && ok {
		m.allBound.Store(true)
	}
	return ok
}

func (m *Manager) markUpgraded(ctx context.Context, s logical.Storage) {
	if err := store.Of(s).MarkUpgraded(ctx, m.now()); err != nil {
		m.logger.Warn("writing the upgrade mark failed; the next start binds again what an earlier release stored", "error", err)
		return
	}
	m.allBound.Store(true)
}

// BindBefore stores, before a write changes credential name, the bindings
// of what an earlier release stored of it: its entry and, for a
// self-contained credential, its signing keys.
func (m *Manager) BindBefore(ctx context.Context, s logical.Storage, name string) error {
	if m.upgraded(ctx, s) {
		return nil
	}
	return m.bindEntry(ctx, s, name)
}

// BindAppBefore is BindBefore for an app: the app, its keys and every
// connection of it.
func (m *Manager) BindAppBefore(ctx context.Context, s logical.Storage, app string) error {
	if m.upgraded(ctx, s) {
		return nil
	}
	if err := m.bindApp(ctx, s, app); err != nil {
		return err
	}
	accounts, err := store.Of(s).EntryKeys(ctx, app)
	if err != nil {
		return err
	}
	for _, acct := range accounts {
		if err := m.bindEntry(ctx, s, app+"/"+acct); err != nil {
			return err
		}
	}
	return nil
}

// bindEntry stores the bindings of name's entry and, for a self-contained
// credential, of its signing keys, as they resolve now. An entry that does
// not resolve (its app is gone) cannot be bound, and is left as it is.
func (m *Manager) bindEntry(ctx context.Context, s logical.Storage, name string) error {
	unlock, err := m.lockName(ctx, "bind", name)
	if err != nil {
		return err
	}
	defer unlock()
	e, err := m.current(ctx, s, name)
	if err != nil || e == nil {
		return err
	}
	r, err := m.resolve(ctx, s, name, e)
	if err != nil || r.settings == nil {
		return err
	}
	if r.bound {
		if err := m.writeEntry(ctx, s, name, r.entry); err != nil {
			return err
		}
	}
	if e.Config.App != "" {
		return nil
	}
	return m.bindKeys(ctx, s, KeyOwner(name, &e.Config), model.ClientDestination(&r.eff, r.settings))
}

// bindApp stores the bindings of app and its signing keys.
func (m *Manager) bindApp(ctx context.Context, s logical.Storage, app string) error {
	var d *model.Destination
	_, err := m.UpdateApp(ctx, s, app, func(cur *model.App) (*model.App, error) {
		if cur == nil {
			return nil, errNothingToBind
		}
		if st, err := cur.Config.ResolveAsConnection(); err == nil {
			dest := model.ClientDestination(&cur.Config, st)
			d = &dest
		}
		if !cur.BindUpgrade() {
			return nil, errNothingToBind
		}
		return cur, nil
	})
	if err != nil && !errors.Is(err, errNothingToBind) {
		return err
	}
	if d == nil {
		return nil
	}
	return m.bindKeys(ctx, s, store.AppKeyOwner(app), *d)
}

// bindApps binds every app, logging what fails (the next start tries
// again).
func (m *Manager) bindApps(ctx context.Context, s logical.Storage) {
	names, err := m.ListApps(ctx, s)
	if err != nil {
		return
	}
	for _, name := range names {
		if err := m.bindApp(ctx, s, name); err != nil {
			m.logger.Warn("storing where an app's secrets may go failed; the next start tries again", "app", name, "error", err)
		}
	}
}

// errNothingToBind ends an update that has nothing to store.
var errNothingToBind = errors.New("nothing to bind")

// bindKeys binds owner's keys stored without a binding to d.
func (m *Manager) bindKeys(ctx context.Context, s logical.Storage, owner string, d model.Destination) error {
	set, err := m.Keys(ctx, s, owner)
	if err != nil || !set.Unbound() {
		return err
	}
	_, err = m.UpdateKeys(ctx, s, owner, func(set *keys.Set) error { return set.BindUnbound(d) })
	return err
}
