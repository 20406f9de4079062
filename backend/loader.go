package backend

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
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
	}
	if !l.done {
		m.logger.Warn("some credentials could not be read to schedule their refresh; retrying on the next tick", "unread", len(names))
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
		m.index.put(name, e, r.settings)
		// After a start nothing is in use yet: only keep-alives are
		// scheduled; a read schedules the rest.
		m.sched.setIfUnset(name, proactiveAt(name, e, r.settings, false))
	}
	return failed
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
