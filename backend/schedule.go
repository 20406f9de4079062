package backend

import (
	"container/heap"
	"sync"
	"time"
)

// schedule orders credentials by when they next need a proactive refresh,
// so a periodic tick touches only the ones that are due.
type schedule struct {
	mu   sync.Mutex
	due  map[string]time.Time
	heap dueHeap
	// wake, when set, is called when a name becomes due before anything
	// else was: the refresher sleeps until the earliest time it knew of.
	wake func()
}

type dueItem struct {
	name string
	at   time.Time
}

type dueHeap []dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func newSchedule() *schedule {
	return &schedule{due: map[string]time.Time{}}
}

// set makes name due at at; a zero time removes it.
func (s *schedule) set(name string, at time.Time) {
	s.mu.Lock()
	earlier := s.setLocked(name, at)
	s.mu.Unlock()
	if earlier && s.wake != nil {
		s.wake()
	}
}

// setIfUnset schedules name unless it is scheduled already: a load that
// read an entry before a write must not move the write's time. (If the
// write unscheduled it, the refresh finds nothing due under the name's
// lock and unschedules it again.)
func (s *schedule) setIfUnset(name string, at time.Time) {
	s.mu.Lock()
	if _, ok := s.due[name]; ok {
		s.mu.Unlock()
		return
	}
	earlier := s.setLocked(name, at)
	s.mu.Unlock()
	if earlier && s.wake != nil {
		s.wake()
	}
}

// setLocked makes name due at at, and reports whether that is before
// anything else was due; the caller holds s.mu.
func (s *schedule) setLocked(name string, at time.Time) bool {
	if at.IsZero() {
		delete(s.due, name)
		return false
	}
	if cur, ok := s.due[name]; ok && cur.Equal(at) {
		return false
	}
	// The top of the heap may be a stale item, earlier than anything
	// due: then this may be the earliest, and the refresher is woken to
	// see.
	earlier := len(s.heap) == 0 || at.Before(s.heap[0].at) || !s.due[s.heap[0].name].Equal(s.heap[0].at)
	s.due[name] = at
	// The old heap item stays behind and is skipped when popped: cheaper
	// than finding it. When stale items outnumber live ones the heap is
	// rebuilt, so it stays proportional to the names scheduled.
	heap.Push(&s.heap, dueItem{name: name, at: at})
	if len(s.heap) > 2*len(s.due)+64 {
		s.heap = s.heap[:0]
		for n, t := range s.due {
			s.heap = append(s.heap, dueItem{name: n, at: t})
		}
		heap.Init(&s.heap)
	}
	return earlier
}

// earliest is the first time anything is due, or zero.
func (s *schedule) earliest() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.heap.Len() > 0 {
		it := s.heap[0]
		if cur, ok := s.due[it.name]; ok && cur.Equal(it.at) {
			return it.at
		}
		heap.Pop(&s.heap) // stale
	}
	return time.Time{}
}

// size is how many names are scheduled.
func (s *schedule) size() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.due)
}

func (s *schedule) next(name string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.due[name]
}

// popDue removes and returns the names due by until.
func (s *schedule) popDue(until time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for s.heap.Len() > 0 && !s.heap[0].at.After(until) {
		it := heap.Pop(&s.heap).(dueItem)
		if cur, ok := s.due[it.name]; ok && cur.Equal(it.at) {
			delete(s.due, it.name)
			names = append(names, it.name)
		}
	}
	return names
}

func (s *schedule) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.due = map[string]time.Time{}
	s.heap = nil
}
