package bootstrap

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestParseResolvesSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rt"), []byte("refresh-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	raw := `{
	  "plugin": {"version": "v0.1.0", "sha256": "` + strings.Repeat("ab", 32) + `"},
	  "policies": true,
	  "credentials": {
	    "pbx": {
	      "provider": "penbox", "client_id": "id-1",
	      "client_secret": {"env": "PBX_SECRET"},
	      "refresh_token": {"file": "rt"},
	      "scopes": ["a", "b"], "grant_type_in_query": false, "default_ttl": 600,
	      "extra_headers": {"X-Key": {"env": "PBX_HEADER"}},
	      "extra_params": {"env": "production"}
	    }
	  }
	}`
	p, err := Parse([]byte(raw), dir, envOf(map[string]string{"PBX_SECRET": "s3cret-value", "PBX_HEADER": "header-value"}))
	if err != nil {
		t.Fatal(err)
	}
	if p.Mount != DefaultMount || p.Plugin.Name != DefaultPluginName || p.Plugin.Command != DefaultPluginCommand {
		t.Errorf("defaults not applied: mount %q plugin %+v", p.Mount, p.Plugin)
	}
	c := p.Credentials[0]
	if c.Body["client_secret"] != "s3cret-value" || c.Body["refresh_token"] != "refresh-from-file" {
		t.Errorf("secrets not resolved: %v", c.Body)
	}
	if h := c.Body["extra_headers"].(map[string]interface{}); h["X-Key"] != "header-value" {
		t.Errorf("extra_headers = %v", h)
	}
	// In extra_params, {"env": …} is a parameter called env, not a reference.
	if ep := c.Body["extra_params"].(map[string]interface{}); ep["env"] != "production" {
		t.Errorf("extra_params = %v", ep)
	}
	for field, shown := range c.Shown {
		for _, s := range []string{"s3cret-value", "refresh-from-file", "header-value"} {
			if strings.Contains(shown, s) {
				t.Errorf("shown %s = %q reveals a secret", field, shown)
			}
		}
	}
	if c.Shown["client_secret"] != "<env PBX_SECRET>" || c.Shown["scopes"] != "a,b" {
		t.Errorf("shown = %v", c.Shown)
	}
	if got := p.Redact("x s3cret-value y header-value"); got != "x <redacted> y <redacted>" {
		t.Errorf("Redact = %q", got)
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		raw  string
		want []string
	}{
		{"missing env and file", `{"credentials": {
			"a": {"client_id": "x", "client_secret": {"env": "A_SECRET"}},
			"b": {"client_id": "x", "client_secret": {"file": "/nonexistent/b-secret"}}}}`,
			[]string{`credential "a": client_secret: environment variable A_SECRET is not set`, `credential "b": client_secret:`, "/nonexistent/b-secret", "nothing was changed"}},
		{"inline secret", `{"credentials": {"a": {"client_id": "x", "client_secret": "hunter2"}}}`,
			[]string{`credential "a": client_secret: is a secret`}},
		{"inline static token", `{"credentials": {"a": {"grant_type": "static", "access_token": "minted-by-hand", "ttl": "24h"}}}`,
			[]string{`credential "a": access_token: is a secret`}},
		{"inline header value", `{"credentials": {"a": {"extra_headers": {"X-Key": "hunter2"}}}}`,
			[]string{"extra_headers: X-Key: is a secret"}},
		{"empty env", `{"credentials": {"a": {"client_secret": {"env": "EMPTY"}}}}`,
			[]string{"env EMPTY is empty"}},
		{"both env and file", `{"credentials": {"a": {"client_secret": {"env": "A", "file": "b"}}}}`,
			[]string{"exactly one"}},
		{"bad name", `{"credentials": {"a*": {}}}`, []string{`credential "a*"`}},
		{"unknown key", `{"credentails": {}}`, []string{"unknown field"}},
		{"plugin without version", `{"plugin": {"sha256": "` + strings.Repeat("0", 64) + `"}}`, []string{"version is required"}},
		{"plugin without sha", `{"plugin": {"version": "v1.0.0"}}`, []string{"binary", "sha256"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(c.raw), t.TempDir(), envOf(map[string]string{"EMPTY": ""}))
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
}

func TestReaderPolicyIsExact(t *testing.T) {
	t.Parallel()
	p, err := ReaderPolicy("vendoroauth", "officernd")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p, `path "vendoroauth/token/officernd" {`) || strings.Contains(p, "${NAME}") {
		t.Errorf("reader policy:\n%s", p)
	}
	var paths []string
	for _, line := range strings.Split(p, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "path ") {
			paths = append(paths, line)
		}
	}
	if len(paths) != 1 {
		t.Errorf("reader policy has %d paths, want only the token: %q", len(paths), paths)
	}
	if _, err := ReaderPolicy("vendoroauth", "a*"); err == nil {
		t.Error("a glob in a name must be refused")
	}
	moved, err := ReaderPolicy("team/oauth", "x")
	if err != nil || !strings.Contains(moved, `path "team/oauth/token/x"`) {
		t.Errorf("remounted reader policy (%v):\n%s", err, moved)
	}
	op, err := OperatorPolicy("team/oauth")
	if err != nil || strings.Contains(op, `path "vendoroauth/`) || !strings.Contains(op, `path "team/oauth/config/*"`) {
		t.Errorf("remounted operator policy (%v):\n%s", err, op)
	}
}

func TestExampleFileParses(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("credentials.example.json")
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{}
	for _, k := range []string{"OFFICERND_CLIENT_SECRET", "BOLDPENGUIN_CLIENT_SECRET", "BOLDPENGUIN_API_KEY", "ESHOPBOX_CLIENT_SECRET", "PENBOX_CLIENT_SECRET", "PENBOX_PARTNER_CLIENT_SECRET"} {
		secrets[k] = "x-" + k
	}
	// The example's plugin binary and secret files do not exist here:
	// every other problem must be absent.
	_, err = Parse(raw, ".", envOf(secrets))
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("Parse: %v", err)
	}
	for _, p := range le.Problems {
		if !strings.Contains(p, "plugin: binary") && !strings.Contains(p, "/run/secrets/") {
			t.Errorf("unexpected problem: %s", p)
		}
	}
	for _, v := range []string{"officernd", "boldpenguin", "eshopbox", "penbox"} {
		if !strings.Contains(string(raw), `"provider": "`+v+`"`) {
			t.Errorf("the example has no %s credential", v)
		}
	}
	var f File
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Apps["penbox-partner"][connectionsKey]; !ok {
		t.Error("the example has no app with connections")
	}
}

func TestParseAppsAndConnections(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "acme-rt"), []byte("acme-refresh-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	raw := `{
	  "credentials": {"officernd": {"provider": "officernd", "client_id": "o", "client_secret": {"env": "ORND"}}},
	  "apps": {
	    "penbox-partner": {
	      "provider": "penbox", "client_id": "partner-id",
	      "client_secret": {"env": "PARTNER_SECRET"},
	      "allowed_redirect_uris": ["https://partner.example/penbox/callback"],
	      "connections": {
	        "acme": {"refresh_token": {"file": "acme-rt"}, "metadata": {"customer": "c-1001", "plan": "gold"}},
	        "alice@globex.example": {"refresh_token": {"env": "GLOBEX_RT"}, "scopes": ["offline_access"]},
	        "initech": {"metadata": {"customer": "c-1003"}}
	      }
	    }
	  }
	}`
	env := envOf(map[string]string{"ORND": "ornd-secret", "PARTNER_SECRET": "partner-secret-value", "GLOBEX_RT": "globex-refresh-token"})
	p, err := Parse([]byte(raw), dir, env)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Credentials) != 1 || len(p.Apps) != 1 {
		t.Fatalf("credentials %d, apps %d; want 1 and 1", len(p.Credentials), len(p.Apps))
	}
	app := p.Apps[0]
	if app.Name != "penbox-partner" || app.Body["client_secret"] != "partner-secret-value" || app.Shown["client_secret"] != "<env PARTNER_SECRET>" {
		t.Errorf("app = %+v", app)
	}
	if _, ok := app.Body["connections"]; ok {
		t.Error("the connections were sent as a field of the app")
	}
	if uris, _ := app.Body["allowed_redirect_uris"].([]interface{}); len(uris) != 1 || uris[0] != "https://partner.example/penbox/callback" {
		t.Errorf("allowed_redirect_uris = %v", app.Body["allowed_redirect_uris"])
	}
	var names []string
	for _, c := range app.Connections {
		names = append(names, c.Name)
	}
	if strings.Join(names, " ") != "penbox-partner/acme penbox-partner/alice@globex.example penbox-partner/initech" {
		t.Errorf("connections = %v, want <app>/<account> in name order", names)
	}
	acme := app.Connections[0]
	if acme.Body["refresh_token"] != "acme-refresh-token" || acme.Shown["refresh_token"] != "<file acme-rt>" {
		t.Errorf("acme = %+v", acme)
	}
	if md := acme.Body["metadata"].(map[string]interface{}); md["customer"] != "c-1001" || md["plan"] != "gold" {
		t.Errorf("metadata = %v", md)
	}
	if acme.Shown["metadata"] != "{customer=c-1001, plan=gold}" {
		t.Errorf("metadata shown as %q", acme.Shown["metadata"])
	}
	if _, ok := app.Connections[2].Body["refresh_token"]; ok {
		t.Error("a connection without a refresh token got one")
	}
	for _, c := range append([]Credential{{Name: app.Name, Shown: app.Shown}}, app.Connections...) {
		for field, shown := range c.Shown {
			for _, s := range []string{"partner-secret-value", "acme-refresh-token", "globex-refresh-token"} {
				if strings.Contains(shown, s) {
					t.Errorf("%s: shown %s = %q reveals a secret", c.Name, field, shown)
				}
			}
		}
	}
	if got := p.Redact("a partner-secret-value b globex-refresh-token c acme-refresh-token"); got != "a <redacted> b <redacted> c <redacted>" {
		t.Errorf("Redact = %q", got)
	}
}

func TestParseAppProblems(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		raw  string
		want []string
	}{
		{"refresh token on the app", `{"apps": {"p": {"client_id": "x", "refresh_token": {"env": "RT"}}}}`,
			[]string{`app "p": refresh_token belongs to one connected account`}},
		{"metadata on the app", `{"apps": {"p": {"metadata": {"a": "b"}}}}`,
			[]string{`app "p": metadata belongs to one connected account`}},
		{"client secret on a connection", `{"apps": {"p": {"connections": {"acme": {"client_secret": {"env": "S"}}}}}}`,
			[]string{`connection "acme" of app "p": client_secret belongs to the app`}},
		{"token url on a connection", `{"apps": {"p": {"connections": {"acme": {"token_url": "https://x.example/t"}}}}}`,
			[]string{`connection "acme" of app "p": token_url belongs to the app`}},
		// The plugin refuses every field a connection may not set; the
		// tool knows them all, from the plugin's own table.
		{"client settings of any OAuth2 vendor on a connection", `{"apps": {"p": {"connections": {"acme": {"issuer": "https://x.example", "ca_bundle": "pem", "tls_client_certificate": "pem", "revocation_url": "https://x.example/r", "device_authorization_url": "https://x.example/d", "assertion_audience": "a", "response_fields": ["a"]}}}}}`,
			[]string{`acme" of app "p": issuer belongs to the app`, `ca_bundle belongs to the app`, `tls_client_certificate belongs to the app`,
				`revocation_url belongs to the app`, `device_authorization_url belongs to the app`, `assertion_audience belongs to the app`, `response_fields belongs to the app`}},
		{"a client key on a connection", `{"apps": {"p": {"connections": {"acme": {"tls_client_key": {"env": "S"}}}}}}`,
			[]string{`tls_client_key belongs to the app`}},
		// A typo is found before anything is sent, wherever it is.
		{"a misspelt field", `{"credentials": {"c": {"provder": "generic"}}, "apps": {"p": {"clent_id": "x", "connections": {"acme": {"metdata": {}}}}}}`,
			[]string{`credential "c": provder is not a field of the plugin here; it takes: provider,`, `app "p": clent_id is not a field`, `connection "acme" of app "p": metdata is not a field`}},
		{"an app's field on a credential", `{"credentials": {"c": {"allowed_redirect_uris": ["https://x.example/cb"]}}}`,
			[]string{`credential "c": allowed_redirect_uris is not a field of the plugin here`}},
		{"a signing key in the file", `{"credentials": {"c": {"signing_key": {"env": "S"}}}}`,
			[]string{`credential "c": signing_key is not a field of the plugin`}},
		{"app field on a connection", `{"apps": {"p": {"connections": {"acme": {"app": "q"}}}}}`,
			[]string{`connection "acme" of app "p": app is implied`}},
		{"inline refresh token", `{"apps": {"p": {"connections": {"acme": {"refresh_token": "hunter2"}}}}}`,
			[]string{`connection "acme" of app "p": refresh_token: is a secret`}},
		{"inline client secret", `{"apps": {"p": {"client_secret": "hunter2"}}}`,
			[]string{`app "p": client_secret: is a secret`}},
		{"missing refresh token file", `{"apps": {"p": {"connections": {"acme": {"refresh_token": {"file": "/nonexistent/acme"}}}}}}`,
			[]string{`connection "acme" of app "p": refresh_token:`, "/nonexistent/acme", "nothing was changed"}},
		{"bad account name", `{"apps": {"p": {"connections": {"a/b": {}}}}}`, []string{`connection "a/b" of app "p": names use`}},
		{"bad app name", `{"apps": {"p*": {}}}`, []string{`app "p*": names use`}},
		{"connections not an object", `{"apps": {"p": {"connections": ["acme"]}}}`, []string{`app "p": connections must be an object`}},
		{"every problem at once", `{"apps": {"p": {"client_secret": {"env": "NOPE"}, "connections": {"a": {"refresh_token": {"env": "NOPE2"}}}}}}`,
			[]string{"environment variable NOPE is not set", "environment variable NOPE2 is not set"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(c.raw), t.TempDir(), envOf(map[string]string{"RT": "r", "S": "s"}))
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
}

// A file written before apps existed parses as it did: no apps, the same
// credentials.
func TestParseWithoutApps(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte(`{"credentials": {"a": {"client_id": "x", "client_secret": {"env": "S"}}}}`), t.TempDir(), envOf(map[string]string{"S": "s"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Apps) != 0 || len(p.Credentials) != 1 || p.Credentials[0].Body["client_secret"] != "s" {
		t.Errorf("plan = %+v", p)
	}
}
