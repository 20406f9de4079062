package backend

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
)

// Open authorizations, bounded and swept.
//
// An authorization (authorize/<name>) is stored until it is exchanged or
// expires; one that expires was deleted only by a later authorize of the
// same name, so anyone who can make a partner's backend call
// authorize/<app>/<new account> (a public "connect" button) could grow
// storage without end. Now each app's connections may have at most
// max_open_authorizations open at a time, and the periodic call sweeps
// the expired ones, a bounded page at a time.
//
// The active node keeps what it knows of the stored authorizations (each
// one's expiry, by the app its credential's name is under), so counting an
// app's does not list storage on every authorize and a sweep reads each
// authorization once, not on every pass. An app's are loaded from storage
// the first time they are counted after a start, and every pass of the
// sweep brings all of them up to date.

// Sweep bounds: one page of the sweep reads and lists at most
// sweepPageOps storage entries and runs at most sweepPageTime; the next
// tick goes on from where it stopped.
const (
	sweepPageOps  = 2000
	sweepPageTime = 5 * time.Second
	// sweepLockWait is how long the sweep waits for a name's lock before
	// leaving its expired authorizations to the next pass: the name may be
	// busy with a vendor call.
	sweepLockWait = 100 * time.Millisecond
)

// openAuthz is what this node knows of the stored authorizations, by app
// ("" for names without one).
type openAuthz struct {
	mu   sync.Mutex
	apps map[string]*appAuthz
	// complete: a whole pass of the sweep has run, so an app this node
	// knows nothing of has none stored (those started since were
	// recorded when they were).
	complete bool
}

// appAuthz is the authorizations of one app's connections.
type appAuthz struct {
	// mu is held while they are loaded, counted and changed.
	mu     sync.Mutex
	loaded bool
	// byName holds, by credential name, each authorization's expiry by
	// its id.
	byName map[string]map[string]time.Time
}

func (o *openAuthz) of(app string) *appAuthz {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.apps == nil {
		o.apps = map[string]*appAuthz{}
	}
	a := o.apps[app]
	if a == nil {
		a = &appAuthz{loaded: o.complete, byName: map[string]map[string]time.Time{}}
		o.apps[app] = a
	}
	return a
}

// reset forgets everything (the backend closed).
func (o *openAuthz) reset() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.apps, o.complete = nil, false
}

// set records name's authorization id, expiring at exp; the caller holds
// a.mu.
func (a *appAuthz) set(name, id string, exp time.Time) {
	ids := a.byName[name]
	if ids == nil {
		ids = map[string]time.Time{}
		a.byName[name] = ids
	}
	ids[id] = exp
}

// drop forgets name's authorization id ("" for all of them); the caller
// holds a.mu.
func (a *appAuthz) drop(name, id string) {
	if id == "" {
		delete(a.byName, name)
		return
	}
	delete(a.byName[name], id)
	if len(a.byName[name]) == 0 {
		delete(a.byName, name)
	}
}

// open counts those not expired at now; the caller holds a.mu.
func (a *appAuthz) open(now time.Time) int {
	n := 0
	for _, ids := range a.byName {
		for _, exp := range ids {
			if now.Before(exp) {
				n++
			}
		}
	}
	return n
}

// forgetAuthz forgets name's authorization id ("" for all of name's):
// deleted.
func (m *Manager) forgetAuthz(name, id string) {
	a := m.authz.of(model.AppOf(name))
	a.mu.Lock()
	a.drop(name, id)
	a.mu.Unlock()
}

// reserveAuthz counts name's app's open authorizations against limit
// and, when one more fits, records name's new one (id, expiring at exp)
// before it is stored, so two concurrent authorizations cannot both take
// the last place. The returned func forgets it again, for a store that
// failed. A name outside any app's folder is not counted (its own bound,
// maxOpenAuthorizations, holds).
func (m *Manager) reserveAuthz(ctx context.Context, s logical.Storage, name, id string, exp time.Time, limit int) (func(), error) {
	app := model.AppOf(name)
	if app == "" {
		return func() {}, nil
	}
	a := m.authz.of(app)
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.loaded {
		if err := m.loadAppAuthz(ctx, s, app, a); err != nil {
			return nil, err
		}
	}
	if n := a.open(m.now()); n >= limit {
		return nil, &InputError{Msg: fmt.Sprintf("app %q has %d authorizations open, its max_open_authorizations; one more can start when one is exchanged or expires (they last %s), or raise the bound with vault write %sapps/%s max_open_authorizations=<n>",
			app, n, StateTTL, MountPlaceholder, app)}
	}
	a.set(name, id, exp)
	return func() {
		a.mu.Lock()
		a.drop(name, id)
		a.mu.Unlock()
	}, nil
}

// loadAppAuthz reads what is stored of app's connections' authorizations
// into a: one list per account with any, and one read for each not known
// yet. The caller holds a.mu.
func (m *Manager) loadAppAuthz(ctx context.Context, s logical.Storage, app string, a *appAuthz) error {
	_, accounts, err := store.Of(s).AuthorizationsIn(ctx, app)
	if err != nil {
		return err
	}
	for _, acct := range accounts {
		name := app + "/" + acct
		ids, _, err := store.Of(s).AuthorizationsIn(ctx, name)
		if err != nil {
			return err
		}
		if _, err := m.learnAuthz(ctx, s, a, name, ids, nil); err != nil {
			return err
		}
	}
	a.loaded = true
	return nil
}

// learnAuthz brings what a knows of name's authorizations in line with
// ids, what storage lists for it now: those no longer listed are
// forgotten, those not known yet are read (each counting against budget,
// when given). It returns the ids that have expired. The caller holds
// a.mu.
func (m *Manager) learnAuthz(ctx context.Context, s logical.Storage, a *appAuthz, name string, ids []string, budget *int) ([]string, error) {
	listed := make(map[string]bool, len(ids))
	for _, id := range ids {
		listed[id] = true
	}
	for id := range a.byName[name] {
		if !listed[id] {
			a.drop(name, id)
		}
	}
	now := m.now()
	var expired []string
	for _, id := range ids {
		exp, known := a.byName[name][id]
		if !known {
			if budget != nil {
				*budget--
			}
			auth, err := store.Of(s).AuthorizationByID(ctx, name, id)
			if err != nil {
				return expired, err
			}
			if auth == nil {
				continue
			}
			exp = auth.ExpiresAt
			a.set(name, id, exp)
		}
		if !now.Before(exp) {
			expired = append(expired, id)
		}
	}
	return expired, nil
}

// authzSweeper walks authz/ a page at a time, deleting the authorizations
// that have expired.
type authzSweeper struct {
	mu      sync.Mutex
	running bool
	// queue holds the folders this pass has still to visit: "" (authz/
	// itself), a credential's or an app's name, or "<app>/<account>".
	// Empty: the next page starts a pass.
	queue []string
	// pageOps is sweepPageOps, smaller in tests.
	pageOps int
}

// SetSweepPage sets how many storage operations a page of the sweep makes
// at most, for tests.
func (m *Manager) SetSweepPage(ops int) {
	m.sweeper.mu.Lock()
	defer m.sweeper.mu.Unlock()
	m.sweeper.pageOps = ops
}

// resume runs one page of the sweep in the background, unless one runs.
func (w *authzSweeper) resume(m *Manager, s logical.Storage) {
	w.mu.Lock()
	if w.running || !m.inflight.start() {
		w.mu.Unlock()
		return
	}
	w.running = true
	w.mu.Unlock()
	go func() {
		defer m.inflight.done()
		defer m.recoverBackground("authorization sweep", "")
		defer func() {
			w.mu.Lock()
			w.running = false
			w.mu.Unlock()
		}()
		m.sweepPage(m.life, s)
	}()
}

// halt forgets the pass in progress: a node that cannot write starts the
// next one from the top when it can again.
func (w *authzSweeper) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.queue = nil
}

// SweepAuthorizations runs one page of the sweep and reports whether it
// finished a pass, for tests.
func (m *Manager) SweepAuthorizations(ctx context.Context, s logical.Storage) bool {
	return m.sweepPage(ctx, s)
}

// sweepPage visits folders of authz/ until the pass ends or the page's
// budget is spent; it reports whether the pass ended.
func (m *Manager) sweepPage(ctx context.Context, s logical.Storage) bool {
	w := &m.sweeper
	w.mu.Lock()
	if len(w.queue) == 0 {
		w.queue = []string{""}
	}
	queue, budget := w.queue, w.pageOps
	w.mu.Unlock()
	if budget <= 0 {
		budget = sweepPageOps
	}
	deadline := time.Now().Add(sweepPageTime)
	for len(queue) > 0 && budget > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		prefix := queue[0]
		budget--
		ids, folders, err := store.Of(s).AuthorizationsIn(ctx, prefix)
		if err != nil {
			m.logger.Warn("sweeping expired authorizations: listing storage failed; the next periodic call goes on", "error", err)
			break
		}
		queue = queue[1:]
		// Names have at most two segments: below an app's folder there
		// are only its accounts' authorizations.
		if !strings.Contains(prefix, "/") {
			for _, f := range folders {
				if prefix == "" {
					queue = append(queue, f)
				} else {
					queue = append(queue, prefix+"/"+f)
				}
			}
		}
		if prefix != "" {
			if err := m.sweepName(ctx, s, prefix, ids, &budget); err != nil {
				m.logger.Warn("sweeping expired authorizations failed; the next periodic call goes on", "name", prefix, "error", err)
				queue = append([]string{prefix}, queue...)
				break
			}
		}
	}
	done := len(queue) == 0
	w.mu.Lock()
	w.queue = queue
	w.mu.Unlock()
	if done {
		m.authz.mu.Lock()
		m.authz.complete = true
		for _, a := range m.authz.apps {
			a.mu.Lock()
			a.loaded = true
			a.mu.Unlock()
		}
		m.authz.mu.Unlock()
	}
	return done
}

// sweepName deletes name's expired authorizations among ids, what storage
// lists for it.
func (m *Manager) sweepName(ctx context.Context, s logical.Storage, name string, ids []string, budget *int) error {
	a := m.authz.of(model.AppOf(name))
	a.mu.Lock()
	expired, err := m.learnAuthz(ctx, s, a, name, ids, budget)
	a.mu.Unlock()
	if err != nil || len(expired) == 0 {
		return err
	}
	// Under the name's lock, read again: an authorize may have stored a
	// new one under the same state since.
	wait, cancel := context.WithTimeout(ctx, sweepLockWait)
	defer cancel()
	unlock, err := m.lockName(wait, "authorization sweep", name)
	if err != nil {
		return nil // busy: the next pass
	}
	defer unlock()
	for _, id := range expired {
		*budget--
		auth, err := store.Of(s).AuthorizationByID(ctx, name, id)
		if err != nil {
			return err
		}
		if auth != nil && m.now().Before(auth.ExpiresAt) {
			continue
		}
		if err := store.Of(s).DeleteAuthorizationByID(ctx, name, id); err != nil {
			return err
		}
		m.forgetAuthz(name, id)
	}
	return nil
}
