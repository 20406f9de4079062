package vendoroauth

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
)

// Golden files pin what users see (the OpenAPI document, each path's
// help, config and app reads) and the bytes stored for each kind of
// entry, so that a restructure of the code can be checked to change
// neither. Rewrite them from the current behaviour with
//
//	go test -run TestGolden -update-golden .

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden from the current behaviour")

const goldenDir = "testdata/golden"

// goldenNow is the managers' clock, so the times shown and stored are
// the same on every run.
var goldenNow = time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)

func TestGolden(t *testing.T) {
	got := map[string]string{}
	goldenDocs(t, got)
	goldenVendors(t, got)
	goldenAuthServer(t, got)
	goldenProbe(t, got)
	checkGolden(t, got)
}

// goldenEnv is a test backend on the fixed clock that records what it is
// asked to into out, one file per item.
type goldenEnv struct {
	*testEnv
	t   *testing.T
	clk *clock
	out map[string]string
}

func newGoldenEnv(t *testing.T, out map[string]string) *goldenEnv {
	t.Helper()
	e := newTestEnv(t)
	clk := &clock{t: goldenNow}
	e.b.creds.SetClock(clk.now)
	t.Cleanup(func() { e.b.Cleanup(context.Background()) })
	return &goldenEnv{testEnv: e, t: t, clk: clk, out: out}
}

// do makes a request that must succeed.
func (g *goldenEnv) do(op logical.Operation, path string, data map[string]interface{}) *logical.Response {
	g.t.Helper()
	resp, err := g.request(g.t, op, path, data)
	if err != nil || resp.IsError() {
		g.t.Fatalf("%s %s: %v %v", op, path, err, resp)
	}
	return resp
}

// record keeps resp's data and warnings as file.
func (g *goldenEnv) record(file string, resp *logical.Response) {
	g.t.Helper()
	if resp == nil || len(resp.Data) == 0 {
		g.t.Fatalf("%s: empty answer", file)
	}
	g.put(file, map[string]interface{}{"data": resp.Data, "warnings": resp.Warnings})
}

// read records a read of path as file.
func (g *goldenEnv) read(file, path string) {
	g.t.Helper()
	g.record(file, g.do(logical.ReadOperation, path, nil))
}

// stored records the storage entry at key, as stored, as file.
func (g *goldenEnv) stored(file, key string) {
	g.t.Helper()
	raw, err := g.storage.InmemStorage.Get(context.Background(), key)
	if err != nil || raw == nil || len(raw.Value) == 0 {
		g.t.Fatalf("%s: no entry at %s (%v)", file, key, err)
	}
	// The value as stored; one that is not JSON (the probe's time) as
	// text. The in-memory storage keeps no SealWrap flag: paths-special.json
	// has the seal-wrapped prefixes.
	var value interface{} = string(raw.Value)
	if json.Valid(raw.Value) {
		value = json.RawMessage(raw.Value)
	}
	g.put(file, map[string]interface{}{"key": key, "value": value})
}

// storedUnder records the one entry under prefix.
func (g *goldenEnv) storedUnder(file, prefix string) {
	g.t.Helper()
	keys, err := g.storage.InmemStorage.List(context.Background(), prefix)
	if err != nil || len(keys) != 1 {
		g.t.Fatalf("%s: want one entry under %s, got %v (%v)", file, prefix, keys, err)
	}
	g.stored(file, prefix+keys[0])
}

// put records v as file: pretty-printed JSON, keys sorted at every level
// (struct fields too: v is decoded and encoded again).
func (g *goldenEnv) put(file string, v interface{}) {
	g.t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		g.t.Fatalf("%s: %v", file, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic interface{}
	if err := dec.Decode(&generic); err != nil {
		g.t.Fatalf("%s: %v", file, err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(generic) // decoded JSON always encodes
	addGolden(g.t, g.out, file, buf.String())
}

func addGolden(t *testing.T, out map[string]string, file, content string) {
	t.Helper()
	if _, dup := out[file]; dup {
		t.Fatalf("golden file %s made twice", file)
	}
	out[file] = normaliseGolden(content)
}

// goldenMasks replace what differs from run to run with placeholders.
// The managers' clock is fixed, so only times from the wall clock need
// one.
var goldenMasks = []struct {
	re *regexp.Regexp
	to string
}{
	{regexp.MustCompile(`127\.0\.0\.1:[0-9]+`), "127.0.0.1:PORT"},
	// Tokens and codes the stand-ins mint: <vendor>-<kind>-<random>.
	{regexp.MustCompile(`\b(as|generic|officernd|boldpenguin|eshopbox|penbox)-([a-z]+)-[A-Za-z0-9_-]{16,}`), "$1-$2-<random>"},
	// Certificates and keys in PEM.
	{regexp.MustCompile(`(-----BEGIN [A-Z ]+-----)[^-]+(-----END)`), "$1<random>$2"},
	// PKCE verifiers, kids, key material, device and user codes.
	{regexp.MustCompile(`"(code_verifier|kid|private_pkcs8|public_pkix|device_code|user_code)": "[^"]+"`), `"$1": "<random>"`},
	// An authorization's state, alone and in its URL.
	{regexp.MustCompile(`"state": "[A-Za-z0-9_-]{32}"`), `"state": "<random>"`},
	{regexp.MustCompile(`([?&](?:state|code_challenge|user_code)=)[^&"]+`), "$1<random>"},
	// Hashes of states in storage keys.
	{regexp.MustCompile(`\b[0-9a-f]{64}\b`), "<sha256>"},
	// When the backend started: the wall clock's.
	{regexp.MustCompile(`"counted_since": "[^"]+"`), `"counted_since": "<time>"`},
}

func normaliseGolden(s string) string {
	for _, m := range goldenMasks {
		s = m.re.ReplaceAllString(s, m.to)
	}
	return s
}

// goldenDocs records the OpenAPI document, the root help and the help of
// every path, at an example of each pattern (both a plain name and an
// <app>/<account> one where the pattern takes either).
func goldenDocs(t *testing.T, out map[string]string) {
	g := newGoldenEnv(t, out)
	// The root help asks Vault its version for the OpenAPI document.
	g.system.PluginEnvironment = &logical.PluginEnvironment{VaultVersion: "golden"}
	root := g.do(logical.HelpOperation, "", nil)
	g.put("openapi.json", root.Data["openapi"])
	g.put("paths-special.json", g.b.Backend.PathsSpecial)
	addGolden(t, out, "help/root.txt", root.Data["help"].(string))
	for _, p := range g.b.Backend.Paths {
		for _, path := range examplePaths(p.Pattern) {
			help, _ := g.do(logical.HelpOperation, path, nil).Data["help"].(string)
			if !strings.Contains(help, "Matching Route: "+p.Pattern+"\n") {
				t.Fatalf("help of %s is not that of %s:\n%s", path, p.Pattern, help)
			}
			file := strings.ReplaceAll(strings.TrimSuffix(path, "/"), "/", "_")
			addGolden(t, out, "help/"+file+".txt", help)
		}
	}
}

// examplePaths are concrete paths that a pattern (anchored by the SDK)
// matches.
func examplePaths(pattern string) []string {
	p := strings.TrimPrefix(strings.ReplaceAll(pattern, appName, "app1"), "^")
	p = strings.TrimSuffix(strings.TrimSuffix(p, "$"), "?")
	if strings.Contains(p, credentialName) {
		return []string{strings.ReplaceAll(p, credentialName, "x"), strings.ReplaceAll(p, credentialName, "app1/acct")}
	}
	return []string{p}
}

// goldenPreset is a credential and an app of one preset, with what the
// preset needs, against the stand-in.
type goldenPreset struct {
	name        string
	config, app map[string]interface{}
}

func goldenPresets(g *goldenEnv) []goldenPreset {
	v := g.vendors
	v.Vendor("generic").AddClient(standin.Client{ID: "g-id", Secret: "g-secret"})
	v.Vendor("officernd").AddClient(standin.Client{ID: "o-id", Secret: "o-secret", Scopes: []string{"officernd.api.read"}})
	v.Vendor("boldpenguin").AddClient(standin.Client{ID: "bp-id", Secret: "bp-secret", APIKey: "bp-api-key"})
	v.Vendor("eshopbox").AddClient(standin.Client{ID: "e-id", Secret: "e-secret"})
	v.Vendor("penbox").AddClient(standin.Client{ID: "pb-id", Secret: "pb-secret"})
	tokenURL := func(name string) string { return g.url + v.Vendor(name).TokenPath() }
	return []goldenPreset{
		{"generic",
			map[string]interface{}{"provider": "generic", "token_url": tokenURL("generic"), "client_id": "g-id", "client_secret": "g-secret",
				"grant_type": "client_credentials", "scopes": "read,write", "extra_params": "audience=api"},
			map[string]interface{}{"token_url": tokenURL("generic"), "client_id": "g-id", "client_secret": "g-secret", "grant_type": "refresh_token",
				"authorize_url": "https://generic.example/authorize", "allowed_redirect_uris": partnerCallback}},
		{"officernd",
			map[string]interface{}{"provider": "officernd", "token_url": tokenURL("officernd"), "client_id": "o-id", "client_secret": "o-secret",
				"scopes": "officernd.api.read", "expiry_skew": "60s"},
			map[string]interface{}{"provider": "officernd", "token_url": tokenURL("officernd"), "client_id": "o-id", "client_secret": "o-secret",
				"scopes": "officernd.api.read"}},
		{"boldpenguin",
			map[string]interface{}{"provider": "boldpenguin", "token_url": tokenURL("boldpenguin"), "client_id": "bp-id", "client_secret": "bp-secret",
				"api_key": "bp-api-key", "extra_headers": "X-Trace=trace-secret", "default_ttl": "5m"},
			map[string]interface{}{"provider": "boldpenguin", "environment": "staging", "client_id": "bp-id", "client_secret": "bp-secret",
				"api_key": "bp-api-key"}},
		{"eshopbox",
			map[string]interface{}{"provider": "eshopbox", "token_url": tokenURL("eshopbox"), "client_id": "e-id", "client_secret": "e-secret",
				"refresh_token": v.Vendor("eshopbox").IssueRefreshToken("e-id")},
			// No token_url: the preset's.
			map[string]interface{}{"provider": "eshopbox", "client_id": "e-id", "client_secret": "e-secret"}},
		{"penbox",
			map[string]interface{}{"provider": "penbox", "token_url": tokenURL("penbox"), "authorize_url": g.url + "/penbox/authorize",
				"client_id": "pb-id", "client_secret": "pb-secret", "refresh_token": v.Vendor("penbox").IssueRefreshToken("pb-id")},
			map[string]interface{}{"provider": "penbox", "token_url": tokenURL("penbox"), "authorize_url": g.url + "/penbox/authorize",
				"client_id": "pb-id", "client_secret": "pb-secret", "allowed_redirect_uris": partnerCallback}},
	}
}

// goldenVendors records config and app reads of each preset against the
// vendor stand-ins, and the stored entries their use leaves.
func goldenVendors(t *testing.T, out map[string]string) {
	g := newGoldenEnv(t, out)
	presets := goldenPresets(g)
	if len(presets) != len(providers.Names()) {
		t.Fatalf("golden presets cover %d of the presets %v", len(presets), providers.Names())
	}
	for _, p := range presets {
		g.write(t, p.name, p.config)
		g.readToken(t, p.name)
		g.read("reads/config-"+p.name+".json", "config/"+p.name)
		g.do(logical.CreateOperation, "apps/"+p.name, p.app)
	}
	g.stored("storage/cred-client-credentials.json", store.EntryPrefix+"officernd")
	g.stored("storage/cred-refresh-token.json", store.EntryPrefix+"eshopbox")

	g.write(t, "static", map[string]interface{}{"provider": "penbox", "grant_type": "static", "access_token": "user-minted-token", "ttl": "24h"})
	g.readToken(t, "static")
	g.read("reads/config-static.json", "config/static")
	g.stored("storage/cred-static.json", store.EntryPrefix+"static")

	// A connection of the Penbox app, and one whose authorization is open.
	g.connect(t, "penbox/acct", map[string]interface{}{"metadata": "customer=c1"})
	g.readToken(t, "penbox/acct")
	g.read("reads/config-connection.json", "config/penbox/acct")
	g.stored("storage/cred-connection.json", store.EntryPrefix+"penbox/acct")
	g.record("reads/authorize-connection.json", g.do(logical.UpdateOperation, "authorize/penbox/pending",
		map[string]interface{}{"redirect_uri": partnerCallback, "metadata": "customer=c2"}))
	g.storedUnder("storage/authz.json", store.AuthzPrefix+"penbox/pending/")

	// A new client secret for the Penbox app keeps the previous one.
	g.do(logical.UpdateOperation, "apps/penbox", map[string]interface{}{"client_secret": "pb-secret-2"})
	for _, p := range presets {
		g.read("reads/app-"+p.name+".json", "apps/"+p.name)
	}
	g.stored("storage/app.json", store.AppPrefix+"eshopbox")
	g.stored("storage/app-previous-secret.json", store.AppPrefix+"penbox")

	// A vendor failure: the refresh token was revoked.
	es := g.vendors.Vendor("eshopbox")
	rt := es.IssueRefreshToken("e-id")
	g.write(t, "broken", map[string]interface{}{"provider": "eshopbox", "token_url": g.url + es.TokenPath(), "client_id": "e-id",
		"client_secret": "e-secret", "refresh_token": rt})
	es.RevokeRefreshToken(rt)
	if resp, err := g.request(t, logical.ReadOperation, "token/broken", nil); err == nil && !resp.IsError() {
		t.Fatal("a revoked refresh token got a token")
	}
	g.read("reads/config-needs-reauthorization.json", "config/broken")
	g.stored("storage/status.json", store.StatusPrefix+"broken")

	// Signing keys born in Vault, a credential's and an app's.
	g.do(logical.UpdateOperation, "rotate-key/generic", nil)
	g.stored("storage/keys-cred.json", store.KeysPrefix+"cred/generic")
	g.do(logical.UpdateOperation, "apps/generic/rotate-key", map[string]interface{}{"algorithm": "RS256"})
	g.stored("storage/keys-app.json", store.KeysPrefix+"app/generic")

	g.read("reads/status.json", "status")
	g.read("reads/status-app.json", "status/penbox")
}

// goldenAuthServer records configs that use the standards features
// (issuer discovery, private_key_jwt, mutual TLS) against the strict
// authorization server, and a device flow.
func goldenAuthServer(t *testing.T, out map[string]string) {
	g := newGoldenEnv(t, out)
	a := authServer(t)
	if err := a.AddClient(standin.AuthClient{ID: "dev", Secret: "dev-secret"}); err != nil {
		t.Fatal(err)
	}
	g.write(t, "issuer", map[string]interface{}{"issuer": a.Issuer(), "client_id": "dev", "client_secret": "dev-secret", "grant_type": "refresh_token"})
	g.read("reads/config-issuer.json", "config/issuer")
	// The device flow is recorded as it starts: its poller waits a whole
	// interval (a second) before its first poll.
	g.record("reads/device-start.json", g.do(logical.UpdateOperation, "device/issuer", map[string]interface{}{"metadata": "customer=c3"}))
	g.stored("storage/device.json", store.DevicePrefix+"issuer")

	g.write(t, "pkjwt", map[string]interface{}{"token_url": a.Endpoints(standin.Plain).Token, "client_id": "svc",
		"auth_style": "private_key_jwt", "response_fields": "instance_url"})
	g.do(logical.UpdateOperation, "rotate-key/pkjwt", nil)
	g.read("reads/config-private-key-jwt.json", "config/pkjwt")

	cert, err := a.ClientCA().IssueClient("mtls-client")
	if err != nil {
		t.Fatal(err)
	}
	g.write(t, "mtls", map[string]interface{}{"token_url": a.Endpoints(standin.MutualTLS).Token, "client_id": "mtls-client",
		"auth_style": "tls_client_auth", "tls_client_certificate": cert.CertPEM, "tls_client_key": cert.KeyPEM, "ca_bundle": a.ServerCA().CertPEM()})
	g.read("reads/config-mtls.json", "config/mtls")
}

// goldenProbe records the entry a background refresh writes before it
// calls the vendor.
func goldenProbe(t *testing.T, out map[string]string) {
	g := newGoldenEnv(t, out)
	officerndDue(t, g.testEnv, g.clk, 1)
	if err := g.b.creds.RefreshDue(context.Background(), g.storage); err != nil {
		t.Fatal(err)
	}
	g.stored("storage/probe.json", "probe/tick")
}

// checkGolden compares got with the files, or rewrites them.
func checkGolden(t *testing.T, got map[string]string) {
	t.Helper()
	if *updateGolden {
		if err := os.RemoveAll(goldenDir); err != nil {
			t.Fatal(err)
		}
		for name, content := range got {
			path := filepath.Join(goldenDir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("wrote %d golden files under %s", len(got), goldenDir)
		return
	}
	want := map[string]string{}
	err := filepath.WalkDir(goldenDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(goldenDir, path)
		want[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatalf("reading the golden files (make them with -update-golden): %v", err)
	}
	for _, name := range slices.Sorted(maps.Keys(got)) {
		w, ok := want[name]
		switch {
		case !ok:
			t.Errorf("%s: no golden file", name)
		case w != got[name]:
			t.Errorf("%s differs from the golden file: %s", name, firstDiff(w, got[name]))
		}
		delete(want, name)
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		t.Errorf("%s: golden file for nothing the test makes", name)
	}
	if t.Failed() {
		t.Log("if the change is intended: go test -run TestGolden -update-golden .")
	}
}

// firstDiff describes the first line where want and got differ.
func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range min(len(wl), len(gl)) {
		if wl[i] != gl[i] {
			return fmt.Sprintf("line %d\n  want: %s\n  got:  %s", i+1, wl[i], gl[i])
		}
	}
	return fmt.Sprintf("%d lines, want %d", len(gl), len(wl))
}
