//go:build e2e

package e2e

import (
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

var vaultReloadInput = api.ReloadPluginInput{Plugin: "vendoroauth"}

// waitForMount polls until the mount answers again after a plugin reload.
func waitForMount(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, _, _ := call(t, "LIST", mount+"/config", nil)
		if status == 200 || status == 404 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mount did not answer after a reload (HTTP %d)", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func parseBasic(h string) (user, pass string, ok bool) {
	const prefix = "Basic "
	if !strings.HasPrefix(h, prefix) {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(h[len(prefix):])
	if err != nil {
		return "", "", false
	}
	user, pass, ok = strings.Cut(string(raw), ":")
	return user, pass, ok
}

// startMountedVault starts a Vault of the test's own with opts, registers
// the plugin binary (with sha) of opts.PluginDir as version and mounts it
// at mount. It stops with the test, and a failed test shows its log's tail.
func startMountedVault(t *testing.T, opts vaulttest.Options, version, sha string) *vaulttest.Vault {
	t.Helper()
	v, err := vaulttest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vault log (tail):\n%s", tail(v.Log(), 150))
		}
		v.Stop()
	})
	if err := v.Register(version, sha); err != nil {
		t.Fatal(err)
	}
	if err := v.Enable(mount, version); err != nil {
		t.Fatal(err)
	}
	return v
}

// pluginSHA is the SHA-256 of the plugin binary the suite built.
func pluginSHA(t *testing.T) string {
	t.Helper()
	sha, err := vaulttest.FileSHA256(filepath.Join(vault.PluginDir, vaulttest.PluginBinary))
	if err != nil {
		t.Fatal(err)
	}
	return sha
}
