package backend

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// cached is a read-only snapshot of a stored entry with its resolved
// settings, so a cached read touches neither storage nor the config.
type cached struct {
	entry    *Entry
	settings *Settings // nil when the stored config no longer resolves
	err      error     // why it does not resolve
	// eff is the config the credential acts with (its app's settings and
	// secrets merged in, for a connection); appGen the app's generation
	// it was merged from.
	eff    Config
	appGen uint64
	// used: this token was handed out from the cache at least once, so
	// the credential is in use and its refresh is scheduled ahead.
	used atomic.Bool
}

// cacheStripes is the number of generation counters. A change to any name
// of a stripe makes concurrent cache fills of the stripe's other names
// skip caching once, which costs them a storage read on their next miss,
// never a wrong answer.
const cacheStripes = 256

// entryCache holds what storage says about each name, and only what it
// says now: a miss that read storage before a write, delete or
// invalidation finished must not put the older value back. Every change
// bumps its stripe's generation; a fill stores only if the generation it
// saw before reading storage is still current.
type entryCache struct {
	entries sync.Map // name -> *cached
	seed    maphash.Seed
	stripes [cacheStripes]struct {
		mu  sync.Mutex
		gen uint64
	}
}

func newEntryCache() *entryCache { return &entryCache{seed: maphash.MakeSeed()} }

func (c *entryCache) stripe(name string) int {
	return int(maphash.String(c.seed, name) % cacheStripes)
}

func (c *entryCache) load(name string) (*cached, bool) {
	v, ok := c.entries.Load(name)
	if !ok {
		return nil, false
	}
	return v.(*cached), true
}

// generation is to be read before a storage read whose result may fill the
// cache with fill.
func (c *entryCache) generation(name string) uint64 {
	st := &c.stripes[c.stripe(name)]
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.gen
}

// fill caches v for name if nothing changed name's stripe since gen was
// read.
func (c *entryCache) fill(name string, gen uint64, v *cached) {
	st := &c.stripes[c.stripe(name)]
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.gen == gen {
		c.entries.Store(name, v)
	}
}

// put caches what was just written for name; the caller holds name's lock.
func (c *entryCache) put(name string, v *cached) {
	st := &c.stripes[c.stripe(name)]
	st.mu.Lock()
	defer st.mu.Unlock()
	st.gen++
	c.entries.Store(name, v)
}

// drop forgets name, and makes fills that started before it do nothing.
func (c *entryCache) drop(name string) {
	st := &c.stripes[c.stripe(name)]
	st.mu.Lock()
	defer st.mu.Unlock()
	st.gen++
	c.entries.Delete(name)
}

// clear forgets every name.
func (c *entryCache) clear() {
	for i := range c.stripes {
		st := &c.stripes[i]
		st.mu.Lock()
		st.gen++
		st.mu.Unlock()
	}
	c.entries.Range(func(k, _ any) bool { c.entries.Delete(k); return true })
}
