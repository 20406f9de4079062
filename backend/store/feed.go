package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// The event feeds: one per app, feed/app/<app>/, and one for the
// self-contained credentials, feed/self/. Not seal-wrapped: an event holds
// no secret. Unversioned: an event's and a head's fields only ever grow.
//
//	feed/<feed>/e/<seq, 20 digits>  one event; seqs are contiguous from the
//	                                first kept to the last, so a reader
//	                                reads on by Get without a List
//	feed/<feed>/head                what pruning removed (FeedHead)
//	feed/<feed>/delivery            how far its webhooks got (model.Delivery)

// FeedHead is a feed's record of what pruning removed: every event up to
// PrunedThrough is gone (or going), and no later event ever gets a seq at
// or below it, so a reader's cursor stays meaningful after the feed was
// emptied.
type FeedHead struct {
	PrunedThrough uint64 `json:"pruned_through"`
}

const (
	feedPrefix     = "feed/"
	feedSelf       = feedPrefix + "self/"
	feedApps       = feedPrefix + "app/"
	feedEvents     = "e/"
	feedHeadKey    = "head"
	feedDeliverKey = "delivery"
)

// feedOf is the folder of app's feed; "" is the self-contained
// credentials'.
func feedOf(app string) string {
	if app == "" {
		return feedSelf
	}
	return feedApps + app + "/"
}

func feedName(app string) string {
	if app == "" {
		return "the self-contained credentials' feed"
	}
	return fmt.Sprintf("the feed of app %q", app)
}

func eventKey(app string, seq uint64) string {
	return feedOf(app) + feedEvents + fmt.Sprintf("%020d", seq)
}

// PutEvent stores ev at its seq in app's feed.
func (st Store) PutEvent(ctx context.Context, app string, ev *model.Event) error {
	raw, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if err := st.s.Put(ctx, &logical.StorageEntry{Key: eventKey(app, ev.Seq), Value: raw}); err != nil {
		return fmt.Errorf("storing an event in %s: %w: %w", feedName(app), ErrWrite, err)
	}
	return nil
}

// Event returns the event at seq in app's feed, or nil.
func (st Store) Event(ctx context.Context, app string, seq uint64) (*model.Event, error) {
	raw, err := st.s.Get(ctx, eventKey(app, seq))
	if err != nil {
		return nil, fmt.Errorf("reading an event of %s: %w", feedName(app), err)
	}
	if raw == nil {
		return nil, nil
	}
	var ev model.Event
	if err := json.Unmarshal(raw.Value, &ev); err != nil {
		return nil, fmt.Errorf("decoding event %d of %s: %w", seq, feedName(app), err)
	}
	ev.Seq = seq
	return &ev, nil
}

// DeleteEvent removes the event at seq from app's feed.
func (st Store) DeleteEvent(ctx context.Context, app string, seq uint64) error {
	if err := st.s.Delete(ctx, eventKey(app, seq)); err != nil {
		return fmt.Errorf("deleting an event of %s: %w: %w", feedName(app), ErrWrite, err)
	}
	return nil
}

// EventSeqs lists the seqs stored in app's feed, in order.
func (st Store) EventSeqs(ctx context.Context, app string) ([]uint64, error) {
	keys, err := st.s.List(ctx, feedOf(app)+feedEvents)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", feedName(app), err)
	}
	out := make([]uint64, 0, len(keys))
	for _, k := range keys {
		if n, err := strconv.ParseUint(k, 10, 64); err == nil {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// FeedHead returns app's feed head (zero when none was written).
func (st Store) FeedHead(ctx context.Context, app string) (FeedHead, error) {
	var h FeedHead
	raw, err := st.s.Get(ctx, feedOf(app)+feedHeadKey)
	if err != nil {
		return h, fmt.Errorf("reading the head of %s: %w", feedName(app), err)
	}
	if raw == nil {
		return h, nil
	}
	if err := json.Unmarshal(raw.Value, &h); err != nil {
		return h, fmt.Errorf("decoding the head of %s: %w", feedName(app), err)
	}
	return h, nil
}

// PutFeedHead stores app's feed head.
func (st Store) PutFeedHead(ctx context.Context, app string, h FeedHead) error {
	raw, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := st.s.Put(ctx, &logical.StorageEntry{Key: feedOf(app) + feedHeadKey, Value: raw}); err != nil {
		return fmt.Errorf("storing the head of %s: %w: %w", feedName(app), ErrWrite, err)
	}
	return nil
}

// Delivery returns how far app's webhooks got, or nil when they never
// started.
func (st Store) Delivery(ctx context.Context, app string) (*model.Delivery, error) {
	raw, err := st.s.Get(ctx, feedOf(app)+feedDeliverKey)
	if err != nil {
		return nil, fmt.Errorf("reading the webhook cursor of %s: %w", feedName(app), err)
	}
	if raw == nil {
		return nil, nil
	}
	var d model.Delivery
	if err := json.Unmarshal(raw.Value, &d); err != nil {
		return nil, fmt.Errorf("decoding the webhook cursor of %s: %w", feedName(app), err)
	}
	return &d, nil
}

// PutDelivery stores how far app's webhooks got.
func (st Store) PutDelivery(ctx context.Context, app string, d *model.Delivery) error {
	raw, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if err := st.s.Put(ctx, &logical.StorageEntry{Key: feedOf(app) + feedDeliverKey, Value: raw}); err != nil {
		return fmt.Errorf("storing the webhook cursor of %s: %w: %w", feedName(app), ErrWrite, err)
	}
	return nil
}

// FeedApps lists the apps that have a feed; "" stands for the
// self-contained credentials' when it exists.
func (st Store) FeedApps(ctx context.Context) ([]string, error) {
	top, err := st.s.List(ctx, feedPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing the event feeds: %w", err)
	}
	var out []string
	for _, k := range top {
		if k == "self/" {
			out = append(out, "")
		}
	}
	apps, err := st.s.List(ctx, feedApps)
	if err != nil {
		return nil, fmt.Errorf("listing the event feeds: %w", err)
	}
	for _, k := range apps {
		if name, ok := strings.CutSuffix(k, "/"); ok {
			out = append(out, name)
		}
	}
	return out, nil
}
