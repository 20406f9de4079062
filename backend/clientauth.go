package backend

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/keys"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
)

// Client authentication methods beyond the preset's basic and body.
const (
	AuthNone                = string(tokenclient.AuthNone)
	AuthPrivateKeyJWT       = string(tokenclient.AuthPrivateKeyJWT)
	AuthClientSecretJWT     = string(tokenclient.AuthClientSecretJWT)
	AuthTLSClient           = string(tokenclient.AuthTLSClient)
	AuthSelfSignedTLSClient = string(tokenclient.AuthSelfSignedTLSClient)
)

// AuthStyles lists every auth_style a config takes.
func AuthStyles() []string {
	return []string{providers.AuthBasic, providers.AuthBody, AuthNone, AuthPrivateKeyJWT, AuthClientSecretJWT, AuthTLSClient, AuthSelfSignedTLSClient}
}

// checkClientAuth checks that c carries what its auth_style needs, and
// its TLS and response-field settings.
func (c *Config) checkClientAuth(s *Settings) error {
	if c.tlsConfig() != nil {
		if err := c.tlsConfig().Validate(); err != nil {
			return err
		}
	}
	switch {
	case s.usesCertificate() && (c.TLSClientCertificate == "" || c.TLSClientKey == ""):
		return fmt.Errorf("auth_style=%s needs tls_client_certificate and tls_client_key (PEM)", s.AuthStyle)
	case s.AuthStyle == AuthClientSecretJWT && len(c.ClientSecret) < 32:
		return fmt.Errorf("auth_style=client_secret_jwt signs with the client secret (HS256), which must be at least 32 bytes")
	}
	if (c.TLSClientCertificate == "") != (c.TLSClientKey == "") {
		return fmt.Errorf("give tls_client_certificate and tls_client_key together")
	}
	for _, f := range append(append([]string(nil), c.ResponseFields...), c.SecretResponseFields...) {
		switch f {
		case "access_token", "token_type", "expires_at", "expires_in", "scope", "refresh_token":
			return fmt.Errorf("response_fields cannot name %q: it is handed out (or kept) already", f)
		}
	}
	if err := tokenclient.CheckResponseFields(append(append([]string(nil), c.ResponseFields...), c.SecretResponseFields...)); err != nil {
		return err
	}
	return nil
}

// tlsConfig is c's TLS settings for the token client, or nil.
func (c *Config) tlsConfig() *tokenclient.TLSConfig {
	if c.TLSClientCertificate == "" && c.TLSClientKey == "" && c.CABundle == "" {
		return nil
	}
	return &tokenclient.TLSConfig{ClientCertificatePEM: c.TLSClientCertificate, ClientKeyPEM: c.TLSClientKey, CABundlePEM: c.CABundle}
}

// KeysPrefix is where signing keys live, by owner; seal-wrapped.
const KeysPrefix = "keys/"

// KeyOwner names whose keys sign a credential's assertions: its app's for
// a connection, its own for a self-contained credential.
func KeyOwner(name string, c *Config) string {
	if c.App != "" {
		return "app/" + c.App
	}
	return "cred/" + name
}

func keysKey(owner string) string { return KeysPrefix + owner }

// Keys returns the signing keys of owner (empty when there are none).
func (m *Manager) Keys(ctx context.Context, s logical.Storage, owner string) (*keys.Set, error) {
	raw, err := s.Get(ctx, keysKey(owner))
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

// UpdateKeys changes owner's signing keys under its lock.
func (m *Manager) UpdateKeys(ctx context.Context, s logical.Storage, owner string, fn func(*keys.Set) error) (*keys.Set, error) {
	unlock, err := m.lockName(ctx, "keys", KeysPrefix+owner)
	if err != nil {
		return nil, err
	}
	defer unlock()
	set, err := m.Keys(ctx, s, owner)
	if err != nil {
		return nil, err
	}
	if err := fn(set); err != nil {
		return nil, err
	}
	set.Prune(m.now())
	raw, err := set.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encoding the signing keys of %s: %w", owner, err)
	}
	if err := s.Put(ctx, &logical.StorageEntry{Key: keysKey(owner), Value: raw, SealWrap: true}); err != nil {
		return nil, fmt.Errorf("storing the signing keys of %s: %w: %w", owner, ErrStorageWrite, err)
	}
	return set, nil
}

// DeleteKeys removes owner's signing keys.
func (m *Manager) DeleteKeys(ctx context.Context, s logical.Storage, owner string) error {
	if err := s.Delete(ctx, keysKey(owner)); err != nil {
		return fmt.Errorf("deleting the signing keys of %s: %w", owner, err)
	}
	return nil
}

// withClientAuth adds what req needs beyond the config's fields: the
// signing key of a private_key_jwt client, the TLS settings, the response
// fields to keep.
func (m *Manager) withClientAuth(ctx context.Context, s logical.Storage, name string, eff *Config, st *Settings, req *tokenclient.Request) error {
	req.TLS = eff.tlsConfig()
	req.Audience = eff.AssertionAudience
	req.ResponseFields = append(append([]string(nil), eff.ResponseFields...), eff.SecretResponseFields...)
	if !st.usesKey() {
		return nil
	}
	set, err := m.Keys(ctx, s, KeyOwner(name, eff))
	if err != nil {
		return err
	}
	if set.Current == nil {
		return &InputError{Msg: fmt.Sprintf("credential %q uses auth_style=private_key_jwt but has no signing key yet; generate one with rotate-key (then register the public key at the vendor) or import one with signing_key", name)}
	}
	req.Signer, req.KeyID, req.SigningAlgorithm = set.Current.Signer(), set.Current.ID(), string(set.Current.Algorithm())
	return nil
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
