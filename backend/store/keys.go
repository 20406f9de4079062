package store

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/keys"
)

// Signing keys, keys/cred/<name> for a self-contained credential and
// keys/app/<app> for an app (seal-wrapped: the current and staged keys'
// private halves). The codec and its version are keys.Set's.

// KeyOwner names whose keys sign a credential's assertions: its app's for
// a connection, its own for a self-contained credential.
func KeyOwner(name, app string) string {
	if app != "" {
		return AppKeyOwner(app)
	}
	return "cred/" + name
}

// AppKeyOwner names an app's keys.
func AppKeyOwner(app string) string { return "app/" + app }

func keysKey(owner string) string { return KeysPrefix + owner }

// Keys returns owner's signing keys (an empty set when there are none).
func (st Store) Keys(ctx context.Context, owner string) (*keys.Set, error) {
	raw, err := st.s.Get(ctx, keysKey(owner))
	if err != nil {
		return nil, fmt.Errorf("reading the signing keys of %s: %w", owner, err)
	}
	set := &keys.Set{}
	if raw == nil {
		return set, nil
	}
	if err := set.UnmarshalJSON(raw.Value); err != nil {
		return nil, fmt.Errorf("decoding the signing keys of %s: %w", owner, err)
	}
	return set, nil
}

// PublicKeys returns owner's keys with their public halves only (an
// empty set when there are none), for the JWKS: no private key is
// decoded.
func (st Store) PublicKeys(ctx context.Context, owner string) (*keys.Set, error) {
	raw, err := st.s.Get(ctx, keysKey(owner))
	if err != nil {
		return nil, fmt.Errorf("reading the signing keys of %s: %w", owner, err)
	}
	if raw == nil {
		return &keys.Set{}, nil
	}
	set, err := keys.ParsePublic(raw.Value)
	if err != nil {
		return nil, fmt.Errorf("decoding the signing keys of %s: %w", owner, err)
	}
	return set, nil
}

// PutKeys stores owner's signing keys.
func (st Store) PutKeys(ctx context.Context, owner string, set *keys.Set) error {
	raw, err := set.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encoding the signing keys of %s: %w", owner, err)
	}
	if err := st.s.Put(ctx, &logical.StorageEntry{Key: keysKey(owner), Value: raw, SealWrap: true}); err != nil {
		return fmt.Errorf("storing the signing keys of %s: %w: %w", owner, ErrWrite, err)
	}
	return nil
}

// DeleteKeys removes owner's signing keys.
func (st Store) DeleteKeys(ctx context.Context, owner string) error {
	if err := st.s.Delete(ctx, keysKey(owner)); err != nil {
		return fmt.Errorf("deleting the signing keys of %s: %w", owner, err)
	}
	return nil
}
