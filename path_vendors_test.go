package vendoroauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// authServer starts the strict standards authorization server.
func authServer(t *testing.T) *standin.AuthServer {
	t.Helper()
	a, err := standin.NewAuthServer(standin.AuthServerOptions{DeviceInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// serveJWKS publishes the backend's JWKS paths over HTTP, as Vault's
// unauthenticated paths do, for the stand-in to fetch.
func serveJWKS(t *testing.T, env *testEnv) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := env.b.HandleRequest(context.Background(), &logical.Request{
			Operation: logical.ReadOperation, Path: strings.TrimPrefix(r.URL.Path, "/v1/vendoroauth/"), Storage: env.storage, MountPoint: "vendoroauth/",
		})
		if err != nil || resp == nil {
			http.Error(w, "no keys", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(resp.Data[logical.HTTPRawBody].([]byte))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestPrivateKeyJWTWithAKeyBornInVault(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	a := authServer(t)
	jwks := serveJWKS(t, env)
	if err := a.AddClient(standin.AuthClient{ID: "svc", Method: standin.MethodPrivateKeyJWT, JWKSURL: jwks + "/v1/vendoroauth/jwks/svc",
		ResponseFields: map[string]any{"instance_url": "https://acme.example"}}); err != nil {
		t.Fatal(err)
	}
	env.write(t, "svc", map[string]interface{}{"token_url": a.Endpoints(standin.Plain).Token, "client_id": "svc",
		"auth_style": "private_key_jwt", "response_fields": "instance_url"})
	resp, err := env.request(t, logical.ReadOperation, "token/svc", nil)
	mustErr(t, resp, err, "has no signing key yet", "rotate-key")
	resp, err = env.request(t, logical.UpdateOperation, "rotate-key/svc", nil)
	if err != nil || resp.IsError() || !strings.Contains(resp.Data["public_key"].(string), "PUBLIC KEY") {
		t.Fatal(err, resp)
	}
	tok := env.readToken(t, "svc")
	if !a.AccessTokenValid(tok.Data["access_token"].(string)) || tok.Data["instance_url"] != "https://acme.example" {
		t.Fatalf("token: %v", tok.Data)
	}
	// A new key: the stand-in fetches the JWKS again for its kid.
	if resp, err := env.request(t, logical.UpdateOperation, "rotate-key/svc", map[string]interface{}{"algorithm": "RS256"}); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	if _, err := env.b.creds.Refresh(context.Background(), env.storage, "svc", true); err != nil {
		t.Fatalf("refresh after rotate-key: %v", err)
	}
	if st := a.Stats(); st.AssertionsVerified != 2 {
		t.Errorf("assertions verified = %d, want 2", st.AssertionsVerified)
	}
}

func TestDiscoveryRevocationAndDeviceFlow(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	a := authServer(t)
	if err := a.AddClient(standin.AuthClient{ID: "dev", Secret: "dev-secret"}); err != nil {
		t.Fatal(err)
	}
	resp, err := env.request(t, logical.CreateOperation, "config/dev", map[string]interface{}{"issuer": a.Issuer() + "/other",
		"client_id": "dev", "client_secret": "dev-secret", "grant_type": "refresh_token"})
	mustErr(t, resp, err, "metadata of issuer")
	env.write(t, "dev", map[string]interface{}{"issuer": a.Issuer(), "client_id": "dev", "client_secret": "dev-secret", "grant_type": "refresh_token"})
	read, _ := env.request(t, logical.ReadOperation, "config/dev", nil)
	if read.Data["token_url"] != a.Endpoints(standin.Plain).Token || read.Data["revocation_url"] != a.Endpoints(standin.Plain).Revocation {
		t.Fatalf("discovery did not fill the URLs: %v", read.Data)
	}
	// Device flow, approved.
	resp, err = env.request(t, logical.UpdateOperation, "device/dev", nil)
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	code := resp.Data["user_code"].(string)
	if err := a.ApproveDevice(code); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, _ = env.request(t, logical.ReadOperation, "device/dev", nil)
		if resp.Data["status"] != "pending" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp.Data["status"] != "approved" {
		t.Fatalf("device flow: %v", resp.Data)
	}
	if tok := env.readToken(t, "dev").Data["access_token"].(string); !a.AccessTokenValid(tok) {
		t.Fatalf("not a valid token after the device flow")
	}
	// Delete revokes the refresh token at the vendor.
	resp, err = env.request(t, logical.DeleteOperation, "config/dev", nil)
	if err != nil || resp.IsError() || resp.Data["refresh_token_revoked"] != true {
		t.Fatalf("delete: %v %v", err, resp)
	}
	if revs := a.Revocations(); len(revs) != 1 || revs[0].Kind != "refresh_token" {
		t.Errorf("revocations: %+v", revs)
	}
}

// The JWKS paths need no token, so they must not tell anyone which
// accounts and apps exist: every name without published keys got a
// different answer (a 404, an empty set, an error naming the app and the
// mount, "there is no app"). Now all get the same 404, and only names with
// keys a JWKS.
func TestJWKSPathsRevealNoNames(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	v := newDeviceVendor(t)
	for _, app := range []string{"a", "signed"} {
		v.app(t, env, app)
	}
	env.write(t, "a/cust42", map[string]interface{}{"refresh_token": "RT0"})
	for _, name := range []string{"solo", "signer"} {
		env.write(t, name, map[string]interface{}{"token_url": v.url + "/token", "client_id": "id", "client_secret": "S", "grant_type": "client_credentials"})
	}
	for _, p := range []string{"rotate-key/signer", "apps/signed/rotate-key"} {
		if resp, err := env.request(t, logical.UpdateOperation, p, nil); err != nil || resp.IsError() {
			t.Fatal(p, err, resp)
		}
	}
	for _, p := range []string{"jwks/nosuch", "jwks/solo", "jwks/a/cust42", "jwks/a/nosuch", "apps/a/jwks", "apps/nosuch/jwks"} {
		if resp, err := env.request(t, logical.ReadOperation, p, nil); err != nil || resp != nil {
			t.Errorf("%s: got %v, %v; want the 404 of a name without keys", p, resp, err)
		}
	}
	for _, p := range []string{"jwks/signer", "apps/signed/jwks"} {
		resp, err := env.request(t, logical.ReadOperation, p, nil)
		if err != nil || resp == nil || !strings.Contains(string(resp.Data[logical.HTTPRawBody].([]byte)), `"kid"`) {
			t.Errorf("%s: got %v, %v; want a JWKS", p, resp, err)
		}
	}
}

// A credential's signing keys go with it, and only after it: Delete used
// to delete the keys first and ignore a failure, so a failed key delete
// left them for the next credential of that name to publish and sign
// with. A credential that becomes a
// connection signs with its app's keys, and its own are deleted.
func TestSigningKeysGoWithTheirCredential(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	v := newDeviceVendor(t)
	v.app(t, env, "a")
	conf := map[string]interface{}{"token_url": v.url + "/token", "client_id": "id", "client_secret": "S", "grant_type": "client_credentials"}
	keyed := func(name string) {
		t.Helper()
		env.write(t, name, conf)
		if resp, err := env.request(t, logical.UpdateOperation, "rotate-key/"+name, nil); err != nil || resp.IsError() {
			t.Fatal(err, resp)
		}
	}
	keysOf := func(name string) bool {
		raw, _ := env.storage.InmemStorage.Get(context.Background(), "keys/cred/"+name)
		return raw != nil
	}

	keyed("s")
	env.storage.failDeletes.Store(1)
	if resp, err := env.request(t, logical.DeleteOperation, "config/s", nil); err == nil && !resp.IsError() {
		t.Error("a delete whose first storage delete failed reported success")
	}
	if !keysOf("s") {
		t.Error("a failed delete of the credential left it without its keys")
	}
	if resp, err := env.request(t, logical.DeleteOperation, "config/s", nil); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	env.write(t, "s", conf)
	if resp, err := env.request(t, logical.ReadOperation, "jwks/s", nil); err != nil || resp != nil {
		t.Errorf("a new credential under a deleted one's name publishes its keys: %v %v", resp, err)
	}

	keyed("c")
	env.write(t, "c", map[string]interface{}{"app": "a"})
	if keysOf("c") {
		t.Error("a credential that became a connection kept its own signing keys")
	}
}

// A client that signs with a key held in Vault cannot be sent elsewhere by
// a write: an assertion signed for the vendor's audience is as good as a
// secret to whoever receives it. The key stays bound to where it was made
// for; the write says so, and a key made after the move signs there.
func TestPrivateKeyJWTDestinationNeedsANewKey(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	a := authServer(t)
	env.write(t, "svc", map[string]interface{}{"token_url": a.Endpoints(standin.Plain).Token, "client_id": "svc",
		"auth_style": "private_key_jwt", "assertion_audience": a.Endpoints(standin.Plain).Token})
	if resp, err := env.request(t, logical.UpdateOperation, "rotate-key/svc", map[string]interface{}{"activate_after": 0}); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	for _, body := range []map[string]interface{}{
		{"token_url": "https://thief.example/token"},
		{"device_authorization_url": "https://thief.example/device"},
		{"revocation_url": "https://thief.example/revoke"},
	} {
		resp, err := env.request(t, logical.UpdateOperation, "config/svc", body)
		if err != nil || resp == nil || resp.IsError() || !strings.Contains(strings.Join(resp.Warnings, " "), "its signing key was made for "+a.Endpoints(standin.Plain).Token) {
			t.Errorf("moving %v: want a warning that the key signs for the old destination only, got %v %v", body, resp, err)
		}
		if !strings.Contains(strings.Join(resp.Warnings, " "), "vault write vendoroauth/rotate-key/svc destination=") {
			t.Errorf("the warning does not say how to make a key: %v", resp.Warnings)
		}
		env.write(t, "svc", map[string]interface{}{"token_url": a.Endpoints(standin.Plain).Token, "device_authorization_url": "", "revocation_url": ""})
	}
}
