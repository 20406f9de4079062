package backend

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
)

// The event feeds: each change of a connection's state is one event, in
// its app's feed (the self-contained credentials share one), written by
// the operation that makes the change, before it answers: the event first,
// then the change, so that no change is stored without its event (a crash
// between the two repeats the event at worst, with a new id, and the
// change is retried). A feed is read in order with a cursor (the event's
// seq) that survives restarts and failovers, since it is in storage, and
// its webhooks are delivered from it (notify.go).
//
// A feed keeps at most FeedMaxEvents events and none older than
// FeedMaxAge; the active node prunes the rest in the background. A reader
// whose cursor fell behind what was pruned is told so, and resyncs from
// status/<app>.
const (
	FeedMaxEvents = 100_000
	FeedMaxAge    = 7 * 24 * time.Hour
	// pruneBatch bounds the events one maintenance pass reads per feed to
	// prune by age, so a pass stays short; the next pass goes on. Events
	// past FeedMaxEvents are all deleted by the pass that finds them.
	pruneBatch = 1000
)

// feedState is what the active node knows of one feed: the seqs it holds,
// so an append costs one storage write and no list.
type feedState struct {
	// mu serialises appends to the feed: seqs are handed out in the
	// order their events are stored, so a reader never sees a later seq
	// before an earlier one.
	mu     sync.Mutex
	loaded bool
	// pruned is the head's PrunedThrough; the feed holds pruned+1..last.
	pruned, last uint64
	// stale are seqs at or below pruned still stored (a prune that was
	// cut short), deleted by the next prune.
	stale []uint64
}

// pendingEvent is an event whose write failed, kept in memory in order and
// written by the next append and every maintenance pass.
type pendingEvent struct {
	app string
	ev  *model.Event
}

// feeds is the manager's feeds.
type feeds struct {
	mu     sync.Mutex
	byApp  map[string]*feedState
	unwMu  sync.Mutex
	unwrit []pendingEvent
}

func (f *feeds) state(app string) *feedState {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byApp == nil {
		f.byApp = map[string]*feedState{}
	}
	fs := f.byApp[app]
	if fs == nil {
		fs = &feedState{}
		f.byApp[app] = fs
	}
	return fs
}

// peek is the last seq of app's feed as this node knows it, 0 when it
// has not loaded the feed.
func (f *feeds) peek(app string) uint64 {
	f.mu.Lock()
	fs := f.byApp[app]
	f.mu.Unlock()
	if fs == nil {
		return 0
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.last
}

// reset forgets every feed (the backend closed; another node writes now).
func (f *feeds) reset() {
	f.mu.Lock()
	f.byApp = nil
	f.mu.Unlock()
}

// load reads what app's feed holds, once; the caller holds fs.mu.
func (fs *feedState) load(ctx context.Context, s logical.Storage, app string) error {
	if fs.loaded {
		return nil
	}
	st := store.Of(s)
	head, err := st.FeedHead(ctx, app)
	if err != nil {
		return err
	}
	seqs, err := st.EventSeqs(ctx, app)
	if err != nil {
		return err
	}
	fs.pruned, fs.last, fs.stale = head.PrunedThrough, head.PrunedThrough, nil
	for _, q := range seqs {
		if q <= fs.pruned {
			fs.stale = append(fs.stale, q)
		} else if q > fs.last {
			fs.last = q
		}
	}
	fs.loaded = true
	return nil
}

// emit writes ev to its feed, after the events still waiting from failed
// writes. A write that fails keeps ev in memory, in order, for the next
// append and the maintenance pass: the change it records goes ahead (it
// may be a refresh token that only a write keeps).
func (m *Manager) emit(ctx context.Context, s logical.Storage, ev *model.Event) {
	err := m.flushEvents(ctx, s)
	if err == nil {
		err = m.appendEvent(ctx, s, ev.Data.App, ev)
	}
	if err != nil {
		m.feeds.unwMu.Lock()
		m.feeds.unwrit = append(m.feeds.unwrit, pendingEvent{app: ev.Data.App, ev: ev})
		m.feeds.unwMu.Unlock()
		m.logger.Warn("writing an event to the feed failed; it is kept in memory and written on the next tick", "name", ev.Data.Connection, "event", ev.Type, "error", err)
		return
	}
	m.metrics.event(ev.Type)
	// Events are written only where writes happen, the active node: its
	// deliveries start now rather than at the next tick (after a restart
	// or a failover, the tick may be a minute away).
	m.notifier.run(m, s)
	m.notifier.wake()
}

// flushEvents writes the events kept after failed writes, in order; it
// stops at the first that fails again.
func (m *Manager) flushEvents(ctx context.Context, s logical.Storage) error {
	m.feeds.unwMu.Lock()
	defer m.feeds.unwMu.Unlock()
	for len(m.feeds.unwrit) > 0 {
		p := m.feeds.unwrit[0]
		if err := m.appendEvent(ctx, s, p.app, p.ev); err != nil {
			return err
		}
		m.metrics.event(p.ev.Type)
		m.feeds.unwrit = m.feeds.unwrit[1:]
	}
	m.feeds.unwrit = nil
	return nil
}

// unwrittenEvents is how many events wait in memory for a write.
func (m *Manager) unwrittenEvents() int {
	m.feeds.unwMu.Lock()
	defer m.feeds.unwMu.Unlock()
	return len(m.feeds.unwrit)
}

// appendEvent stores ev as the next event of app's feed.
func (m *Manager) appendEvent(ctx context.Context, s logical.Storage, app string, ev *model.Event) error {
	fs := m.feeds.state(app)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.load(ctx, s, app); err != nil {
		return err
	}
	ev.Seq = fs.last + 1
	if err := store.Of(s).PutEvent(ctx, app, ev); err != nil {
		// The seq is not used: the next event takes it.
		return err
	}
	fs.last = ev.Seq
	return nil
}

// FeedLast is the seq of the last event of app's feed (0 for none): where
// the webhooks of an app that just got a notify_url begin.
func (m *Manager) FeedLast(ctx context.Context, s logical.Storage, app string) (uint64, error) {
	fs := m.feeds.state(app)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if err := fs.load(ctx, s, app); err != nil {
		return 0, err
	}
	return fs.last, nil
}

// EventPage is one page of a feed.
type EventPage struct {
	Events []*model.Event
	// Next is the cursor to read on from: the last event's, or the one
	// given when there was none.
	Next uint64
	// More: the page is full, and more may follow at once.
	More bool
	// Missed is how many events after the cursor were pruned before the
	// reader read them (0 when none): the reader fell behind and must
	// resync from status/<app>.
	Missed uint64
	// First is the first event the feed still holds.
	First uint64
}

// Events reads up to limit events of app's feed after the cursor after.
// It reads storage only (the head, then one entry per event), so any node
// can answer, and a reader's cursor means the same on every node and after
// every restart.
func (m *Manager) Events(ctx context.Context, s logical.Storage, app string, after uint64, limit int) (EventPage, error) {
	st := store.Of(s)
	head, err := st.FeedHead(ctx, app)
	if err != nil {
		return EventPage{}, err
	}
	page := EventPage{Next: after, First: head.PrunedThrough + 1}
	next := after + 1
	if next <= head.PrunedThrough {
		if after > 0 {
			page.Missed = head.PrunedThrough - after
		}
		next = head.PrunedThrough + 1
		page.Next = head.PrunedThrough
	}
	for len(page.Events) < limit {
		ev, err := st.Event(ctx, app, next)
		if err != nil {
			return EventPage{}, err
		}
		if ev == nil {
			break
		}
		page.Events = append(page.Events, ev)
		page.Next = ev.Seq
		next++
	}
	page.More = len(page.Events) == limit && limit > 0
	return page, nil
}

// pruneFeeds prunes every feed: what is past FeedMaxEvents or older than
// FeedMaxAge, at most pruneBatch events each per pass.
func (m *Manager) pruneFeeds(ctx context.Context, s logical.Storage) error {
	apps, err := store.Of(s).FeedApps(ctx)
	if err != nil {
		return err
	}
	for _, app := range apps {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := m.pruneFeed(ctx, s, app, m.now()); err != nil {
			return err
		}
	}
	return nil
}

// pruneFeed prunes app's feed. The head is written first, so a reader
// never asks for an event being deleted; the deletes run outside the
// feed's lock, so appends do not wait for them.
func (m *Manager) pruneFeed(ctx context.Context, s logical.Storage, app string, now time.Time) error {
	st := store.Of(s)
	fs := m.feeds.state(app)
	fs.mu.Lock()
	if err := fs.load(ctx, s, app); err != nil {
		fs.mu.Unlock()
		return err
	}
	from, target := fs.pruned, fs.pruned
	if held := fs.last - fs.pruned; held > FeedMaxEvents {
		target = fs.last - FeedMaxEvents
	}
	// Past the count, every excess event goes at once, however many came
	// since the last pass: a feed never holds more than its bound for
	// longer than a pass. By age, events are in time order, so only the
	// oldest are read, at most pruneBatch a pass.
	ageFrom := target
	for q := ageFrom + 1; q <= fs.last && q <= ageFrom+pruneBatch; q++ {
		ev, err := st.Event(ctx, app, q)
		if err != nil {
			fs.mu.Unlock()
			return err
		}
		if ev != nil && now.Sub(ev.Timestamp) <= FeedMaxAge {
			break
		}
		target = q
	}
	stale := fs.stale
	if target > from {
		if err := st.PutFeedHead(ctx, app, store.FeedHead{PrunedThrough: target}); err != nil {
			fs.mu.Unlock()
			return err
		}
		fs.pruned = target
	}
	fs.stale = nil
	fs.mu.Unlock()
	for q := from + 1; q <= target; q++ {
		stale = append(stale, q)
	}
	for i, q := range stale {
		if err := st.DeleteEvent(ctx, app, q); err != nil {
			// Left for the next pass to find when it loads again.
			fs.mu.Lock()
			fs.stale = append(fs.stale, stale[i:]...)
			fs.mu.Unlock()
			return err
		}
	}
	if target > from {
		m.logger.Debug("pruned an event feed", "app", app, "through", target)
	}
	return nil
}
