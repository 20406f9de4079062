package backend

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// The hot paths of a token read inside the plugin, on in-memory storage:
// the cached lookup every read makes, and the storage decode a read makes
// once per name after a start or an invalidation. Run with
//
//	go test -run '^$' -bench . -benchmem ./backend/
//
// bench/cmd/vendoroauth-bench measures the same reads through a real Vault.

// benchManager returns a manager whose storage holds n generic credentials
// named bench0…, each with a token good for an hour, and whose cache holds
// them all.
func benchManager(b *testing.B, n int) (*Manager, logical.Storage, []string) {
	b.Helper()
	ctx := context.Background()
	m := NewManager(hclog.NewNullLogger(), tokenclient.New())
	s := &logical.InmemStorage{}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("bench%d", i)
		if err := m.writeEntry(ctx, s, names[i], benchEntry()); err != nil {
			b.Fatal(err)
		}
	}
	return m, s, names
}

// alwaysWritable is the writable answer of an active node.
func alwaysWritable() bool { return true }

// benchEntry is what a generic client-credentials credential looks like
// after its first grant.
func benchEntry() *model.Entry {
	now := time.Now()
	return &model.Entry{
		Version: model.SchemaVersion,
		Config: model.Config{
			Provider:     "generic",
			TokenURL:     "http://127.0.0.1:1/generic/token",
			ClientID:     "bench-client",
			ClientSecret: "bench-secret",
		},
		Token: &model.Token{
			AccessToken: "generic-at-0123456789abcdefghijklmnopqrstuv",
			TokenType:   "Bearer",
			ObtainedAt:  now,
			ExpiresAt:   now.Add(time.Hour),
		},
		Status: model.Status{LastRefreshedAt: now},
	}
}

// BenchmarkTokenCached is Manager.Token on a cached name: what every read
// of a good token costs inside the manager.
func BenchmarkTokenCached(b *testing.B) {
	m, s, names := benchManager(b, 1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := m.Token(ctx, s, names[0], alwaysWritable)
		if err != nil || !res.Cached {
			b.Fatalf("Token = %+v, %v", res, err)
		}
	}
}

// BenchmarkTokenCachedParallel is BenchmarkTokenCached from every core at
// once, on one name: it shows contention on shared state.
func BenchmarkTokenCachedParallel(b *testing.B) {
	m, s, names := benchManager(b, 1)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := m.Token(ctx, s, names[0], alwaysWritable); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkTokenCachedAmong is Manager.Token on random cached names among
// many: the lookup must not grow with the number of credentials.
func BenchmarkTokenCachedAmong(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			m, s, names := benchManager(b, n)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Token(ctx, s, names[rng.IntN(n)], alwaysWritable); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadEntry decodes a stored credential: what the first read of a
// name pays after a restart or an invalidation.
func BenchmarkReadEntry(b *testing.B) {
	_, s, names := benchManager(b, 1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		e, err := store.Of(s).Entry(ctx, names[0])
		if err != nil || e == nil {
			b.Fatalf("Entry = %v, %v", e, err)
		}
	}
}

// BenchmarkConfigResolve fills in a generic config's defaults and
// validates it, as a cache fill does.
func BenchmarkConfigResolve(b *testing.B) {
	c := benchEntry().Config
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Resolve(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTokenUncached is Manager.Token on a name just invalidated:
// storage read, decode, resolve and cache fill, but no vendor call.
func BenchmarkTokenUncached(b *testing.B) {
	m, s, names := benchManager(b, 1)
	ctx := context.Background()
	key := store.EntryPrefix + names[0]
	b.ReportAllocs()
	for b.Loop() {
		m.Invalidate(key)
		if _, err := m.Token(ctx, s, names[0], alwaysWritable); err != nil {
			b.Fatal(err)
		}
	}
}

// countingStorage counts the storage calls a read makes.
type countingStorage struct {
	logical.Storage
	gets, puts atomic.Int64
}

func (s *countingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	s.gets.Add(1)
	return s.Storage.Get(ctx, key)
}

func (s *countingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	s.puts.Add(1)
	return s.Storage.Put(ctx, e)
}

// TestCachedReadIsLocal holds the hot path to what the benchmarks above
// assume: a cached read touches no storage and does not ask whether the
// node can write (in a plugin process that question is a round trip to
// Vault).
func TestCachedReadIsLocal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := NewManager(hclog.NewNullLogger(), tokenclient.New())
	s := &countingStorage{Storage: &logical.InmemStorage{}}
	if err := m.writeEntry(ctx, s, "bench", benchEntry()); err != nil {
		t.Fatal(err)
	}
	s.gets.Store(0)
	s.puts.Store(0)
	asked := false
	for range 3 {
		res, err := m.Token(ctx, s, "bench", func() bool { asked = true; return true })
		if err != nil || !res.Cached {
			t.Fatalf("Token = %+v, %v; want a cached token", res, err)
		}
	}
	if g, p := s.gets.Load(), s.puts.Load(); g != 0 || p != 0 || asked {
		t.Errorf("cached reads made %d storage gets, %d puts, asked writable: %v; want none", g, p, asked)
	}
}
