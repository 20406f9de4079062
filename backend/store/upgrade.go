package store

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// The upgrade mark, upgrade/bound: written once a pass of the active node
// has bound every secret an older release stored without a destination
// (entries, apps, signing keys), so that later starts skip the work that
// must precede a change of where those secrets go. It holds the time it
// was written; no secret.
const upgradeKey = "upgrade/bound"

// Upgraded reports whether the mark is written.
func (st Store) Upgraded(ctx context.Context) (bool, error) {
	raw, err := st.s.Get(ctx, upgradeKey)
	if err != nil {
		return false, fmt.Errorf("reading the upgrade mark: %w", err)
	}
	return raw != nil, nil
}

// MarkUpgraded writes the mark.
func (st Store) MarkUpgraded(ctx context.Context, now time.Time) error {
	if err := st.s.Put(ctx, &logical.StorageEntry{Key: upgradeKey, Value: []byte(now.UTC().Format(time.RFC3339))}); err != nil {
		return fmt.Errorf("writing the upgrade mark: %w: %w", ErrWrite, err)
	}
	return nil
}
