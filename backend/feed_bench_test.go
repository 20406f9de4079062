package backend

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// byteCountingStorage counts what is written, for the storage cost of an
// event.
type byteCountingStorage struct {
	logical.InmemStorage
	puts, bytes atomic.Int64
}

func (s *byteCountingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	s.puts.Add(1)
	s.bytes.Add(int64(len(e.Key) + len(e.Value)))
	return s.InmemStorage.Put(ctx, e)
}

// BenchmarkFeedAppend is the storage cost of one event: the writes (puts
// per event) and the bytes written, key included (B/event), for a
// reauthorization event of a connection with metadata and a vendor
// description, the largest kind.
func BenchmarkFeedAppend(b *testing.B) {
	ctx := context.Background()
	m := NewManager(hclog.NewNullLogger(), tokenclient.New())
	s := &byteCountingStorage{}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		name := fmt.Sprintf("partner/customer-%06d", i%100000)
		ev := model.NewEvent(model.EventReauthNeeded, name, "partner", map[string]string{"customer_id": "c-123456"}, now).
			WithError("invalid_grant", "the refresh token has been revoked (HTTP 400 Bad Request)")
		if err := m.appendEvent(ctx, s, "partner", ev); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(s.puts.Load())/float64(b.N), "puts/event")
	b.ReportMetric(float64(s.bytes.Load())/float64(b.N), "B/event")
}

// BenchmarkFeedRead is one page of 100 events, as events/<app> reads it:
// the head and one entry per event, from storage.
func BenchmarkFeedRead(b *testing.B) {
	ctx := context.Background()
	m := NewManager(hclog.NewNullLogger(), tokenclient.New())
	s := &logical.InmemStorage{}
	now := time.Now()
	for i := range 1000 {
		ev := model.NewEvent(model.EventConnected, fmt.Sprintf("partner/c%d", i), "partner", nil, now)
		if err := m.appendEvent(ctx, s, "partner", ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p, err := m.Events(ctx, s, "partner", uint64(i%900), 100)
		if err != nil || len(p.Events) != 100 {
			b.Fatal(err, len(p.Events))
		}
	}
}

// BenchmarkCountRead is what the metrics add to every token read: one
// counter, resolved once.
func BenchmarkCountRead(b *testing.B) {
	m := NewManager(hclog.NewNullLogger(), tokenclient.New())
	res := &Result{Cached: true}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.CountRead(res, nil)
		}
	})
}

// BenchmarkMetricsScrape is one scrape of a mount with 10,000 credentials
// in its index, 100 of them unhealthy.
func BenchmarkMetricsScrape(b *testing.B) {
	m, s, names := benchManager(b, 10000)
	m.loader.done = true
	for _, n := range names[:100] {
		m.index.reauth[n] = struct{}{}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		body, _, err := m.MetricsText(s, false)
		if err != nil || len(body) == 0 {
			b.Fatal(err)
		}
	}
}
