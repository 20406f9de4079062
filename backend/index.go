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
// the few that are not healthy (for status), and when each one's
// keep-alive is due. It is built by the load after a start and kept by
// every write and delete, so a LIST page and a status answer cost the same
// with 10 connections as with 100,000. It is also stored (store.IndexRecord,
// a few shards written in batches), so the load after a start reads those
// shards and lists the names instead of reading every credential.
type index struct {
	mu sync.Mutex
	// names holds each app's names ("" for the names under no app) in
	// order.
	names map[string][]string
	info  map[string]indexInfo
	// reauth and static hold the names that need reauthorization and
	// the static tokens with their expiry: the unhealthy states that are
	// stored (backing off and refreshing live in memory).
	reauth map[string]struct{}
	static map[string]time.Time
	// stopped holds the names stopped after a lost answer (metrics.go).
	stopped map[string]struct{}
	// complete is set once the load after a start has every name.
	complete bool
	// gone holds the names deleted while the load runs, so that it does
	// not bring them back from what it read before.
	gone map[string]bool
	// dirty holds the stored shards that trail the index; urgent says one
	// trails it in a way that matters after a restart (a keep-alive due
	// earlier than stored, a state that changed), so it is written soon
	// rather than with the next batch.
	dirty  map[int]bool
	urgent bool
}

// indexInfo is what the index holds of one name.
type indexInfo struct {
	app string
	// rec is the name's record now; stored what the stored index holds
	// of it (storedSet: anything).
	rec       store.IndexRecord
	stored    store.IndexRecord
	storedSet bool
}

// keepAliveSlack is how far a stored keep-alive time may trail the
// entry's (a refresh moved it later) before its shard is written again:
// after a restart such a name is due early, costs one read, and is
// scheduled again. A later stored time is never let stand.
const keepAliveSlack = time.Hour

func newIndex() *index {
	x := &index{}
	x.resetLocked()
	return x
}

func (x *index) resetLocked() {
	x.names, x.info = map[string][]string{}, map[string]indexInfo{}
	x.reauth, x.static = map[string]struct{}{}, map[string]time.Time{}
	x.stopped = map[string]struct{}{}
	x.gone, x.dirty = map[string]bool{}, map[int]bool{}
	x.complete, x.urgent = false, false
}

// recordOf is what the index keeps of e, resolved to s (nil if it does
// not resolve).
func recordOf(e *model.Entry, s *model.Settings) store.IndexRecord {
	var r store.IndexRecord
	if s != nil {
		if k := keepAliveAt(e, s); !k.IsZero() {
			r.KeepAlive = k.Unix()
		}
		if s.Static() && e.Token != nil {
			r.Static, r.StaticExpires = true, e.Token.ExpiresAt.Unix()
		}
	}
	r.Reauth = e.Status.NeedsReauthorization
	r.Stopped = !e.Status.OutcomeUnknownAt.IsZero() && e.Status.RotationSeen
	return r
}

// put records name as stored in e (resolved to s, nil if it does not
// resolve), and reports whether the stored index now trails it in a way
// that matters after a restart. A name is filed under the app its name is
// under ("<app>/<account>"), as storage files it, not under the app its
// config names: a self-contained credential converted into a connection
// keeps its name, outside config/<app>/, and a partner whose policy is
// config/<app>/* must not see it there. So LIST config/<app>/ and
// status/<app> answer the same on the active node (from the index) and on
// a standby (from storage).
func (x *index) put(name string, e *model.Entry, s *model.Settings) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.gone, name)
	return x.setLocked(name, recordOf(e, s))
}

// putLoaded files name, stored as e, as the load read it, unless a delete
// or a write came since (the read took no lock): a write filed something
// newer, and a delete must not be undone. It reports whether it filed it.
func (x *index) putLoaded(name string, e *model.Entry, s *model.Settings) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, written := x.info[name]; written || x.gone[name] {
		return false
	}
	x.setLocked(name, recordOf(e, s))
	return true
}

// setLocked makes rec name's record; the caller holds x.mu.
func (x *index) setLocked(name string, rec store.IndexRecord) bool {
	info, ok := x.info[name]
	if !ok {
		info.app = model.AppOf(name)
		list := x.names[info.app]
		i, _ := slices.BinarySearch(list, name)
		x.names[info.app] = slices.Insert(list, i, name)
	}
	info.rec = rec
	x.info[name] = info
	if rec.Reauth {
		x.reauth[name] = struct{}{}
	} else {
		delete(x.reauth, name)
	}
	if rec.Static {
		x.static[name] = time.Unix(rec.StaticExpires, 0)
	} else {
		delete(x.static, name)
	}
	if rec.Stopped {
		x.stopped[name] = struct{}{}
	} else {
		delete(x.stopped, name)
	}
	urgent := info.storedSet && trailsBadly(info.stored, rec)
	if !info.storedSet || (info.stored != rec && (urgent || rec.KeepAlive == 0 || time.Duration(rec.KeepAlive-info.stored.KeepAlive)*time.Second > keepAliveSlack)) {
		x.dirty[store.IndexShardOf(name)] = true
		x.urgent = x.urgent || urgent
	}
	return urgent
}

// trailsBadly reports whether a stored record would mislead a start: its
// keep-alive later than now (or none when one is due), or another state.
func trailsBadly(stored, now store.IndexRecord) bool {
	if stored.Reauth != now.Reauth || stored.Stopped != now.Stopped || stored.Static != now.Static || stored.StaticExpires != now.StaticExpires {
		return true
	}
	return now.KeepAlive != 0 && (stored.KeepAlive == 0 || now.KeepAlive < stored.KeepAlive)
}

func (x *index) remove(name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.complete {
		x.gone[name] = true
	}
	info, ok := x.info[name]
	if !ok {
		return
	}
	list := x.names[info.app]
	if i, ok := slices.BinarySearch(list, name); ok {
		x.names[info.app] = slices.Delete(list, i, i+1)
	}
	if len(x.names[info.app]) == 0 {
		delete(x.names, info.app)
	}
	delete(x.info, name)
	delete(x.reauth, name)
	delete(x.static, name)
	delete(x.stopped, name)
	if info.storedSet {
		x.dirty[store.IndexShardOf(name)] = true
	}
}

// loaded takes what the load after a start found: every name storage
// lists, by app, sorted, and the stored records of those the stored index
// holds. A name written since the start keeps what the write recorded, and
// one deleted since is not brought back. It returns the names the stored
// index lacks, to read one by one.
func (x *index) loaded(byApp map[string][]string, stored map[string]store.IndexRecord) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var missing []string
	for app, listed := range byApp {
		var kept []string
		for _, name := range listed {
			if x.gone[name] {
				continue
			}
			if info, ok := x.info[name]; ok {
				// Written since the start: its record is newer.
				if rec, ok := stored[name]; ok {
					info.stored, info.storedSet = rec, true
					x.info[name] = info
				}
				continue
			}
			rec, ok := stored[name]
			if !ok {
				missing = append(missing, name)
				continue
			}
			kept = append(kept, name)
			x.info[name] = indexInfo{app: app, rec: rec, stored: rec, storedSet: true}
			if rec.Reauth {
				x.reauth[name] = struct{}{}
			}
			if rec.Static {
				x.static[name] = time.Unix(rec.StaticExpires, 0)
			}
			if rec.Stopped {
				x.stopped[name] = struct{}{}
			}
		}
		// Both in order: merged in one pass, not one insert each.
		x.names[app] = mergeSorted(x.names[app], kept)
	}
	// Stored records of names storage no longer lists go with the next
	// write of their shards.
	for name := range stored {
		if _, ok := x.info[name]; !ok {
			x.dirty[store.IndexShardOf(name)] = true
		}
	}
	return missing
}

// mergeSorted merges two sorted lists without duplicates.
func mergeSorted(a, b []string) []string {
	if len(a) == 0 {
		return b
	}
	out := make([]string, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	return out
}

// keepAlives calls fn with each name's stored keep-alive time, for the
// schedule after a load.
func (x *index) keepAlives(fn func(name string, at time.Time)) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for name, info := range x.info {
		if info.rec.KeepAlive != 0 {
			fn(name, time.Unix(info.rec.KeepAlive, 0))
		}
	}
}

// takeDirty returns the records of the shards that trail the index, and
// forgets that they do (a write that fails marks them again).
func (x *index) takeDirty() map[int]map[string]store.IndexRecord {
	x.mu.Lock()
	defer x.mu.Unlock()
	// Before the load has every name, a shard written from the index
	// would drop the names not loaded yet.
	if len(x.dirty) == 0 || !x.complete {
		return nil
	}
	out := make(map[int]map[string]store.IndexRecord, len(x.dirty))
	for shard := range x.dirty {
		out[shard] = map[string]store.IndexRecord{}
	}
	for name, info := range x.info {
		if recs, ok := out[store.IndexShardOf(name)]; ok {
			recs[name] = info.rec
		}
	}
	x.dirty, x.urgent = map[int]bool{}, false
	return out
}

// stored records that shard was written with records, or marks it dirty
// again when the write failed.
func (x *index) stored(shard int, records map[string]store.IndexRecord, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !ok {
		x.dirty[shard] = true
		return
	}
	for name, rec := range records {
		if info, ok := x.info[name]; ok {
			info.stored, info.storedSet = rec, true
			x.info[name] = info
		}
	}
}

func (x *index) markComplete() {
	x.mu.Lock()
	x.complete = true
	x.gone = map[string]bool{}
	x.mu.Unlock()
}

func (x *index) reset() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.resetLocked()
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
	in := func(name string) bool {
		info, ok := x.info[name]
		return ok && info.app == app
	}
	for name := range x.reauth {
		if in(name) {
			out[name] = StateReauth
		}
	}
	for name, exp := range x.static {
		if in(name) && !now.Before(exp) {
			out[name] = StateStaticGone
		}
	}
	for name := range backingOff {
		if _, ok := out[name]; !ok && in(name) {
			out[name] = StateBackingOff
		}
	}
	for name := range refreshing {
		if _, ok := out[name]; !ok && in(name) {
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
