//go:build e2e

package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// TestPenboxConnectFlow walks Penbox CONNECT as a partner's web app does:
// authorize/<name> gives the URL, the user's browser follows it and comes
// back to the callback with code and state, exchange/<name> stores the
// tokens, and token/<name> hands out access tokens, refreshing (and storing
// each rotated refresh token) as they expire.
func TestPenboxConnectFlow(t *testing.T) {
	vendors := standin.New()
	base, err := vendors.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vendors.Close()
	v := vendors.Vendor("penbox")
	v.AddClient(standin.Client{ID: "connect-partner", Secret: "connect-partner-secret"})
	v.SetBehavior(standin.Behavior{Rotate: true, ReuseDetection: true, Lifetime: 3 * time.Second})

	name := "connect-pbx"
	writeConfig(t, name, map[string]interface{}{
		"provider": "penbox", "client_id": "connect-partner", "client_secret": "connect-partner-secret",
		"token_url": base + v.TokenPath(), "authorize_url": base + "/penbox/authorize",
		"expiry_skew": "0s",
	})
	status, r, _ := call(t, "GET", mount+"/token/"+name, nil)
	if status != 400 || !strings.Contains(strings.Join(r.Errors, " "), "authorize/"+name) {
		t.Errorf("a credential not yet connected: HTTP %d %v; want a 400 saying how to connect", status, r.Errors)
	}

	status, r, _ = call(t, "POST", mount+"/authorize/"+name, map[string]interface{}{"redirect_uri": "https://partner.example/penbox/callback"})
	if status != 200 {
		t.Fatalf("authorize: HTTP %d %v", status, r.Errors)
	}
	authURL := str(r.Data["url"])
	if !strings.HasPrefix(authURL, base+"/penbox/authorize?") || !strings.Contains(authURL, "scope=offline_access") {
		t.Fatalf("authorization URL %q", authURL)
	}
	code, state := browse(t, authURL)
	if state != str(r.Data["state"]) {
		t.Fatalf("the vendor sent back another state")
	}

	status, r, body := call(t, "POST", mount+"/exchange/"+name, map[string]interface{}{"code": code, "state": state})
	if status != 200 || strings.Contains(body, "penbox-rt-") || strings.Contains(body, "penbox-at-") {
		t.Fatalf("exchange: HTTP %d %s", status, body)
	}
	first := readToken(t, name)
	if !v.Valid(str(first.Data["access_token"])) {
		t.Fatalf("token after exchange is not valid")
	}

	// Later reads refresh with the rotated refresh token each time.
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		time.Sleep(3 * time.Second)
		tok := str(readToken(t, name).Data["access_token"])
		if !v.Valid(tok) || seen[tok] {
			t.Fatalf("read %d: got an invalid or repeated token", i)
		}
		seen[tok] = true
	}
	var refreshes []string
	for _, req := range v.Requests() {
		if req.Form["grant_type"] == "refresh_token" {
			refreshes = append(refreshes, req.Form["refresh_token"])
		}
	}
	if len(refreshes) != 3 || refreshes[0] == refreshes[1] || refreshes[1] == refreshes[2] {
		t.Errorf("refreshes sent %d tokens; want 3 distinct rotated ones", len(refreshes))
	}
	if v.Stats().ReuseDetections != 0 {
		t.Errorf("the vendor saw a rotated-away refresh token")
	}

	// A reused code is refused and changes nothing.
	_, r, _ = call(t, "POST", mount+"/authorize/"+name, map[string]interface{}{"redirect_uri": "https://partner.example/penbox/callback"})
	status, r, _ = call(t, "POST", mount+"/exchange/"+name, map[string]interface{}{"code": code, "state": str(r.Data["state"])})
	if status != 400 || !strings.Contains(strings.Join(r.Errors, " "), "invalid_grant") {
		t.Errorf("reused code: HTTP %d %v", status, r.Errors)
	}

	// refresh/<name> makes exactly one upstream request. The reused code
	// made Penbox revoke what was issued from it (RFC 6749 4.1.2), so that
	// request is refused, and the plugin does not hand out the access
	// token revoked with the chain.
	n := len(v.Requests())
	status, r, _ = call(t, "POST", mount+"/refresh/"+name, nil)
	if got := len(v.Requests()) - n; status != 400 || got != 1 || !strings.Contains(strings.Join(r.Errors, " "), "needs reauthorization") {
		t.Errorf("refresh after the chain was revoked: HTTP %d %v, %d upstream requests; want a 400 saying it needs reauthorization, after 1 request", status, r.Errors, got)
	}
	if status, r, _ := call(t, "GET", mount+"/token/"+name, nil); status != 400 {
		t.Errorf("token read after the chain was revoked: HTTP %d %v; want a 400", status, r.Data["access_token"] != nil)
	}

	// The config read shows the credential's health, without secrets.
	_, cfg, body := call(t, "GET", mount+"/config/"+name, nil)
	if strings.Contains(body, "connect-partner-secret") || strings.Contains(body, "penbox-rt-") {
		t.Errorf("config read shows a secret")
	}
	if str(cfg.Data["last_refreshed_at"]) == "" || cfg.Data["refresh_token_set"] != true {
		t.Errorf("config status: %v", cfg.Data)
	}
}

// browse follows the authorization URL like the user's browser and returns
// the code and state from the redirect to the partner's callback, the code
// still URL-encoded as it appears in the address bar.
func browse(t *testing.T, authURL string) (code, state string) {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound || loc.Host != "partner.example" {
		t.Fatalf("authorize answered HTTP %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, kv := range strings.Split(loc.RawQuery, "&") {
		if k, v, _ := strings.Cut(kv, "="); k == "code" {
			code = v
		}
	}
	return code, loc.Query().Get("state")
}

// TestStaticAndReauthorizationMessages: a user-minted token is served until
// it expires, then the read says how to mint one; a dead refresh token stops
// the plugin calling the vendor and says so.
func TestStaticAndReauthorizationMessages(t *testing.T) {
	writeConfig(t, "static-pbx", map[string]interface{}{"provider": "penbox", "grant_type": "static", "access_token": "user-minted-e2e", "ttl": "3s"})
	if got := str(readToken(t, "static-pbx").Data["access_token"]); got != "user-minted-e2e" {
		t.Errorf("static token read got %q", got)
	}
	time.Sleep(3 * time.Second)
	status, r, _ := call(t, "GET", mount+"/token/static-pbx", nil)
	if msg := strings.Join(r.Errors, " "); status != 400 || !strings.Contains(msg, "expired") || !strings.Contains(msg, "connect.penbox.io/authorize") {
		t.Errorf("expired static token: HTTP %d %q", status, msg)
	}

	v := vendors.Vendor("eshopbox")
	v.AddClient(standin.Client{ID: "reauth-e2e", Secret: "reauth-e2e-secret"})
	rt := v.IssueRefreshToken("reauth-e2e")
	v.RevokeRefreshToken(rt)
	writeConfig(t, "reauth-esb", map[string]interface{}{"provider": "eshopbox", "token_url": baseURL + v.TokenPath(), "client_id": "reauth-e2e", "client_secret": "reauth-e2e-secret", "refresh_token": rt})
	for i := 0; i < 3; i++ {
		status, r, _ = call(t, "GET", mount+"/token/reauth-esb", nil)
		if msg := strings.Join(r.Errors, " "); status != 400 || !strings.Contains(msg, "needs reauthorization") {
			t.Errorf("read %d after invalid_grant: HTTP %d %q", i, status, msg)
		}
	}
	if got := len(requestsFrom(v, "reauth-e2e")); got != 1 {
		t.Errorf("the vendor was called %d times for a dead refresh token, want 1", got)
	}
	_, cfg, _ := call(t, "GET", mount+"/config/reauth-esb", nil)
	if cfg.Data["needs_reauthorization"] != true || str(cfg.Data["last_error_code"]) != "invalid_grant" {
		t.Errorf("config status: needs_reauthorization=%v last_error_code=%v", cfg.Data["needs_reauthorization"], cfg.Data["last_error_code"])
	}
}
