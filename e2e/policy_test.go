//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"io"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/bootstrap"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// TestShippedPolicies applies bootstrap/policies to the dev Vault and
// proves what tokens holding them can and cannot do: a reader reads its
// own token and nothing else (not a name that merely starts the same, not
// a config, not the list of names); an operator manages configs and reads
// tokens, and has no other power over the mount or Vault.
func TestShippedPolicies(t *testing.T) {
	v := vendors.Vendor("generic")
	v.AddClient(standin.Client{ID: "pol-client", Secret: "pol-secret-Hh4"})
	// pol-a-2 is the trap for a reader policy written as "token/pol-a*".
	names := []string{"pol-a", "pol-a-2", "pol-b"}
	for _, name := range names {
		writeConfig(t, name, map[string]interface{}{
			"token_url":     baseURL + v.TokenPath(),
			"client_id":     "pol-client",
			"client_secret": "pol-secret-Hh4",
		})
		t.Cleanup(func() { call(t, "DELETE", mount+"/config/"+name, nil) })
	}

	operator, err := bootstrap.OperatorPolicy(mount)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := bootstrap.ReaderPolicy(mount, "pol-a")
	if err != nil {
		t.Fatal(err)
	}
	putPolicyForTest(t, "e2e-pol-operator", operator)
	putPolicyForTest(t, "e2e-pol-reader-pol-a", reader)
	// Tokens without the default policy, so everything they can do comes
	// from the shipped policy. (Real tokens also carry default, which only
	// lets a token look itself up, renew and revoke itself, and use its
	// cubbyhole.)
	readerTok := tokenWithPolicies(t, true, "e2e-pol-reader-pol-a")
	opTok := tokenWithPolicies(t, true, "e2e-pol-operator")

	t.Run("reader", func(t *testing.T) {
		status, r, body := callAs(t, readerTok, "GET", mount+"/token/pol-a", nil)
		if status != 200 || !v.Valid(str(r.Data["access_token"])) {
			t.Fatalf("reading its own token: HTTP %d %s", status, body)
		}
		denied := []struct{ method, path string }{
			{"GET", mount + "/token/pol-a-2"},
			{"GET", mount + "/token/pol-b"},
			{"GET", mount + "/config/pol-a"},
			{"LIST", mount + "/config"},
			{"POST", mount + "/config/pol-a"},
			{"DELETE", mount + "/config/pol-a"},
			{"POST", mount + "/token/pol-a"},
			{"GET", "sys/mounts"},
		}
		for _, d := range denied {
			expectDenied(t, readerTok, d.method, d.path)
		}
	})

	t.Run("operator", func(t *testing.T) {
		name := "pol-op"
		t.Cleanup(func() { call(t, "DELETE", mount+"/config/"+name, nil) })
		cfg := map[string]interface{}{
			"token_url":     baseURL + v.TokenPath(),
			"client_id":     "pol-client",
			"client_secret": "pol-secret-Hh4",
		}
		allowed := []struct {
			method, path string
			body         map[string]interface{}
			want         int
		}{
			{"POST", mount + "/config/" + name, cfg, 204},                                               // create
			{"POST", mount + "/config/" + name, map[string]interface{}{"scopes": "read"}, 204},          // update
			{"GET", mount + "/config/" + name, nil, 200},                                                // read
			{"LIST", mount + "/config", nil, 200},                                                       // list
			{"GET", mount + "/token/pol-b", nil, 200},                                                   // any token
			{"DELETE", mount + "/config/" + name, nil, 204},                                             // delete
			{"POST", mount + "/config/" + name, map[string]interface{}{"client_id": "pol-client"}, 400}, // the plugin, not the ACL, refuses
		}
		for _, a := range allowed {
			status, _, body := callAs(t, opTok, a.method, a.path, a.body)
			if status != a.want {
				t.Errorf("%s %s as operator: HTTP %d, want %d: %s", a.method, a.path, status, a.want, body)
			}
		}
		denied := []struct{ method, path string }{
			{"POST", mount + "/token/pol-b"},
			{"GET", mount + "/nonexistent"},
			{"POST", "sys/mounts/" + mount + "/tune"},
			{"DELETE", "sys/mounts/" + mount},
			{"GET", "sys/plugins/catalog/secret/vendoroauth"},
			{"POST", "sys/plugins/reload/backend"},
			{"PUT", "sys/policies/acl/e2e-pol-escalate"},
			{"POST", "auth/token/create"},
			{"GET", "sys/mounts"},
		}
		for _, d := range denied {
			expectDenied(t, opTok, d.method, d.path)
		}
	})

	// Vault's own account of each token's powers, path by path.
	t.Run("capabilities", func(t *testing.T) {
		cases := []struct {
			tok, path string
			want      []string
		}{
			{readerTok, mount + "/token/pol-a", []string{"read"}},
			{readerTok, mount + "/token/pol-a-2", []string{"deny"}},
			{readerTok, mount + "/token/pol-a/x", []string{"deny"}},
			{readerTok, mount + "/token/pol-b", []string{"deny"}},
			{readerTok, mount + "/config/pol-a", []string{"deny"}},
			{readerTok, mount + "/config/", []string{"deny"}},
			{opTok, mount + "/config/anything", []string{"create", "delete", "list", "read", "update"}},
			{opTok, mount + "/config/", []string{"create", "delete", "list", "read", "update"}},
			{opTok, mount + "/token/anything", []string{"read"}},
			{opTok, mount + "/other", []string{"deny"}},
			{opTok, "sys/mounts/" + mount + "/tune", []string{"deny"}},
			{opTok, "sys/policies/acl/x", []string{"deny"}},
		}
		for _, c := range cases {
			got, err := vault.Client.Sys().Capabilities(c.tok, c.path)
			if err != nil {
				t.Fatalf("capabilities of %s: %v", c.path, err)
			}
			sort.Strings(got)
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				who := "operator"
				if c.tok == readerTok {
					who = "reader"
				}
				t.Errorf("%s on %s: %v, want %v", who, c.path, got, c.want)
			}
		}
	})
}

// expectDenied asserts that Vault's ACL refuses the request.
func expectDenied(t *testing.T, token, method, path string) {
	t.Helper()
	status, _, body := callAs(t, token, method, path, map[string]interface{}{})
	if status != 403 {
		t.Errorf("%s %s: HTTP %d, want 403: %s", method, path, status, body)
	}
}

// putPolicyForTest writes an ACL policy and deletes it when the test ends.
func putPolicyForTest(t *testing.T, name, rules string) {
	t.Helper()
	if status, r, _ := call(t, "PUT", "sys/policies/acl/"+name, map[string]interface{}{"policy": rules}); status != 204 {
		t.Fatalf("writing policy %s: HTTP %d %v", name, status, r.Errors)
	}
	t.Cleanup(func() { call(t, "DELETE", "sys/policies/acl/"+name, nil) })
}

// tokenWithPolicies creates a 30-minute token holding the given policies,
// with or without Vault's default policy.
func tokenWithPolicies(t *testing.T, noDefault bool, policies ...string) string {
	t.Helper()
	s, err := vault.Client.Auth().Token().CreateWithContext(context.Background(), &api.TokenCreateRequest{
		Policies:        policies,
		NoDefaultPolicy: noDefault,
		TTL:             "30m",
	})
	if err != nil {
		t.Fatalf("creating a token with %v: %v", policies, err)
	}
	return s.Auth.ClientToken
}

// callAs is call with another Vault token.
func callAs(t *testing.T, token, method, path string, body map[string]interface{}) (int, apiResponse, string) {
	t.Helper()
	c, err := vault.Client.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	req := c.NewRequest(method, "/v1/"+path)
	if body != nil {
		if err := req.SetJSONBody(body); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := c.RawRequestWithContext(context.Background(), req)
	if resp == nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	var r apiResponse
	if len(out) > 0 {
		_ = json.Unmarshal(out, &r)
	}
	return resp.StatusCode, r, string(out)
}
