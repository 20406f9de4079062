//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// TestUpgradeKeepsCredentialsAndTokens upgrades a mount from one build of
// the plugin to another the way the README tells operators to: register
// the new version, `vault secrets tune -plugin-version=` and reload the
// mount (sys/plugins/reload/backend). The mount then runs the new binary, and every
// credential, its settings, its cached token and a rotated refresh token
// are still there: the tokens come back unchanged without a vendor
// request, and the next refresh uses the refresh token the vendor rotated
// to before the upgrade.
func TestUpgradeKeepsCredentialsAndTokens(t *testing.T) {
	bin, err := vaulttest.VaultBin()
	if err != nil {
		t.Fatal(err)
	}
	const (
		path = "vendoroauth-upgrade"
		v1   = "v0.1.0-upgrade-from"
		v2   = "v0.2.0-upgrade-to"
	)
	bin1, sha1 := buildPluginCopy(t, vault.PluginDir, v1)
	bin2, sha2 := buildPluginCopy(t, vault.PluginDir, v2)
	ctx := context.Background()
	sys := vault.Client.Sys()
	registerPluginVersion(t, v1, bin1, sha1)
	if err := sys.MountWithContext(ctx, path, &api.MountInput{
		Type: vaulttest.PluginName, Config: api.MountConfigInput{PluginVersion: v1},
	}); err != nil {
		t.Fatal(err)
	}
	// Registered after the mount's cleanup, so it runs first.
	t.Cleanup(func() { _ = sys.UnmountWithContext(ctx, path) })
	expectRunning(t, path, v1, sha1)

	// A stand-in of its own, so no other test's traffic is counted.
	vend := standin.New()
	base, err := vend.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vend.Close()
	ornd := vend.Vendor("officernd")
	ornd.AddClient(standin.Client{ID: "up-ornd", Secret: "up-ornd-secret-Jk8", Scopes: []string{"officernd.api.read"}})
	pbx := vend.Vendor("penbox")
	pbx.AddClient(standin.Client{ID: "up-pbx", Secret: "up-pbx-secret-Lz9"})
	firstRefresh := pbx.IssueRefreshToken("up-pbx")
	// Penbox rotates refresh tokens: if the upgrade lost the rotated one,
	// the next refresh would present the first again, which is reuse.
	pbx.SetBehavior(standin.Behavior{Rotate: true, ReuseDetection: true})

	configs := map[string]map[string]interface{}{
		"ornd": {
			"provider": "officernd", "token_url": base + ornd.TokenPath(),
			"client_id": "up-ornd", "client_secret": "up-ornd-secret-Jk8", "scopes": "officernd.api.read",
		},
		"pbx": {
			"provider": "penbox", "token_url": base + pbx.TokenPath(),
			"client_id": "up-pbx", "client_secret": "up-pbx-secret-Lz9", "refresh_token": firstRefresh,
			"max_ttl": "20m",
		},
	}
	vendorOf := map[string]*standin.Vendor{"ornd": ornd, "pbx": pbx}
	names := []string{"ornd", "pbx"}
	for _, n := range names {
		if status, r, _ := call(t, "POST", path+"/config/"+n, configs[n]); status/100 != 2 {
			t.Fatalf("config/%s: HTTP %d %v", n, status, r.Errors)
		}
	}
	read := func(n string) string {
		t.Helper()
		status, r, body := call(t, "GET", path+"/token/"+n, nil)
		tok := str(r.Data["access_token"])
		if status != 200 || !vendorOf[n].Valid(tok) {
			t.Fatalf("token/%s: HTTP %d %s", n, status, body)
		}
		return tok
	}
	settings := func(n string) map[string]interface{} {
		t.Helper()
		status, r, body := call(t, "GET", path+"/config/"+n, nil)
		if status != 200 {
			t.Fatalf("config/%s: HTTP %d %s", n, status, body)
		}
		// What the node counts and schedules since the plugin started is
		// not stored, so a new plugin process starts it afresh.
		for _, k := range []string{"reads", "cache_hits", "upstream_grants", "failures", "next_refresh_at", "backoff_until"} {
			delete(r.Data, k)
		}
		return r.Data
	}
	before := map[string]string{}
	beforeSettings := map[string]map[string]interface{}{}
	for _, n := range names {
		before[n] = read(n)
		if again := read(n); again != before[n] {
			t.Fatalf("token/%s was not cached before the upgrade", n)
		}
		beforeSettings[n] = settings(n)
	}
	// The second Penbox grant rotates the refresh token once more, so the
	// one that must survive is neither the first nor the file's.
	if status, r, _ := call(t, "POST", path+"/refresh/pbx", nil); status != 200 {
		t.Fatalf("refresh/pbx: HTTP %d %v", status, r.Errors)
	}
	before["pbx"] = read("pbx")
	requests := map[string]int{}
	for _, n := range names {
		requests[n] = vendorOf[n].Stats().Requests
	}

	// The upgrade, with the CLI an operator would use.
	registerPluginVersion(t, v2, bin2, sha2)
	vaultCLI(t, bin, "secrets", "tune", "-plugin-version="+v2, path)
	// Not `vault plugin reload -mounts=`: Vault 1.21.0's CLI sends that to
	// sys/plugins/reload/unknown (404), and refuses it with -type.
	vaultCLI(t, bin, "write", "sys/plugins/reload/backend", "mounts="+path)
	expectRunning(t, path, v2, sha2)

	out := vaultCLI(t, bin, "list", "-format=json", path+"/config")
	for _, n := range names {
		if !strings.Contains(out, `"`+n+`"`) {
			t.Errorf("config/%s is gone after the upgrade: LIST says %s", n, out)
		}
	}
	for _, n := range names {
		if got := read(n); got != before[n] {
			t.Errorf("token/%s changed across the upgrade", n)
		}
		if got := vendorOf[n].Stats().Requests; got != requests[n] {
			t.Errorf("%s: the upgrade cost %d vendor requests", n, got-requests[n])
		}
		after := settings(n)
		for _, k := range sortedFields(beforeSettings[n]) {
			if !equalJSON(beforeSettings[n][k], after[k]) {
				t.Errorf("config/%s %s: %v before the upgrade, %v after", n, k, beforeSettings[n][k], after[k])
			}
		}
	}

	// The refresh token Penbox rotated to before the upgrade still works.
	if status, r, _ := call(t, "POST", path+"/refresh/pbx", nil); status != 200 {
		t.Fatalf("refresh/pbx after the upgrade: HTTP %d %v", status, r.Errors)
	}
	if got := read("pbx"); got == before["pbx"] {
		t.Errorf("refresh/pbx after the upgrade handed out the old token")
	}
	if n := pbx.Stats().ReuseDetections; n != 0 {
		t.Errorf("Penbox saw a rotated-away refresh token %d times: the upgrade lost the rotated one", n)
	}
	var sent []string
	for _, r := range pbx.Requests() {
		sent = append(sent, r.Form["refresh_token"])
	}
	if len(sent) != 3 || sent[0] != firstRefresh || sent[1] == sent[0] || sent[2] == sent[1] || sent[2] == sent[0] {
		t.Errorf("Penbox saw %d refreshes; want 3, each with the refresh token the previous one returned", len(sent))
	}
}

// expectRunning waits until the mount at path runs version (a reload
// restarts the plugin process) and checks the binary by its sha256.
func expectRunning(t *testing.T, path, version, sha string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		m, err := vault.Client.Sys().GetMount(path)
		if err == nil && m.RunningVersion == version {
			if m.RunningSha256 != sha {
				t.Fatalf("mount %s runs %s with sha256 %s, want %s", path, version, m.RunningSha256, sha)
			}
			if m.PluginVersion != version {
				t.Errorf("mount %s: plugin_version %q, running %s", path, m.PluginVersion, version)
			}
			return
		}
		if time.Now().After(deadline) {
			got := ""
			if m != nil {
				got = m.RunningVersion
			}
			t.Fatalf("mount %s still runs %q after 60 s, want %s (%v)", path, got, version, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// vaultCLI runs the vault CLI against the shared dev server and returns its
// output; a failure fails the test.
func vaultCLI(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = vaulttest.CLIEnv("ADDR", vault.Addr, "TOKEN", vaulttest.RootToken)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		t.Fatalf("vault %s: %v\n%s", strings.Join(args, " "), err, buf.String())
	}
	return buf.String()
}

func sortedFields(m map[string]interface{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// equalJSON compares two decoded JSON values.
func equalJSON(a, b interface{}) bool {
	return fmtJSON(a) == fmtJSON(b)
}

func fmtJSON(v interface{}) string {
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(v)
	return buf.String()
}

// TestUpgradeReadsOldSchemaEntry puts a stored credential back to the
// layout an older plugin wrote (no schema version) through sys/raw, and
// proves the plugin in a real Vault still serves its cached token without a
// vendor request, writes the entry back at the current schema version on
// its next change, and refuses an entry from a newer plugin with a message
// that says to upgrade instead of misreading it.
func TestUpgradeReadsOldSchemaEntry(t *testing.T) {
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	const version = "v0.1.0-schema"
	sha, err := vaulttest.BuildPlugin(plugins, version)
	if err != nil {
		t.Fatal(err)
	}
	vend := standin.New()
	base, err := vend.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vend.Close()
	gen := vend.Vendor("generic")
	gen.AddClient(standin.Client{ID: "schema-client", Secret: "schema-secret-Wd3"})

	v := startMountedVault(t, vaulttest.Options{PluginDir: plugins, LogPath: filepath.Join(dir, "vault.log"), RawStorage: true}, version, sha)
	do := func(method, path string, body map[string]interface{}) (int, apiResponse, string) {
		t.Helper()
		raw, _ := json.Marshal(body)
		if body == nil {
			raw = nil
		}
		status, out, err := v.Raw(method, path, raw)
		if status == 0 {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		var r apiResponse
		_ = json.Unmarshal(out, &r)
		return status, r, string(out)
	}
	if status, r, _ := do("POST", mount+"/config/old", map[string]interface{}{
		"token_url": base + gen.TokenPath(), "client_id": "schema-client", "client_secret": "schema-secret-Wd3",
	}); status != 204 {
		t.Fatalf("config/old: HTTP %d %v", status, r.Errors)
	}
	readTok := func() (int, string, string) {
		t.Helper()
		status, r, body := do("GET", mount+"/token/old", nil)
		return status, str(r.Data["access_token"]), body
	}
	status, tok, body := readTok()
	if status != 200 || !gen.Valid(tok) {
		t.Fatalf("token/old: HTTP %d %s", status, body)
	}

	m, err := v.Client.Sys().GetMount(mount)
	if err != nil {
		t.Fatal(err)
	}
	rawPath := "sys/raw/logical/" + m.UUID + "/creds/old"
	entry := func() map[string]interface{} {
		t.Helper()
		s, err := v.Client.Logical().Read(rawPath)
		if err != nil || s == nil {
			t.Fatalf("reading %s: %v", rawPath, err)
		}
		var e map[string]interface{}
		if err := json.Unmarshal([]byte(str(s.Data["value"])), &e); err != nil {
			t.Fatalf("the stored entry is not JSON: %v", err)
		}
		return e
	}
	// rewrite stores e as the entry and restarts the plugin, so nothing of
	// the old entry is left in its memory.
	rewrite := func(e map[string]interface{}) {
		t.Helper()
		b, _ := json.Marshal(e)
		if _, err := v.Client.Logical().Write(rawPath, map[string]interface{}{"value": string(b)}); err != nil {
			t.Fatalf("writing %s: %v", rawPath, err)
		}
		if _, err := v.Client.Sys().ReloadPlugin(&api.ReloadPluginInput{Mounts: []string{mount}}); err != nil {
			t.Fatalf("reloading the mount: %v", err)
		}
	}
	e := entry()
	if e["version"] != float64(model.SchemaVersion) {
		t.Fatalf("the stored entry has schema version %v, want %d", e["version"], model.SchemaVersion)
	}
	delete(e, "version")
	rewrite(e)
	requests := gen.Stats().Requests
	if status, got, body := readTok(); status != 200 || got != tok {
		t.Errorf("token/old from a version-0 entry: HTTP %d, same token %v: %s", status, got == tok, body)
	}
	if n := gen.Stats().Requests - requests; n != 0 {
		t.Errorf("serving the old entry's cached token cost %d vendor requests", n)
	}
	if status, _, _ := do("POST", mount+"/refresh/old", nil); status != 200 {
		t.Fatalf("refresh/old: HTTP %d", status)
	}
	if got := entry()["version"]; got != float64(model.SchemaVersion) {
		t.Errorf("after a refresh the entry has schema version %v, want %d", got, model.SchemaVersion)
	}

	e = entry()
	e["version"] = 99
	rewrite(e)
	status, _, body = readTok()
	if status != 500 || !strings.Contains(body, "upgrade the plugin") {
		t.Errorf("token/old from a newer plugin's entry: HTTP %d %s; want a 500 that says to upgrade the plugin", status, body)
	}
}

// registerPluginVersion registers binary (in the plugin directory) as
// version of the plugin in the shared server, and deregisters it when the
// test ends.
func registerPluginVersion(t *testing.T, version, binary, sha string) {
	t.Helper()
	ctx := context.Background()
	sys := vault.Client.Sys()
	if err := sys.RegisterPluginWithContext(ctx, &api.RegisterPluginInput{
		Name: vaulttest.PluginName, Type: api.PluginTypeSecrets,
		Command: filepath.Base(binary), SHA256: sha, Version: version,
	}); err != nil {
		t.Fatalf("registering %s: %v", version, err)
	}
	t.Cleanup(func() {
		_ = sys.DeregisterPluginWithContext(ctx, &api.DeregisterPluginInput{
			Name: vaulttest.PluginName, Type: api.PluginTypeSecrets, Version: version,
		})
	})
}
