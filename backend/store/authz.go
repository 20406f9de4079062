package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// An open authorization, authz/<name>/<sha256 of its state> (seal-wrapped:
// it holds a PKCE verifier): one per authorize/<name> not yet exchanged.
// Unversioned: its fields only ever grow.

func authzFolder(name string) string { return AuthzPrefix + name + "/" }

func authzKey(name, state string) string { return authzFolder(name) + AuthorizationID(state) }

// AuthorizationID is what an authorization is stored under in its
// credential's folder: the SHA-256 of its state, so storage keys never
// hold a state.
func AuthorizationID(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}

// AuthorizationsIn lists what is stored under authz/<prefix>/ (authz/
// itself for ""): the ids of the authorizations of the credential called
// prefix, and the folders below it (credentials' names at the top; an
// app's accounts under the app's name).
func (st Store) AuthorizationsIn(ctx context.Context, prefix string) (ids, folders []string, err error) {
	folder := AuthzPrefix
	if prefix != "" {
		folder = authzFolder(prefix)
	}
	keys, err := st.s.List(ctx, folder)
	if err != nil {
		return nil, nil, fmt.Errorf("listing the authorizations under %q: %w", prefix, err)
	}
	for _, k := range keys {
		if f, ok := strings.CutSuffix(k, "/"); ok {
			folders = append(folders, f)
		} else if prefix != "" {
			ids = append(ids, k)
		}
	}
	return ids, folders, nil
}

// AuthorizationByID returns name's authorization stored under id, or
// nil. One that does not decode reads as long expired, as
// OpenAuthorizations counts it: nothing can exchange it, and a sweep
// deletes it.
func (st Store) AuthorizationByID(ctx context.Context, name, id string) (*model.Authorization, error) {
	raw, err := st.s.Get(ctx, authzFolder(name)+id)
	if err != nil {
		return nil, fmt.Errorf("reading an authorization of credential %q: %w", name, err)
	}
	if raw == nil {
		return nil, nil
	}
	var a model.Authorization
	if err := json.Unmarshal(raw.Value, &a); err != nil {
		return &model.Authorization{}, nil
	}
	return &a, nil
}

// DeleteAuthorizationByID removes name's authorization stored under id.
func (st Store) DeleteAuthorizationByID(ctx context.Context, name, id string) error {
	if err := st.s.Delete(ctx, authzFolder(name)+id); err != nil {
		return fmt.Errorf("deleting an authorization of credential %q: %w", name, err)
	}
	return nil
}

// PutAuthorization stores name's authorization for state.
func (st Store) PutAuthorization(ctx context.Context, name, state string, a *model.Authorization) error {
	raw, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if err := st.s.Put(ctx, &logical.StorageEntry{Key: authzKey(name, state), Value: raw, SealWrap: true}); err != nil {
		return fmt.Errorf("storing an authorization of credential %q: %w: %w", name, ErrWrite, err)
	}
	return nil
}

// Authorization returns name's authorization for state, or nil; the
// inline ones of a schema 1 entry e (may be nil) count too.
func (st Store) Authorization(ctx context.Context, name, state string, e *model.Entry) (*model.Authorization, error) {
	raw, err := st.s.Get(ctx, authzKey(name, state))
	if err != nil {
		return nil, fmt.Errorf("reading an authorization of credential %q: %w", name, err)
	}
	if raw == nil {
		return schema1Authorization(e, state), nil
	}
	var a model.Authorization
	if err := json.Unmarshal(raw.Value, &a); err != nil {
		return nil, fmt.Errorf("decoding an authorization of credential %q: %w", name, err)
	}
	return &a, nil
}

// DeleteAuthorization removes name's authorization for state, inline or
// not.
func (st Store) DeleteAuthorization(ctx context.Context, name, state string, e *model.Entry) error {
	if e != nil && e.Upgrade != nil {
		delete(e.Upgrade.Authorizations, state)
	}
	if err := st.s.Delete(ctx, authzKey(name, state)); err != nil {
		return fmt.Errorf("deleting an authorization of credential %q: %w", name, err)
	}
	return nil
}

// OpenAuthorizations counts name's unexpired authorizations at now, with
// e's inline ones; with prune, the expired ones it meets are deleted.
func (st Store) OpenAuthorizations(ctx context.Context, name string, e *model.Entry, now time.Time, prune bool) (int, error) {
	folder := authzFolder(name)
	keys, err := st.s.List(ctx, folder)
	if err != nil {
		return 0, fmt.Errorf("listing the authorizations of credential %q: %w", name, err)
	}
	open := 0
	for _, k := range keys {
		if strings.HasSuffix(k, "/") {
			continue
		}
		raw, err := st.s.Get(ctx, folder+k)
		if err != nil {
			return 0, fmt.Errorf("reading an authorization of credential %q: %w", name, err)
		}
		var a model.Authorization
		if raw == nil || json.Unmarshal(raw.Value, &a) != nil || now.After(a.ExpiresAt) {
			if prune {
				_ = st.s.Delete(ctx, folder+k)
			}
			continue
		}
		open++
	}
	return open + schema1Open(e, now), nil
}

// DeleteAuthorizations removes every authorization of name.
func (st Store) DeleteAuthorizations(ctx context.Context, name string) error {
	folder := authzFolder(name)
	keys, err := st.s.List(ctx, folder)
	if err != nil {
		return fmt.Errorf("listing the authorizations of credential %q: %w", name, err)
	}
	for _, k := range keys {
		if strings.HasSuffix(k, "/") {
			continue
		}
		if err := st.s.Delete(ctx, folder+k); err != nil {
			return fmt.Errorf("deleting an authorization of credential %q: %w", name, err)
		}
	}
	return nil
}

// FlowNames lists the connections of app ("<app>/<account>") that have an
// open authorization or a device flow stored.
func (st Store) FlowNames(ctx context.Context, app string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, prefix := range []string{AuthzPrefix, DevicePrefix} {
		folder := prefix + app + "/"
		keys, err := st.s.List(ctx, folder)
		if err != nil {
			return nil, fmt.Errorf("listing the flows of %q: %w", app, err)
		}
		for _, k := range keys {
			name := strings.TrimSuffix(k, "/")
			if prefix == DevicePrefix && strings.HasSuffix(k, "/") {
				continue // an app's folder of device flows
			}
			name = app + "/" + name
			if !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	return out, nil
}
