package backend

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
)

const (
	// TickInterval is how often Vault calls the backend's PeriodicFunc (its
	// rollback period).
	TickInterval = time.Minute
	// proactiveMinLifetime: tokens shorter-lived than this are left to
	// readers. Refreshing them a tick early would cost a large share of
	// their life, and more vendor calls than readers need.
	proactiveMinLifetime = 5 * TickInterval
	// exerciseAfter: a refresh token unused this long is refreshed anyway,
	// so vendors that expire idle refresh tokens do not.
	exerciseAfter = 24 * time.Hour
	// tickParallelism bounds vendor calls made by one tick.
	tickParallelism = 4
	// tickStartWindow is how long after it began a tick may start vendor
	// calls. Vault gives a periodic function 90 seconds and skips the next
	// call while one runs; a call started at the end of the window
	// finishes within the token client's 30 s timeout, and its one retry
	// after a lost answer within another, so the tick ends inside Vault's
	// limit.
	tickStartWindow = 25 * time.Second
	// tickMargin is kept free before the deadline Vault set on the tick.
	tickMargin = 5 * time.Second
	// callTimeout matches the token client's own timeout.
	callTimeout = 30 * time.Second
)

// proactiveAt is when the periodic tick should refresh e, or zero for
// never: the tick before its token stops being handed out, or when its
// refresh token has been idle for exerciseAfter.
func proactiveAt(e *Entry, s *Settings) time.Time {
	if s == nil || s.Static() || e.Status.NeedsReauthorization {
		return time.Time{}
	}
	var at time.Time
	if e.Token != nil && e.Token.ExpiresAt.Sub(e.Token.ObtainedAt) >= proactiveMinLifetime {
		at = handoutEnd(e.Token, s).Add(-TickInterval)
	}
	if s.GrantType == providers.GrantRefreshToken && e.Config.RefreshToken != "" && !e.Status.LastRefreshedAt.IsZero() {
		if idle := e.Status.LastRefreshedAt.Add(exerciseAfter); at.IsZero() || idle.Before(at) {
			at = idle
		}
	}
	return at
}

// Tick is the periodic work: it stores rotated refresh tokens whose write
// failed, keeps building the schedule after a restart, and refreshes the
// credentials that are due, so readers rarely wait on a vendor. Its cost
// grows with the number due, not the number configured. It starts no
// vendor call once its context is done, its start window has passed, or
// the backend is closed, and it returns before Vault's deadline for it.
func (m *Manager) Tick(ctx context.Context, s logical.Storage, writable bool) error {
	if !writable {
		return nil
	}
	ctx, cancel := m.tickContext(ctx)
	defer cancel()
	m.flushPending(ctx, s)
	m.loader.resume(m, s)
	return m.runDue(ctx, s)
}

// tickContext bounds a tick: it ends when Vault's context does, when the
// backend closes, or when the tick would run too close to Vault's deadline.
func (m *Manager) tickContext(ctx context.Context) (context.Context, context.CancelFunc) {
	// Real time, not m.now: context deadlines run on the wall clock.
	end := time.Now().Add(tickStartWindow)
	if dl, ok := ctx.Deadline(); ok {
		if last := dl.Add(-2*callTimeout - tickMargin); last.Before(end) {
			end = last
		}
	}
	ctx, cancel := context.WithDeadline(ctx, end)
	stop := context.AfterFunc(m.life, cancel)
	return ctx, func() { stop(); cancel() }
}

// runDue refreshes the names that are due, tickParallelism at a time.
// Names it could not start before ctx ended go back on the schedule.
func (m *Manager) runDue(ctx context.Context, s logical.Storage) error {
	due := m.sched.popDue(m.now())
	if len(due) == 0 {
		return nil
	}
	// A failed storage write ends the tick: the node may have lost
	// leadership without the tick's context saying so.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	sem := make(chan struct{}, tickParallelism)
	var wg sync.WaitGroup
	for i, name := range due {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			m.requeue(due[i:])
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			m.proactive(ctx, stop, s, name)
		}()
	}
	wg.Wait()
	return nil
}

// requeue puts names whose refresh did not start back on the schedule, for
// the next tick.
func (m *Manager) requeue(names []string) {
	now := m.now()
	for _, name := range names {
		if m.sched.next(name).IsZero() {
			m.sched.set(name, now)
		}
	}
}

// proactive refreshes name if it is still due once its lock is held. Its
// vendor call runs under the backend's lifetime, not the tick's: a call
// the tick started is let finish so a rotated refresh token in its answer
// is stored, and the tick's start window leaves room for that.
func (m *Manager) proactive(ctx context.Context, stopTick func(), s logical.Storage, name string) {
	defer m.recoverBackground("proactive refresh", name)
	gctx, cancel := m.detached(grantTimeout)
	defer cancel()
	if _, err := m.refreshLocked(gctx, ctx, s, name, modeProactive); err != nil {
		if IsNotFound(err) {
			return // deleted since it was scheduled
		}
		if errors.Is(err, ErrStorageWrite) {
			stopTick()
			m.logger.Error("a storage write failed during the periodic refresh; stopping this tick so no more refresh tokens are rotated that cannot be stored", "name", name, "error", err)
			m.requeue([]string{name})
			return
		}
		if ctx.Err() != nil {
			m.requeue([]string{name})
			return
		}
		m.logger.Warn("proactive refresh failed; readers will still try", "name", name, "error", err)
	}
}

// flushPending retries the storage writes of rotated refresh tokens that
// are held in memory.
func (m *Manager) flushPending(ctx context.Context, s logical.Storage) {
	m.pendingMu.Lock()
	names := make([]string, 0, len(m.pending))
	for name := range m.pending {
		names = append(names, name)
	}
	m.pendingMu.Unlock()
	for _, name := range names {
		if ctx.Err() != nil {
			return
		}
		m.flushOne(ctx, s, name)
	}
}

func (m *Manager) flushOne(ctx context.Context, s logical.Storage, name string) {
	unlock, err := m.lockName(ctx, "flush", name)
	if err != nil {
		return
	}
	defer unlock()
	if _, err := m.current(ctx, s, name); err != nil {
		m.logger.Error("storing a held refresh token failed again; retrying on the next tick", "name", name, "error", err)
	}
}

// recoverBackground turns a panic in background work into an error log:
// one process serves every mount, and a panic would end them all.
func (m *Manager) recoverBackground(what, name string) {
	if r := recover(); r != nil {
		m.logger.Error("internal error in background work; it was stopped", "work", what, "name", name, "panic", r)
	}
}
