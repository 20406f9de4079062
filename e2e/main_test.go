//go:build e2e

// Package e2e runs the plugin binary inside a real Vault server and talks to
// it over Vault's HTTP API, as users do. Vendors are played by the strict
// local stand-in, in this test process, on loopback.
package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

const (
	mount         = "vendoroauth"
	pluginVersion = "v0.1.0-e2e"
)

var (
	vault   *vaulttest.Vault
	vendors *standin.Server
	baseURL string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "vendoroauth-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	plugins := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sha, err := vaulttest.BuildPlugin(plugins, pluginVersion)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	vendors = standin.New()
	baseURL, err = vendors.Start("127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer vendors.Close()

	vault, err = vaulttest.Start(vaulttest.Options{PluginDir: plugins, LogLevel: "trace", LogPath: filepath.Join(dir, "vault.log")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer vault.Stop()
	if err := vault.Register(pluginVersion, sha); err != nil {
		fmt.Fprintln(os.Stderr, "register:", err)
		return 1
	}
	if err := vault.Enable(mount, pluginVersion); err != nil {
		fmt.Fprintln(os.Stderr, "enable:", err)
		return 1
	}
	code := m.Run()
	if code != 0 {
		// The log is the first thing anyone debugging a failure wants.
		fmt.Fprintf(os.Stderr, "---- vault log (last 200 lines) ----\n%s\n", tail(vault.Log(), 200))
	}
	return code
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// apiResponse is Vault's JSON answer.
type apiResponse struct {
	LeaseID       string                 `json:"lease_id"`
	Renewable     bool                   `json:"renewable"`
	LeaseDuration int                    `json:"lease_duration"`
	Data          map[string]interface{} `json:"data"`
	Warnings      []string               `json:"warnings"`
	Errors        []string               `json:"errors"`
}

// call does one request against Vault's HTTP API and decodes the answer.
func call(t *testing.T, method, path string, body map[string]interface{}) (int, apiResponse, string) {
	t.Helper()
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	status, out, err := vault.Raw(method, path, raw)
	if err != nil && status == 0 {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	var r apiResponse
	if len(out) > 0 {
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("%s %s: answer is not JSON (%v): %s", method, path, err, out)
		}
	}
	return status, r, string(out)
}

func writeConfig(t *testing.T, name string, body map[string]interface{}) {
	t.Helper()
	status, r, _ := call(t, "POST", mount+"/config/"+name, body)
	if status/100 != 2 {
		t.Fatalf("writing config/%s: HTTP %d %v", name, status, r.Errors)
	}
}

func readToken(t *testing.T, name string) apiResponse {
	t.Helper()
	status, r, _ := call(t, "GET", mount+"/token/"+name, nil)
	if status != 200 {
		t.Fatalf("reading token/%s: HTTP %d %v", name, status, r.Errors)
	}
	return r
}

func str(v interface{}) string {
	s, _ := v.(string)
	return s
}
