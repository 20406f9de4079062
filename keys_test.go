package vendoroauth

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// rotate-key publishes the new key first and signs with it only after
// activate_after: a vendor that caches the client's JWKS and fetches it
// again at most every so often (Keycloak: every 10 s, on an unknown kid)
// keeps accepting assertions through a rotation. With the old rotation,
// which signed with the new key at once, this vendor refused them until
// its cache expired.
func TestRotationWaitsForTheVendorsJWKSCache(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	a, err := standin.NewAuthServer(standin.AuthServerOptions{JWKSRefetchInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	jwks := serveJWKS(t, env)
	if err := a.AddClient(standin.AuthClient{ID: "svc", Method: standin.MethodPrivateKeyJWT, JWKSURL: jwks + "/v1/vendoroauth/jwks/svc"}); err != nil {
		t.Fatal(err)
	}
	env.write(t, "svc", map[string]interface{}{"token_url": a.Endpoints(standin.Plain).Token, "client_id": "svc", "auth_style": "private_key_jwt"})
	if resp, err := env.request(t, logical.UpdateOperation, "rotate-key/svc", nil); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	refresh := func() error {
		res, err := env.b.creds.Refresh(context.Background(), env.storage, "svc", true)
		if err == nil && res.Stale != nil {
			err = res.Stale
		}
		return err
	}
	if err := refresh(); err != nil {
		t.Fatalf("the first key: %v", err)
	}
	// The vendor now holds the JWKS with the first key, for an hour.
	resp, err := env.request(t, logical.UpdateOperation, "rotate-key/svc", map[string]interface{}{"activate_after": 600})
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	if resp.Data["signs_from"] == resp.Data["jwks_path"] || resp.Data["signs_from"] == "" {
		t.Errorf("signs_from = %v", resp.Data["signs_from"])
	}
	for i := range 3 {
		if err := refresh(); err != nil {
			t.Fatalf("refresh %d after the rotation, before the new key signs: %v", i, err)
		}
	}
	// Once the vendor fetched the JWKS again (its cache expired), the new
	// key signs from its time on.
	a.ExpireJWKSCache()
	clk.add(10 * time.Minute)
	if err := refresh(); err != nil {
		t.Fatalf("refresh once the new key signs: %v", err)
	}
	if st := a.Stats(); st.AssertionsVerified != 5 {
		t.Errorf("assertions verified = %d, want 5", st.AssertionsVerified)
	}
}
