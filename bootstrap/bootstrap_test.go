package bootstrap

import (
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
	for _, k := range []string{"OFFICERND_CLIENT_SECRET", "BOLDPENGUIN_CLIENT_SECRET", "BOLDPENGUIN_API_KEY", "ESHOPBOX_CLIENT_SECRET", "PENBOX_CLIENT_SECRET"} {
		secrets[k] = "x-" + k
	}
	// The example's plugin binary and secret files do not exist here:
	// every other problem must be absent.
	_, err = Parse(raw, ".", envOf(secrets))
	le, ok := err.(*LoadError)
	if !ok {
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
}
