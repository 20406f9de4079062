package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// A credential's entry, creds/<name> (seal-wrapped): its config, cached
// token and status, in one entry so a rotated refresh token and the access
// token it came with are written together or not at all. Version
// model.SchemaVersion; an older one is read by schema1.go.

// Sentinel phrases for failures with entries, wrapped the same way
// everywhere.
const (
	errReadEntry    = "reading credential from storage"
	errPersistEntry = "storing credential"
	errDecodeEntry  = "decoding stored credential"
	errDeleteEntry  = "deleting credential"
)

func entryKey(name string) string { return EntryPrefix + name }

// Entry returns the credential called name, or nil.
func (st Store) Entry(ctx context.Context, name string) (*model.Entry, error) {
	raw, err := st.s.Get(ctx, entryKey(name))
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", errReadEntry, name, err)
	}
	if raw == nil {
		return nil, nil
	}
	e, err := decodeEntry(raw.Value)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", errDecodeEntry, name, err)
	}
	return e, nil
}

// PutEntry stores e for name at the current version; a schema 1 entry's
// inline parts are moved to their own keys first.
func (st Store) PutEntry(ctx context.Context, name string, e *model.Entry) error {
	if e.Upgrade != nil {
		if err := st.moveSchema1(ctx, name, e.Upgrade); err != nil {
			return err
		}
		e.Upgrade = nil
	}
	e.Version = model.SchemaVersion
	raw, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("%s %q: %w", errPersistEntry, name, err)
	}
	if err := st.s.Put(ctx, &logical.StorageEntry{Key: entryKey(name), Value: raw, SealWrap: true}); err != nil {
		return fmt.Errorf("%s %q: %w: %w", errPersistEntry, name, ErrWrite, err)
	}
	return nil
}

// DeleteEntry removes the credential called name.
func (st Store) DeleteEntry(ctx context.Context, name string) error {
	if err := st.s.Delete(ctx, entryKey(name)); err != nil {
		return fmt.Errorf("%s %q: %w", errDeleteEntry, name, err)
	}
	return nil
}

// EntryNames lists every credential, connections of apps
// ("<app>/<account>") included.
func (st Store) EntryNames(ctx context.Context) ([]string, error) {
	names, err := st.listNames(ctx, EntryPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing credentials: %w", err)
	}
	return names, nil
}

// EntryKeys lists one level of names, sorted: the self-contained
// credentials and, as "<app>/", the apps with connections; or, for app,
// its connections' accounts.
func (st Store) EntryKeys(ctx context.Context, app string) ([]string, error) {
	prefix := EntryPrefix
	if app != "" {
		prefix += app + "/"
	}
	keys, err := st.s.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("listing credentials: %w", err)
	}
	sort.Strings(keys)
	return keys, nil
}
