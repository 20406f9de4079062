//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
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
// (one per vendor) and a partner's Penbox app with its connected accounts
// from a declarative file whose secrets come from environment variables and
// files; every token can then be read, and a connection listed without a
// refresh token is left to be connected. A second run changes nothing that
// was right (same tokens, no vendor call, Penbox's rotated refresh tokens
// kept), a run with a new app client_secret rotates it for every
// connection, one with a new plugin binary upgrades the mount in place, and
// a run with secrets missing fails before touching Vault, naming what is
// missing. No run prints a secret.
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
	// The partner app: one Penbox client, two accounts already connected
	// (their refresh tokens from a file and from the environment), and
	// one that is not yet.
	const partnerCallback = "https://partner.example/penbox/callback"
	secrets["BOOT_PARTNER_SECRET"] = "boot-partner-secret-Io6"
	pbx.AddClient(standin.Client{ID: "boot-partner", Secret: secrets["BOOT_PARTNER_SECRET"], RedirectURIs: []string{partnerCallback}})
	acmeRefresh := pbx.IssueRefreshToken("boot-partner")
	secrets["BOOT_GLOBEX_REFRESH"] = pbx.IssueRefreshToken("boot-partner")
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
	acmeFile := filepath.Join(secretDir, "partner-acme-refresh-token")
	if err := os.WriteFile(acmeFile, []byte(acmeRefresh+"\n"), 0o600); err != nil {
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
			"apps": map[string]interface{}{
				"penbox-partner": map[string]interface{}{
					"provider": "penbox", "token_url": base + pbx.TokenPath(), "authorize_url": base + "/penbox/authorize",
					"client_id": "boot-partner", "client_secret": map[string]string{"env": "BOOT_PARTNER_SECRET"},
					"allowed_redirect_uris": []string{partnerCallback},
					"expiry_skew":           "0s",
					"connections": map[string]interface{}{
						"acme": map[string]interface{}{
							"refresh_token": map[string]string{"file": "secrets/partner-acme-refresh-token"},
							"metadata":      map[string]string{"customer_id": "c-1001"},
						},
						"globex": map[string]interface{}{
							"refresh_token": map[string]string{"env": "BOOT_GLOBEX_REFRESH"},
							"metadata":      map[string]string{"customer_id": "c-1002"},
						},
						// Not connected yet: the user consents later.
						"initech": map[string]interface{}{
							"metadata": map[string]string{"customer_id": "c-1003"},
						},
					},
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
	leaks := map[string]string{"the penbox refresh token": pbxRefresh, "acme's refresh token": acmeRefresh}
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
	names := []string{"officernd", "boldpenguin", "eshopbox", "penbox", "penbox-partner/acme", "penbox-partner/globex"}
	vendorOf := map[string]*standin.Vendor{"officernd": ornd, "boldpenguin": bp, "eshopbox": esb, "penbox": pbx,
		"penbox-partner/acme": pbx, "penbox-partner/globex": pbx}
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
		"apps/penbox-partner: created",
		"client_secret=<env BOOT_PARTNER_SECRET>",
		"allowed_redirect_uris="+partnerCallback,
		"config/penbox-partner/acme: created: metadata={customer_id=c-1001} refresh_token=<file secrets/partner-acme-refresh-token>",
		"config/penbox-partner/globex: created: metadata={customer_id=c-1002} refresh_token=<env BOOT_GLOBEX_REFRESH>",
		"config/penbox-partner/initech: not connected yet, so not written: connect the account with authorize/penbox-partner/initech",
		"done: 4 credential(s), 1 app(s) with 3 connection(s)")
	first := readAll()
	// The connections are the app's, with their metadata; neither read
	// shows a secret, and the not-yet-connected account was not created.
	for acct, customer := range map[string]string{"acme": "c-1001", "globex": "c-1002"} {
		status, body, _ := v.Raw("GET", "vendoroauth/config/penbox-partner/"+acct, nil)
		var r apiResponse
		_ = json.Unmarshal(body, &r)
		md, _ := r.Data["metadata"].(map[string]interface{})
		if status != 200 || str(r.Data["app"]) != "penbox-partner" || md["customer_id"] != customer ||
			r.Data["refresh_token_set"] != true || r.Data["client_secret_set"] != true || str(r.Data["client_id"]) != "boot-partner" {
			t.Errorf("config/penbox-partner/%s: HTTP %d %s", acct, status, body)
		}
		for k, s := range leaks {
			if strings.Contains(string(body), s) {
				t.Errorf("config/penbox-partner/%s shows %s", acct, k)
			}
		}
	}
	if status, _, _ := v.Raw("GET", "vendoroauth/config/penbox-partner/initech", nil); status != 404 {
		t.Errorf("config/penbox-partner/initech: HTTP %d; the tool must not create a connection it has no refresh token for", status)
	}
	status, body, _ := v.Raw("GET", "vendoroauth/apps/penbox-partner", nil)
	var ar apiResponse
	_ = json.Unmarshal(body, &ar)
	if uris, _ := ar.Data["allowed_redirect_uris"].([]interface{}); status != 200 || ar.Data["client_secret_set"] != true ||
		len(uris) != 1 || uris[0] != partnerCallback || strings.Contains(string(body), secrets["BOOT_PARTNER_SECRET"]) {
		t.Errorf("apps/penbox-partner: HTTP %d %s", status, body)
	}
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
		"config/officernd: unchanged",
		"config/eshopbox: unchanged",
		"refresh_token=<kept",
		"token/boldpenguin: ok",
		"apps/penbox-partner: unchanged",
		"config/penbox-partner/acme: unchanged",
		"config/penbox-partner/initech: not connected yet",
		"token/penbox-partner/globex: ok")
	if strings.Contains(out, ": updated") {
		t.Errorf("an identical re-run reports an update:\n%s", out)
	}
	if strings.Contains(out, "token/penbox-partner/initech") || strings.Contains(out, "client_secret rotated") {
		t.Errorf("the re-run checked a connection it did not write, or rotated an unchanged secret:\n%s", out)
	}
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
	// Penbox's tokens live 4 s: wait them out, and the next reads refresh
	// with the refresh tokens Penbox rotated to, which the re-run kept.
	var latest time.Time
	for _, n := range []string{"penbox", "penbox-partner/acme", "penbox-partner/globex"} {
		if exp, ok := pbx.TokenExpiry(again[n]); ok && exp.After(latest) {
			latest = exp
		}
	}
	time.Sleep(time.Until(latest) + 100*time.Millisecond)
	for _, n := range []string{"penbox", "penbox-partner/acme", "penbox-partner/globex"} {
		status, body, _ := v.Raw("GET", "vendoroauth/token/"+n, nil)
		var pr apiResponse
		_ = json.Unmarshal(body, &pr)
		if status != 200 || !pbx.Valid(str(pr.Data["access_token"])) || str(pr.Data["access_token"]) == again[n] {
			t.Errorf("%s refresh after the re-run: HTTP %d %s", n, status, body)
		}
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

	// A new client secret in the environment: one app write rotates it
	// for every connection, and the vendor sees it from the next refresh.
	const newPartnerSecret = "boot-partner-secret-rotated-Pl7"
	pbx.AddClient(standin.Client{ID: "boot-partner", Secret: newPartnerSecret, RedirectURIs: []string{partnerCallback}})
	leaks["the rotated partner secret"] = newPartnerSecret
	for i, e := range env {
		if strings.HasPrefix(e, "BOOT_PARTNER_SECRET=") {
			env[i] = "BOOT_PARTNER_SECRET=" + newPartnerSecret
		}
	}
	out, ok = run(env, file)
	if !ok {
		t.Fatalf("rotation run failed:\n%s", out)
	}
	expectLines(out, "apps/penbox-partner: client_secret rotated for every connection; the previous one is still tried once on invalid_client until")
	for _, acct := range []string{"acme", "globex"} {
		if status, body, _ := v.Raw("POST", "vendoroauth/refresh/penbox-partner/"+acct, nil); status != 200 && status != 204 {
			t.Errorf("refresh/penbox-partner/%s after the rotation: HTTP %d %s", acct, status, body)
		}
		last, _ := pbx.LastRequest()
		if last.Form["client_id"] != "boot-partner" || last.Form["client_secret"] != newPartnerSecret {
			t.Errorf("refresh/penbox-partner/%s after the rotation sent client %q with the old secret or none", acct, last.Form["client_id"])
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
	if strings.Contains(out, "client_secret rotated") {
		t.Errorf("the upgrade run rotated an unchanged client secret:\n%s", out)
	}
	after := readAll()
	for _, n := range []string{"officernd", "boldpenguin", "eshopbox"} {
		if after[n] != before[n] || vendorOf[n].Stats().Requests != requests[n] {
			t.Errorf("token/%s did not survive the upgrade", n)
		}
	}

	// Secrets missing: the run names each one and changes nothing.
	for _, f := range []string{pbxFile, acmeFile} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
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
		`connection "acme" of app "penbox-partner": refresh_token:`, acmeFile,
		"nothing was changed")
	if strings.Contains(out, "config/") || strings.Contains(out, "apps/") {
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
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
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
