//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// TestBootstrapTool runs bootstrap/bootstrap.sh, as an operator would,
// against a fresh Vault that has only the plugin binary in its plugin
// directory: one run registers, enables and configures four credentials
// (one per vendor) from a declarative file whose secrets come from
// environment variables and a file; all four tokens can then be read. A
// second run changes nothing that was right (same tokens, no vendor call,
// Penbox's rotated refresh token kept), a third with a new plugin binary
// upgrades the mount in place, and a run with a secret missing fails before
// touching Vault, naming what is missing. No run prints a secret.
func TestBootstrapTool(t *testing.T) {
	root, err := vaulttest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	const version = "v0.1.0-boot"
	if _, err := vaulttest.BuildPlugin(plugins, version); err != nil {
		t.Fatal(err)
	}

	vendorsB := standin.New()
	base, err := vendorsB.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vendorsB.Close()
	// Secrets the tool reads from the environment; the Penbox refresh
	// token comes from a file.
	secrets := map[string]string{
		"BOOT_ORND_SECRET": "boot-ornd-secret-Qx1",
		"BOOT_BP_SECRET":   "boot-bp-secret-Wm2",
		"BOOT_BP_API_KEY":  "boot-bp-apikey-Ez3",
		"BOOT_ESB_SECRET":  "boot-esb-secret-Rt4",
		"BOOT_PBX_SECRET":  "boot-pbx-secret-Yu5",
	}
	ornd := vendorsB.Vendor("officernd")
	ornd.AddClient(standin.Client{ID: "boot-ornd", Secret: secrets["BOOT_ORND_SECRET"], Scopes: []string{"officernd.api.read"}})
	bp := vendorsB.Vendor("boldpenguin")
	bp.AddClient(standin.Client{ID: "boot-bp", Secret: secrets["BOOT_BP_SECRET"], APIKey: secrets["BOOT_BP_API_KEY"]})
	esb := vendorsB.Vendor("eshopbox")
	esb.AddClient(standin.Client{ID: "boot-esb", Secret: secrets["BOOT_ESB_SECRET"]})
	secrets["BOOT_ESB_REFRESH"] = esb.IssueRefreshToken("boot-esb")
	pbx := vendorsB.Vendor("penbox")
	pbx.AddClient(standin.Client{ID: "boot-pbx", Secret: secrets["BOOT_PBX_SECRET"]})
	pbxRefresh := pbx.IssueRefreshToken("boot-pbx")
	// Penbox rotates: re-sending the file's refresh token after the first
	// grant would be reuse, which kills the whole chain.
	pbx.SetBehavior(standin.Behavior{Rotate: true, ReuseDetection: true, Lifetime: 4 * time.Second})

	v, err := vaulttest.Start(vaulttest.Options{PluginDir: plugins, LogPath: filepath.Join(dir, "vault.log")})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Stop()
	defer func() {
		if t.Failed() {
			t.Logf("vault log (tail):\n%s", tail(v.Log(), 60))
		}
	}()

	secretDir := filepath.Join(dir, "secrets")
	if err := os.MkdirAll(secretDir, 0o700); err != nil {
		t.Fatal(err)
	}
	pbxFile := filepath.Join(secretDir, "penbox-refresh-token")
	if err := os.WriteFile(pbxFile, []byte(pbxRefresh+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := func(pluginVersion, binary string) map[string]interface{} {
		return map[string]interface{}{
			"mount":    "vendoroauth",
			"plugin":   map[string]interface{}{"version": pluginVersion, "binary": binary},
			"policies": true,
			"credentials": map[string]interface{}{
				"officernd": map[string]interface{}{
					"provider": "officernd", "token_url": base + ornd.TokenPath(),
					"client_id": "boot-ornd", "client_secret": map[string]string{"env": "BOOT_ORND_SECRET"},
					"scopes": []string{"officernd.api.read"},
				},
				"boldpenguin": map[string]interface{}{
					"provider": "boldpenguin", "environment": "staging", "token_url": base + bp.TokenPath(),
					"client_id": "boot-bp", "client_secret": map[string]string{"env": "BOOT_BP_SECRET"},
					"api_key": map[string]string{"env": "BOOT_BP_API_KEY"},
				},
				"eshopbox": map[string]interface{}{
					"provider": "eshopbox", "token_url": base + esb.TokenPath(),
					"client_id": "boot-esb", "client_secret": map[string]string{"env": "BOOT_ESB_SECRET"},
					"refresh_token": map[string]string{"env": "BOOT_ESB_REFRESH"},
				},
				"penbox": map[string]interface{}{
					"provider": "penbox", "token_url": base + pbx.TokenPath(),
					"client_id": "boot-pbx", "client_secret": map[string]string{"env": "BOOT_PBX_SECRET"},
					// Relative to the declarative file.
					"refresh_token": map[string]string{"file": "secrets/penbox-refresh-token"},
					"expiry_skew":   "0s",
				},
			},
		}
	}
	file := filepath.Join(dir, "credentials.json")
	writeSpec := func(s map[string]interface{}) {
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeSpec(spec(version, filepath.Join(plugins, vaulttest.PluginBinary)))

	env := []string{"VAULT_ADDR=" + v.Addr, "VAULT_TOKEN=" + vaulttest.RootToken}
	for k, val := range secrets {
		env = append(env, k+"="+val)
	}
	leaks := map[string]string{"the penbox refresh token": pbxRefresh}
	for k, val := range secrets {
		leaks[k] = val
	}
	run := func(env []string, args ...string) (string, bool) {
		t.Helper()
		start := time.Now()
		out, ok := runBootstrap(t, root, env, args...)
		t.Logf("bootstrap.sh %s (%s):\n%s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), out)
		for k, s := range leaks {
			if strings.Contains(out, s) {
				t.Errorf("the output shows the secret %s:\n%s", k, out)
			}
		}
		return out, ok
	}
	expectLines := func(out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	}
	names := []string{"officernd", "boldpenguin", "eshopbox", "penbox"}
	vendorOf := map[string]*standin.Vendor{"officernd": ornd, "boldpenguin": bp, "eshopbox": esb, "penbox": pbx}
	readAll := func() map[string]string {
		t.Helper()
		toks := map[string]string{}
		for _, n := range names {
			status, body, err := v.Raw("GET", "vendoroauth/token/"+n, nil)
			var r apiResponse
			_ = json.Unmarshal(body, &r)
			tok := str(r.Data["access_token"])
			if status != 200 || !vendorOf[n].Valid(tok) {
				t.Fatalf("token/%s: HTTP %d %v %s: want a valid token", n, status, err, body)
			}
			toks[n] = tok
		}
		return toks
	}

	// First run: everything is new.
	out, ok := run(env, file)
	if !ok {
		t.Fatalf("first run failed:\n%s", out)
	}
	expectLines(out,
		"plugin vendoroauth "+version+": registered",
		"mount vendoroauth/: enabled",
		"policy vendoroauth-operator: written",
		"policy vendoroauth-reader-penbox: written",
		"config/officernd: created",
		"client_secret=<env BOOT_ORND_SECRET>",
		"refresh_token=<file secrets/penbox-refresh-token>",
		"config/penbox: created",
		"done: 4 credential(s)")
	first := readAll()
	requests := map[string]int{}
	for n, vend := range vendorOf {
		requests[n] = vend.Stats().Requests
	}

	// Second run, with -check: nothing to do, and nothing undone.
	out, ok = run(env, "-check", file)
	if !ok {
		t.Fatalf("second run failed:\n%s", out)
	}
	expectLines(out,
		"plugin vendoroauth "+version+": already registered",
		"mount vendoroauth/: already enabled",
		"policy vendoroauth-reader-officernd: unchanged",
		"config/eshopbox: updated",
		"refresh_token=<kept",
		"token/boldpenguin: ok")
	for _, tok := range first {
		if strings.Contains(out, tok) {
			t.Errorf("-check printed an access token:\n%s", out)
		}
	}
	again := readAll()
	for _, n := range []string{"officernd", "boldpenguin", "eshopbox"} {
		if again[n] != first[n] {
			t.Errorf("token/%s changed after an identical re-run; the cached token should be kept", n)
		}
		if got := vendorOf[n].Stats().Requests; got != requests[n] {
			t.Errorf("%s: the re-run caused %d vendor requests", n, got-requests[n])
		}
	}
	// Penbox's token lives 4 s: wait it out, and the next read refreshes
	// with the refresh token Penbox rotated to, which the re-run kept.
	if exp, ok := pbx.TokenExpiry(again["penbox"]); ok {
		time.Sleep(time.Until(exp) + 100*time.Millisecond)
	}
	status, body, _ := v.Raw("GET", "vendoroauth/token/penbox", nil)
	var pr apiResponse
	_ = json.Unmarshal(body, &pr)
	if status != 200 || !pbx.Valid(str(pr.Data["access_token"])) || str(pr.Data["access_token"]) == again["penbox"] {
		t.Errorf("penbox refresh after the re-run: HTTP %d %s", status, body)
	}
	if n := pbx.Stats().ReuseDetections; n != 0 {
		t.Errorf("penbox saw a rotated-away refresh token %d times: the re-run put the file's back", n)
	}
	var sent []string
	for _, r := range pbx.Requests() {
		if r.Form["client_id"] == "boot-pbx" {
			sent = append(sent, r.Form["refresh_token"])
		}
	}
	if len(sent) < 2 || sent[0] != pbxRefresh {
		t.Errorf("penbox saw %d refresh requests, want the first with the file's refresh token and then more", len(sent))
	}
	for i, rt := range sent[1:] {
		if rt == pbxRefresh {
			t.Errorf("penbox refresh %d used the file's refresh token again instead of the rotated one", i+2)
		}
	}

	// Third run: a new plugin version, copied into the plugin directory
	// under its own name, upgrades the mount in place.
	const next = "v0.2.0-boot"
	nextBin, nextSHA := buildPluginCopy(t, plugins, next)
	writeSpec(spec(next, nextBin))
	before := readAll()
	for n, vend := range vendorOf {
		requests[n] = vend.Stats().Requests
	}
	out, ok = run(env, file)
	if !ok {
		t.Fatalf("upgrade run failed:\n%s", out)
	}
	expectLines(out,
		"plugin vendoroauth "+next+": registered",
		"mount vendoroauth/: upgraded plugin vendoroauth "+version+" -> "+next)
	m, err := v.Client.Sys().GetMount("vendoroauth")
	if err != nil {
		t.Fatal(err)
	}
	if m.RunningVersion != next || m.RunningSha256 != nextSHA {
		t.Errorf("after the upgrade the mount runs %s (sha256 %s), want %s (%s)", m.RunningVersion, m.RunningSha256, next, nextSHA)
	}
	after := readAll()
	for _, n := range []string{"officernd", "boldpenguin", "eshopbox"} {
		if after[n] != before[n] || vendorOf[n].Stats().Requests != requests[n] {
			t.Errorf("token/%s did not survive the upgrade", n)
		}
	}

	// Secrets missing: the run names each one and changes nothing.
	if err := os.Remove(pbxFile); err != nil {
		t.Fatal(err)
	}
	var partial []string
	for _, e := range env {
		if !strings.HasPrefix(e, "BOOT_BP_API_KEY=") {
			partial = append(partial, e)
		}
	}
	out, ok = run(partial, file)
	if ok {
		t.Fatalf("a run with a missing variable and file succeeded:\n%s", out)
	}
	expectLines(out,
		`credential "boldpenguin": api_key: environment variable BOOT_BP_API_KEY is not set`,
		`credential "penbox": refresh_token:`, pbxFile,
		"nothing was changed")
	if strings.Contains(out, "config/") {
		t.Errorf("a failed run wrote something:\n%s", out)
	}
}

// runBootstrap runs bootstrap/bootstrap.sh with exactly env (plus PATH and
// Go's settings) and returns its combined output.
func runBootstrap(t *testing.T, root string, env []string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(filepath.Join(root, "bootstrap", "bootstrap.sh"), args...)
	cmd.Dir = t.TempDir()
	for _, k := range []string{"PATH", "HOME", "GOPATH", "GOCACHE", "GOMODCACHE", "GOFLAGS", "GOPROXY", "GOTOOLCHAIN"} {
		if val, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+val)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("running bootstrap.sh: %v", err)
	}
	return buf.String(), err == nil
}

// buildPluginCopy builds the plugin stamped with version and puts it into
// the plugin directory as vault-plugin-secrets-vendoroauth-<version>: Vault
// ties each registered version to one sha256, so two versions need two
// files. It returns the file's path and sha256.
func buildPluginCopy(t *testing.T, pluginDir, version string) (string, string) {
	t.Helper()
	tmp := t.TempDir()
	sha, err := vaulttest.BuildPlugin(tmp, version)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(tmp, vaulttest.PluginBinary))
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(pluginDir, vaulttest.PluginBinary+"-"+version)
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst, sha
}
