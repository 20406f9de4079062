package backend

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/keys"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/outbound"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// KeyOwner names whose keys sign a credential's assertions: its app's for
// a connection, its own for a self-contained credential.
func KeyOwner(name string, c *Config) string { return store.KeyOwner(name, c.App) }

// Keys returns the signing keys of owner (empty when there are none).
func (m *Manager) Keys(ctx context.Context, s logical.Storage, owner string) (*keys.Set, error) {
	return store.Of(s).Keys(ctx, owner)
}

// UpdateKeys changes owner's signing keys under its lock.
func (m *Manager) UpdateKeys(ctx context.Context, s logical.Storage, owner string, fn func(*keys.Set) error) (*keys.Set, error) {
	unlock, err := m.lockName(ctx, "keys", "keys/"+owner)
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

// DeleteKeys removes owner's signing keys.
func (m *Manager) DeleteKeys(ctx context.Context, s logical.Storage, owner string) error {
	return store.Of(s).DeleteKeys(ctx, owner)
}

// callFor is the call a request of the credential name makes with eff
// and st: the request the config maps to, where each of its secrets may
// go, and, for a private_key_jwt client, the signing key with where it may
// sign for.
func (m *Manager) callFor(ctx context.Context, s logical.Storage, name string, eff *Config, st *Settings) (outbound.Call, error) {
	call := outbound.Call{Req: eff.Request(st), Bound: eff.Bindings(st)}
	if !st.UsesKey() {
		return call, nil
	}
	owner := KeyOwner(name, eff)
	set, err := m.Keys(ctx, s, owner)
	if err != nil {
		return call, err
	}
	k := set.Current
	if k == nil {
		return call, &InputError{Msg: fmt.Sprintf("credential %q uses auth_style=private_key_jwt but has no signing key yet; generate one with rotate-key (then register the public key at the vendor) or import one with signing_key", name)}
	}
	bound := k.Bound()
	if bound == nil {
		// A key an older release stored signs for where its client
		// sends now, from now on.
		d := model.ClientDestination(eff, st)
		if set, err = m.UpdateKeys(ctx, s, owner, func(set *keys.Set) error { return set.BindUnbound(d) }); err != nil {
			return call, err
		}
		k, bound = set.Current, &d
	}
	call.Req.Signer, call.Req.KeyID, call.Req.SigningAlgorithm = k.Signer(), k.ID(), string(k.Algorithm())
	return call.With(tokenclient.SigningKeyRef, *bound), nil
}

// responseExtras splits the kept response fields into plain and secret.
func responseExtras(tok *tokenclient.Token, eff *Config) (plain, secret map[string]string) {
	if tok.Extra == nil {
		return nil, nil
	}
	pick := func(names []string) map[string]string {
		var out map[string]string
		for _, n := range names {
			if v, ok := tok.Extra.Get(n); ok {
				if out == nil {
					out = map[string]string{}
				}
				out[n] = v
			}
		}
		return out
	}
	return pick(eff.ResponseFields), pick(eff.SecretResponseFields)
}
