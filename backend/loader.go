package backend

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
)

// loader rebuilds the refresh schedule after a start, in the background, so
// that no tick (and no read) waits for every entry to be read: with many
// credentials that takes longer than Vault gives a tick. A name whose
// read fails is retried, not forgotten, and the schedule counts as built
// only once every name was read.
type loader struct {
	mu      sync.Mutex
	running bool
	done    bool
	// retry holds the names whose read failed; a resumed load reads only
	// these (a name written meanwhile was scheduled by its write).
	retry []string
	// listed says the names were listed once.
	listed bool
	// retryDelay is the first wait before failed reads are retried; it
	// doubles loadRetries times before the load leaves them to the next
	// tick.
	retryDelay time.Duration
}

const loadRetries = 3

// resume starts (or resumes) the load unless it is done or running.
func (l *loader) resume(m *Manager, s logical.Storage) {
	l.mu.Lock()
	if l.done || l.running {
		l.mu.Unlock()
		return
	}
	if !m.inflight.start() {
		l.mu.Unlock()
		return
	}
	l.running = true
	l.mu.Unlock()
	go func() {
		defer m.inflight.done()
		defer m.recoverBackground("schedule load", "")
		defer func() {
			l.mu.Lock()
			l.running = false
			l.mu.Unlock()
		}()
		l.load(m.life, m, s)
	}()
}

func (l *loader) load(ctx context.Context, m *Manager, s logical.Storage) {
	l.mu.Lock()
	names, listed := l.retry, l.listed
	l.mu.Unlock()
	upgrading := !m.upgraded(ctx, s)
	if !listed {
		if upgrading {
			m.bindApps(ctx, s)
		}
		all, err := m.List(ctx, s)
		if err != nil {
			m.logger.Warn("listing credentials to rebuild the refresh schedule failed; retrying on the next tick", "error", err)
			return
		}
		names = all
		if !upgrading {
			// What the stored index has needs no read; what it lacks
			// (written since its last batch, or by an older release) is
			// read below. An upgrade reads every entry, to bind what an
			// older release stored.
			names = m.loadStoredIndex(ctx, s, all)
		}
	}
	for attempt := 0; ; attempt++ {
		names = m.scheduleFrom(ctx, s, names)
		if len(names) == 0 || attempt == loadRetries || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(l.retryDelay << attempt):
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.listed = true
	l.retry = names
	l.done = len(names) == 0
	if l.done {
		m.index.markComplete()
		if upgrading {
			m.markUpgraded(ctx, s)
		}
		m.flushIndexSoon(s, 0)
	}
	if !l.done {
		m.logger.Warn("some credentials could not be read to schedule their refresh; retrying on the next tick", "unread", len(names))
	}
}

// loadStoredIndex fills the index and the schedule from the stored index
// for the names storage lists (all), and returns those it has no record
// of, to read one by one. A shard that cannot be read leaves its names to
// be read.
func (m *Manager) loadStoredIndex(ctx context.Context, s logical.Storage, all []string) []string {
	stored := map[string]store.IndexRecord{}
	for shard := range store.IndexShards {
		recs, err := store.Of(s).IndexShard(ctx, shard)
		if err != nil {
			m.logger.Warn("reading the stored index failed; its credentials are read one by one", "error", err)
			continue
		}
		maps.Copy(stored, recs)
	}
	byApp := map[string][]string{}
	for _, name := range all {
		app := model.AppOf(name)
		byApp[app] = append(byApp[app], name)
	}
	for _, names := range byApp {
		slices.Sort(names)
	}
	missing := m.index.loaded(byApp, stored)
	// After a start nothing is in use yet: only keep-alives are
	// scheduled; a read schedules the rest.
	m.index.keepAlives(func(name string, at time.Time) { m.sched.setIfUnset(name, at) })
	m.logger.Debug("loaded the stored index", "credentials", len(all), "to_read", len(missing))
	return missing
}

// flushIndexSoon writes the stored index's shards that trail the index in
// the background, after wait (so that writes close together make one),
// unless a write of them is under way.
func (m *Manager) flushIndexSoon(s logical.Storage, wait time.Duration) {
	if !m.indexFlush.CompareAndSwap(false, true) {
		return
	}
	if !m.inflight.start() {
		m.indexFlush.Store(false)
		return
	}
	go func() {
		defer m.inflight.done()
		defer m.recoverBackground("index write", "")
		defer m.indexFlush.Store(false)
		if wait > 0 {
			select {
			case <-time.After(wait):
			case <-m.life.Done():
				return
			}
		}
		m.flushIndex(m.life, s)
	}()
}

// flushIndex writes the stored index's shards that trail the index.
func (m *Manager) flushIndex(ctx context.Context, s logical.Storage) {
	for shard, recs := range m.index.takeDirty() {
		err := store.Of(s).PutIndexShard(ctx, shard, recs)
		if err != nil {
			m.logger.Debug("writing the stored index failed; the next periodic call tries again", "error", err)
		}
		m.index.stored(shard, recs, err == nil)
	}
}

// scheduleFrom reads each name and schedules it; it returns the names it
// could not read. An entry read here is not cached: a load must not fill
// memory with credentials nobody reads.
func (m *Manager) scheduleFrom(ctx context.Context, s logical.Storage, names []string) []string {
	var failed []string
	for i, name := range names {
		if ctx.Err() != nil {
			return append(failed, names[i:]...)
		}
		e, err := store.Of(s).Entry(ctx, name)
		if err != nil {
			failed = append(failed, name)
			continue
		}
		if e == nil {
			continue
		}
		r, err := m.resolve(ctx, s, name, e)
		if err != nil {
			failed = append(failed, name)
			continue
		}
		if r.bound || (e.Config.App == "" && !m.upgraded(ctx, s)) {
			// Bound now, to where its secrets go now, before anything
			// can change that.
			if err := m.bindEntry(ctx, s, name); err != nil {
				failed = append(failed, name)
				continue
			}
		}
		if !m.index.putLoaded(name, e, r.settings) {
			continue // deleted or written since it was read here
		}
		// After a start nothing is in use yet: only keep-alives are
		// scheduled; a read schedules the rest.
		m.sched.setIfUnset(name, proactiveAt(name, e, r.settings, false))
	}
	return failed
}

// Start begins what a backend that just initialised does on a node that
// can write, as its first periodic call would: the load of the index and
// the refresh schedule, the refresher, and a page of the authorization
// sweep. The load reads the stored
// index and lists the names, and reads only the entries the stored index
// lacks.
func (m *Manager) Start(s logical.Storage, writable bool) {
	if !writable {
		return
	}
	m.loader.resume(m, s)
	m.refresher.run(m, s)
	// Authorizations that expired while no node swept (the plugin was
	// down, or an older release ran) go now, not at the first tick.
	m.sweeper.resume(m, s)
}

// ScheduleState reports whether the refresh schedule holds every
// credential (loaded) and whether a load is running, for status and tests.
func (m *Manager) ScheduleState() (loaded, loading bool) {
	l := m.loader
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done, l.running
}

// SetLoadRetryDelay sets the first wait before a failed read of the
// schedule load is retried, for tests.
func (m *Manager) SetLoadRetryDelay(d time.Duration) {
	m.loader.mu.Lock()
	defer m.loader.mu.Unlock()
	m.loader.retryDelay = d
}
