package backend

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// The entry cache was bounded by count alone: a token endpoint answering
// fields as large as it may made each cached entry large, and the cache
// held maxCached of them. It is bounded by bytes too: whatever the
// entries' sizes, what it holds stays under its bound, and entries of the
// usual size are bounded by count as before.
func TestEntryCacheIsBoundedByBytes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		tokenSize int
		n         int
	}{
		{"entries a hostile endpoint made large", 32 << 10, 2000},
		{"usual entries", 1 << 10, 2000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newEntryCache()
			c.maxEntries, c.maxBytes = 1000, 4<<20
			tok := strings.Repeat("x", tc.tokenSize)
			for i := range tc.n {
				e := &model.Entry{Token: &model.Token{AccessToken: tok, Scope: tok}, Config: model.Config{RefreshToken: tok}}
				name := fmt.Sprintf("c%d", i)
				c.put(name, &cached{entry: e})
				if _, ok := c.load(name); !ok {
					t.Fatalf("%s: the entry just put is not cached", name)
				}
				if b, n := c.bytes.Load(), c.size.Load(); b > c.maxBytes || n > c.maxEntries {
					t.Fatalf("after %d puts the cache holds %d entries, %d bytes", i+1, n, b)
				}
			}
			var n, b int64
			c.entries.Range(func(_, v any) bool { n++; b += v.(*cached).size; return true })
			if n != c.size.Load() || b != c.bytes.Load() {
				t.Errorf("counted %d entries %d bytes, the cache says %d, %d", n, b, c.size.Load(), c.bytes.Load())
			}
			if want := int64(3 * tc.tokenSize); b < n*want {
				t.Errorf("entries counted at %d bytes each, under the %d they hold", b/n, want)
			}
			c.clear()
			if c.size.Load() != 0 || c.bytes.Load() != 0 {
				t.Errorf("after clear: %d entries, %d bytes", c.size.Load(), c.bytes.Load())
			}
		})
	}
}
