package backend

import (
	"context"
	"sync"
)

// nameLocks serialises the operations on one credential name, and only on
// that name: a vendor call runs while its name's lock is held, so names
// that shared a lock (striped locks) would make every credential wait on
// the slowest vendor. A lock exists only while someone holds or waits for
// it, so memory follows the number of operations in progress, not the
// number of credentials.
type nameLocks struct {
	mu    sync.Mutex
	locks map[string]*nameLock
}

// nameLock is a mutex that a waiter can give up on: a channel with one
// slot, full while the lock is held.
type nameLock struct {
	ch   chan struct{}
	refs int // holders and waiters; the lock is dropped at zero
}

func newNameLocks() *nameLocks { return &nameLocks{locks: map[string]*nameLock{}} }

// lock takes name's lock, or gives up when ctx ends first. The returned
// func releases it and must be called exactly once on success.
func (l *nameLocks) lock(ctx context.Context, name string) (func(), error) {
	l.mu.Lock()
	nl := l.locks[name]
	if nl == nil {
		nl = &nameLock{ch: make(chan struct{}, 1)}
		l.locks[name] = nl
	}
	nl.refs++
	l.mu.Unlock()

	select {
	case nl.ch <- struct{}{}:
		return func() {
			<-nl.ch
			l.release(name, nl)
		}, nil
	case <-ctx.Done():
		l.release(name, nl)
		return nil, ctx.Err()
	}
}

func (l *nameLocks) release(name string, nl *nameLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	nl.refs--
	if nl.refs == 0 {
		delete(l.locks, name)
	}
}

// tracker counts work in flight that must end with the backend, so Close
// can wait for it; once closed it refuses new work.
type tracker struct {
	mu     sync.Mutex
	n      int
	closed bool
	idle   chan struct{}
}

// start registers one piece of work; false means the backend is closed and
// the work must not start.
func (t *tracker) start() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.n++
	return true
}

func (t *tracker) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
}

// close refuses new work and returns a channel closed when the work in
// flight has finished.
func (t *tracker) close() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	ch := make(chan struct{})
	if t.n == 0 {
		close(ch)
	} else {
		t.idle = ch
	}
	return ch
}
