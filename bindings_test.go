package vendoroauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// Regression tests for the five ways a writer who holds only the operator
// policy (config/*, apps/* writes; no reads of secrets, no key
// operations) could send a secret, or something made from one, where it
// was not written for. Each failed before secrets carried their
// destination and every request left through the gate.

// pkjwtClient is a private_key_jwt client of the strict stand-in
// authorization server, with a key born in Vault that the server fetches
// from the plugin's JWKS path; base is "config/svc" or "apps/svc". It
// returns the server and the name to read tokens of.
func pkjwtClient(t *testing.T, env *testEnv, base string, refreshToken bool) (*standin.AuthServer, string) {
	t.Helper()
	a := authServer(t)
	jwks := serveJWKS(t, env)
	jwksPath, rotate, name := "/v1/vendoroauth/jwks/svc", "rotate-key/svc", "svc"
	if strings.HasPrefix(base, "apps/") {
		jwksPath, rotate, name = "/v1/vendoroauth/apps/svc/jwks", "apps/svc/rotate-key", "svc/acct"
	}
	if err := a.AddClient(standin.AuthClient{ID: "svc", Method: standin.MethodPrivateKeyJWT, JWKSURL: jwks + jwksPath}); err != nil {
		t.Fatal(err)
	}
	client := map[string]interface{}{"token_url": a.Endpoints(standin.Plain).Token, "client_id": "svc", "auth_style": "private_key_jwt", "grant_type": "client_credentials"}
	account := map[string]interface{}{}
	if refreshToken {
		// A refresh token the vendor would revoke on delete.
		client["grant_type"], client["revocation_url"] = "refresh_token", a.Endpoints(standin.Plain).Revocation
		account["refresh_token"] = "VICTIM-RT"
		if base == "config/svc" {
			client["refresh_token"] = "VICTIM-RT"
		}
	}
	resp, err := env.request(t, logical.CreateOperation, base, client)
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	if base == "apps/svc" {
		env.write(t, "svc/acct", account)
	}
	if resp, err := env.request(t, logical.UpdateOperation, rotate, nil); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	if !refreshToken {
		env.readToken(t, name)
	}
	return a, name
}

// runPaths runs every outbound path of name: a token read once the cached
// token is past its hand-out end, refresh/, the background refresher, a
// device flow start, and the delete (with revocation).
func runPaths(t *testing.T, env *testEnv, clk *clock, name string) {
	t.Helper()
	ctx := context.Background()
	clk.add(2 * time.Hour)
	_, _ = env.request(t, logical.ReadOperation, "token/"+name, nil)
	_, _ = env.request(t, logical.UpdateOperation, "refresh/"+name, nil)
	clk.add(100 * time.Hour) // past every keep-alive
	_ = env.b.creds.RefreshDue(ctx, env.storage)
	_, _ = env.request(t, logical.UpdateOperation, "device/"+name, nil)
	_ = env.b.creds.PollDeviceNow(ctx, env.storage, name)
	_, _ = env.request(t, logical.DeleteOperation, "config/"+name, nil)
}

// 1. A private_key_jwt client moved by writes that give no new key sends
// no assertion to the new host: not with the real audience kept, not with
// signing_key="" or a garbage signing_key in the write, not after two
// writes that pass through auth_style=none; for a credential and an app,
// for the token, device and revocation endpoints.
func TestMovedKeyClientSendsNoAssertion(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"config/svc", "apps/svc"} {
		for _, field := range []string{"token_url", "device_authorization_url", "revocation_url"} {
			for _, how := range []string{"audience kept", "empty signing_key", "garbage signing_key", "through auth_style=none"} {
				t.Run(base+" "+field+" "+how, func(t *testing.T) {
					t.Parallel()
					env := newTestEnv(t)
					clk := env.useClock()
					a, name := pkjwtClient(t, env, base, field == "revocation_url")
					evil := newThief(t, nil)
					move := map[string]interface{}{field: evil.URL + "/" + strings.TrimSuffix(field, "_url"), "assertion_audience": a.Endpoints(standin.Plain).Token}
					writes := []map[string]interface{}{move}
					switch how {
					case "empty signing_key":
						move["signing_key"] = ""
					case "garbage signing_key":
						move["signing_key"] = "garbage"
					case "through auth_style=none":
						move["auth_style"] = "none"
						writes = append(writes, map[string]interface{}{"auth_style": "private_key_jwt"})
					}
					for _, w := range writes {
						_, _ = env.request(t, logical.UpdateOperation, base, w)
					}
					runPaths(t, env, clk, name)
					if got := evil.got(0, "client_assertion", "VICTIM-RT"); got != "" {
						t.Errorf("the new host got an assertion signed by the client's key: %s", got)
					}
				})
			}
		}
	}
}

// 2. A config or app write cannot choose the client's key: signing_key is
// not a field; the key published at the JWKS path stays the one born in
// Vault.
func TestWritersCannotPublishTheirOwnKey(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"config/svc", "apps/svc"} {
		t.Run(base, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t)
			pkjwtClient(t, env, base, false)
			jwksPath := "jwks/svc"
			if base == "apps/svc" {
				jwksPath = "apps/svc/jwks"
			}
			before, err := env.request(t, logical.ReadOperation, jwksPath, nil)
			if err != nil || before == nil {
				t.Fatal(err, before)
			}
			resp, err := env.request(t, logical.UpdateOperation, base, map[string]interface{}{"signing_key": writersKey(t)})
			mustErr(t, resp, err, "signing_key is not a field", "import-key")
			after, err := env.request(t, logical.ReadOperation, jwksPath, nil)
			if err != nil || after == nil || string(after.Data[logical.HTTPRawBody].([]byte)) != string(before.Data[logical.HTTPRawBody].([]byte)) {
				t.Errorf("the published keys changed: %v", after)
			}
		})
	}
}

// writersKey is a PEM private key someone outside Vault holds.
func writersKey(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// 3. A public client's flows under way do not follow a later move: the
// pending device flow's device code is not polled at the new host, and
// the open authorization's code and verifier are not exchanged there.
func TestPendingFlowsDoNotFollowAMove(t *testing.T) {
	t.Parallel()
	for _, flow := range []string{"device", "authorization"} {
		for _, holder := range []string{"credential", "connection"} {
			t.Run(flow+" of a "+holder, func(t *testing.T) {
				t.Parallel()
				env := newTestEnv(t)
				a := authServer(t)
				if err := a.AddClient(standin.AuthClient{ID: "pub", Method: standin.MethodNone}); err != nil {
					t.Fatal(err)
				}
				ep := a.Endpoints(standin.Plain)
				client := map[string]interface{}{"token_url": ep.Token, "client_id": "pub", "auth_style": "none", "grant_type": "refresh_token",
					"device_authorization_url": ep.DeviceAuthorization, "authorize_url": ep.Issuer + "/authorize", "use_pkce": true}
				base, name := "config/pub", "pub"
				if holder == "connection" {
					client["allowed_redirect_uris"] = partnerCallback
					writeAt(t, env, "apps/pub", client)
					base, name = "apps/pub", "pub/acct"
				} else {
					writeAt(t, env, base, client)
				}
				var code, state string
				if flow == "device" {
					if resp, err := env.request(t, logical.UpdateOperation, "device/"+name, nil); err != nil || resp.IsError() {
						t.Fatal(err, resp)
					}
				} else {
					resp, err := env.request(t, logical.UpdateOperation, "authorize/"+name, map[string]interface{}{"redirect_uri": partnerCallback})
					if err != nil || resp.IsError() {
						t.Fatal(err, resp)
					}
					state = resp.Data["state"].(string)
					code = "THE-USERS-CODE"
				}
				secrets := flowSecrets(t, env, name)
				evil := newThief(t, nil)
				// No secret is stored, so the write needs none again;
				// refresh_token="" satisfies the old rule for a connected
				// credential too.
				move := map[string]interface{}{"token_url": evil.URL + "/token"}
				if holder == "credential" {
					move["refresh_token"] = ""
				}
				_, _ = env.request(t, logical.UpdateOperation, base, move)
				if flow == "device" {
					_ = env.b.creds.PollDeviceNow(context.Background(), env.storage, name)
				} else {
					_, _ = env.request(t, logical.UpdateOperation, "exchange/"+name, map[string]interface{}{"code": code, "state": state})
				}
				if got := evil.got(0, append(secrets, code)...); got != "" {
					t.Errorf("the new host got the flow's secret: %s", got)
				}
			})
		}
	}
}

// writeAt creates or updates path with data and fails on any error.
func writeAt(t *testing.T, env *testEnv, path string, data map[string]interface{}) {
	t.Helper()
	resp, err := env.request(t, logical.UpdateOperation, path, data)
	if err != nil || resp.IsError() {
		t.Fatalf("write %s: %v %v", path, err, resp)
	}
}

// flowSecrets are the device codes and code verifiers stored for name.
func flowSecrets(t *testing.T, env *testEnv, name string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for _, prefix := range []string{store.DevicePrefix + name, store.AuthzPrefix + name + "/"} {
		keys := []string{""}
		if strings.HasSuffix(prefix, "/") {
			keys, _ = env.storage.InmemStorage.List(ctx, prefix)
		}
		for _, k := range keys {
			raw, _ := env.storage.InmemStorage.Get(ctx, prefix+k)
			if raw == nil {
				continue
			}
			for _, field := range []string{`"device_code":"`, `"code_verifier":"`} {
				if _, v, ok := strings.Cut(string(raw.Value), field); ok {
					out = append(out, v[:strings.IndexByte(v, '"')])
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("no flow secret stored for %s", name)
	}
	return out
}

// 4. Connections' refresh tokens are bound to who may answer at their
// token endpoint, not only to its URL: an app written anew with the same
// token_url and the writer's own ca_bundle, or an app whose ca_bundle is
// changed with its client secret given again, does not send them to a
// server that presents a certificate from the writer's CA.
func TestRefreshTokensStayWithWhoMayAnswer(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"app written anew", "ca_bundle changed with the client secret"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t)
			clk := env.useClock()
			vendorCA, writersCA := mustCA(t, "vendor"), mustCA(t, "writer")
			srv := newThief(t, vendorCA)
			app := map[string]interface{}{"token_url": srv.URL + "/token", "client_id": "id", "client_secret": "APP-SECRET",
				"grant_type": "refresh_token", "ca_bundle": vendorCA.CertPEM()}
			writeAt(t, env, "apps/a", app)
			env.write(t, "a/victim", map[string]interface{}{"refresh_token": "VICTIM-RT"})
			env.readToken(t, "a/victim")
			// Someone on the path to the token endpoint now answers with
			// a certificate from the writer's CA.
			srv.present(t, writersCA)
			since := srv.requests()
			switch how {
			case "app written anew":
				if _, err := env.request(t, logical.DeleteOperation, "apps/a", nil); err != nil {
					t.Fatal(err)
				}
				app["ca_bundle"], app["client_secret"] = writersCA.CertPEM(), "WRITERS-SECRET"
				writeAt(t, env, "apps/a", app)
			default:
				writeAt(t, env, "apps/a", map[string]interface{}{"ca_bundle": writersCA.CertPEM(), "client_secret": "WRITERS-SECRET"})
			}
			runPaths(t, env, clk, "a/victim")
			if got := srv.got(since, "VICTIM-RT", "APP-SECRET"); got != "" {
				t.Errorf("a server the writer's CA vouches for got the connection's secret: %s", got)
			}
		})
	}
}

func mustCA(t *testing.T, name string) *standin.TestCA {
	t.Helper()
	ca, err := standin.NewTestCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// 5. Headers that route a request are refused, on a credential whose
// secrets the writer never gave as on any other; a change of extra_headers
// needs the secrets again; and a routing header that reached a stored
// config by any other way is never sent.
func TestRoutingHeadersGoNowhere(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	srv := newThief(t, nil)
	env.write(t, "c", map[string]interface{}{"token_url": srv.URL + "/token", "client_id": "id", "client_secret": "SECRET", "grant_type": "client_credentials",
		"extra_headers": "X-Tenant=acme"})
	for _, h := range []string{"X-HTTP-Host-Override", "X-Forwarded-Server", "X-Forwarded-Prefix", "X-Original-Forwarded-Host", "X-Forwarded-Host", "Forwarded", "Host"} {
		resp, err := env.request(t, logical.UpdateOperation, "config/c", map[string]interface{}{"extra_headers": h + "=other-tenant.example"})
		mustErr(t, resp, err, "extra_headers cannot set", "it would change where the request goes")
	}
	resp, err := env.request(t, logical.UpdateOperation, "config/c", map[string]interface{}{"extra_headers": "X-Tenant=other"})
	mustErr(t, resp, err, "changes where the credential's secrets are sent", "extra_headers (changed)", "give client_secret again")
	// A routing header stored by any other way (a future path that forgot
	// the write's check) does not leave the plugin.
	rewriteStored(t, env, "c", `"extra_headers":{"X-Tenant":"acme"}`, `"extra_headers":{"X-Forwarded-Host":"other-tenant.example"}`)
	since := srv.requests()
	runPaths(t, env, clk, "c")
	if got := srv.got(since, "other-tenant.example"); got != "" {
		t.Errorf("a request went out with a routing header: %s", got)
	}
}

// rewriteStored replaces old with new in name's stored entry, as a bug in
// a path that writes it might.
func rewriteStored(t *testing.T, env *testEnv, name, old, new string) {
	t.Helper()
	ctx := context.Background()
	raw, err := env.storage.InmemStorage.Get(ctx, store.EntryPrefix+name)
	if err != nil || raw == nil || !strings.Contains(string(raw.Value), old) {
		t.Fatalf("stored %s has no %s: %v", name, old, raw)
	}
	raw.Value = []byte(strings.Replace(string(raw.Value), old, new, 1))
	if err := env.storage.InmemStorage.Put(ctx, raw); err != nil {
		t.Fatal(err)
	}
	env.b.invalidate(ctx, store.EntryPrefix+name)
}
