package backend

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// cached is a read-only snapshot of a stored entry with its resolved
// settings, so a cached read touches neither storage nor the config.
type cached struct {
	entry    *model.Entry
	settings *model.Settings // nil when the stored config no longer resolves
	err      error           // why it does not resolve
	// appGen is the generation of the app a connection's settings were
	// resolved with.
	appGen uint64
	// used: this token was handed out from the cache at least once, so
	// the credential is in use and its refresh is scheduled ahead.
	used atomic.Bool
	// size is about how many bytes it holds (cachedSize), counted
	// against maxCachedBytes.
	size int64
}

// cachedOverhead is what a cached entry holds beside the entry itself:
// the struct, the map's slot, its settings when not shared.
const cachedOverhead = 512

// cachedSize is about how many bytes caching e costs.
func cachedSize(e *model.Entry) int64 { return int64(e.Size() + cachedOverhead) }

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
	// size counts the entries and bytes their bytes (cachedSize), so the
	// cache stays within maxCached and maxCachedBytes: a mount with
	// 100,000 connections that are all read keeps its memory bounded, so
	// does a token endpoint that answers the largest fields it may, and a
	// read outside the cache costs one storage read.
	size  atomic.Int64
	bytes atomic.Int64
	// maxEntries and maxBytes are maxCached and maxCachedBytes, smaller
	// in tests.
	maxEntries, maxBytes int64
	seed                 maphash.Seed
	stripes              [cacheStripes]struct {
		mu  sync.Mutex
		gen uint64
	}
}

func newEntryCache() *entryCache {
	return &entryCache{seed: maphash.MakeSeed(), maxEntries: maxCached, maxBytes: maxCachedBytes}
}

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
		c.store(name, v)
	}
}

// put caches what was just written for name; the caller holds name's lock.
func (c *entryCache) put(name string, v *cached) {
	st := &c.stripes[c.stripe(name)]
	st.mu.Lock()
	defer st.mu.Unlock()
	st.gen++
	c.store(name, v)
}

// drop forgets name, and makes fills that started before it do nothing.
func (c *entryCache) drop(name string) {
	st := &c.stripes[c.stripe(name)]
	st.mu.Lock()
	defer st.mu.Unlock()
	st.gen++
	c.forget(name)
}

// forget removes name's entry and its count.
func (c *entryCache) forget(name any) {
	if v, had := c.entries.LoadAndDelete(name); had {
		c.size.Add(-1)
		c.bytes.Add(-v.(*cached).size)
	}
}

// clear forgets every name.
func (c *entryCache) clear() {
	for i := range c.stripes {
		st := &c.stripes[i]
		st.mu.Lock()
		st.gen++
		st.mu.Unlock()
	}
	c.entries.Range(func(k, _ any) bool {
		c.forget(k)
		return true
	})
}

// maxCached and maxCachedBytes bound the cache; past either, about a
// hundredth of the entries are dropped at once, or as many as bring the
// bytes back under their bound (whichever the map yields first: reads of
// the ones dropped refill them from storage). A typical entry is about 2
// KB (maxCached of them fit maxCachedBytes); entries a token endpoint
// made large take their share of the bytes.
const (
	maxCached      = 50000
	maxCachedBytes = 128 << 20
)

// store caches v; the caller holds name's stripe lock.
func (c *entryCache) store(name string, v *cached) {
	if v.size == 0 {
		v.size = cachedSize(v.entry)
	}
	old, had := c.entries.Swap(name, v)
	if had {
		c.bytes.Add(v.size - old.(*cached).size)
	} else {
		c.size.Add(1)
		c.bytes.Add(v.size)
	}
	if c.size.Load() > c.maxEntries || c.bytes.Load() > c.maxBytes {
		c.evict(int(c.maxEntries/100), name)
	}
}

// evict drops at least n entries and as many as bring the bytes under
// their bound, but not keep, the one just stored.
func (c *entryCache) evict(n int, keep string) {
	c.entries.Range(func(k, _ any) bool {
		if k == keep {
			return true
		}
		if _, ok := c.entries.Load(k); ok {
			c.forget(k)
			n--
		}
		return n > 0 || c.bytes.Load() > c.maxBytes
	})
}
