package vendoroauth

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
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

// import-key refuses a key that does not parse or cannot sign before
// anything is stored; one that can is bound to where its client sends,
// published at once, and signs from its time, or at once with
// activate_staged=true.
func TestImportAndActivateKeys(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	pkjwtClient(t, env, "config/svc", false)
	before, _ := env.request(t, logical.ReadOperation, "jwks/svc", nil)
	for _, bad := range []string{"", "garbage", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"} {
		resp, err := env.request(t, logical.UpdateOperation, "import-key/svc", map[string]interface{}{"signing_key": bad})
		mustErr(t, resp, err, "import-key/svc was not changed")
	}
	if after, _ := env.request(t, logical.ReadOperation, "jwks/svc", nil); string(after.Data[logical.HTTPRawBody].([]byte)) != string(before.Data[logical.HTTPRawBody].([]byte)) {
		t.Error("a refused import changed the published keys")
	}
	resp, err := env.request(t, logical.UpdateOperation, "import-key/svc", map[string]interface{}{"signing_key": writersKey(t)})
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	kid := resp.Data["kid"].(string)
	if !strings.Contains(resp.Data["signs_for"].(string), "/token") || resp.Data["signs_from"] == "" {
		t.Errorf("the answer does not say where and from when the key signs: %v", resp.Data)
	}
	jwks, _ := env.request(t, logical.ReadOperation, "jwks/svc", nil)
	if !strings.Contains(string(jwks.Data[logical.HTTPRawBody].([]byte)), kid) {
		t.Error("the imported key is not published at once")
	}
	set, err := env.b.creds.Keys(context.Background(), env.storage, "cred/svc")
	if err != nil || set.Next == nil || set.Next.ID() != kid || set.Current.ID() == kid {
		t.Fatalf("the imported key is not staged: %v %v", set, err)
	}
	if resp, err := env.request(t, logical.UpdateOperation, "rotate-key/svc", map[string]interface{}{"activate_staged": true}); err != nil || resp.IsError() || resp.Data["kid"] != kid {
		t.Fatalf("activate_staged: %v %v", err, resp)
	}
	if set, _ := env.b.creds.Keys(context.Background(), env.storage, "cred/svc"); set.Current.ID() != kid || set.Next != nil {
		t.Errorf("the staged key does not sign after activate_staged: %v", set)
	}
	resp, err = env.request(t, logical.UpdateOperation, "rotate-key/svc", map[string]interface{}{"activate_staged": true})
	mustErr(t, resp, err, "no key is published and waiting")
}

// After a move its key holder says is theirs (destination=), the new key
// signs at once there: the one before signs for nowhere the client sends.
func TestKeyForAMoveSignsAtOnce(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	a, _ := pkjwtClient(t, env, "config/svc", false)
	b := authServer(t)
	if err := b.AddClient(standin.AuthClient{ID: "svc", Method: standin.MethodPrivateKeyJWT, JWKSURL: serveJWKS(t, env) + "/v1/vendoroauth/jwks/svc"}); err != nil {
		t.Fatal(err)
	}
	_, _ = env.request(t, logical.UpdateOperation, "config/svc", map[string]interface{}{"token_url": b.Endpoints(standin.Plain).Token})
	resp, err := env.request(t, logical.UpdateOperation, "rotate-key/svc", map[string]interface{}{"destination": "https://elsewhere.example/token"})
	mustErr(t, resp, err, "is not where the client sends now")
	resp, err = env.request(t, logical.UpdateOperation, "rotate-key/svc", map[string]interface{}{"destination": b.Endpoints(standin.Plain).Token})
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	env.readToken(t, "svc")
	if a.Stats().AssertionsVerified != 1 || b.Stats().AssertionsVerified != 1 {
		t.Errorf("assertions verified: %d at the first server, %d at the second; want 1 and 1", a.Stats().AssertionsVerified, b.Stats().AssertionsVerified)
	}
}

// The active node's first load after an upgrade stores the bindings of what
// the release before stored (entries, apps, keys), then the mark, after
// which writes no longer bind first.
func TestFirstLoadStoresTheBindings(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	_, _ = pkjwtClient(t, env, "config/svc", false)
	env.penboxApp(t, "partner", map[string]interface{}{"revocation_url": env.url + "/penbox/revoke"})
	env.connect(t, "partner/a", nil)
	storeAsReleaseBeforeBindings(t, env, "partner/a", true)
	stripKeyBindings(t, env, "cred/svc")
	fresh := newTestEnvOver(t, env)
	if err := fresh.b.creds.Tick(context.Background(), env.storage, true); err != nil {
		t.Fatal(err)
	}
	waitLoaded(t, fresh)
	raw, _ := env.storage.InmemStorage.Get(context.Background(), store.EntryPrefix+"partner/a")
	if !strings.Contains(string(raw.Value), `"bound"`) || strings.Contains(string(raw.Value), "refresh_token_for") {
		t.Errorf("the connection's binding is not stored: %s", raw.Value)
	}
	keysRaw, _ := env.storage.InmemStorage.Get(context.Background(), store.KeysPrefix+"cred/svc")
	if !strings.Contains(string(keysRaw.Value), `"bound"`) {
		t.Errorf("the key's binding is not stored: %s", keysRaw.Value)
	}
	if mark, _ := env.storage.InmemStorage.Get(context.Background(), "upgrade/bound"); mark == nil {
		t.Error("the upgrade mark is not written")
	}
}
