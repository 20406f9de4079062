package backend

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/errgroup"

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

// Tick refreshes the credentials that are due, so readers rarely wait on a
// vendor. Its cost grows with the number due, not the number configured:
// only the first tick after start reads every entry, to build the schedule.
func (m *Manager) Tick(ctx context.Context, s logical.Storage, writable bool) error {
	if !writable {
		return nil
	}
	if err := m.loadSchedule(ctx, s); err != nil {
		return err
	}
	due := m.sched.popDue(m.now())
	if len(due) == 0 {
		return nil
	}
	g, gctx := errgroup.WithContext(context.WithoutCancel(ctx))
	g.SetLimit(tickParallelism)
	for _, name := range due {
		g.Go(func() error {
			_, err, _ := m.flights.Do(name, func() (any, error) {
				cctx, cancel := context.WithTimeout(gctx, grantTimeout)
				defer cancel()
				return m.proactive(cctx, s, name)
			})
			if err != nil {
				m.logger.Warn("proactive refresh failed; readers will still try", "name", name, "error", err)
			}
			return nil
		})
	}
	return g.Wait()
}

func (m *Manager) loadSchedule(ctx context.Context, s logical.Storage) error {
	m.sched.mu.Lock()
	loaded := m.sched.loaded
	m.sched.mu.Unlock()
	if loaded {
		return nil
	}
	names, err := m.List(ctx, s)
	if err != nil {
		return err
	}
	for _, name := range names {
		c, err := m.get(ctx, s, name)
		if err != nil || c == nil {
			continue
		}
		m.sched.set(name, proactiveAt(c.entry, c.settings))
	}
	m.sched.mu.Lock()
	m.sched.loaded = true
	m.sched.mu.Unlock()
	return nil
}

// proactive refreshes name if it is still due once its lock is held.
func (m *Manager) proactive(ctx context.Context, s logical.Storage, name string) (*Result, error) {
	lock := locksutil.LockForKey(m.locks, name)
	lock.Lock()
	e, err := m.current(ctx, s, name)
	lock.Unlock()
	if err != nil || e == nil {
		return nil, err
	}
	settings, err := e.Config.Resolve()
	if err != nil {
		return nil, nil
	}
	now := m.now()
	at := proactiveAt(e, settings)
	if at.IsZero() || at.After(now) {
		// Someone refreshed it meanwhile; writeEntry rescheduled it.
		m.sched.set(name, at)
		return nil, nil
	}
	if err := m.blocked(name, e, settings, now); err != nil {
		var be *BackoffError
		if errors.As(err, &be) {
			m.sched.set(name, be.RetryAt)
		}
		return nil, nil
	}
	return m.refreshLocked(ctx, s, name, true)
}
