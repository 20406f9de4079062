package bootstrap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/vault/api"
)

// fakeVault answers the few requests Apply makes, as Vault and the plugin
// would: mounts, ACL policies, and config/ and apps/ entries whose reads
// show every field written except secrets, which are shown as <field>_set.
// It is for the tool's bookkeeping; e2e/bootstrap_test.go runs the tool
// against the real Vault and plugin.
type fakeVault struct {
	mu       sync.Mutex
	mounts   map[string]bool
	policies map[string]string
	entries  map[string]map[string]interface{}
	writes   []string
}

func newFakeVault(t *testing.T) (*fakeVault, *api.Client) {
	t.Helper()
	f := &fakeVault{mounts: map[string]bool{}, policies: map[string]string{}, entries: map[string]map[string]interface{}{}}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	conf := api.DefaultConfig()
	conf.Address = srv.URL
	c, err := api.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("test-token")
	return f, c
}

func (f *fakeVault) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	answer := func(data interface{}) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(data)
	}
	var body map[string]interface{}
	if r.Body != nil {
		_ = json.NewDecoder(r.Body).Decode(&body)
	}
	switch {
	case path == "sys/mounts" && r.Method == http.MethodGet:
		data := map[string]interface{}{}
		for m := range f.mounts {
			data[m+"/"] = map[string]interface{}{"type": DefaultPluginName}
		}
		answer(map[string]interface{}{"data": data})
	case strings.HasPrefix(path, "sys/mounts/") && r.Method == http.MethodPost:
		f.mounts[strings.TrimPrefix(path, "sys/mounts/")] = true
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(path, "sys/policies/acl/"):
		name := strings.TrimPrefix(path, "sys/policies/acl/")
		if r.Method == http.MethodGet {
			p, ok := f.policies[name]
			if !ok {
				w.WriteHeader(http.StatusNotFound)
				answer(map[string]interface{}{"errors": []string{}})
				return
			}
			answer(map[string]interface{}{"data": map[string]interface{}{"name": name, "policy": p}})
			return
		}
		f.policies[name], _ = body["policy"].(string)
		f.writes = append(f.writes, "policy "+name)
		w.WriteHeader(http.StatusNoContent)
	default:
		if r.Method == http.MethodGet {
			e, ok := f.entries[path]
			if !ok {
				w.WriteHeader(http.StatusNotFound)
				answer(map[string]interface{}{"errors": []string{}})
				return
			}
			shown := map[string]interface{}{}
			for k, v := range e {
				if secretFields[k] {
					shown[k+"_set"] = true
					continue
				}
				shown[k] = v
			}
			answer(map[string]interface{}{"data": shown})
			return
		}
		e := f.entries[path]
		if e == nil {
			e = map[string]interface{}{}
		}
		for k, v := range body {
			e[k] = v
		}
		f.entries[path] = e
		f.writes = append(f.writes, "write "+path)
		w.WriteHeader(http.StatusNoContent)
	}
}

func applyFile(t *testing.T, c *api.Client, raw string, env map[string]string) string {
	t.Helper()
	p, err := Parse([]byte(raw), t.TempDir(), envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Apply(context.Background(), c, p, Options{Out: &out}); err != nil {
		t.Fatalf("apply: %v\n%s", err, out.String())
	}
	return out.String()
}

// TestPolicyNamesCarryTheMount: bootstrapping a second mount writes its
// own operator and reader policies and leaves the first mount's alone; the
// default mount keeps the names the README and the policy files use.
func TestPolicyNamesCarryTheMount(t *testing.T) {
	t.Parallel()
	f, c := newFakeVault(t)
	file := func(mount string) string {
		return `{"mount": "` + mount + `", "policies": true, "credentials": {"officernd": {"provider": "officernd", "client_id": "id"}}}`
	}
	applyFile(t, c, file("vendoroauth"), nil)
	first := f.policies["vendoroauth-operator"]
	if !strings.Contains(first, `path "vendoroauth/config/*"`) || f.policies["vendoroauth-reader-officernd"] == "" {
		t.Fatalf("the default mount's policies are not under their usual names: %v", f.policies)
	}
	out := applyFile(t, c, file("team/vendoroauth"), nil)
	if f.policies["vendoroauth-operator"] != first {
		t.Errorf("bootstrapping team/vendoroauth overwrote the first mount's operator policy:\n%s", out)
	}
	second := f.policies["team-vendoroauth-operator"]
	if !strings.Contains(second, `path "team/vendoroauth/config/*"`) || !strings.Contains(f.policies["team-vendoroauth-reader-officernd"], `path "team/vendoroauth/token/officernd"`) {
		t.Errorf("the second mount's policies: %v\n%s", f.policies, out)
	}
	if !strings.Contains(out, "policy team-vendoroauth-operator: written") {
		t.Errorf("the output does not name the policy it wrote:\n%s", out)
	}
	if got := OperatorPolicyNameFor("Tools/OAuth"); got != "tools-oauth-operator" {
		t.Errorf("OperatorPolicyNameFor(Tools/OAuth) = %q: Vault lowercases policy names", got)
	}
}

// TestRerunReportsUnchanged: a second run of the same file says
// "unchanged" for every app, connection and credential (secrets compared
// by whether they are set), and "updated" for the one whose field the
// file changed.
func TestRerunReportsUnchanged(t *testing.T) {
	t.Parallel()
	_, c := newFakeVault(t)
	env := map[string]string{"SECRET": "client-secret-1", "RT": "refresh-token-1", "PSECRET": "partner-secret-1"}
	file := func(scopes string) string {
		return `{"credentials": {
		  "officernd": {"provider": "officernd", "client_id": "id", "client_secret": {"env": "SECRET"},
		    "scopes": ` + scopes + `, "default_ttl": "10m", "use_pkce": false, "extra_params": {"a": "b"}},
		  "eshopbox": {"provider": "eshopbox", "client_id": "id2", "client_secret": {"env": "SECRET"}, "refresh_token": {"env": "RT"}}
		},
		"apps": {"partner": {"provider": "penbox", "client_id": "pid", "client_secret": {"env": "PSECRET"},
		  "allowed_redirect_uris": ["https://partner.example/cb"],
		  "connections": {"acme": {"refresh_token": {"env": "RT"}, "metadata": {"customer_id": "c-1"}}}}}}`
	}
	first := applyFile(t, c, file(`["r", "w"]`), env)
	for _, want := range []string{"config/officernd: created", "apps/partner: created", "config/partner/acme: created"} {
		if !strings.Contains(first, want) {
			t.Errorf("first run: no %q in\n%s", want, first)
		}
	}
	again := applyFile(t, c, file(`["r", "w"]`), env)
	for _, want := range []string{"config/officernd: unchanged", "config/eshopbox: unchanged", "apps/partner: unchanged", "config/partner/acme: unchanged"} {
		if !strings.Contains(again, want) {
			t.Errorf("identical re-run: no %q in\n%s", want, again)
		}
	}
	if strings.Contains(again, "updated") {
		t.Errorf("identical re-run reports an update:\n%s", again)
	}
	changed := applyFile(t, c, file(`["r"]`), env)
	if !strings.Contains(changed, "config/officernd: updated") || !strings.Contains(changed, "config/eshopbox: unchanged") {
		t.Errorf("a run that changes officernd's scopes:\n%s", changed)
	}
}

func TestSameAsRead(t *testing.T) {
	t.Parallel()
	read := map[string]interface{}{
		"scopes": []interface{}{"a", "b"}, "default_ttl": float64(600), "expiry_skew": "30s", "use_pkce": true,
		"client_secret_set": true, "refresh_token_set": false, "extra_header_names": []interface{}{"X-B", "X-A"},
		"metadata": map[string]interface{}{"k": "v"}, "provider": "penbox", "refresh_rate": float64(10),
	}
	tests := []struct {
		name string
		body map[string]interface{}
		diff string
	}{
		{"same", map[string]interface{}{"scopes": []interface{}{"a", "b"}, "provider": "penbox", "use_pkce": true}, ""},
		{"list as a comma string", map[string]interface{}{"scopes": "a,b"}, ""},
		{"duration as text against seconds", map[string]interface{}{"default_ttl": "10m"}, ""},
		{"seconds against a duration", map[string]interface{}{"expiry_skew": float64(30)}, ""},
		{"number", map[string]interface{}{"refresh_rate": float64(10)}, ""},
		{"secret set", map[string]interface{}{"client_secret": "x"}, ""},
		{"secret not set", map[string]interface{}{"refresh_token": "x"}, "refresh_token"},
		{"header names in any order", map[string]interface{}{"extra_headers": map[string]interface{}{"X-A": "1", "X-B": "2"}}, ""},
		{"a header more", map[string]interface{}{"extra_headers": map[string]interface{}{"X-A": "1"}}, "extra_headers"},
		{"other list", map[string]interface{}{"scopes": []interface{}{"b", "a"}}, "scopes"},
		{"other value", map[string]interface{}{"provider": "eshopbox"}, "provider"},
		{"other metadata", map[string]interface{}{"metadata": map[string]interface{}{"k": "w"}}, "metadata"},
		{"a field the read does not show", map[string]interface{}{"ttl": "24h"}, "ttl"},
		{"back to the default", map[string]interface{}{"provider": ""}, "provider"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := sameAsRead(tc.body, read); got != tc.diff {
				t.Errorf("sameAsRead(%v) = %q, want %q", tc.body, got, tc.diff)
			}
		})
	}
}

// TestRefusesVaultsOwnToken: a secret whose source is the tool's own Vault
// token (VAULT_TOKEN, BAO_TOKEN or another VAULT_* variable, a token file,
// or any source whose value is the token) is refused before anything is
// sent.
func TestRefusesVaultsOwnToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, content := range map[string]string{".vault-token": "hvs.admin", "vault-token": "hvs.agent", "plain": "hvs.admin\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, ".vault-token"), filepath.Join(dir, "innocent")); err != nil {
		t.Fatal(err)
	}
	env := envOf(map[string]string{"VAULT_TOKEN": "hvs.admin", "BAO_TOKEN": "hvs.admin", "vault_client_key": "k", "GOOD": "fine-secret"})
	for _, src := range []string{`{"env": "VAULT_TOKEN"}`, `{"env": "BAO_TOKEN"}`, `{"env": "vault_client_key"}`,
		`{"file": ".vault-token"}`, `{"file": "vault-token"}`, `{"file": "innocent"}`} {
		raw := `{"credentials": {"x": {"token_url": "https://attacker.example/token", "client_id": "id", "client_secret": ` + src + `}}}`
		_, err := Parse([]byte(raw), dir, env)
		var le *LoadError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), "never from Vault's own token") {
			t.Errorf("source %s: err = %v, want a refusal", src, err)
		}
		if err != nil && strings.Contains(err.Error(), "hvs.") {
			t.Errorf("the refusal shows the token: %v", err)
		}
	}
	raw := `{"credentials": {"x": {"client_id": "id", "client_secret": {"file": "plain"}, "api_key": {"env": "GOOD"}}}}`
	p, err := Parse([]byte(raw), dir, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.RefuseVaultToken("hvs.admin"); err == nil || strings.Contains(err.Error(), "hvs.") {
		t.Errorf("a file holding the token the tool runs with: err = %v, want a refusal that does not show it", err)
	}
	if err := p.RefuseVaultToken("hvs.other"); err != nil {
		t.Errorf("another token: %v", err)
	}
}
