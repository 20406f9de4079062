package backend

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
)

// index is what the active node knows of every credential without reading
// storage: the names of each app's connections in order (for LIST pages),
// and the few that are not healthy (for status). It is built by the
// schedule load after a start and kept by every write and delete, so a
// LIST page and a status answer cost the same with 10 connections as with
// 100,000. Per name it holds a name, an app name and a byte or two.
type index struct {
	mu sync.Mutex
	// names holds each app's names ("" for self-contained credentials)
	// in order.
	names map[string][]string
	app   map[string]string // name -> app
	// reauth and static hold the names that need reauthorization and
	// the static tokens with their expiry: the unhealthy states that are
	// stored (backing off and refreshing live in memory).
	reauth map[string]struct{}
	static map[string]time.Time
	// complete is set once the load after a start has read every entry.
	complete bool
}

func newIndex() *index {
	return &index{names: map[string][]string{}, app: map[string]string{}, reauth: map[string]struct{}{}, static: map[string]time.Time{}}
}

// put records name as stored in e (resolved to s, nil if it does not
// resolve). A name is filed under the app its name is under
// ("<app>/<account>"), as storage files it, not under the app its config
// names: a self-contained credential converted into a connection keeps
// its name, outside config/<app>/, and a partner whose policy is
// config/<app>/* must not see it there. So LIST config/<app>/ and
// status/<app> answer the same on the active node (from the index) and on
// a standby (from storage).
func (x *index) put(name string, e *model.Entry, s *model.Settings) {
	x.mu.Lock()
	defer x.mu.Unlock()
	app := model.AppOf(name)
	if old, ok := x.app[name]; !ok || old != app {
		if ok {
			x.removeLocked(name, old)
		}
		list := x.names[app]
		i, _ := slices.BinarySearch(list, name)
		x.names[app] = slices.Insert(list, i, name)
		x.app[name] = app
	}
	if e.Status.NeedsReauthorization {
		x.reauth[name] = struct{}{}
	} else {
		delete(x.reauth, name)
	}
	if s != nil && s.Static() && e.Token != nil {
		x.static[name] = e.Token.ExpiresAt
	} else {
		delete(x.static, name)
	}
}

func (x *index) remove(name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if app, ok := x.app[name]; ok {
		x.removeLocked(name, app)
	}
	delete(x.reauth, name)
	delete(x.static, name)
}

func (x *index) removeLocked(name, app string) {
	list := x.names[app]
	if i, ok := slices.BinarySearch(list, name); ok {
		x.names[app] = slices.Delete(list, i, i+1)
	}
	if len(x.names[app]) == 0 {
		delete(x.names, app)
	}
	delete(x.app, name)
}

func (x *index) markComplete() {
	x.mu.Lock()
	x.complete = true
	x.mu.Unlock()
}

func (x *index) reset() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.names, x.app = map[string][]string{}, map[string]string{}
	x.reauth, x.static = map[string]struct{}{}, map[string]time.Time{}
	x.complete = false
}

// Page is one page of a LIST answer.
type Page struct {
	Keys []string
	// Next is the "after" of the next page, "" on the last.
	Next string
}

// pageOf returns up to limit names of app after after, and whether the
// index could answer (it is complete).
func (x *index) pageOf(app, after string, limit int) (Page, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.complete {
		return Page{}, false
	}
	return pageFrom(x.names[app], after, limit), true
}

// pageFrom pages a sorted list.
func pageFrom(sorted []string, after string, limit int) Page {
	i := 0
	if after != "" {
		i = sort.SearchStrings(sorted, after)
		if i < len(sorted) && sorted[i] == after {
			i++
		}
	}
	end := len(sorted)
	if limit > 0 && i+limit < end {
		end = i + limit
	}
	p := Page{Keys: append([]string(nil), sorted[i:end]...)}
	if end < len(sorted) && len(p.Keys) > 0 {
		p.Next = p.Keys[len(p.Keys)-1]
	}
	return p
}

// apps lists the apps that have connections, in order.
func (x *index) appsWithConnections() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]string, 0, len(x.names))
	for app := range x.names {
		if app != "" {
			out = append(out, app)
		}
	}
	sort.Strings(out)
	return out
}

// States a credential can be in, for status.
const (
	StateHealthy    = "healthy"
	StateRefreshing = "refreshing"
	StateBackingOff = "backing_off"
	StateReauth     = "needs_reauthorization"
	StateStaticGone = "static_expired"
	// StateAppMissing: the connection's app does not exist (it was
	// deleted); it gets no token until the app is written again.
	StateAppMissing = "app_missing"
)

// unhealthy returns app's unhealthy names and their states, given the
// names with a refresh in flight and the names backing off. Its cost
// follows the number of unhealthy names, not of connections; when the
// app is missing every connection is unhealthy.
func (x *index) unhealthy(app string, appMissing bool, refreshing, backingOff map[string]bool, now time.Time) map[string]string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := map[string]string{}
	if appMissing {
		for _, name := range x.names[app] {
			out[name] = StateAppMissing
		}
		return out
	}
	for name := range x.reauth {
		if x.app[name] == app {
			out[name] = StateReauth
		}
	}
	for name, exp := range x.static {
		if x.app[name] == app && !now.Before(exp) {
			out[name] = StateStaticGone
		}
	}
	for name := range backingOff {
		if _, ok := out[name]; !ok && x.app[name] == app {
			out[name] = StateBackingOff
		}
	}
	for name := range refreshing {
		if _, ok := out[name]; !ok && x.app[name] == app {
			out[name] = StateRefreshing
		}
	}
	return out
}

// count is how many names app has.
func (x *index) count(app string) (int, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.names[app]), x.complete
}

// AppHealth is how the credentials of one app (or the self-contained ones,
// app "") are doing, for status: counts by state and the unhealthy names.
type AppHealth struct {
	Total     int
	Counts    map[string]int
	Unhealthy map[string]string // name -> state
	// Complete: the index holds every credential (the load after a start
	// has finished); before, counts cover what was read so far.
	Complete bool
}

// Health returns app's health ("" for the credentials whose names are
// under no app); appMissing says the app does not exist, so none of its
// connections gets a token. Its cost follows the number of unhealthy
// credentials, not of connections.
func (m *Manager) Health(app string, appMissing bool) AppHealth {
	now := m.now()
	refreshing := map[string]bool{}
	m.refreshing.Range(func(k, _ any) bool { refreshing[k.(string)] = true; return true })
	backingOff := map[string]bool{}
	m.healthMu.Lock()
	for name, h := range m.health {
		if h.lastErr != nil && now.Before(h.retryAt) {
			backingOff[name] = true
		}
	}
	m.healthMu.Unlock()
	total, complete := m.index.count(app)
	bad := m.index.unhealthy(app, appMissing, refreshing, backingOff, now)
	counts := map[string]int{StateHealthy: total - len(bad), StateRefreshing: 0, StateBackingOff: 0, StateReauth: 0, StateStaticGone: 0, StateAppMissing: 0}
	for _, st := range bad {
		counts[st]++
	}
	return AppHealth{Total: total, Counts: counts, Unhealthy: bad, Complete: complete}
}

// AppsWithConnections lists the apps that have connections, from the
// index.
func (m *Manager) AppsWithConnections() []string { return m.index.appsWithConnections() }

// ConnectionCount is how many connections are named under app: from the
// index once it holds every credential, else from storage.
func (m *Manager) ConnectionCount(ctx context.Context, s logical.Storage, app string) (int, error) {
	if n, complete := m.index.count(app); complete {
		return n, nil
	}
	keys, err := store.Of(s).EntryKeys(ctx, app)
	return len(keys), err
}

// PageOf pages a sorted list of names.
func PageOf(sorted []string, after string, limit int) Page { return pageFrom(sorted, after, limit) }
