//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// TestGenericTokenLifecycle is the core promise: write a config once, read
// tokens under leases that end at the token's hand-out end, and reuse the
// cached one.
func TestGenericTokenLifecycle(t *testing.T) {
	v := vendors.Vendor("generic")
	v.AddClient(standin.Client{ID: "core-client", Secret: "core-secret-Zq9"})
	name := "core-generic"
	writeConfig(t, name, map[string]interface{}{
		"provider":      "generic",
		"token_url":     baseURL + v.TokenPath(),
		"client_id":     "core-client",
		"client_secret": "core-secret-Zq9",
		"scopes":        "read,write",
		"expiry_skew":   "30s",
	})
	before := countFor(v, "core-client")

	r := readToken(t, name)
	tok := str(r.Data["access_token"])
	if !v.Valid(tok) {
		t.Fatalf("access token %q is not one the vendor issued", tok)
	}
	if r.LeaseID == "" || !r.Renewable {
		t.Errorf("lease_id=%q renewable=%v, want a lease renewable up to the hand-out end", r.LeaseID, r.Renewable)
	}
	// The stand-in issues 3600 s tokens; the lease ends at its lease end,
	// expiry_skew and 3% of the life (108 s) less 2 s before the expiry
	// (backend/lease.go).
	if want := 3600 - 30 - 108 + 2; r.LeaseDuration < want-2 || r.LeaseDuration > want {
		t.Errorf("lease_duration = %d, want about %d", r.LeaseDuration, want)
	}
	if got := str(r.Data["token_type"]); got != "Bearer" {
		t.Errorf("token_type = %q, want Bearer", got)
	}
	exp, err := time.Parse(time.RFC3339, str(r.Data["expires_at"]))
	if err != nil {
		t.Fatalf("expires_at %q is not RFC 3339: %v", r.Data["expires_at"], err)
	}
	if vexp, _ := v.TokenExpiry(tok); exp.Sub(vexp).Abs() > 2*time.Second {
		t.Errorf("expires_at = %s, the vendor says %s", exp, vexp)
	}
	last, _ := v.LastRequest()
	if got := last.Form["scope"]; got != "read write" {
		t.Errorf("scope sent = %q, want space-separated %q", got, "read write")
	}
	if got := countFor(v, "core-client") - before; got != 1 {
		t.Fatalf("first read made %d upstream requests, want 1", got)
	}

	again := readToken(t, name)
	if str(again.Data["access_token"]) != tok {
		t.Errorf("second read got a different token; the cached one was still good")
	}
	if got := countFor(v, "core-client") - before; got != 1 {
		t.Errorf("second read within the lifetime made an upstream request (total %d)", got)
	}
	if again.LeaseID == r.LeaseID {
		t.Errorf("each read must get its own lease")
	}

	// Revoking one reader's lease leaves the shared token working.
	if err := vault.Client.Sys().Revoke(r.LeaseID); err != nil {
		t.Fatalf("revoking the lease: %v", err)
	}
	third := readToken(t, name)
	if str(third.Data["access_token"]) != tok || !v.Valid(tok) {
		t.Errorf("revoking one lease broke the token for other readers")
	}
}

// countFor counts the token requests the stand-in saw from one client.
func countFor(v *standin.Vendor, clientID string) int {
	n := 0
	for _, r := range v.Requests() {
		if r.Form["client_id"] == clientID || basicUser(r) == clientID {
			n++
		}
	}
	return n
}

func basicUser(r standin.Recorded) string {
	user, _, ok := parseBasic(r.Header.Get("Authorization"))
	if !ok {
		return ""
	}
	return user
}

// TestConcurrentColdReads: 50 readers of a name with no cached token make
// one upstream request between them.
func TestConcurrentColdReads(t *testing.T) {
	v := vendors.Vendor("officernd")
	v.AddClient(standin.Client{ID: "cold-client", Secret: "cold-secret", Scopes: []string{"officernd.api.read"}})
	name := "core-cold"
	writeConfig(t, name, map[string]interface{}{
		"provider":      "officernd",
		"token_url":     baseURL + v.TokenPath(),
		"client_id":     "cold-client",
		"client_secret": "cold-secret",
		"scopes":        "officernd.api.read",
	})
	// Slow the vendor so the readers really overlap.
	b := v.Behavior()
	b.Delay = 500 * time.Millisecond
	v.SetBehavior(b)
	defer func() { b.Delay = 0; v.SetBehavior(b) }()

	before := countFor(v, "cold-client")
	var wg sync.WaitGroup
	tokens := make([]string, 50)
	errs := make([]string, 50)
	for i := range tokens {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			status, r, body := call(t, "GET", mount+"/token/"+name, nil)
			if status != 200 {
				errs[i] = body
				return
			}
			tokens[i] = str(r.Data["access_token"])
		}(i)
	}
	wg.Wait()
	for i, e := range errs {
		if e != "" {
			t.Fatalf("reader %d failed: %s", i, e)
		}
	}
	for i, tok := range tokens {
		if tok != tokens[0] {
			t.Fatalf("reader %d got a different token", i)
		}
	}
	if got := countFor(v, "cold-client") - before; got != 1 {
		t.Errorf("50 concurrent cold reads made %d upstream requests, want 1", got)
	}
}

// TestConfigReadShowsNoSecret: secrets are write-only.
func TestConfigReadShowsNoSecret(t *testing.T) {
	name := "core-secrets"
	secrets := []string{"cfg-secret-8Hq2", "cfg-refresh-Pw3x", "cfg-header-Lk7m"}
	writeConfig(t, name, map[string]interface{}{
		"provider":      "generic",
		"grant_type":    "refresh_token",
		"token_url":     baseURL + "/generic/token",
		"client_id":     "cfg-client",
		"client_secret": secrets[0],
		"refresh_token": secrets[1],
		"extra_headers": map[string]interface{}{"X-Tenant-Key": secrets[2]},
	})
	status, r, body := call(t, "GET", mount+"/config/"+name, nil)
	if status != 200 {
		t.Fatalf("read config: HTTP %d %s", status, body)
	}
	for _, s := range secrets {
		if strings.Contains(body, s) {
			t.Errorf("config read shows the secret %q: %s", s, body)
		}
	}
	for _, f := range []string{"client_secret_set", "refresh_token_set"} {
		if r.Data[f] != true {
			t.Errorf("%s = %v, want true", f, r.Data[f])
		}
	}
	if names, _ := r.Data["extra_header_names"].([]interface{}); len(names) != 1 || names[0] != "X-Tenant-Key" {
		t.Errorf("extra_header_names = %v, want [X-Tenant-Key]", r.Data["extra_header_names"])
	}
	if r.Data["api_key_set"] != false {
		t.Errorf("api_key_set = %v, want false", r.Data["api_key_set"])
	}
}

// TestConfigPartialUpdate: an update changes only the fields it carries.
func TestConfigPartialUpdate(t *testing.T) {
	name := "core-partial"
	writeConfig(t, name, map[string]interface{}{
		"token_url":     "https://auth.example.com/oauth/token",
		"client_id":     "partial-client",
		"client_secret": "partial-secret",
		"scopes":        "a,b",
		"auth_style":    "body",
	})
	writeConfig(t, name, map[string]interface{}{"scopes": "c"})
	_, r, _ := call(t, "GET", mount+"/config/"+name, nil)
	if r.Data["client_id"] != "partial-client" || r.Data["auth_style"] != "body" || r.Data["client_secret_set"] != true {
		t.Errorf("an update of scopes changed other fields: %v", r.Data)
	}
	if s, _ := r.Data["scopes"].([]interface{}); len(s) != 1 || s[0] != "c" {
		t.Errorf("scopes = %v, want [c]", r.Data["scopes"])
	}
	status, list, _ := call(t, "LIST", mount+"/config", nil)
	if status != 200 || !strings.Contains(strings.Join(toStrings(list.Data["keys"]), ","), name) {
		t.Errorf("LIST config/ = %d %v, want it to include %s", status, list.Data, name)
	}
	status, _, _ = call(t, "DELETE", mount+"/config/"+name, nil)
	if status != 204 {
		t.Errorf("delete: HTTP %d", status)
	}
	status, _, _ = call(t, "GET", mount+"/config/"+name, nil)
	if status != 404 {
		t.Errorf("read after delete: HTTP %d, want 404", status)
	}
}

func toStrings(v interface{}) []string {
	var out []string
	for _, x := range v.([]interface{}) {
		out = append(out, str(x))
	}
	return out
}

// TestBadInput: every mistake is a 400 that says what to fix, and nothing
// is stored.
func TestBadInput(t *testing.T) {
	good := map[string]interface{}{
		"token_url":     "https://auth.example.com/oauth/token",
		"client_id":     "bad-client",
		"client_secret": "bad-secret-Yt5",
	}
	cases := []struct {
		name   string
		change map[string]interface{}
		want   string
	}{
		{"plain http to a remote host", map[string]interface{}{"token_url": "http://auth.example.com/token"}, "https"},
		{"not a URL", map[string]interface{}{"token_url": "::nope"}, "token_url"},
		{"unknown field", map[string]interface{}{"client_secert": "x"}, "unknown field"},
		{"unknown provider", map[string]interface{}{"provider": "acme"}, "unknown provider"},
		{"unknown auth style", map[string]interface{}{"auth_style": "digest"}, "auth_style"},
		{"negative duration", map[string]interface{}{"max_ttl": "-5s"}, "negative"},
		{"refresh grant without refresh token", map[string]interface{}{"grant_type": "refresh_token"}, "refresh_token is required"},
		{"client credentials without secret", map[string]interface{}{"client_secret": ""}, "client_secret is required"},
		{"api key on generic", map[string]interface{}{"api_key": "k"}, "extra_headers"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := fmt.Sprintf("core-bad-%d", i)
			body := map[string]interface{}{}
			for k, v := range good {
				body[k] = v
			}
			for k, v := range c.change {
				body[k] = v
			}
			status, r, raw := call(t, "POST", mount+"/config/"+name, body)
			if status != 400 {
				t.Fatalf("HTTP %d, want 400: %s", status, raw)
			}
			if msg := strings.Join(r.Errors, " "); !strings.Contains(msg, c.want) {
				t.Errorf("error %q does not mention %q", msg, c.want)
			}
			if strings.Contains(raw, "bad-secret-Yt5") {
				t.Errorf("the error shows the client secret: %s", raw)
			}
			if status, _, _ := call(t, "GET", mount+"/config/"+name, nil); status != 404 {
				t.Errorf("a refused write stored something (read: HTTP %d)", status)
			}
		})
	}

	status, r, _ := call(t, "GET", mount+"/token/core-no-such-name", nil)
	if status != 404 || !strings.Contains(strings.Join(r.Errors, " "), "config/core-no-such-name") {
		t.Errorf("reading an unknown name: HTTP %d %v, want 404 saying to write the config", status, r.Errors)
	}
}

// TestWrongSecretSaysWhatToFix: a vendor refusal reaches the reader as a
// 400 naming the vendor's error code, with no secret in it.
func TestWrongSecretSaysWhatToFix(t *testing.T) {
	v := vendors.Vendor("generic")
	v.AddClient(standin.Client{ID: "wrong-client", Secret: "the-right-secret"})
	name := "core-wrong-secret"
	writeConfig(t, name, map[string]interface{}{
		"token_url":     baseURL + v.TokenPath(),
		"client_id":     "wrong-client",
		"client_secret": "a-wrong-secret-Q1",
	})
	status, r, raw := call(t, "GET", mount+"/token/"+name, nil)
	if status != 400 {
		t.Fatalf("HTTP %d, want 400: %s", status, raw)
	}
	msg := strings.Join(r.Errors, " ")
	for _, want := range []string{"invalid_client", name, "client_secret"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(raw, "a-wrong-secret-Q1") {
		t.Errorf("the error shows the client secret: %s", raw)
	}
	_, cfg, _ := call(t, "GET", mount+"/config/"+name, nil)
	if !strings.Contains(str(cfg.Data["last_error"]), "invalid_client") {
		t.Errorf("config status last_error = %q, want the vendor error", cfg.Data["last_error"])
	}
}

// TestRefreshTokenRotationAndRestart: a rotated refresh token replaces the
// stored one, and the cached token survives a plugin restart.
func TestRefreshTokenRotationAndRestart(t *testing.T) {
	v := vendors.Vendor("penbox")
	v.AddClient(standin.Client{ID: "rot-client", Secret: "rot-secret"})
	rt := v.IssueRefreshToken("rot-client")
	name := "core-rotate"
	writeConfig(t, name, map[string]interface{}{
		"provider":      "penbox",
		"token_url":     baseURL + v.TokenPath(),
		"client_id":     "rot-client",
		"client_secret": "rot-secret",
		"refresh_token": rt,
		"expiry_skew":   "0s",
	})
	b := v.Behavior()
	b.Rotate, b.ReuseDetection, b.Lifetime = true, true, 4*time.Second
	v.SetBehavior(b)
	defer func() { v.SetBehavior(standin.Behavior{}) }()

	first := str(readToken(t, name).Data["access_token"])
	// Wait out the token's hand-out life, then read again: a refresh with
	// the rotated token, which the vendor would refuse (and revoke the
	// chain) if the plugin had kept the old one.
	time.Sleep(4 * time.Second)
	second := str(readToken(t, name).Data["access_token"])
	if second == first || !v.Valid(second) {
		t.Fatalf("after expiry got %q (first %q), want a new valid token", second, first)
	}
	if st := v.Stats(); st.ReuseDetections != 0 {
		t.Fatalf("the vendor saw a rotated-away refresh token reused %d times", st.ReuseDetections)
	}
	reqs := v.Requests()
	var sent []string
	for _, r := range reqs {
		if r.Form["client_id"] == "rot-client" {
			sent = append(sent, r.Form["refresh_token"])
		}
	}
	if len(sent) != 2 || sent[0] != rt || sent[1] == rt {
		t.Errorf("refresh tokens sent = %d, want the original then the rotated one", len(sent))
	}

	// A longer-lived token now, then restart the plugin: the cached token
	// comes back from storage, with no new grant.
	b.Lifetime = time.Hour
	v.SetBehavior(b)
	time.Sleep(4 * time.Second)
	cachedTok := str(readToken(t, name).Data["access_token"])
	n := countFor(v, "rot-client")
	if _, err := vault.Client.Sys().ReloadPlugin(&vaultReloadInput); err != nil {
		t.Fatalf("reloading the plugin: %v", err)
	}
	waitForMount(t)
	if got := str(readToken(t, name).Data["access_token"]); got != cachedTok {
		t.Errorf("after a plugin restart got a different token")
	}
	if got := countFor(v, "rot-client"); got != n {
		t.Errorf("a plugin restart caused %d upstream requests", got-n)
	}
}
