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

	"github.com/hashicorp/vault/api"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// sharedDir is ../shared beside the repository: the tools no registry
// reachable here serves (OpenTofu and the Vault provider, vault-action).
func sharedDir(t *testing.T, sub string) string {
	t.Helper()
	root, err := vaulttest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "..", "shared", sub)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("%s is absent: this test needs the files it provides (see its README); skipped", dir)
	}
	return dir
}

// TestTerraformExample applies bootstrap/terraform/main.tf, unchanged,
// with OpenTofu and the Vault provider from ../shared/terraform/ against
// this Vault (or OpenBao): at a mount of its own (var.mount), with the
// credentials' token_urls pointing at the stand-in (var.token_urls). The
// apply registers the plugin, enables the mount, writes the four
// credentials and the policies named by the mount, and opens the
// ephemeral resource, which reads OfficeRnD's token; a second plan finds
// nothing to change; the state keeps the client secret (as the README
// says) but not the access token.
func TestTerraformExample(t *testing.T) {
	sharedDir(t, "terraform")
	root, err := vaulttest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(root, "scripts", "tofu.sh")).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("scripts/tofu.sh: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	tofu := strings.TrimSpace(string(out))

	// The example with the policies it reads, as in the repository.
	work := t.TempDir()
	for _, sub := range []string{"terraform", "policies"} {
		copyDir(t, filepath.Join(root, "bootstrap", sub), filepath.Join(work, "bootstrap", sub))
	}
	dir := filepath.Join(work, "bootstrap", "terraform")

	// The plugin as TestMain registered it (same version and binary).
	plugin, err := vault.Client.Sys().GetPlugin(&api.GetPluginInput{Name: vaulttest.PluginName, Type: api.PluginTypeSecrets, Version: pluginVersion})
	if err != nil {
		t.Fatalf("reading the catalog entry: %v", err)
	}
	const tfMount = "tf-vendoroauth"
	ornd, bp, esb, pbx := vendors.Vendor(standin.VendorOfficeRnD), vendors.Vendor(standin.VendorBoldPenguin),
		vendors.Vendor(standin.VendorEshopbox), vendors.Vendor(standin.VendorPenbox)
	ornd.AddClient(standin.Client{ID: "tf-ornd", Secret: "tf-ornd-secret-1", Scopes: []string{"officernd.api.read", "officernd.api.write"}})
	bp.AddClient(standin.Client{ID: "tf-bp", Secret: "tf-bp-secret-1", APIKey: "tf-bp-api-key-1"})
	esb.AddClient(standin.Client{ID: "tf-esb", Secret: "tf-esb-secret-1"})
	esb.AddRefreshToken("tf-esb", "tf-esb-refresh-1")
	pbx.AddClient(standin.Client{ID: "tf-pbx", Secret: "tf-pbx-secret-1"})
	pbx.AddRefreshToken("tf-pbx", "tf-pbx-refresh-1")
	urls, _ := json.Marshal(map[string]string{
		"officernd": baseURL + ornd.TokenPath(), "boldpenguin": baseURL + bp.TokenPath(),
		"eshopbox": baseURL + esb.TokenPath(), "penbox": baseURL + pbx.TokenPath(),
	})
	env := append(os.Environ(),
		"TF_CLI_CONFIG_FILE="+filepath.Join(filepath.Dir(tofu), "tofurc"),
		"TF_IN_AUTOMATION=1", "TF_INPUT=0", "CHECKPOINT_DISABLE=1",
		"VAULT_ADDR="+vault.Addr, "VAULT_TOKEN="+vaulttest.RootToken,
		"TF_VAR_mount="+tfMount, "TF_VAR_token_urls="+string(urls),
		"TF_VAR_plugin_version="+pluginVersion, "TF_VAR_plugin_sha256="+plugin.SHA256,
		"TF_VAR_plugin_command="+vaulttest.PluginBinary,
		"TF_VAR_officernd_client_id=tf-ornd", "TF_VAR_officernd_client_secret=tf-ornd-secret-1",
		"TF_VAR_boldpenguin_client_id=tf-bp", "TF_VAR_boldpenguin_client_secret=tf-bp-secret-1", "TF_VAR_boldpenguin_api_key=tf-bp-api-key-1",
		"TF_VAR_eshopbox_client_id=tf-esb", "TF_VAR_eshopbox_client_secret=tf-esb-secret-1", "TF_VAR_eshopbox_refresh_token=tf-esb-refresh-1",
		"TF_VAR_penbox_client_id=tf-pbx", "TF_VAR_penbox_client_secret=tf-pbx-secret-1", "TF_VAR_penbox_refresh_token=tf-pbx-refresh-1",
	)
	run := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(tofu, args...)
		cmd.Dir, cmd.Env = dir, env
		var b bytes.Buffer
		cmd.Stdout, cmd.Stderr = &b, &b
		start := time.Now()
		err := cmd.Run()
		t.Logf("tofu %s (%s):\n%s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), tail(b.String(), 40))
		return b.String(), err
	}
	t.Cleanup(func() {
		// The mount and the policies are this test's; the catalog entry
		// is TestMain's, which the destroy would deregister, so it is
		// left out of the state first.
		_, _ = run("state", "rm", "vault_plugin.vendoroauth")
		_, _ = run("destroy", "-auto-approve", "-no-color")
	})

	if _, err := run("init", "-no-color"); err != nil {
		t.Fatal("tofu init failed")
	}
	if _, err := run("apply", "-auto-approve", "-no-color"); err != nil {
		t.Fatal("the first apply failed")
	}
	for _, p := range []string{tfMount + "-operator", tfMount + "-reader-officernd", tfMount + "-reader-penbox"} {
		got, err := vault.Client.Sys().GetPolicy(p)
		if err != nil || !strings.Contains(got, `path "`+tfMount+`/`) {
			t.Errorf("policy %s: %v %q", p, err, got)
		}
	}

	// Again: nothing to change (-detailed-exitcode: 0 = no changes, 2 =
	// changes). Now that the mount exists, the plan opens the ephemeral
	// resource, which reads the token (the first apply planned it before
	// there was a mount to read from).
	grants := ornd.Stats().Grants
	if out, err := run("plan", "-detailed-exitcode", "-no-color"); err != nil {
		t.Errorf("the second plan is not empty (%v):\n%s", err, out)
	} else if !strings.Contains(out, "ephemeral.vault_generic_secret.officernd_token: Open complete") {
		t.Error("the plan did not open the ephemeral resource")
	}
	if ornd.Stats().Grants == grants {
		t.Error("opening the ephemeral resource read no OfficeRnD token from the vendor")
	}
	if out, err := run("apply", "-auto-approve", "-no-color"); err != nil || !strings.Contains(out, "0 added, 0 changed, 0 destroyed") {
		t.Errorf("the second apply changed something (%v)", err)
	}
	status, r, _ := call(t, "GET", tfMount+"/token/officernd", nil)
	token := str(r.Data["access_token"])
	if status != 200 || !ornd.Valid(token) {
		t.Fatalf("token/officernd at the mount Terraform wrote: HTTP %d %v", status, r.Errors)
	}

	state, err := os.ReadFile(filepath.Join(dir, "terraform.tfstate"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(state), token) {
		t.Error("the state holds the access token the ephemeral resource read")
	}
	if !strings.Contains(string(state), "tf-ornd-secret-1") {
		t.Error("the state does not hold the client secret; the README says it does: correct the README")
	}
}

// copyDir copies the regular files of src into dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
