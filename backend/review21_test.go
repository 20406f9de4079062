package backend

// Adversarial review of issue 21: the feed's bound. A regression test: it
// failed on 3cbf1ac before the fix.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// README: "A feed keeps at most 100,000 events". Pruning deletes at most
// pruneBatch (1000) events of a feed per maintenance pass, and a pass runs
// once per maintenanceEvery (a minute): a feed that gains more than about
// 17 events a second (a partner onboarding customers, a vendor revoking
// every refresh token of an app, or anyone with config/* write and delete,
// which the shipped operator policy grants: each delete is a
// connection.deleted) grows past the bound, and its storage without
// bound, for as long as the rate lasts.
func TestReview21FeedStaysWithinItsBoundUnderLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := NewManager(hclog.NewNullLogger(), tokenclient.New())
	now := time.Now()
	m.SetClock(func() time.Time { return now })
	m.SetNotifyManual()
	s := &logical.InmemStorage{}
	st := store.Of(s)
	const app = "busy"
	// The feed is at its bound: FeedMaxEvents events, all young.
	for seq := uint64(1); seq <= FeedMaxEvents; seq++ {
		ev := model.NewEvent(model.EventConnected, fmt.Sprintf("%s/c%d", app, seq), app, nil, now)
		ev.Seq = seq
		if err := st.PutEvent(ctx, app, ev); err != nil {
			t.Fatal(err)
		}
	}
	// Five minutes at 2,000 events a minute (33 a second), with the
	// maintenance pass the delivery loop runs every minute.
	const perMinute, minutes = 2000, 5
	for range minutes {
		for i := range perMinute {
			m.emit(ctx, s, model.NewEvent(model.EventDeleted, fmt.Sprintf("%s/x%d", app, i), app, nil, now))
		}
		now = now.Add(maintenanceEvery)
		if err := m.DeliverNow(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if n := m.unwrittenEvents(); n != 0 {
		t.Fatalf("%d events were not written", n)
	}
	head, err := st.FeedHead(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	last, err := m.FeedLast(ctx, s, app)
	if err != nil {
		t.Fatal(err)
	}
	if held := last - head.PrunedThrough; held > FeedMaxEvents {
		t.Errorf("after %d minutes at %d events a minute the feed holds %d events, %d over its bound of %d, and grows by %d a minute",
			minutes, perMinute, held, held-FeedMaxEvents, FeedMaxEvents, perMinute-pruneBatch)
	}
}
