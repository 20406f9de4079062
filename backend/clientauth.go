package backend

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/outbound"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// callFor is the call a request of the credential name makes with eff
// and st: the request the config maps to, where each of its secrets may
// go, and, for a private_key_jwt client, the signing key with where it may
// sign for.
func (m *Manager) callFor(ctx context.Context, s logical.Storage, name string, eff *model.Config, st *model.Settings) (outbound.Call, error) {
	call := outbound.Call{Name: name, Req: eff.Request(st), Bound: eff.Bindings(st), Routing: st.Routing}
	if !st.UsesKey() {
		return call, nil
	}
	k, bound, err := m.signingKey(ctx, s, KeyOwner(name, eff), model.ClientDestination(eff, st))
	if err != nil {
		return call, err
	}
	if k == nil {
		return call, &InputError{Msg: fmt.Sprintf("credential %q uses auth_style=private_key_jwt but has no signing key yet; generate one with rotate-key (then register the public key at the vendor) or import one with import-key", name)}
	}
	call.Req.Signer, call.Req.KeyID, call.Req.SigningAlgorithm = k.Signer(), k.ID(), string(k.Algorithm())
	return call.With(tokenclient.SigningKeyRef, bound), nil
}

// keepResponseFields records in t the response fields tok kept that the
// config asks for, plain and secret.
func keepResponseFields(t *model.Token, tok *tokenclient.Token, eff *model.Config) {
	t.KeepFields(tok.Extra, eff.ResponseFields, eff.SecretResponseFields)
}
