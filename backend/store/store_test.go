package store

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

func TestUpgradeStoredEntries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := &logical.InmemStorage{}
	st := Of(s)
	old, _ := json.Marshal(map[string]any{"config": map[string]any{"provider": "generic", "client_id": "c"}})
	_ = s.Put(ctx, &logical.StorageEntry{Key: EntryPrefix + "old", Value: old})
	e, err := st.Entry(ctx, "old")
	if err != nil || e.Version != model.SchemaVersion || e.Config.ClientID != "c" {
		t.Fatalf("version-0 entry: %+v, %v", e, err)
	}
	future, _ := json.Marshal(map[string]any{"version": model.SchemaVersion + 1})
	_ = s.Put(ctx, &logical.StorageEntry{Key: EntryPrefix + "future", Value: future})
	if _, err := st.Entry(ctx, "future"); err == nil || !strings.Contains(err.Error(), "upgrade the plugin") {
		t.Errorf("an entry from a newer plugin: %v", err)
	}
}
