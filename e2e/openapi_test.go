//go:build e2e

package e2e

import (
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// TestOpenAPIAndPathHelp: the Vault UI and CLI learn the plugin's paths
// from its OpenAPI document and path help; both must describe every path and
// field, with secrets marked sensitive.
func TestOpenAPIAndPathHelp(t *testing.T) {
	status, _, body := call(t, "GET", "sys/internal/specs/openapi", nil)
	if status != 200 {
		t.Fatalf("openapi: HTTP %d", status)
	}
	var doc struct {
		Paths      map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"/" + mount + "/config/{name}":    {"client_secret", "refresh_token", "api_key", "extra_headers", "scopes", "expiry_skew", "grant_type"},
		"/" + mount + "/config/":          {},
		"/" + mount + "/token/{name}":     {"access_token", "expires_at", "token_type", "scope"},
		"/" + mount + "/authorize/{name}": {"redirect_uri", "state", "scopes"},
		"/" + mount + "/exchange/{name}":  {"code", "state"},
		"/" + mount + "/refresh/{name}":   {},
		"/" + mount + "/status":           {},
	}
	for path, fields := range want {
		raw, ok := doc.Paths[path]
		if !ok {
			t.Errorf("OpenAPI has no %s (has %v)", path, pathsUnder(doc.Paths, "/"+mount+"/"))
			continue
		}
		// Request and response fields sit in components named after the
		// operation ids (vendor-oauth-read-token: VendorOauthReadToken...).
		spec := string(raw)
		for _, m := range opRE.FindAllStringSubmatch(spec, -1) {
			base := camel(m[1])
			spec += string(doc.Components.Schemas[base+"Request"]) + string(doc.Components.Schemas[base+"Response"])
		}
		if !strings.Contains(spec, `"description"`) {
			t.Errorf("%s has no description", path)
		}
		for _, f := range fields {
			if !strings.Contains(spec, `"`+f+`"`) {
				t.Errorf("%s does not describe %s", path, f)
			}
		}
	}
	// Secrets are marked sensitive so the UI masks them.
	for id, schema := range doc.Components.Schemas {
		if !strings.HasPrefix(id, "VendorOauth") {
			continue // Vault's own schemas
		}
		var obj struct {
			Properties map[string]struct {
				Display map[string]interface{} `json:"x-vault-displayAttrs"`
			} `json:"properties"`
		}
		_ = json.Unmarshal(schema, &obj)
		for _, f := range []string{"client_secret", "refresh_token", "api_key", "extra_headers", "code"} {
			if p, ok := obj.Properties[f]; ok && p.Display["sensitive"] != true {
				t.Errorf("field %s is not marked sensitive: %v", f, p.Display)
			}
		}
	}

	bin, err := vaulttest.VaultBin()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"config/x", "token/x", "authorize/x", "exchange/x", "refresh/x", "status"} {
		cmd := exec.Command(bin, "path-help", mount+"/"+p)
		cmd.Env = vaulttest.CLIEnv("ADDR", vault.Addr, "TOKEN", vaulttest.RootToken)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "## DESCRIPTION") {
			t.Errorf("vault path-help %s: %v\n%s", p, err, out)
		}
	}
}

var opRE = regexp.MustCompile(`"operationId":\s*"([^"]+)"`)

func camel(id string) string {
	var b strings.Builder
	for _, part := range strings.Split(id, "-") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

func pathsUnder(paths map[string]json.RawMessage, prefix string) []string {
	var out []string
	for p := range paths {
		if strings.HasPrefix(p, prefix) {
			out = append(out, p)
		}
	}
	return out
}
