package vendoroauth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
)

// The regression tests of issue 19 ("Hardening, second round"), one or
// more per item; each failed on the code before its fix.

// jwksRead reads an unauthenticated JWKS path as Vault routes one: no
// token, a read.
func (e *testEnv) jwksRead(t testing.TB, path string) (*logical.Response, error) {
	t.Helper()
	return e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.ReadOperation, Path: path, Storage: e.storage, MountPoint: e.mount, Unauthenticated: true,
	})
}

// Item 1: an unauthenticated JWKS read of a name that does not exist
// remembered a negative app snapshot per name, forever, in a process that
// serves every mount. Now nothing is remembered, and the answer for a
// name that does not exist is the same 404 as before.
func TestJWKSOfUnknownNamesCachesNothing(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	for i := range 2000 {
		for _, path := range []string{fmt.Sprintf("apps/nope-%d/jwks", i), fmt.Sprintf("jwks/nope-%d", i), fmt.Sprintf("jwks/nope/a-%d", i)} {
			resp, err := env.jwksRead(t, path)
			if err != nil || resp != nil {
				t.Fatalf("%s: want a 404 (nil response), got %v %v", path, resp, err)
			}
		}
	}
	if entries, apps := env.b.creds.CacheSizes(); entries != 0 || apps != 0 {
		t.Errorf("after 6,000 JWKS reads of unknown names the manager holds %d entries and %d apps, want none", entries, apps)
	}
}

// Item 1: names have a length cap, checked before anything is looked up:
// a JWKS read of a longer name is the 404 of any unknown name and reads
// no storage; an authenticated request says what the cap is.
func TestLongNamesAreRefusedBeforeAnyLookup(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	long := strings.Repeat("x", 4096)
	var reads atomic.Int32
	env.storage.setFailGet(func(key string) bool {
		if strings.Contains(key, long[:maxNameLen+1]) {
			reads.Add(1)
		}
		return false
	})
	for _, path := range []string{"jwks/" + long, "apps/" + long + "/jwks", "jwks/app/" + long} {
		resp, err := env.jwksRead(t, path)
		if err != nil || resp != nil {
			t.Errorf("%s: want a 404 (nil response), got %v %v", path[:20], resp, err)
		}
	}
	resp, err := env.request(t, logical.ReadOperation, "token/"+long[:300], nil)
	mustErr(t, resp, err, "at most 128 characters")
	resp, err = env.request(t, logical.UpdateOperation, "config/app/"+long[:300], map[string]interface{}{"refresh_token": "x"})
	mustErr(t, resp, err, "at most 128 characters")
	if n := reads.Load(); n != 0 {
		t.Errorf("%d storage reads of keys holding the long name", n)
	}
	// The cap is per segment: an account of 128 characters in an app of
	// 128 is a name.
	name := strings.Repeat("a", maxNameLen) + "/" + strings.Repeat("b", maxNameLen)
	if resp, err := env.request(t, logical.ReadOperation, "config/"+name, nil); err != nil || resp != nil {
		t.Errorf("a name at the cap: %v %v", resp, err)
	}
}

// Item 1: the JWKS is served from the stored public halves: the private
// key is not decoded (an RSA-4096 key took 0.75 ms a read). Proved by
// breaking the stored private key: the JWKS is still served, and signing
// is what fails.
func TestJWKSDecodesNoPrivateKey(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	pkjwtClient(t, env, "config/svc", false)
	resp, err := env.request(t, logical.UpdateOperation, "rotate-key/svc", map[string]interface{}{"algorithm": "RS256"})
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	kid := resp.Data["kid"].(string)
	key := store.KeysPrefix + "cred/svc"
	raw, err := env.storage.InmemStorage.Get(context.Background(), key)
	if err != nil || raw == nil {
		t.Fatal(err)
	}
	var stored map[string]any
	if err := json.Unmarshal(raw.Value, &stored); err != nil {
		t.Fatal(err)
	}
	cur := stored["current"].(map[string]any)
	cur["private_pkcs8"] = "AAAA" // no private key at all
	raw.Value, _ = json.Marshal(stored)
	if err := env.storage.InmemStorage.Put(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	resp, err = env.jwksRead(t, "jwks/svc")
	if err != nil || resp == nil {
		t.Fatalf("the JWKS with a broken private key: %v %v", resp, err)
	}
	if body, _ := resp.Data[logical.HTTPRawBody].([]byte); !strings.Contains(string(body), kid) {
		t.Errorf("the JWKS does not publish %s: %s", kid, body)
	}
}

// Item 7: rotate-key took the keys' lock but not the credential's: a
// delete between reading the credential and storing the new key left
// keys/cred/<name> behind, for a credential written later under the same
// name to sign with. Now the key operation holds the credential's lock,
// so the delete comes after it and takes the new key with it.
func TestKeyRotationRacingADeleteLeavesNoKeys(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, path, base, del, keys string }{
		{"credential rotate-key", "rotate-key/svc", "config/svc", "config/svc", "cred/svc"},
		{"credential import-key", "import-key/svc", "config/svc", "config/svc", "cred/svc"},
		{"app rotate-key", "apps/svc/rotate-key", "apps/svc", "apps/svc", "app/svc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t)
			pkjwtClient(t, env, tc.base, false)
			data := map[string]interface{}{}
			if strings.HasPrefix(tc.path, "import-key") {
				data["signing_key"] = writersKey(t)
			}
			deleted := make(chan struct{})
			var first atomic.Bool
			env.b.creds.SetTestHooks(backend.TestHooks{BeforeLock: func(op, name string) {
				if op != "keys" {
					return
				}
				if !first.CompareAndSwap(false, true) {
					return // the delete's own
				}
				// The delete runs now; if it can, it finishes before the
				// key is stored.
				go func() {
					defer close(deleted)
					if resp, err := env.request(t, logical.DeleteOperation, tc.del, nil); err != nil || resp.IsError() {
						t.Errorf("delete: %v %v", err, resp)
					}
				}()
				select {
				case <-deleted:
				case <-time.After(300 * time.Millisecond):
				}
			}})
			resp, err := env.request(t, logical.UpdateOperation, tc.path, data)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp // made before the delete, or refused after it
			<-deleted
			if raw, err := env.storage.InmemStorage.Get(context.Background(), store.KeysPrefix+tc.keys); err != nil || raw != nil {
				t.Errorf("keys/%s outlived its owner's delete (%v)", tc.keys, err)
			}
		})
	}
}

// Item 7: keys a deleted credential left behind (by the race above, on an
// earlier release) are not a new credential's: creating config/<name>
// deletes them.
func TestNewCredentialDoesNotInheritLeftoverKeys(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	pkjwtClient(t, env, "config/svc", false)
	cfg, err := env.request(t, logical.ReadOperation, "config/svc", nil)
	if err != nil || cfg.IsError() {
		t.Fatal(err, cfg)
	}
	raw, _ := env.storage.InmemStorage.Get(context.Background(), store.KeysPrefix+"cred/svc")
	if resp, err := env.request(t, logical.DeleteOperation, "config/svc", nil); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	if err := env.storage.InmemStorage.Put(context.Background(), raw); err != nil { // left behind
		t.Fatal(err)
	}
	// The same client, written again.
	resp, err := env.request(t, logical.CreateOperation, "config/svc", map[string]interface{}{
		"token_url": cfg.Data["token_url"], "client_id": "svc", "auth_style": "private_key_jwt", "grant_type": "client_credentials"})
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	if raw, _ := env.storage.InmemStorage.Get(context.Background(), store.KeysPrefix+"cred/svc"); raw != nil {
		t.Error("the new credential kept the deleted one's keys")
	}
	if resp, err := env.jwksRead(t, "jwks/svc"); err != nil || resp != nil {
		t.Errorf("the new credential publishes the deleted one's keys: %v %v", resp, err)
	}
}

// Item 8: the advice on invalid_client ignored auth_style: a client that
// signs with a key or presents a certificate was told to check its
// client_secret and to try auth_style=body, which drops the key's or the
// certificate's authentication. Advice follows the client's
// authentication, for a self-contained credential and a connection alike.
func TestInvalidClientAdviceFollowsAuthStyle(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		authStyle string
		status    int
		want      []string
		not       []string
	}{
		{"basic", 400, []string{"client_secret", "OfficeRnD"}, nil},
		{"", 401, []string{"client_secret"}, nil},
		{"private_key_jwt", 400, []string{"public key", "jwks", "activate_staged=true", "assertion_audience"}, []string{"client_secret", "auth_style=body", "basic_encoding"}},
		{"private_key_jwt", 401, []string{"public key"}, []string{"client_secret", "auth_style=body"}},
		{"client_secret_jwt", 400, []string{"client_secret", "assertion_audience"}, []string{"auth_style=body", "basic_encoding"}},
		{"tls_client_auth", 400, []string{"tls_client_certificate", "mtls_endpoint_aliases"}, []string{"client_secret", "auth_style=body"}},
		{"self_signed_tls_client_auth", 401, []string{"tls_client_certificate"}, []string{"client_secret", "auth_style=body"}},
		{"none", 400, []string{"auth_style"}, []string{"client_secret and", "auth_style=body"}},
	} {
		for _, app := range []string{"", "partner"} {
			t.Run(fmt.Sprintf("%s/%d/app=%s", tc.authStyle, tc.status, app), func(t *testing.T) {
				t.Parallel()
				code := "invalid_client"
				if tc.status == 401 {
					code = ""
				}
				// Through a preset, whose own invalid_client advice is
				// about its secret.
				preset, _ := providers.Get("officernd")
				gerr := &backend.GrantError{Name: "svc", App: app, Vendor: "V", Preset: preset, Grant: "client_credentials", AuthStyle: tc.authStyle,
					Err: &tokenclient.Error{StatusCode: tc.status, Status: fmt.Sprint(tc.status), Code: code}}
				msg := describe("oauth/prod/", gerr)
				for _, w := range tc.want {
					if !strings.Contains(msg, w) {
						t.Errorf("advice lacks %q: %s", w, msg)
					}
				}
				for _, n := range tc.not {
					if strings.Contains(msg, n) {
						t.Errorf("advice says %q: %s", n, msg)
					}
				}
				if tc.authStyle == "private_key_jwt" {
					where := "oauth/prod/jwks/svc"
					if app != "" {
						where = "oauth/prod/apps/partner/jwks"
					}
					if !strings.Contains(msg, where) {
						t.Errorf("advice does not name %s: %s", where, msg)
					}
				}
			})
		}
	}
}

// Item 8: mtls_endpoint_aliases (RFC 8705 section 5) were parsed and never
// used: a client authenticating with its certificate sent to the token
// endpoint the metadata names, where a server with a separate mutual-TLS
// endpoint asks for no certificate, and got invalid_client. It uses the
// aliases now, for a self-contained credential and for an app's
// connections; they are where its secrets are bound to, so the gate lets
// them go there; an explicit token_url still wins; a client that sends
// its secret keeps the plain endpoints.
func TestMTLSClientUsesTheEndpointAliases(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	a := authServer(t)
	cert, err := a.ClientCA().IssueClient("mtls-client")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddClient(standin.AuthClient{ID: "mtls-client", Method: standin.MethodTLSClientAuth, TLSSubject: "CN=mtls-client"}); err != nil {
		t.Fatal(err)
	}
	if err := a.AddClient(standin.AuthClient{ID: "basic-client", Secret: "s3cret-basic"}); err != nil {
		t.Fatal(err)
	}
	mtls := map[string]interface{}{"issuer": a.Issuer(), "client_id": "mtls-client", "grant_type": "client_credentials",
		"auth_style": "tls_client_auth", "tls_client_certificate": cert.CertPEM, "tls_client_key": cert.KeyPEM, "ca_bundle": a.ServerCA().CertPEM()}
	env.write(t, "mtls", mtls)
	env.readToken(t, "mtls")
	inEffect := func(path string) interface{} {
		resp, err := env.request(t, logical.ReadOperation, path, nil)
		if err != nil || resp == nil || resp.IsError() {
			t.Fatalf("read %s: %v %v", path, err, resp)
		}
		return resp.Data["token_url"]
	}
	alias, plain := a.Endpoints(standin.MutualTLS).Token, a.Endpoints(standin.Plain).Token
	if got := inEffect("config/mtls"); got != alias {
		t.Errorf("config/mtls sends to %v, want the alias %s", got, alias)
	}

	// An app's connections.
	appCfg := map[string]interface{}{}
	for k, v := range mtls {
		appCfg[k] = v
	}
	if resp, err := env.request(t, logical.CreateOperation, "apps/m", appCfg); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	if got := inEffect("apps/m"); got != alias {
		t.Errorf("apps/m sends to %v, want the alias %s", got, alias)
	}

	// A client that sends its secret keeps the issuer's endpoints.
	env.write(t, "basic", map[string]interface{}{"issuer": a.Issuer(), "client_id": "basic-client", "client_secret": "s3cret-basic", "grant_type": "client_credentials"})
	env.readToken(t, "basic")
	if got := inEffect("config/basic"); got != plain {
		t.Errorf("config/basic sends to %v, want %s", got, plain)
	}

	// An explicit token_url wins over the alias.
	explicit := map[string]interface{}{}
	for k, v := range mtls {
		explicit[k] = v
	}
	explicit["token_url"] = plain
	env.write(t, "explicit", explicit)
	resp, err := env.request(t, logical.ReadOperation, "token/explicit", nil)
	mustErr(t, resp, err, "invalid_client")
}

// Item 8: a requested response field whose value was a JSON object was
// dropped with no word (an Omitted list nothing read), numbers came back
// as strings. Each comes back as it came now, kept and secret fields
// alike; one too large to keep is named in the read's warnings.
func TestResponseFieldsComeBackAsTheyCame(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	a := authServer(t)
	big := strings.Repeat("x", tokenclient.MaxResponseFieldBytes+1)
	if err := a.AddClient(standin.AuthClient{ID: "c", Secret: "s3cret-fields", ResponseFields: map[string]any{
		"instance_url": "https://na1.example", "uid": json.Number("12345678901234567890"), "ratio": 1.5, "active": true,
		"org": map[string]any{"id": "o1", "regions": []any{"eu", "us"}}, "tags": []any{"a", "b"}, "gone": nil, "huge": big,
	}}); err != nil {
		t.Fatal(err)
	}
	env.write(t, "f", map[string]interface{}{"token_url": a.Endpoints(standin.Plain).Token, "client_id": "c", "client_secret": "s3cret-fields",
		"grant_type": "client_credentials", "response_fields": "instance_url,uid,ratio,active,org,gone,huge", "secret_response_fields": "tags"})
	resp := env.readToken(t, "f")
	for k, want := range map[string]string{
		"instance_url": `"https://na1.example"`, "uid": `12345678901234567890`, "ratio": `1.5`, "active": `true`,
		"org": `{"id":"o1","regions":["eu","us"]}`, "tags": `["a","b"]`, "gone": `null`,
	} {
		v, ok := resp.Data[k]
		if !ok {
			t.Errorf("%s was dropped", k)
			continue
		}
		got, _ := json.Marshal(v)
		if string(got) != want {
			t.Errorf("%s = %s, want %s", k, got, want)
		}
	}
	if _, ok := resp.Data["huge"]; ok {
		t.Error("a field over the bound was handed out")
	}
	if w := strings.Join(resp.Warnings, "\n"); !strings.Contains(w, "huge") || !strings.Contains(w, "16 KiB") {
		t.Errorf("no warning names the field too large to keep: %q", resp.Warnings)
	}
	// From the cache, and after a restart (from storage), the same.
	again := env.readToken(t, "f")
	fresh := newTestEnvOver(t, env)
	stored := fresh.readToken(t, "f")
	for _, r := range []*logical.Response{again, stored} {
		got, _ := json.Marshal(r.Data["org"])
		if string(got) != `{"id":"o1","regions":["eu","us"]}` {
			t.Errorf("org = %s on a later read", got)
		}
	}
}

// Item 8: a denied device flow recorded an empty detail (the vendor's
// error_description was lost), and the token read of a credential with a
// device flow but no authorization URL said only to write a new refresh
// token, not to use device/<name>.
func TestDeniedDeviceFlowSaysWhyAndWhatNext(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	a := authServer(t)
	if err := a.AddClient(standin.AuthClient{ID: "dev", Secret: "dev-secret"}); err != nil {
		t.Fatal(err)
	}
	env.write(t, "dev", map[string]interface{}{"issuer": a.Issuer(), "client_id": "dev", "client_secret": "dev-secret", "grant_type": "refresh_token"})
	resp, err := env.request(t, logical.ReadOperation, "token/dev", nil)
	mustErr(t, resp, err, "vault write -f vendoroauth/device/dev", "write a new refresh_token to vendoroauth/config/dev")
	if strings.Contains(resp.Error().Error(), "authorize/dev") {
		t.Errorf("advice names authorize/ for a credential without an authorization URL: %v", resp.Error())
	}
	resp, err = env.request(t, logical.UpdateOperation, "device/dev", nil)
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	if err := a.DenyDevice(resp.Data["user_code"].(string)); err != nil {
		t.Fatal(err)
	}
	env.b.creds.PollDeviceNow(context.Background(), env.storage, "dev")
	resp, err = env.request(t, logical.ReadOperation, "device/dev", nil)
	if err != nil || resp == nil {
		t.Fatal(err, resp)
	}
	detail, _ := resp.Data["detail"].(string)
	if resp.Data["status"] != "denied" || !strings.Contains(detail, "the user denied the authorization") || !strings.Contains(detail, "vault write -f vendoroauth/device/dev") {
		t.Errorf("a denied flow reads status %v, detail %q", resp.Data["status"], detail)
	}
}

// authzKeys lists every stored authorization.
func authzKeys(t *testing.T, env *testEnv) []string {
	t.Helper()
	var out []string
	var walk func(prefix string)
	walk = func(prefix string) {
		keys, err := env.storage.InmemStorage.List(context.Background(), prefix)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if strings.HasSuffix(k, "/") {
				walk(prefix + k)
			} else {
				out = append(out, prefix+k)
			}
		}
	}
	walk(store.AuthzPrefix)
	return out
}

// Item 3: expired authorizations were deleted only by a later authorize
// of the same name: 200 open authorizations of new accounts, with 64 KiB
// of metadata each, stayed stored for good. Now the periodic call sweeps
// the expired ones, in pages of bounded work; the open ones, of
// connections and of a self-contained credential, stay.
func TestExpiredAuthorizationsAreSwept(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	env.penboxApp(t, "partner", nil)
	env.penbox(t, "solo", map[string]interface{}{"authorize_url": env.url + "/penbox/authorize"})
	authorize := func(name string) {
		t.Helper()
		resp, err := env.request(t, logical.UpdateOperation, "authorize/"+name, map[string]interface{}{
			"redirect_uri": partnerCallback, "metadata": "customer=" + strings.Repeat("c", 3000)})
		if err != nil || resp.IsError() {
			t.Fatalf("authorize/%s: %v %v", name, err, resp)
		}
	}
	for i := range 200 {
		authorize(fmt.Sprintf("partner/new-%03d", i))
	}
	authorize("solo")
	authorize("partner/new-000") // a second for one account
	clk.add(backend.StateTTL + time.Second)
	// Still open: started after the others expired.
	authorize("partner/late")
	authorize("solo")
	env.b.creds.SetSweepPage(50)
	pages := 0
	for !env.b.creds.SweepAuthorizations(context.Background(), env.storage) {
		if pages++; pages > 100 {
			t.Fatal("the sweep does not finish a pass")
		}
	}
	if pages < 4 {
		t.Errorf("a pass over 200 authorizations took %d pages of 50 operations", pages+1)
	}
	keys := authzKeys(t, env)
	if len(keys) != 2 {
		t.Fatalf("after the sweep %d authorizations are stored, want the 2 still open: %v", len(keys), keys[:min(len(keys), 4)])
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, store.AuthzPrefix+"partner/late/") && !strings.HasPrefix(k, store.AuthzPrefix+"solo/") {
			t.Errorf("%s is still stored", k)
		}
	}
	// Through the periodic call too, once these expire.
	clk.add(backend.StateTTL + time.Second)
	env.b.creds.SetSweepPage(0)
	if err := env.b.creds.Tick(context.Background(), env.storage, true); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(authzKeys(t, env)) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if keys := authzKeys(t, env); len(keys) != 0 {
		t.Errorf("the periodic call left %v", keys)
	}
}

// Item 3: an authorization's metadata is bounded, alone and merged into
// the connection's, and so is what a config write gives.
func TestMetadataIsBounded(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.penboxApp(t, "partner", nil)
	big := "customer=" + strings.Repeat("c", 64<<10)
	resp, err := env.request(t, logical.UpdateOperation, "authorize/partner/a", map[string]interface{}{"redirect_uri": partnerCallback, "metadata": big})
	mustErr(t, resp, err, "metadata: at most 4 KiB")
	many := make([]string, 0, 40)
	for i := range 40 {
		many = append(many, fmt.Sprintf("k%d=v", i))
	}
	resp, err = env.request(t, logical.UpdateOperation, "authorize/partner/a", map[string]interface{}{"redirect_uri": partnerCallback, "metadata": many})
	mustErr(t, resp, err, "at most 32 key=value pairs")
	resp, err = env.request(t, logical.CreateOperation, "config/partner/b", map[string]interface{}{"refresh_token": "rt", "metadata": big})
	mustErr(t, resp, err, "config/partner/b was not changed: metadata: at most 4 KiB")
	env.write(t, "partner/c", map[string]interface{}{"refresh_token": "rt", "metadata": "a=" + strings.Repeat("x", 3000)})
	resp, err = env.request(t, logical.UpdateOperation, "authorize/partner/c", map[string]interface{}{"redirect_uri": partnerCallback, "metadata": "b=" + strings.Repeat("y", 3000)})
	mustErr(t, resp, err, "with the connection's own")
	if keys := authzKeys(t, env); len(keys) != 0 {
		t.Errorf("refused authorizations were stored: %v", keys)
	}
}

// Item 3: an app's connections may have at most max_open_authorizations
// open at a time; one more is refused with the way out, and counts again
// once one is exchanged or expires. A new backend (a restart, a failover)
// counts what is stored.
func TestOpenAuthorizationsPerAppAreBounded(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	env.penboxApp(t, "partner", map[string]interface{}{"max_open_authorizations": 3})
	start := func(env *testEnv, name string) (*logical.Response, error) {
		return env.request(t, logical.UpdateOperation, "authorize/"+name, map[string]interface{}{"redirect_uri": partnerCallback})
	}
	var first *logical.Response
	for i := range 3 {
		resp, err := start(env, fmt.Sprintf("partner/a%d", i))
		if err != nil || resp.IsError() {
			t.Fatal(err, resp)
		}
		if i == 0 {
			first = resp
		}
	}
	resp, err := start(env, "partner/a3")
	mustErr(t, resp, err, `app "partner" has 3 authorizations open`, "max_open_authorizations", "vault write vendoroauth/apps/partner")
	// Another backend over the same storage counts them too.
	other := newTestEnvOver(t, env)
	other.b.creds.SetClock(clk.now)
	resp, err = start(other, "partner/a3")
	mustErr(t, resp, err, "max_open_authorizations")
	// One exchanged frees a place.
	code, state := follow(t, first.Data["url"].(string))
	if resp, err := env.request(t, logical.UpdateOperation, "exchange/partner/a0", map[string]interface{}{"code": code, "state": state}); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	if resp, err := start(env, "partner/a3"); err != nil || resp.IsError() {
		t.Fatalf("after an exchange: %v %v", err, resp)
	}
	resp, err = start(env, "partner/a4")
	mustErr(t, resp, err, "max_open_authorizations")
	// Expired ones do not count.
	clk.add(backend.StateTTL + time.Second)
	for i := 4; i < 7; i++ {
		if resp, err := start(env, fmt.Sprintf("partner/a%d", i)); err != nil || resp.IsError() {
			t.Fatalf("after the others expired: %v %v", err, resp)
		}
	}
	// The bound is the app's, and has a floor and a ceiling.
	resp, err = env.request(t, logical.UpdateOperation, "apps/partner", map[string]interface{}{"max_open_authorizations": -1})
	mustErr(t, resp, err, "cannot be negative")
	resp, err = env.request(t, logical.UpdateOperation, "apps/partner", map[string]interface{}{"max_open_authorizations": 1 << 20})
	mustErr(t, resp, err, "at most 100000")
}

// listKeys is LIST path's keys.
func listKeys(t *testing.T, env *testEnv, path string) []string {
	t.Helper()
	resp, err := env.request(t, logical.ListOperation, path, nil)
	if err != nil || resp.IsError() {
		t.Fatalf("LIST %s: %v %v", path, err, resp)
	}
	keys, _ := resp.Data["keys"].([]string)
	return keys
}

// Item 4 (and issue 20's bookkeeping): a credential converted with
// config/<x> app=<app> keeps its name, outside config/<app>/. The active
// node's index filed it under the app, so LIST config/<app>/ (a partner's
// policy) and status/<app> showed it while a standby, which lists storage,
// did not; config/<app>/<x> was a 404 all the same, and the mount status
// showed it as provider generic. Now names are filed where storage files
// them, on every node, and the mount status shows the converted credential
// with its app and the app's provider.
func TestConvertedCredentialIsNotListedUnderItsApp(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.penboxApp(t, "partner", nil)
	env.write(t, "partner/a", map[string]interface{}{"refresh_token": "rt-a"})
	env.penbox(t, "x", nil)
	env.write(t, "x", map[string]interface{}{"app": "partner", "refresh_token": "rt-x"})
	if err := env.b.creds.Tick(context.Background(), env.storage, true); err != nil {
		t.Fatal(err)
	}
	waitLoaded(t, env)
	standby := newTestEnvOver(t, env) // no index: it lists storage
	for _, node := range []struct {
		name string
		env  *testEnv
	}{{"active", env}, {"standby", standby}} {
		if keys := listKeys(t, node.env, "config/partner/"); !slices.Equal(keys, []string{"a"}) {
			t.Errorf("%s: LIST config/partner/ = %v, want [a]", node.name, keys)
		}
		if keys := listKeys(t, node.env, "config/"); !slices.Contains(keys, "x") || !slices.Contains(keys, "partner/") {
			t.Errorf("%s: LIST config/ = %v, want x and partner/", node.name, keys)
		}
	}
	resp, err := env.request(t, logical.ReadOperation, "status/partner", nil)
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	if n := resp.Data["counts"].(map[string]interface{})["total"]; n != 1 {
		t.Errorf("status/partner counts %v connections, want 1 (x is not named under it)", n)
	}
	resp, err = env.request(t, logical.ReadOperation, "status", nil)
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	x, _ := resp.Data["credentials"].(map[string]interface{})["x"].(map[string]interface{})
	if x == nil || x["app"] != "partner" || x["provider"] != "penbox" {
		t.Errorf("the mount status shows x as %v, want app partner, provider penbox", x)
	}
	if n := resp.Data["self_contained"].(map[string]interface{})["total"]; n != 1 {
		t.Errorf("the mount status counts %v credentials under no app, want 1 (x)", n)
	}
	// A write that moves the app cancels the flows of x too: it is one of
	// the app's connections wherever its name is.
	resp, err = env.request(t, logical.UpdateOperation, "authorize/x", map[string]interface{}{"redirect_uri": partnerCallback})
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	if n, err := env.b.creds.CancelAppFlows(context.Background(), env.storage, "partner"); err != nil || n != 1 {
		t.Errorf("cancelling the app's flows ended %d (%v), want x's one", n, err)
	}
	if keys := authzKeys(t, env); len(keys) != 0 {
		t.Errorf("left open: %v", keys)
	}
}

// Issue 20's bookkeeping: status/<typo> answered 200 with zero counts, a
// typo reading as a healthy, empty app; after DELETE apps/<app> its
// connections were still counted healthy, and the delete did not say how
// many connections it left without their app.
func TestStatusOfUnknownAndDeletedApps(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.penboxApp(t, "partner", nil)
	env.write(t, "partner/a", map[string]interface{}{"refresh_token": "rt-a"})
	env.write(t, "partner/b", map[string]interface{}{"refresh_token": "rt-b"})
	if err := env.b.creds.Tick(context.Background(), env.storage, true); err != nil {
		t.Fatal(err)
	}
	waitLoaded(t, env)
	resp, err := env.request(t, logical.ReadOperation, "status/partnr", nil)
	if err == nil || !strings.Contains(err.Error(), `there is no app "partnr"`) || !strings.Contains(err.Error(), "vault list vendoroauth/apps/") {
		t.Errorf("status of a typo: %v %v", resp, err)
	}
	resp, err = env.request(t, logical.DeleteOperation, "apps/partner", nil)
	if err != nil || resp == nil || !strings.Contains(strings.Join(resp.Warnings, " "), "2 connection(s) under vendoroauth/config/partner/") {
		t.Fatalf("deleting the app: %v %v", resp, err)
	}
	for _, path := range []string{"status/partner", "status"} {
		resp, err = env.request(t, logical.ReadOperation, path, nil)
		if err != nil || resp.IsError() {
			t.Fatal(err, resp)
		}
		counts, _ := resp.Data["counts"].(map[string]interface{})
		if path == "status" {
			counts, _ = resp.Data["apps"].(map[string]interface{})["partner"].(map[string]interface{})
		}
		if counts[backend.StateAppMissing] != 2 || counts[backend.StateHealthy] != 0 {
			t.Errorf("%s counts %v, want 2 app_missing, 0 healthy", path, counts)
		}
		if !strings.Contains(strings.Join(resp.Warnings, " "), `there is no app "partner"`) {
			t.Errorf("%s does not warn of the missing app: %v", path, resp.Warnings)
		}
	}
}

// Item 2: the one refresher held a worker while it slept for a rate slot
// and waited for a whole batch, so one app at a low refresh_rate, or many
// due connections at one slow vendor at the default limits, stalled every
// other credential's background refresh: another app's keep-alive came
// long after it was due. Now a refresh whose turn is later waits on the
// schedule or in its group's queue, and the loop never waits for a batch.
func TestOneSlowAppDoesNotStallAnothersKeepAlive(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		slow map[string]interface{}
		// maxSlow bounds the slow app's keep-alives in the 5 s after
		// they were due: its own limits hold.
		maxSlow int
	}{
		{"refresh_rate at its lower bound", map[string]interface{}{"refresh_rate": model.MinRefreshRate}, 1},
		{"the default limits", map[string]interface{}{}, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			late, slowRefreshes := slowAppAndFastKeepAlive(t, tc.slow)
			t.Logf("the fast app's keep-alive came %s after it was due, with 50 of the slow app's due at a vendor answering in 2 s", late.Round(time.Millisecond))
			if late > 2*time.Second {
				t.Errorf("the fast app's keep-alive came %s late", late)
			}
			if slowRefreshes > tc.maxSlow {
				t.Errorf("the slow app made %d keep-alives in 5 s, over its limits", slowRefreshes)
			}
		})
	}
}

// slowAppAndFastKeepAlive sets up an app whose 50 connections are due for
// a keep-alive at a vendor that answers in 2 s, and another app whose one
// connection's keep-alive is due 3 s later at a prompt vendor, with the
// timer-driven refresher running; it returns how late the second came and
// how many keep-alives the first made in the 5 s after theirs were due.
func slowAppAndFastKeepAlive(t *testing.T, slowExtra map[string]interface{}) (late time.Duration, slowRefreshes int) {
	t.Helper()
	env := newTestEnv(t)
	t.Cleanup(func() { env.b.clean(context.Background()) })
	slowV := env.vendors.Vendor(standin.VendorGeneric)
	fastSrv := standin.New()
	fastHTTP := httptest.NewServer(fastSrv)
	t.Cleanup(fastHTTP.Close)
	fastV := fastSrv.Vendor(standin.VendorGeneric)
	app := func(name, tokenURL string, v *standin.Vendor, extra map[string]interface{}) {
		t.Helper()
		v.AddClient(standin.Client{ID: name, Secret: name + "-secret"})
		data := map[string]interface{}{"token_url": tokenURL, "client_id": name, "client_secret": name + "-secret", "grant_type": "refresh_token"}
		for k, val := range extra {
			data[k] = val
		}
		if resp, err := env.request(t, logical.CreateOperation, "apps/"+name, data); err != nil || resp.IsError() {
			t.Fatal(err, resp)
		}
	}
	slowCfg := map[string]interface{}{"keepalive_interval": 2}
	for k, v := range slowExtra {
		slowCfg[k] = v
	}
	app("slow", env.url+slowV.TokenPath(), slowV, slowCfg)
	app("fast", fastHTTP.URL+fastV.TokenPath(), fastV, map[string]interface{}{"keepalive_interval": 5})
	for i := range 50 {
		rt := fmt.Sprintf("rt-slow-%02d", i)
		slowV.AddRefreshToken("slow", rt)
		env.write(t, fmt.Sprintf("slow/a%02d", i), map[string]interface{}{"refresh_token": rt})
		env.readToken(t, fmt.Sprintf("slow/a%02d", i))
	}
	fastV.AddRefreshToken("fast", "rt-fast")
	env.write(t, "fast/a", map[string]interface{}{"refresh_token": "rt-fast"})
	env.readToken(t, "fast/a")
	due := time.Now().Add(5 * time.Second)
	slowV.SetBehavior(standin.Behavior{Delay: 2 * time.Second})
	before := fastV.Stats().Requests
	if err := env.b.creds.Tick(context.Background(), env.storage, true); err != nil {
		t.Fatal(err)
	}
	deadline := due.Add(10 * time.Second)
	for fastV.Stats().Requests == before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if fastV.Stats().Requests == before {
		t.Fatalf("the fast app's keep-alive, due 5 s after its token, had not come 10 s after that")
	}
	late = time.Since(due)
	time.Sleep(time.Until(due.Add(2 * time.Second)))
	return late, slowV.Stats().Grants - 50
}

// Item 2: refresh_rate has a lower bound.
func TestRefreshRateHasALowerBound(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.penboxApp(t, "partner", nil)
	resp, err := env.request(t, logical.UpdateOperation, "apps/partner", map[string]interface{}{"refresh_rate": 0.001})
	mustErr(t, resp, err, "refresh_rate is at least 0.1")
	if resp, err := env.request(t, logical.UpdateOperation, "apps/partner", map[string]interface{}{"refresh_rate": model.MinRefreshRate}); err != nil || resp.IsError() {
		t.Errorf("refresh_rate at the bound: %v %v", err, resp)
	}
}

// countReads counts the storage reads of keys under prefix.
func countReads(env *testEnv, prefix string) *atomic.Int32 {
	var n atomic.Int32
	env.storage.setFailGet(func(key string) bool {
		if strings.HasPrefix(key, prefix) {
			n.Add(1)
		}
		return false
	})
	return &n
}

// initialize calls the backend's InitializeFunc, as Vault does once the
// mount is set up.
func (e *testEnv) initialize(t *testing.T) {
	t.Helper()
	if err := e.b.Initialize(context.Background(), &logical.InitializationRequest{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
}

// Item 9: after a start the index behind LIST config/<app>/ and status,
// and the refresh schedule, were rebuilt by reading every entry, one
// storage read each (80 s at 100,000 connections), beginning at Vault's
// first periodic call. What they need is stored now, in a few shards: a
// start lists the names and reads the shards, and the load begins when
// the backend initialises.
func TestStartLoadsTheStoredIndex(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	v := env.penboxApp(t, "partner", nil)
	const n = 300
	for i := range n {
		env.write(t, fmt.Sprintf("partner/a%03d", i), map[string]interface{}{"refresh_token": fmt.Sprintf("rt-%03d", i)})
	}
	v.AddRefreshToken("pb-id", "rt-007")
	env.readToken(t, "partner/a007") // its keep-alive is scheduled from then on
	// One that needs reauthorization (the vendor does not know its
	// refresh token), one static token, one self-contained credential.
	env.write(t, "partner/dead", map[string]interface{}{"refresh_token": "unknown"})
	if resp, _ := env.request(t, logical.ReadOperation, "token/partner/dead", nil); resp == nil || !resp.IsError() {
		t.Fatalf("token/partner/dead: %v", resp)
	}
	env.write(t, "st", map[string]interface{}{"provider": "penbox", "grant_type": "static", "access_token": "user-minted-token", "ttl": "24h"})
	env.penbox(t, "solo", nil)
	if err := env.b.creds.Tick(context.Background(), env.storage, true); err != nil {
		t.Fatal(err)
	}
	waitLoaded(t, env)
	keepAlive := env.b.creds.NextRefresh("partner/a007")
	env.b.clean(context.Background()) // a reload: the stored index is up to date

	next := newTestEnvOver(t, env)
	reads := countReads(next, store.EntryPrefix)
	next.initialize(t) // no periodic call
	waitLoaded(t, next)
	if got := reads.Load(); got != 0 {
		t.Errorf("the load after a start read %d entries, want none", got)
	}
	if keys := listKeys(t, next, "config/partner/"); len(keys) != n+1 {
		t.Errorf("LIST config/partner/ = %d names, want %d", len(keys), n+1)
	}
	resp, err := next.request(t, logical.ReadOperation, "status/partner", nil)
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	if c := resp.Data["counts"].(map[string]interface{}); c[backend.StateReauth] != 1 || c["total"] != n+1 {
		t.Errorf("status/partner counts %v", c)
	}
	if got := next.b.creds.NextRefresh("partner/a007"); keepAlive.IsZero() || !got.Equal(keepAlive.Truncate(time.Second)) {
		t.Errorf("partner/a007's keep-alive is scheduled at %v, want %v", got, keepAlive)
	}
	if got := reads.Load(); got != 0 {
		t.Errorf("answering read %d entries", got)
	}
}

// Item 9: the stored index is written after the entries, in batches, and
// may trail them; a start loses nothing by it. A name written since its
// last write (and a crash before the next) is read one by one, a name
// deleted since is not listed, and a change that would mislead a start (a
// state, a keep-alive due earlier) is written at once.
func TestStoredIndexTrailingLosesNothing(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	v := env.penboxApp(t, "partner", nil)
	for i := range 5 {
		v.AddRefreshToken("pb-id", fmt.Sprintf("rt-%d", i))
		env.write(t, fmt.Sprintf("partner/a%d", i), map[string]interface{}{"refresh_token": fmt.Sprintf("rt-%d", i)})
		env.readToken(t, fmt.Sprintf("partner/a%d", i))
	}
	if err := env.b.creds.Tick(context.Background(), env.storage, true); err != nil {
		t.Fatal(err)
	}
	waitLoaded(t, env)
	env.b.clean(context.Background())
	env = newTestEnvOver(t, env)
	env.b.creds.SetClock(clk.now)
	env.initialize(t)
	waitLoaded(t, env)
	// Since the last write of the stored index: a new name and a deleted
	// one, then a crash (no Close writes the batch).
	env.write(t, "partner/new", map[string]interface{}{"refresh_token": "rt-new"})
	if resp, err := env.request(t, logical.DeleteOperation, "config/partner/a0", nil); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	crashed := newTestEnvOver(t, env)
	crashed.b.creds.SetClock(clk.now)
	reads := countReads(crashed, store.EntryPrefix)
	crashed.initialize(t)
	waitLoaded(t, crashed)
	if keys := listKeys(t, crashed, "config/partner/"); !slices.Equal(keys, []string{"a1", "a2", "a3", "a4", "new"}) {
		t.Errorf("LIST config/partner/ = %v", keys)
	}
	if got := reads.Load(); got != 1 {
		t.Errorf("the load read %d entries, want 1 (partner/new)", got)
	}
	crashed.b.clean(context.Background())

	// A state that changed and a keep-alive due earlier are written at
	// once, not with the next batch: a crash a moment later keeps them.
	env = newTestEnvOver(t, env)
	env.b.creds.SetClock(clk.now)
	env.initialize(t)
	waitLoaded(t, env)
	env.write(t, "partner/a1", map[string]interface{}{"refresh_token": "unknown"})
	if resp, _ := env.request(t, logical.ReadOperation, "token/partner/a1", nil); resp == nil || !resp.IsError() {
		t.Fatalf("token/partner/a1: %v", resp)
	}
	env.write(t, "partner/a2", map[string]interface{}{"keepalive_interval": "1h"})
	earlier := env.b.creds.NextRefresh("partner/a2")
	time.Sleep(1500 * time.Millisecond)
	crashed = newTestEnvOver(t, env)
	crashed.b.creds.SetClock(clk.now)
	crashed.initialize(t)
	waitLoaded(t, crashed)
	resp, err := crashed.request(t, logical.ReadOperation, "status/partner", nil)
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	if c := resp.Data["counts"].(map[string]interface{}); c[backend.StateReauth] != 1 {
		t.Errorf("status/partner counts %v, want partner/a1 needing reauthorization", c)
	}
	if got := crashed.b.creds.NextRefresh("partner/a2"); got.IsZero() || got.After(earlier) {
		t.Errorf("partner/a2's keep-alive is scheduled at %v, after %v", got, earlier)
	}
}

// Item 2: a keep-alive scheduled by a write while the refresher slept (it
// sleeps until the earliest time it knows of, at most a tick) waited for
// that sleep to end: up to a minute late. A write that makes a name due
// sooner wakes it.
func TestKeepAliveScheduledWhileTheRefresherSleepsIsOnTime(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	t.Cleanup(func() { env.b.clean(context.Background()) })
	v := env.vendors.Vendor(standin.VendorGeneric)
	v.AddClient(standin.Client{ID: "ka", Secret: "ka-secret"})
	if resp, err := env.request(t, logical.CreateOperation, "apps/ka", map[string]interface{}{"token_url": env.url + v.TokenPath(), "client_id": "ka", "client_secret": "ka-secret",
		"grant_type": "refresh_token", "keepalive_interval": 2}); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	// The refresher runs, with nothing scheduled: it sleeps a tick.
	if err := env.b.creds.Tick(context.Background(), env.storage, true); err != nil {
		t.Fatal(err)
	}
	waitLoaded(t, env)
	time.Sleep(100 * time.Millisecond)
	v.AddRefreshToken("ka", "rt-ka")
	env.write(t, "ka/a", map[string]interface{}{"refresh_token": "rt-ka"})
	env.readToken(t, "ka/a")
	due := time.Now().Add(2 * time.Second)
	before := v.Stats().Requests
	for v.Stats().Requests == before && time.Now().Before(due.Add(5*time.Second)) {
		time.Sleep(20 * time.Millisecond)
	}
	if late := time.Since(due); v.Stats().Requests == before || late > time.Second {
		t.Errorf("the keep-alive came %s after it was due (or not at all)", late.Round(time.Millisecond))
	}
}
