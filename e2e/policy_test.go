//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/bootstrap"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
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
	// Any method: no non-deprecated call of the API client takes one.
	resp, err := c.RawRequestWithContext(context.Background(), req) //nolint:staticcheck // SA1019: see above
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

// partnerPolicy is the shipped partner policy for app, read from
// bootstrap/policies as a user applies it.
func partnerPolicy(t *testing.T, app string) string {
	t.Helper()
	root, err := vaulttest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "bootstrap", "policies", "vendoroauth-partner.hcl.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	p := strings.ReplaceAll(string(b), "${APP}", app)
	if strings.Contains(p, "${") {
		t.Fatalf("the partner policy has a placeholder other than ${APP}:\n%s", p)
	}
	return strings.ReplaceAll(p, `path "vendoroauth/`, `path "`+mount+`/`)
}

// TestShippedPartnerPolicy applies bootstrap/policies/
// vendoroauth-partner.hcl.tmpl for one app and proves what a token holding
// only it can do: connect accounts of its app (authorize, the user's
// consent, exchange), read their tokens, their config and the app's
// status and feed, list them; and nothing of another app (not one whose name starts
// the same), no app at all (apps/* holds the client secret), no config
// write or delete, not even of its own connections, no forced refresh.
func TestShippedPartnerPolicy(t *testing.T) {
	const (
		app      = "pol-partner"
		twin     = "pol-partner2" // the trap for a policy written as "token/pol-partner*"
		other    = "pol-other"
		clientID = "pol-partner-client"
		secret   = "pol-partner-secret-Vb2"
	)
	vs := standin.New()
	base, err := vs.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vs.Close()
	v := vs.Vendor(standin.VendorPenbox)
	v.AddClient(standin.Client{ID: clientID, Secret: secret, RedirectURIs: []string{partnerCallback}})
	for _, a := range []string{app, twin, other} {
		if status, r, _ := call(t, "POST", mount+"/apps/"+a, partnerAppConfig(base, v, clientID, secret)); status != 204 {
			t.Fatalf("apps/%s: HTTP %d %v", a, status, r.Errors)
		}
	}
	// Connected by the operator (root): the other apps' accounts, and a
	// self-contained credential whose name is the app's.
	for _, n := range []string{twin + "/acct", other + "/acct"} {
		partnerConnect(t, n, nil)
	}
	writeConfig(t, app, map[string]interface{}{"provider": "penbox", "token_url": base + v.TokenPath(), "client_id": clientID,
		"client_secret": secret, "refresh_token": v.IssueRefreshToken(clientID)})
	t.Cleanup(func() {
		for _, n := range []string{app + "/acct-1", app + "/acct-2", twin + "/acct", other + "/acct", app} {
			call(t, "DELETE", mount+"/config/"+n, nil)
		}
		for _, a := range []string{app, twin, other} {
			call(t, "DELETE", mount+"/apps/"+a, nil)
		}
	})
	putPolicyForTest(t, "e2e-pol-partner", partnerPolicy(t, app))
	tok := tokenWithPolicies(t, true, "e2e-pol-partner")

	// What the partner's backend does, with only its token.
	connect := func(name string) {
		t.Helper()
		status, r, body := callAs(t, tok, "POST", mount+"/authorize/"+name, map[string]interface{}{
			"redirect_uri": partnerCallback, "metadata": map[string]interface{}{"customer": name}})
		if status != 200 {
			t.Fatalf("authorize/%s as the partner: HTTP %d %s", name, status, body)
		}
		code, state := browse(t, str(r.Data["url"]))
		if status, _, body := callAs(t, tok, "POST", mount+"/exchange/"+name, map[string]interface{}{"code": code, "state": state}); status != 200 {
			t.Fatalf("exchange/%s as the partner: HTTP %d %s", name, status, body)
		}
	}
	connect(app + "/acct-1")
	connect(app + "/acct-2")
	connect(app + "/acct-1") // reconnecting keeps the name
	status, r, body := callAs(t, tok, "GET", mount+"/token/"+app+"/acct-1", nil)
	if status != 200 || !v.Valid(str(r.Data["access_token"])) {
		t.Fatalf("token/%s/acct-1 as the partner: HTTP %d %s", app, status, body)
	}
	first := str(r.Data["access_token"])
	if status, r, body := callAs(t, tok, "GET", mount+"/config/"+app+"/acct-1", nil); status != 200 || r.Data["app"] != app || strings.Contains(body, secret) {
		t.Errorf("config/%s/acct-1 as the partner: HTTP %d %s", app, status, body)
	}
	if status, r, body := callAs(t, tok, "LIST", mount+"/config/"+app, nil); status != 200 || strings.Join(toStrings(r.Data["keys"]), ",") != "acct-1,acct-2" {
		t.Errorf("LIST config/%s/ as the partner: HTTP %d %s", app, status, body)
	}
	if status, r, body := callAs(t, tok, "GET", mount+"/status/"+app, nil); status != 200 || r.Data["counts"].(map[string]interface{})["total"] != float64(2) {
		t.Errorf("status/%s as the partner: HTTP %d %s", app, status, body)
	}
	// Its app's feed: the connections it made, in order, no secret.
	if status, r, body := callAs(t, tok, "GET", mount+"/events/"+app, nil); status != 200 || len(r.Data["events"].([]interface{})) < 3 ||
		strings.Contains(body, secret) || strings.Contains(body, "penbox-rt-") {
		t.Errorf("events/%s as the partner: HTTP %d %s", app, status, body)
	}
	// The name decides the app: the policy's confinement is not undone by
	// a field.
	if status, _, body := callAs(t, tok, "POST", mount+"/authorize/"+app+"/acct-3", map[string]interface{}{
		"redirect_uri": partnerCallback, "app": other}); status != 400 {
		t.Errorf("authorize/%s/acct-3 app=%s as the partner: HTTP %d %s, want the plugin's 400", app, other, status, body)
	}

	denied := []struct{ method, path string }{
		// Another app's connections, including one whose name starts
		// the same.
		{"GET", mount + "/token/" + other + "/acct"},
		{"GET", mount + "/token/" + twin + "/acct"},
		{"POST", mount + "/authorize/" + other + "/acct"},
		{"POST", mount + "/exchange/" + other + "/acct"},
		{"POST", mount + "/authorize/" + twin + "/new"},
		{"GET", mount + "/config/" + other + "/acct"},
		{"LIST", mount + "/config/" + other},
		{"LIST", mount + "/config/" + twin},
		{"GET", mount + "/status/" + other},
		{"GET", mount + "/status/" + twin},
		{"GET", mount + "/events/" + other},
		{"GET", mount + "/events/" + twin},
		{"GET", mount + "/events"},
		{"GET", mount + "/metrics"},
		// A self-contained credential named like the app.
		{"GET", mount + "/token/" + app},
		{"GET", mount + "/config/" + app},
		{"POST", mount + "/authorize/" + app},
		// Apps: their secrets and settings, its own included.
		{"GET", mount + "/apps/" + app},
		{"POST", mount + "/apps/" + app},
		{"DELETE", mount + "/apps/" + app},
		{"GET", mount + "/apps/" + other},
		{"POST", mount + "/apps/pol-partner-new"},
		{"LIST", mount + "/apps"},
		// Config writes, of its own connections too.
		{"POST", mount + "/config/" + app + "/acct-1"},
		{"PUT", mount + "/config/" + app + "/acct-1"},
		{"POST", mount + "/config/" + app + "/new"},
		{"DELETE", mount + "/config/" + app + "/acct-1"},
		{"POST", mount + "/config/" + other + "/acct"},
		{"POST", mount + "/config/" + app},
		// Forcing vendor calls, everything else of the mount and Vault.
		{"POST", mount + "/refresh/" + app + "/acct-1"},
		{"GET", mount + "/status"},
		{"LIST", mount + "/config"},
		{"POST", mount + "/token/" + app + "/acct-1"},
		{"GET", "sys/mounts"},
		{"PUT", "sys/policies/acl/e2e-pol-partner"},
	}
	for _, d := range denied {
		expectDenied(t, tok, d.method, d.path)
	}
	// expectDenied sends an empty body; a refused write with one changes
	// nothing either.
	if status, _, _ := callAs(t, tok, "POST", mount+"/config/"+app+"/acct-1", map[string]interface{}{"refresh_token": "stolen"}); status != 403 {
		t.Errorf("writing a refresh token to config/%s/acct-1 as the partner: HTTP %d, want 403", app, status)
	}
	if status, _, _ := callAs(t, tok, "POST", mount+"/apps/"+app, map[string]interface{}{"allowed_redirect_uris": "https://evil.example/cb"}); status != 403 {
		t.Errorf("widening apps/%s's allow-list as the partner: HTTP %d, want 403", app, status)
	}
	if got := str(readToken(t, app+"/acct-1").Data["access_token"]); got != first {
		t.Errorf("the refused writes changed %s/acct-1's token", app)
	}
	if _, r, _ := call(t, "GET", mount+"/apps/"+app, nil); strings.Join(toStrings(r.Data["allowed_redirect_uris"]), ",") != partnerCallback {
		t.Errorf("apps/%s allow-list after the refused write: %v", app, r.Data["allowed_redirect_uris"])
	}

	// Vault's own account, path by path.
	caps := []struct {
		path string
		want []string
	}{
		{mount + "/authorize/" + app + "/x", []string{"update"}},
		{mount + "/exchange/" + app + "/x", []string{"update"}},
		{mount + "/token/" + app + "/x", []string{"read"}},
		{mount + "/config/" + app + "/x", []string{"read"}},
		{mount + "/config/" + app + "/", []string{"list"}},
		{mount + "/status/" + app, []string{"read"}},
		{mount + "/events/" + app, []string{"read"}},
		{mount + "/events/" + twin, []string{"deny"}},
		{mount + "/events", []string{"deny"}},
		{mount + "/token/" + app + "/x/y", []string{"deny"}},
		{mount + "/token/" + twin + "/x", []string{"deny"}},
		{mount + "/token/" + app, []string{"deny"}},
		{mount + "/status/" + app + "/x", []string{"deny"}},
		{mount + "/apps/" + app, []string{"deny"}},
		{mount + "/apps/", []string{"deny"}},
		{mount + "/refresh/" + app + "/x", []string{"deny"}},
		{mount + "/config/", []string{"deny"}},
		{mount + "/status", []string{"deny"}},
	}
	for _, c := range caps {
		got, err := vault.Client.Sys().Capabilities(tok, c.path)
		if err != nil {
			t.Fatalf("capabilities of %s: %v", c.path, err)
		}
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("partner on %s: %v, want %v", c.path, got, c.want)
		}
	}
}
