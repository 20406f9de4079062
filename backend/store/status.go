package store

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// A credential's last failed vendor call, status/<name>: kept apart from
// the entry so that recording it does not rewrite the secrets, and not
// seal-wrapped, since it holds none. Unversioned: a Problem's fields only
// ever grow.

func problemKey(name string) string { return StatusPrefix + name }

// Problem returns the last failed vendor call recorded for name, or nil; a
// schema 1 entry's inline one counts.
func (st Store) Problem(ctx context.Context, name string) (*model.Problem, error) {
	raw, err := st.s.Get(ctx, problemKey(name))
	if err != nil {
		return nil, fmt.Errorf("reading the status of credential %q: %w", name, err)
	}
	if raw == nil {
		e, err := st.Entry(ctx, name)
		if err != nil {
			return nil, nil //nolint:nilerr // a missing status is no status: the entry's read error shows on its own reads
		}
		return schema1Problem(e), nil
	}
	var p model.Problem
	if err := json.Unmarshal(raw.Value, &p); err != nil {
		return nil, fmt.Errorf("decoding the status of credential %q: %w", name, err)
	}
	return &p, nil
}

// PutProblem records p for name.
func (st Store) PutProblem(ctx context.Context, name string, p *model.Problem) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := st.s.Put(ctx, &logical.StorageEntry{Key: problemKey(name), Value: raw}); err != nil {
		return fmt.Errorf("storing the status of credential %q: %w: %w", name, ErrWrite, err)
	}
	return nil
}

// DeleteProblem forgets name's last failure.
func (st Store) DeleteProblem(ctx context.Context, name string) error {
	if err := st.s.Delete(ctx, problemKey(name)); err != nil {
		return fmt.Errorf("deleting the status of credential %q: %w", name, err)
	}
	return nil
}
