package backend

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/keys"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
)

// KeyOwner names whose keys sign a credential's assertions: its app's for
// a connection, its own for a self-contained credential.
func KeyOwner(name string, c *model.Config) string { return store.KeyOwner(name, c.App) }

// Keys returns the signing keys of owner (empty when there are none).
func (m *Manager) Keys(ctx context.Context, s logical.Storage, owner string) (*keys.Set, error) {
	return store.Of(s).Keys(ctx, owner)
}

// UpdateKeys changes owner's signing keys under its lock.
func (m *Manager) UpdateKeys(ctx context.Context, s logical.Storage, owner string, fn func(*keys.Set) error) (*keys.Set, error) {
	unlock, err := m.lockName(ctx, "keys", keysLockName(owner))
	if err != nil {
		return nil, err
	}
	defer unlock()
	st := store.Of(s)
	set, err := st.Keys(ctx, owner)
	if err != nil {
		return nil, err
	}
	if err := fn(set); err != nil {
		return nil, err
	}
	set.Prune(m.now())
	if err := st.PutKeys(ctx, owner, set); err != nil {
		return nil, err
	}
	return set, nil
}

// DeleteKeys removes owner's signing keys, under the keys' lock: a
// signing that promotes a staged key (UpdateKeys) must not write them back
// after the delete. The caller holds the owner's lock (LockKeyOwner).
func (m *Manager) DeleteKeys(ctx context.Context, s logical.Storage, owner string) error {
	unlock, err := m.lockName(ctx, "keys", keysLockName(owner))
	if err != nil {
		return err
	}
	defer unlock()
	return store.Of(s).DeleteKeys(ctx, owner)
}

// keysLockName is the lock owner's keys are changed under; it holds two
// slashes, so no credential's name is one.
func keysLockName(owner string) string { return "keys/" + owner }

// LockKeyOwner takes the lock of the credential called name, or with
// isApp of the app: what making, importing or activating a key holds
// from reading its owner to storing the key, so that a delete of the
// owner comes wholly before (the key operation finds no owner) or wholly
// after (the delete takes the new key with it), and a credential written
// later under the name never signs with a key made for the one deleted.
// The returned func releases it.
func (m *Manager) LockKeyOwner(ctx context.Context, name string, isApp bool) (func(), error) {
	if isApp {
		return m.lockName(ctx, "key owner", appLockName(name))
	}
	return m.lockName(ctx, "key owner", name)
}

// KeyChange is how a new signing key takes over.
type KeyChange struct {
	// Bound is where the key may sign for: where its owner's client
	// sends now. A key never signs for anywhere else.
	Bound model.Destination
	// ActivateAfter is how long the key is published before it signs,
	// so that a vendor that caches the JWKS has it by then; zero signs at
	// once.
	ActivateAfter time.Duration
	// Overlap is how long the key it replaces stays published once it
	// signs, for assertions signed just before.
	Overlap time.Duration
}

// RotateKey generates a new signing key for owner inside Vault (the
// private key never leaves it) and makes it take over as ch says.
func (m *Manager) RotateKey(ctx context.Context, s logical.Storage, owner, alg string, ch KeyChange) (*keys.Key, error) {
	if alg == "" {
		alg = string(keys.ES256)
	}
	k, err := keys.Generate(keys.Algorithm(alg), 0, m.now())
	if err != nil {
		return nil, &InputError{Msg: err.Error()}
	}
	return k, m.addKey(ctx, s, owner, k, ch)
}

// ImportKey makes a PEM private key owner's signing key, taking over as ch
// says. A key that does not parse or cannot sign is refused before
// anything is stored.
func (m *Manager) ImportKey(ctx context.Context, s logical.Storage, owner, pemText, alg string, ch KeyChange) (*keys.Key, error) {
	k, err := keys.Import(pemText, keys.Algorithm(alg), "", m.now())
	if err != nil {
		return nil, &InputError{Msg: "signing_key: " + err.Error()}
	}
	return k, m.addKey(ctx, s, owner, k, ch)
}

// addKey binds k and adds it to owner's keys: staged (published, not yet
// signing) for ch.ActivateAfter, or signing at once when that is zero,
// when there is no key signing, or when the one signing may not sign where
// the client sends now (it signs nothing there anyway).
func (m *Manager) addKey(ctx context.Context, s logical.Storage, owner string, k *keys.Key, ch KeyChange) error {
	k.Bind(ch.Bound)
	now := m.now()
	_, err := m.UpdateKeys(ctx, s, owner, func(set *keys.Set) error {
		if _, err := set.Promote(now, false); err != nil {
			return err
		}
		cur := set.Current
		if ch.ActivateAfter <= 0 || cur == nil || cur.Bound() == nil || !cur.Bound().Covers(ch.Bound) {
			set.DropStaged()
			return set.Rotate(k, now, ch.Overlap)
		}
		return set.StageFor(k, now.Add(ch.ActivateAfter), ch.Overlap, now)
	})
	return err
}

// ActivateStaged makes owner's staged key sign now, ahead of its time;
// nil when none is staged.
func (m *Manager) ActivateStaged(ctx context.Context, s logical.Storage, owner string) (*keys.Key, error) {
	var promoted *keys.Key
	_, err := m.UpdateKeys(ctx, s, owner, func(set *keys.Set) error {
		next := set.Next
		ok, err := set.Promote(m.now(), true)
		if ok {
			promoted = next
		}
		return err
	})
	return promoted, err
}

// PublishedJWKS is the JSON Web Key Set a vendor fetches, without a Vault
// token, for the self-contained credential called name or, with isApp,
// the app: the public keys published now (current, staged and those in
// their overlap); nil when nothing is published there (no such name, a
// connection, which signs with its app's keys, no key). Anyone may ask
// for any name, so it caches nothing it did not hold (a name asked for
// costs no memory after the answer) and decodes no private key.
func (m *Manager) PublishedJWKS(ctx context.Context, s logical.Storage, name string, isApp bool) ([]byte, error) {
	var owner string
	if isApp {
		ok, err := m.appExists(ctx, s, name)
		if err != nil || !ok {
			return nil, err
		}
		owner = store.AppKeyOwner(name)
	} else {
		e, err := m.peek(ctx, s, name)
		if err != nil || e == nil || e.Config.App != "" {
			return nil, err
		}
		owner = KeyOwner(name, &e.Config)
	}
	set, err := store.Of(s).PublicKeys(ctx, owner)
	if err != nil {
		return nil, err
	}
	now := m.now()
	if len(set.Published(now)) == 0 {
		return nil, nil
	}
	return set.JWKS(now)
}

// signingKey is the key that signs owner's assertions now, with where it
// may sign for: a staged key whose time came is made current in storage
// first, and a key an older release stored without a binding is bound to
// where the client sends now (d). Nil when owner has no key.
func (m *Manager) signingKey(ctx context.Context, s logical.Storage, owner string, d model.Destination) (*keys.Key, model.Destination, error) {
	set, err := m.Keys(ctx, s, owner)
	if err != nil {
		return nil, model.Destination{}, err
	}
	now := m.now()
	k := set.Signing(now)
	if k != nil && (k == set.Next || k.Bound() == nil) {
		set, err = m.UpdateKeys(ctx, s, owner, func(set *keys.Set) error {
			if _, err := set.Promote(now, false); err != nil {
				return err
			}
			return set.BindUnbound(d)
		})
		if err != nil {
			return nil, model.Destination{}, err
		}
		k = set.Current
	}
	if k == nil {
		return nil, model.Destination{}, nil
	}
	return k, *k.Bound(), nil
}
