package store

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// The probe, probe/tick: a small entry written before each background
// vendor call, to learn that this node can still write. A node that lost
// leadership (a partition, a quorum loss) keeps running its background
// work until it notices, and Vault cancels nothing until then: each
// refresh it started would rotate a refresh token it cannot store.

// Probe writes the probe, stamped now.
func (st Store) Probe(ctx context.Context, now time.Time) error {
	if err := st.s.Put(ctx, &logical.StorageEntry{Key: probeKey, Value: []byte(now.UTC().Format(time.RFC3339Nano))}); err != nil {
		return fmt.Errorf("this node cannot write storage (it may have lost leadership), so the tick calls no vendor: %w: %w", ErrWrite, err)
	}
	return nil
}
