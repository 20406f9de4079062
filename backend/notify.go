package backend

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/outbound"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
)

// Webhooks: the active node delivers every event of an app's feed to its
// notify_url, signed as the Standard Webhooks specification says, in order
// per connection and at least once. How far it got is in storage
// (feed/app/<app>/delivery), written after each batch, so a restart, a
// kill or a failover resumes after the last batch delivered in full and
// at worst delivers a batch again: the receiver deduplicates on the
// webhook-id, which is the event's id.
//
// Deliveries are started by one background loop per mount, each app's in
// a goroutine of its own, apart from every request: no lock a token read
// or a refresh takes is held while a receiver is called, and no app's
// delivery waits for another's, so a slow or dead receiver delays nothing
// but its own events. Like the refresher, the loop runs only on the node that can
// write: a tick on a node that cannot stops it, and each batch first
// proves with a probe write that the node can still write.
const (
	// webhookBatch events are read at a time; within a batch, each
	// connection's events go one after another, up to webhookParallel
	// connections at once.
	webhookBatch    = 32
	webhookParallel = 4
	// After a failed delivery the app's deliveries wait webhookBackoff,
	// doubling to webhookBackoffMax.
	webhookBackoff    = time.Second
	webhookBackoffMax = time.Minute
	// WebhookRetryWindow: an event not delivered within this long of its
	// time is given up (counted and logged); the feed keeps it
	// (FeedMaxAge is longer), for a reader to fetch.
	WebhookRetryWindow = 72 * time.Hour
	// maintenanceEvery is how often the loop prunes the feeds and writes
	// events kept after failed writes.
	maintenanceEvery = TickInterval
)

// notifier is the delivery loop and what it remembers per app.
type notifier struct {
	mu     sync.Mutex
	stop   context.CancelFunc
	gen    uint64
	wakeCh chan struct{}
	apps   map[string]*appDelivery
	// manual: a test drives DeliverNow itself.
	manual    bool
	lastMaint time.Time
	userAgent string
}

// appDelivery is one app's deliveries, as this node knows them. The
// fields below busy belong to the app's delivery goroutine while busy is
// set (under the notifier's lock), and to the pass that starts one
// otherwise.
type appDelivery struct {
	busy bool
	// forgotten: the app was deleted or lost its notify_url while its
	// delivery ran; the delivery stops before its next batch, records
	// nothing, and the entry goes when it ends.
	forgotten bool
	cur       *model.Delivery // as stored; nil until read
	failures  int
	retryAt   time.Time
	// sent are the events of the current batch that reached the
	// receiver, so a retry of the batch sends only the rest.
	sent map[uint64]bool
	// last is the feed's last seq when last looked at, for the backlog.
	last uint64
	// shown is what scrapes see, written under the notifier's lock (the
	// fields above belong to the loop).
	shown deliveryShown
}

// deliveryShown is an app's deliveries as a scrape sees them.
type deliveryShown struct {
	known        bool
	delivered    uint64
	last         uint64
	failingSince time.Time
}

// show publishes d's state for scrapes.
func (n *notifier) show(d *appDelivery) {
	n.mu.Lock()
	d.shown = deliveryShown{known: true, delivered: d.cur.Delivered, last: d.last, failingSince: d.cur.FailingSince}
	n.mu.Unlock()
}

func newNotifier() *notifier {
	return &notifier{wakeCh: make(chan struct{}, 1), apps: map[string]*appDelivery{}}
}

func (n *notifier) wake() {
	select {
	case n.wakeCh <- struct{}{}:
	default:
	}
}

// run starts the loop unless it runs.
func (n *notifier) run(m *Manager, s logical.Storage) {
	// A manager on a test's clock drives its deliveries by hand, as its
	// refreshes (SetClock).
	m.refresher.mu.Lock()
	manual := m.refresher.manual
	m.refresher.mu.Unlock()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stop != nil || n.manual || manual || m.life.Err() != nil {
		return
	}
	ctx, stop := context.WithCancel(m.life)
	n.stop = stop
	n.gen++
	gen := n.gen
	go func() {
		defer m.recoverBackground("webhook deliveries", "")
		defer n.haltRun(gen)
		n.loop(ctx, m, s)
	}()
}

func (n *notifier) haltRun(gen uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stop != nil && n.gen == gen {
		n.stop()
		n.stop = nil
	}
}

// halt stops the loop; a delivery in flight is cancelled, and delivered
// again by whichever node delivers next.
func (n *notifier) halt() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stop != nil {
		n.stop()
		n.stop = nil
	}
}

// forgetWebhooks forgets what this node knew of app's deliveries (the app
// was deleted or has no notify_url any more), so its gauges end; a delivery
// in flight finishes unseen.
func (m *Manager) forgetWebhooks(app string) {
	n := m.notifier
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.apps[app]
	if d == nil {
		return
	}
	if d.busy {
		// Kept until its delivery ends, so that no second delivery of
		// the app starts beside it if notify_url is written again.
		d.forgotten = true
		d.shown = deliveryShown{}
		return
	}
	delete(n.apps, app)
}

// stillDelivering reports whether app name's delivery d may go on with a
// (the app it started with): not forgotten, and the app still sends its
// events to the same receiver with the same secret. Events written after
// a change of either must not reach the old receiver.
func (m *Manager) stillDelivering(ctx context.Context, s logical.Storage, name string, a *model.App, d *appDelivery) bool {
	m.notifier.mu.Lock()
	forgotten := d.forgotten
	m.notifier.mu.Unlock()
	if forgotten {
		return false
	}
	cur, err := m.App(ctx, s, name)
	return err == nil && cur != nil && cur.NotifyURL == a.NotifyURL && cur.NotifySecret == a.NotifySecret
}

// reset forgets what the node knew (the backend closed).
func (n *notifier) reset() {
	n.mu.Lock()
	n.apps = map[string]*appDelivery{}
	n.lastMaint = time.Time{}
	n.mu.Unlock()
}

func (n *notifier) loop(ctx context.Context, m *Manager, s logical.Storage) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-n.wakeCh:
		}
		wait, err := m.deliverPass(ctx, s, nil, nil)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			m.logger.Warn("a webhook pass failed; trying again", "error", err)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// DeliverNow runs one delivery pass at once and waits for its deliveries,
// for tests.
func (m *Manager) DeliverNow(ctx context.Context, s logical.Storage) error {
	var wg sync.WaitGroup
	var first error
	var mu sync.Mutex
	_, err := m.deliverPass(ctx, s, &wg, func(e error) {
		mu.Lock()
		if first == nil {
			first = e
		}
		mu.Unlock()
	})
	wg.Wait()
	if err != nil {
		return err
	}
	return first
}

// SetNotifyManual stops the timer-driven delivery loop from starting, for
// tests that call DeliverNow.
func (m *Manager) SetNotifyManual() {
	m.notifier.mu.Lock()
	m.notifier.manual = true
	m.notifier.mu.Unlock()
}

// deliverPass does the maintenance when it is due, then starts the
// deliveries of each app with a notify_url whose last one has ended and
// whose backoff is over, each in a goroutine of its own: an app whose
// receiver hangs holds only its own deliveries. It returns how long the
// loop may sleep; a delivery that ends with more to do, or backing off,
// wakes the loop. wg (if given) counts the deliveries started, and failed
// is told of each delivery that failed on storage.
func (m *Manager) deliverPass(ctx context.Context, s logical.Storage, wg *sync.WaitGroup, failed func(error)) (time.Duration, error) {
	wait := maintenanceEvery
	now := m.now()
	n := m.notifier
	n.mu.Lock()
	maint := now.Sub(n.lastMaint) >= maintenanceEvery
	if maint {
		n.lastMaint = now
	}
	n.mu.Unlock()
	if maint {
		if err := m.flushEvents(ctx, s); err != nil {
			m.logger.Warn("writing events kept after a failed write failed again; retrying on the next pass", "events", m.unwrittenEvents(), "error", err)
		}
		if err := m.pruneFeeds(ctx, s); err != nil {
			m.logger.Warn("pruning the event feeds failed; the next pass tries again", "error", err)
		}
	}
	names, err := m.ListApps(ctx, s)
	if err != nil {
		return wait, err
	}
	for _, name := range names {
		if ctx.Err() != nil {
			return wait, ctx.Err()
		}
		a, err := m.App(ctx, s, name)
		if err != nil || a == nil || a.NotifyURL == "" {
			continue
		}
		n.mu.Lock()
		d := n.apps[name]
		if d == nil {
			d = &appDelivery{}
			n.apps[name] = d
		}
		if d.busy {
			n.mu.Unlock()
			continue
		}
		if w := d.retryAt.Sub(now); w > 0 {
			n.mu.Unlock()
			wait = min(wait, w)
			continue
		}
		d.busy = true
		n.mu.Unlock()
		if wg != nil {
			wg.Add(1)
		}
		go func() {
			if wg != nil {
				defer wg.Done()
			}
			m.deliverInBackground(ctx, s, name, a, d, failed)
		}()
	}
	return wait, nil
}

// deliverInBackground runs one delivery of app name (d is busy for it),
// and wakes the loop when the app needs it again before long.
func (m *Manager) deliverInBackground(ctx context.Context, s logical.Storage, name string, a *model.App, d *appDelivery, failed func(error)) {
	n := m.notifier
	idle := func() {
		n.mu.Lock()
		d.busy = false
		forgotten := d.forgotten
		if forgotten && n.apps[name] == d {
			delete(n.apps, name)
		}
		n.mu.Unlock()
		if forgotten {
			// What the delivery counted after the app went would bring
			// back the series its delete removed.
			if a, err := m.App(context.Background(), s, name); err == nil && a == nil {
				m.metrics.forgetApp(name)
			}
		}
	}
	// Even after a panic, the app's next pass may start a delivery.
	defer idle()
	defer m.recoverBackground("webhook delivery", name)
	w, err := m.deliverApp(ctx, s, name, a, d)
	idle() // before the wake: the pass it wakes must find the app idle
	switch {
	case err != nil && errors.Is(err, store.ErrWrite):
		m.logger.Error("webhook deliveries stopped: a storage write failed, so this node may have lost leadership; the next periodic tick starts them again if it can write", "error", err)
		n.halt()
	case err != nil && ctx.Err() == nil:
		m.logger.Warn("a webhook delivery failed; trying again", "app", name, "error", err)
	}
	if err != nil && failed != nil {
		failed(err)
	}
	if err == nil && w < maintenanceEvery {
		n.wake() // more to deliver, or a backoff to wait out
	}
}

// deliverApp delivers app's pending events, batch after batch, until none
// is left, a delivery fails, or the pass has taken a while; it returns how
// long until the app needs the loop again.
func (m *Manager) deliverApp(ctx context.Context, s logical.Storage, name string, a *model.App, d *appDelivery) (time.Duration, error) {
	n := m.notifier
	if wait := d.retryAt.Sub(m.now()); wait > 0 {
		return wait, nil
	}
	st := store.Of(s)
	if d.cur == nil {
		cur, err := st.Delivery(ctx, name)
		if err != nil {
			return webhookBackoffMax, nil //nolint:nilerr // a read that failed is tried again on the next pass
		}
		if cur == nil {
			cur = &model.Delivery{}
		}
		d.cur = cur
	}
	// An app given a notify_url begins with the events after that write,
	// not the feed's history.
	if d.cur.Delivered < a.NotifyFrom {
		d.cur.Delivered = a.NotifyFrom
		d.sent = nil
	}
	deadline := m.now().Add(10 * time.Second)
	for m.now().Before(deadline) {
		if !m.stillDelivering(ctx, s, name, a, d) {
			return maintenanceEvery, nil
		}
		page, err := m.Events(ctx, s, name, d.cur.Delivered, webhookBatch)
		if err != nil {
			return webhookBackoffMax, nil //nolint:nilerr // as above
		}
		if page.Missed > 0 {
			// Pruned before they were delivered: the receiver resyncs.
			m.logger.Error("events of the app's feed were pruned before they could be delivered; the receiver must resync from status/<app>", "app", name, "events", page.Missed)
			d.cur.Dropped += page.Missed
			m.metrics.webhook(name, "dropped", int(page.Missed))
			d.cur.Delivered, d.sent = page.First-1, nil
		}
		if len(page.Events) == 0 {
			d.last = d.cur.Delivered
			n.show(d)
			return maintenanceEvery, nil
		}
		d.last = page.Next
		if page.More {
			d.last++
		}
		if err := m.probeWrite(ctx, s); err != nil {
			return 0, err
		}
		failed, lastErr := m.deliverBatch(ctx, name, a, d, page.Events)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if !m.stillDelivering(ctx, s, name, a, d) {
			// The batch went out before the change; where the app's
			// deliveries stand is for its next delivery to record.
			return maintenanceEvery, nil
		}
		if failed {
			return m.deliveryFailed(ctx, s, name, d, lastErr)
		}
		if !d.cur.FailingSince.IsZero() {
			m.logger.Info("deliveries to the app's notify_url work again", "app", name, "failed_for", m.now().Sub(d.cur.FailingSince).Round(time.Second).String())
		}
		d.failures, d.retryAt, d.sent = 0, time.Time{}, nil
		d.cur.Delivered, d.cur.FailingSince, d.cur.LastError = page.Events[len(page.Events)-1].Seq, time.Time{}, ""
		n.show(d)
		if err := st.PutDelivery(ctx, name, d.cur); err != nil {
			return 0, err
		}
		if !page.More {
			return maintenanceEvery, nil
		}
	}
	return 0, nil
}

// deliveryFailed records a batch that did not reach the receiver in full:
// the app's deliveries back off, and the failure is stored for reads and
// for the next node.
func (m *Manager) deliveryFailed(ctx context.Context, s logical.Storage, name string, d *appDelivery, lastErr string) (time.Duration, error) {
	d.failures++
	backoff := min(webhookBackoff<<min(d.failures-1, 16), webhookBackoffMax)
	d.retryAt = m.now().Add(backoff)
	if d.cur.FailingSince.IsZero() {
		d.cur.FailingSince = m.now()
	}
	d.cur.LastError = lastErr
	m.notifier.show(d)
	if err := store.Of(s).PutDelivery(ctx, name, d.cur); err != nil {
		return 0, err
	}
	m.logger.Warn("delivering events to the app's notify_url failed; retrying with backoff", "app", name, "error", lastErr, "retry_in", backoff.String(), "failing_for", m.now().Sub(d.cur.FailingSince).Round(time.Second).String())
	return backoff, nil
}

// deliverBatch sends a batch's events, each connection's in order (a
// connection whose delivery failed sends none of its later events), and
// reports whether any failed, with the last failure.
func (m *Manager) deliverBatch(ctx context.Context, name string, a *model.App, d *appDelivery, events []*model.Event) (bool, string) {
	if d.sent == nil {
		d.sent = map[uint64]bool{}
	}
	var order []string
	groups := map[string][]*model.Event{}
	for _, ev := range events {
		k := ev.Data.Connection
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], ev)
	}
	var (
		mu      sync.Mutex
		failed  bool
		lastErr string
		wg      sync.WaitGroup
		slots   = make(chan struct{}, webhookParallel)
	)
	for _, k := range order {
		wg.Add(1)
		slots <- struct{}{}
		go func(evs []*model.Event) {
			defer wg.Done()
			defer func() { <-slots }()
			defer m.recoverBackground("webhook delivery", name)
			for _, ev := range evs {
				mu.Lock()
				done := d.sent[ev.Seq]
				mu.Unlock()
				if done {
					continue
				}
				if m.now().Sub(ev.Timestamp) > WebhookRetryWindow {
					m.logger.Error("an event was not delivered within the retry window; given up (the feed still holds it)", "app", name, "event", ev.ID, "type", ev.Type)
					m.metrics.webhook(name, "dropped", 1)
					mu.Lock()
					d.sent[ev.Seq] = true
					d.cur.Dropped++
					mu.Unlock()
					continue
				}
				err := m.sendWebhook(ctx, a, ev)
				mu.Lock()
				if err != nil {
					failed, lastErr = true, err.Error()
				} else {
					d.sent[ev.Seq] = true
				}
				mu.Unlock()
				if err != nil {
					m.metrics.webhook(name, "failed", 1)
					return // this connection's later events wait for this one
				}
				m.metrics.webhook(name, OutcomeOK, 1)
			}
		}(groups[k])
	}
	wg.Wait()
	return failed, lastErr
}

// sendWebhook signs and posts one event through the gate, which checks
// that the notify secret was written for the notify_url.
func (m *Manager) sendWebhook(ctx context.Context, a *model.App, ev *model.Event) error {
	body, err := ev.Payload()
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, outbound.WebhookTimeout)
	defer cancel()
	return m.gate.Webhook(rctx, outbound.Webhook{
		URL: a.NotifyURL, Secret: a.NotifySecret, Bound: a.NotifyBound,
		ID: ev.ID, Timestamp: m.now(), Body: body, UserAgent: m.notifier.userAgent,
	})
}

// deliveryState is what a scrape or a feed read shows of an app's
// deliveries.
type deliveryState struct {
	backlog uint64
	failing time.Duration
}

// snapshot is every app's delivery state as this node knows it.
func (n *notifier) snapshot(m *Manager, now time.Time) map[string]deliveryState {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]deliveryState{}
	for app, d := range n.apps {
		v := d.shown
		if !v.known {
			continue
		}
		var st deliveryState
		last := max(v.last, m.feeds.peek(app))
		if last > v.delivered {
			st.backlog = last - v.delivered
		}
		if !v.failingSince.IsZero() {
			st.failing = now.Sub(v.failingSince)
		}
		out[app] = st
	}
	return out
}

// Delivery returns how far app's webhooks got, from storage.
func (m *Manager) Delivery(ctx context.Context, s logical.Storage, app string) (*model.Delivery, error) {
	return store.Of(s).Delivery(ctx, app)
}

// SetUserAgent sets the User-Agent of webhook deliveries.
func (m *Manager) SetUserAgent(ua string) { m.notifier.userAgent = ua }

// TickNotify keeps the delivery loop running on the node that can write,
// and stopped on one that cannot, as Tick does the refresher.
func (m *Manager) TickNotify(s logical.Storage, writable bool) {
	if !writable {
		m.notifier.halt()
		return
	}
	m.notifier.run(m, s)
}
