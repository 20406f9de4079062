//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// releaseRevision is the build the release upgrade test starts from:
// $E2E_UPGRADE_FROM (any git revision), else the latest v* tag, else the
// last commit before apps and connections (schema 1 entries, open
// authorizations inline).
func releaseRevision(t *testing.T, root string) string {
	t.Helper()
	if rev := os.Getenv("E2E_UPGRADE_FROM"); rev != "" {
		return rev
	}
	if out, err := exec.Command("git", "-C", root, "describe", "--tags", "--abbrev=0", "--match", "v*").Output(); err == nil {
		if tag := strings.TrimSpace(string(out)); tag != "" {
			return tag
		}
	}
	return "27b5b171648d272ad0945af82386a6a8d29251a5"
}

// buildPluginAt builds the plugin as it was at git revision rev, stamped
// with version, into pluginDir under a name of its own, and returns its
// path and sha256. The tree comes from git archive: the working tree and
// the index are left alone.
func buildPluginAt(t *testing.T, pluginDir, rev, version string) (string, string) {
	t.Helper()
	root, err := vaulttest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	archive := exec.Command("git", "-C", root, "archive", "--format=tar", rev)
	untar := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	untar.Stdin = pipe
	var archiveErr strings.Builder
	archive.Stderr = &archiveErr
	if err := untar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		_ = untar.Wait()
		t.Fatalf("git archive %s (the build to upgrade from; set E2E_UPGRADE_FROM to another revision): %v %s", rev, err, archiveErr.String())
	}
	if err := untar.Wait(); err != nil {
		t.Fatalf("unpacking %s: %v", rev, err)
	}
	dst := filepath.Join(pluginDir, vaulttest.PluginBinary+"-"+version)
	build := exec.Command("go", "build", "-o", dst, "-ldflags", "-X main.version="+version, "./cmd/vault-plugin-secrets-vendoroauth")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the plugin at %s: %v\n%s", rev, err, out)
	}
	sha, err := vaulttest.FileSHA256(dst)
	if err != nil {
		t.Fatal(err)
	}
	return dst, sha
}

// TestUpgradeFromReleaseKeepsEntriesAndConverts runs the build users have
// (see releaseRevision), stores credentials with it as they do, and
// upgrades the mount to this tree the way the README says. Everything the
// release wrote keeps working: cached tokens come back without a vendor
// request, the refresh token Penbox rotated to before the upgrade still
// refreshes, an authorization started before the upgrade finishes after
// it. Then a self-contained credential is turned into a connection of an
// app that holds the same client (vault write config/<name> app=<app>):
// it keeps its refresh token and its cached token (the same access token,
// no vendor call), a forced refresh works with the kept refresh token, and
// from then on the app's client secret is the one sent.
func TestUpgradeFromReleaseKeepsEntriesAndConverts(t *testing.T) {
	bin, err := vaulttest.VaultBin()
	if err != nil {
		t.Fatal(err)
	}
	root, err := vaulttest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	const (
		path = "vendoroauth-release"
		v1   = "v0.1.0-release"
		v2   = "v0.2.0-apps"
		app  = "rel-app"
	)
	rev := releaseRevision(t, root)
	bin1, sha1 := buildPluginAt(t, vault.PluginDir, rev, v1)
	bin2, sha2 := buildPluginCopy(t, vault.PluginDir, v2)
	t.Logf("upgrading from %s (%s) to this tree (%s)", rev, v1, v2)
	ctx := context.Background()
	sys := vault.Client.Sys()
	registerPluginVersion(t, v1, bin1, sha1)
	if err := sys.MountWithContext(ctx, path, &api.MountInput{
		Type: vaulttest.PluginName, Config: api.MountConfigInput{PluginVersion: v1},
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sys.UnmountWithContext(ctx, path) })
	expectRunning(t, path, v1, sha1)

	vend := standin.New()
	base, err := vend.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vend.Close()
	ornd := vend.Vendor(standin.VendorOfficeRnD)
	ornd.AddClient(standin.Client{ID: "rel-ornd", Secret: "rel-ornd-secret-Tg4", Scopes: []string{"officernd.api.read"}})
	pbx := vend.Vendor(standin.VendorPenbox)
	const pbxID, pbxSecret = "rel-pbx", "rel-pbx-secret-Mn6"
	pbx.AddClient(standin.Client{ID: pbxID, Secret: pbxSecret, RedirectURIs: []string{partnerCallback}})
	pbx.SetBehavior(standin.Behavior{Rotate: true, ReuseDetection: true})
	firstRefresh := pbx.IssueRefreshToken(pbxID)

	do := func(method, p string, body map[string]interface{}) (int, apiResponse, string) {
		t.Helper()
		return call(t, method, path+"/"+p, body)
	}
	pbxConfig := map[string]interface{}{"provider": "penbox", "token_url": base + pbx.TokenPath(), "authorize_url": base + "/penbox/authorize",
		"client_id": pbxID, "client_secret": pbxSecret}
	configs := map[string]map[string]interface{}{
		"ornd": {"provider": "officernd", "token_url": base + ornd.TokenPath(), "client_id": "rel-ornd",
			"client_secret": "rel-ornd-secret-Tg4", "scopes": "officernd.api.read"},
		"pbx":     withFields(pbxConfig, map[string]interface{}{"refresh_token": firstRefresh, "max_ttl": "20m"}),
		"connect": pbxConfig,
		"later":   pbxConfig,
		"static":  {"provider": "penbox", "grant_type": "static", "access_token": "rel-user-minted", "ttl": "2h"},
	}
	names := []string{"connect", "later", "ornd", "pbx", "static"}
	for _, n := range names {
		if status, r, _ := do("POST", "config/"+n, configs[n]); status/100 != 2 {
			t.Fatalf("config/%s with %s: HTTP %d %v", n, v1, status, r.Errors)
		}
	}
	vendorOf := map[string]*standin.Vendor{"ornd": ornd, "pbx": pbx, "connect": pbx, "static": nil}
	// connect is a Penbox account connected through the release's
	// authorize and exchange; later starts its authorization before the
	// upgrade and finishes it after.
	status, r, raw := do("POST", "authorize/connect", map[string]interface{}{"redirect_uri": partnerCallback})
	if status != 200 {
		t.Fatalf("authorize/connect with %s: HTTP %d %s", v1, status, raw)
	}
	code, state := browse(t, str(r.Data["url"]))
	if status, _, raw := do("POST", "exchange/connect", map[string]interface{}{"code": code, "state": state}); status != 200 {
		t.Fatalf("exchange/connect with %s: HTTP %d %s", v1, status, raw)
	}
	status, r, raw = do("POST", "authorize/later", map[string]interface{}{"redirect_uri": partnerCallback})
	if status != 200 {
		t.Fatalf("authorize/later with %s: HTTP %d %s", v1, status, raw)
	}
	laterCode, laterState := browse(t, str(r.Data["url"]))

	read := func(n string) string {
		t.Helper()
		status, r, body := do("GET", "token/"+n, nil)
		tok := str(r.Data["access_token"])
		if status != 200 || (vendorOf[n] != nil && !vendorOf[n].Valid(tok)) {
			t.Fatalf("token/%s: HTTP %d %s", n, status, body)
		}
		return tok
	}
	settings := func(n string) map[string]interface{} {
		t.Helper()
		status, r, body := do("GET", "config/"+n, nil)
		if status != 200 {
			t.Fatalf("config/%s: HTTP %d %s", n, status, body)
		}
		for _, k := range []string{"reads", "cache_hits", "upstream_grants", "failures", "next_refresh_at", "backoff_until"} {
			delete(r.Data, k)
		}
		return r.Data
	}
	tokenNames := []string{"connect", "ornd", "pbx", "static"}
	before := map[string]string{}
	for _, n := range tokenNames {
		before[n] = read(n)
	}
	// Penbox rotates: the refresh token that must survive is the one this
	// refresh rotated to, known only to Vault.
	if status, r, _ := do("POST", "refresh/pbx", nil); status != 200 {
		t.Fatalf("refresh/pbx with %s: HTTP %d %v", v1, status, r.Errors)
	}
	before["pbx"] = read("pbx")
	beforeSettings := map[string]map[string]interface{}{}
	for _, n := range names {
		beforeSettings[n] = settings(n)
	}
	requests := map[*standin.Vendor]int{ornd: ornd.Stats().Requests, pbx: pbx.Stats().Requests}

	registerPluginVersion(t, v2, bin2, sha2)
	vaultCLI(t, bin, "secrets", "tune", "-plugin-version="+v2, path)
	vaultCLI(t, bin, "write", "sys/plugins/reload/backend", "mounts="+path)
	expectRunning(t, path, v2, sha2)

	out := vaultCLI(t, bin, "list", "-format=json", path+"/config")
	for _, n := range names {
		if !strings.Contains(out, `"`+n+`"`) {
			t.Errorf("config/%s is gone after the upgrade: LIST says %s", n, out)
		}
	}
	for _, n := range tokenNames {
		if got := read(n); got != before[n] {
			t.Errorf("token/%s changed across the upgrade", n)
		}
	}
	for vd, n := range requests {
		if got := vd.Stats().Requests; got != n {
			t.Errorf("%s: the upgrade and the reads after it cost %d vendor requests", vd.Name(), got-n)
		}
	}
	for _, n := range names {
		after := settings(n)
		for _, k := range sortedFields(beforeSettings[n]) {
			// The release showed the preset's environment on every read;
			// this tree shows it only where it picked the token URL or was
			// written, and these configs name their token URL and no
			// environment. What is in effect did not change.
			if k == "environment" && after[k] == "" {
				continue
			}
			if !equalJSON(beforeSettings[n][k], after[k]) {
				t.Errorf("config/%s %s: %v with %s, %v after the upgrade", n, k, beforeSettings[n][k], v1, after[k])
			}
		}
	}

	// The authorization the release started did not record where its
	// code may go: this build does not exchange it, says to start again,
	// and the authorization started again finishes.
	if status, _, raw := do("POST", "exchange/later", map[string]interface{}{"code": laterCode, "state": laterState}); status != 400 || !strings.Contains(string(raw), "start again with vault write "+path+"/authorize/later") {
		t.Errorf("exchange/later after the upgrade, with the state the release issued: HTTP %d %s, want 400 saying to start again", status, raw)
	}
	status, r, raw = do("POST", "authorize/later", map[string]interface{}{"redirect_uri": partnerCallback})
	if status != 200 {
		t.Fatalf("authorize/later after the upgrade: HTTP %d %s", status, raw)
	}
	laterCode, laterState = browse(t, str(r.Data["url"]))
	if status, _, raw := do("POST", "exchange/later", map[string]interface{}{"code": laterCode, "state": laterState}); status != 200 {
		t.Errorf("exchange/later after the upgrade, started again: HTTP %d %s", status, raw)
	} else if tok := read("later"); !pbx.Valid(tok) {
		t.Errorf("token/later is not a valid Penbox token")
	}

	// The refresh token Penbox rotated to before the upgrade refreshes.
	if status, r, _ := do("POST", "refresh/connect", nil); status != 200 {
		t.Fatalf("refresh/connect after the upgrade: HTTP %d %v", status, r.Errors)
	}
	if got := read("connect"); got == before["connect"] {
		t.Errorf("refresh/connect after the upgrade handed out the old token")
	}

	// pbx becomes a connection of an app holding the same client.
	if status, r, _ := do("POST", "apps/"+app, withFields(pbxConfig, map[string]interface{}{"allowed_redirect_uris": partnerCallback})); status != 204 {
		t.Fatalf("apps/%s: HTTP %d %v", app, status, r.Errors)
	}
	presented := map[string]bool{}
	for _, req := range pbx.Requests() {
		presented[req.Form["refresh_token"]] = true
	}
	n := pbx.Stats().Requests
	vaultCLI(t, bin, "write", path+"/config/pbx", "app="+app)
	if got := read("pbx"); got != before["pbx"] {
		t.Errorf("token/pbx after the conversion is not the token cached before it")
	}
	if d := pbx.Stats().Requests - n; d != 0 {
		t.Errorf("the conversion and the read after it cost %d vendor requests", d)
	}
	conv := settings("pbx")
	if conv["app"] != app || conv["refresh_token_set"] != true || conv["client_secret_set"] != true || str(conv["client_id"]) != pbxID ||
		str(conv["token_url"]) != base+pbx.TokenPath() {
		t.Errorf("config/pbx after the conversion: %v", conv)
	}
	// The converted credential keeps its name, outside config/<app>/, and
	// is filed where storage files it: in the mount's status, with its app
	// (issue 19: a partner's status/<app> names only what it may list).
	if status, r, _ := do("GET", "status", nil); status != 200 {
		t.Errorf("status after the conversion: HTTP %d %v", status, r.Errors)
	} else if c, _ := r.Data["credentials"].(map[string]interface{})["pbx"].(map[string]interface{}); c == nil || c["app"] != app {
		t.Errorf("status after the conversion does not show pbx with app %s: %v", app, r.Data["credentials"])
	}
	// A forced refresh sends the kept refresh token (not one Penbox saw
	// before: that would be reuse, and revoke the chain).
	if status, r, _ := do("POST", "refresh/pbx", nil); status != 200 {
		t.Fatalf("refresh/pbx after the conversion: HTTP %d %v", status, r.Errors)
	}
	reqs := pbx.Requests()
	last := reqs[len(reqs)-1]
	if d := pbx.Stats().Requests - n; d != 1 || last.Form["grant_type"] != "refresh_token" || presented[last.Form["refresh_token"]] ||
		last.Form["client_id"] != pbxID {
		t.Errorf("refresh/pbx after the conversion: %d vendor requests, the last a %s grant for %s with a refresh token seen before: %v",
			d, last.Form["grant_type"], last.Form["client_id"], presented[last.Form["refresh_token"]])
	}
	third := read("pbx")
	if third == before["pbx"] || !pbx.Valid(third) {
		t.Errorf("token/pbx after the forced refresh is the old one, or not valid")
	}
	// From now on the app's client secret is the one sent: one write to
	// the app rotates it for the converted credential too.
	pbx.AddClientSecret(pbxID, "rel-pbx-secret-2-Pq1")
	if status, r, _ := do("POST", "apps/"+app, map[string]interface{}{"client_secret": "rel-pbx-secret-2-Pq1"}); status != 204 {
		t.Fatalf("rotating apps/%s's secret: HTTP %d %v", app, status, r.Errors)
	}
	if status, r, _ := do("POST", "refresh/pbx", nil); status != 200 {
		t.Fatalf("refresh/pbx after the app's secret changed: HTTP %d %v", status, r.Errors)
	}
	reqs = pbx.Requests()
	if got := reqs[len(reqs)-1].Form["client_secret"]; got != "rel-pbx-secret-2-Pq1" {
		t.Errorf("the converted credential's refresh did not send the app's new client secret")
	}
	if n := pbx.Stats().ReuseDetections; n != 0 {
		t.Errorf("Penbox saw a rotated-away refresh token %d times", n)
	}
	// Every vendor call, in order: connect's exchange, pbx's read and
	// forced refresh with the release; later's exchange, connect's
	// refresh, and pbx's two forced refreshes after the conversion.
	if st := pbx.Stats(); st.Requests != 7 || st.Grants != 7 {
		t.Errorf("Penbox saw %d requests (%d granted), want 7, all granted: %v", st.Requests, st.Grants, st.ByGrantType)
	}
}

// withFields returns a copy of base with extra set.
func withFields(base, extra map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(base)+len(extra))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}
