package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// An app, apps/<app> (seal-wrapped): the client's settings and secrets,
// the redirect allow-list, the previous client secret. Version
// model.SchemaVersion.

func appKey(name string) string { return AppPrefix + name }

// App returns the app called name, or nil.
func (st Store) App(ctx context.Context, name string) (*model.App, error) {
	raw, err := st.s.Get(ctx, appKey(name))
	if err != nil {
		return nil, fmt.Errorf("reading app %q from storage: %w", name, err)
	}
	if raw == nil {
		return nil, nil
	}
	var a model.App
	if err := json.Unmarshal(raw.Value, &a); err != nil {
		return nil, fmt.Errorf("decoding stored app %q: %w", name, err)
	}
	if err := upgradeApp(&a, raw.Value); err != nil {
		return nil, fmt.Errorf("decoding stored app %q: %w", name, err)
	}
	if a.Version > model.SchemaVersion {
		return nil, fmt.Errorf("decoding stored app %q: it has schema version %d but this plugin knows up to %d; upgrade the plugin", name, a.Version, model.SchemaVersion)
	}
	return &a, nil
}

// PutApp stores a for name at the current version.
func (st Store) PutApp(ctx context.Context, name string, a *model.App) error {
	a.Version = model.SchemaVersion
	raw, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("storing app %q: %w", name, err)
	}
	if err := st.s.Put(ctx, &logical.StorageEntry{Key: appKey(name), Value: raw, SealWrap: true}); err != nil {
		return fmt.Errorf("storing app %q: %w: %w", name, ErrWrite, err)
	}
	return nil
}

// DeleteApp removes the app called name.
func (st Store) DeleteApp(ctx context.Context, name string) error {
	if err := st.s.Delete(ctx, appKey(name)); err != nil {
		return fmt.Errorf("deleting app %q: %w", name, err)
	}
	return nil
}

// AppNames lists every app.
func (st Store) AppNames(ctx context.Context) ([]string, error) {
	names, err := st.s.List(ctx, AppPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing apps: %w", err)
	}
	return names, nil
}
