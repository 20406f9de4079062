//go:build e2e

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// vendorToken matches every access and refresh token the stand-ins issue
// ("penbox-rt-…", the authorization server's "as-rt-…"), including rotated
// refresh tokens the test never sees, and the authorization server's
// device codes ("as-dc-…").
var vendorToken = regexp.MustCompile(`\b(generic|officernd|boldpenguin|eshopbox|penbox|as)-(at|rt|dc)-[A-Za-z0-9_-]{32}`)

// privateKeyPEM and jwkPrivate match a private key however it would be
// written: PEM of any kind, or a JWK's private members. Nothing the
// plugin logs or answers may hold one, whatever key it is.
var (
	privateKeyPEM = regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`)
	jwkPrivate    = regexp.MustCompile(`\\?"(d|p|q|dp|dq|qi|k)\\?"\s*:\s*\\?"`)
)

// inTokenReads are the secrets token/<name> hands out by design.
var inTokenReads = map[string]bool{"static access token": true, "id token": true}

// hygieneCall is one request the test made and the body Vault answered.
type hygieneCall struct {
	method, path string
	status       int
	body         string
}

// hygiene drives a dedicated Vault and remembers every answer.
type hygiene struct {
	t     *testing.T
	v     *vaulttest.Vault
	calls []hygieneCall
	// secrets maps a description to a value that must never leave Vault.
	secrets map[string]string
}

func (h *hygiene) secret(label string) string {
	s := "hy-" + strings.ReplaceAll(label, " ", "-") + "-" + randomHex(12)
	h.secrets[label] = s
	return s
}

func (h *hygiene) do(method, path string, body map[string]interface{}) (int, apiResponse) {
	h.t.Helper()
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			h.t.Fatal(err)
		}
	}
	status, out, err := h.v.Raw(method, mount+"/"+path, raw)
	if err != nil && status == 0 {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	h.calls = append(h.calls, hygieneCall{method, path, status, string(out)})
	var r apiResponse
	if len(out) > 0 {
		if err := json.Unmarshal(out, &r); err != nil {
			h.t.Fatalf("%s %s: answer is not JSON (%v)", method, path, err)
		}
	}
	return status, r
}

// expect makes a request and fails the test unless Vault answers want.
func (h *hygiene) expect(want int, method, path string, body map[string]interface{}) apiResponse {
	h.t.Helper()
	status, r := h.do(method, path, body)
	if status != want {
		h.t.Fatalf("%s %s: HTTP %d %v, want %d", method, path, status, r.Errors, want)
	}
	return r
}

// TestSecretHygiene runs a Vault with a file audit device and trace
// logging, exercises every path of the plugin (config write, read, list and
// delete, token reads with rotation, refresh, status, authorize, exchange,
// static tokens, event feeds, webhooks, metrics) and its error paths (wrong secret, dead refresh token,
// vendor outage, a vendor that echoes secrets, bad input), then searches
// the Vault log, the audit log and every API answer for every secret it
// wrote and every token the vendor issued. Access tokens may appear only
// in token/<name> answers; nothing else may appear anywhere.
func TestSecretHygiene(t *testing.T) {
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "audit.log")
	// A file audit device with the default options, HMAC included: what
	// users run. Error messages and warnings are not HMACed, so a secret
	// in one shows up here. Vault enables it through the API, OpenBao
	// declares it in the server's config (it refuses the API).
	// sys/raw is enabled only to read, at the end, the private keys the
	// plugin generated, so that the search below can look for them too.
	hv := startMountedVault(t, vaulttest.Options{PluginDir: vault.PluginDir, LogLevel: "trace", LogPath: filepath.Join(dir, "vault.log"), AuditFile: auditPath, RawStorage: true}, pluginVersion, pluginSHA(t))

	vs := standin.New()
	base, err := vs.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vs.Close()
	h := &hygiene{t: t, v: hv, secrets: map[string]string{}}

	// Penbox, rotating refresh tokens with reuse detection, short-lived
	// tokens so reads refresh.
	pbx := vs.Vendor(standin.VendorPenbox)
	pbx.SetBehavior(standin.Behavior{Lifetime: 3 * time.Second, Rotate: true, ReuseDetection: true})
	pbxSecret := h.secret("penbox client secret")
	pbx.AddClient(standin.Client{ID: "hy-pbx", Secret: pbxSecret})
	pbxRT := h.secret("penbox refresh token")
	pbx.AddRefreshToken("hy-pbx", pbxRT)
	h.expect(204, "POST", "config/hy-pbx", map[string]interface{}{
		"provider": "penbox", "token_url": base + pbx.TokenPath(),
		"client_id": "hy-pbx", "client_secret": pbxSecret, "refresh_token": pbxRT,
	})
	first := str(h.expect(200, "GET", "token/hy-pbx", nil).Data["access_token"])
	// Wait out the token's hand-out life: the next read refreshes and
	// stores a rotated refresh token.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if tok := str(h.expect(200, "GET", "token/hy-pbx", nil).Data["access_token"]); tok != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("token/hy-pbx was not refreshed within 30s of a 3s token")
		}
		time.Sleep(250 * time.Millisecond)
	}
	h.expect(200, "POST", "refresh/hy-pbx", nil)
	h.expect(200, "GET", "config/hy-pbx", nil)
	// A partial update that carries a secret.
	h.expect(204, "POST", "config/hy-pbx", map[string]interface{}{"client_secret": pbxSecret})
	h.expect(200, "GET", "token/hy-pbx", nil)

	// Penbox CONNECT: authorize, a wrong state, a wrong code, the real
	// exchange.
	pbxConnectSecret := h.secret("penbox connect client secret")
	pbx.AddClient(standin.Client{ID: "hy-pbx-connect", Secret: pbxConnectSecret})
	h.expect(204, "POST", "config/hy-connect", map[string]interface{}{
		"provider": "penbox", "token_url": base + pbx.TokenPath(), "authorize_url": base + "/penbox/authorize",
		"client_id": "hy-pbx-connect", "client_secret": pbxConnectSecret, "use_pkce": true,
	})
	h.expect(400, "GET", "token/hy-connect", nil)
	auth := h.expect(200, "POST", "authorize/hy-connect", map[string]interface{}{"redirect_uri": "https://partner.example/penbox/callback"})
	code, state := browse(t, str(auth.Data["url"]))
	h.secrets["authorization code"] = code
	h.expect(400, "POST", "exchange/hy-connect", map[string]interface{}{"code": code, "state": "not-the-state-" + randomHex(8)})
	h.expect(400, "POST", "exchange/hy-connect", map[string]interface{}{"code": h.secret("wrong authorization code"), "state": state})
	auth = h.expect(200, "POST", "authorize/hy-connect", map[string]interface{}{"redirect_uri": "https://partner.example/penbox/callback"})
	code, state = browse(t, str(auth.Data["url"]))
	h.secrets["second authorization code"] = code
	h.expect(200, "POST", "exchange/hy-connect", map[string]interface{}{"code": code, "state": state})
	h.expect(200, "GET", "token/hy-connect", nil)
	h.expect(200, "GET", "config/hy-connect", nil)

	// Bold Penguin: raw Basic credentials and an API key header.
	bp := vs.Vendor(standin.VendorBoldPenguin)
	bpSecret, bpKey := h.secret("boldpenguin client secret"), h.secret("boldpenguin api key")
	bp.AddClient(standin.Client{ID: "hy-bp", Secret: bpSecret, APIKey: bpKey})
	h.secrets["boldpenguin Basic credentials"] = base64.StdEncoding.EncodeToString([]byte("hy-bp:" + bpSecret))
	h.expect(204, "POST", "config/hy-bp", map[string]interface{}{
		"provider": "boldpenguin", "environment": "staging", "token_url": base + bp.TokenPath(),
		"client_id": "hy-bp", "client_secret": bpSecret, "api_key": bpKey,
	})
	h.expect(200, "GET", "token/hy-bp", nil)
	h.expect(200, "GET", "config/hy-bp", nil)
	// A wrong API key: the gateway's 403.
	wrongKey := h.secret("wrong api key")
	h.expect(204, "POST", "config/hy-bp-key", map[string]interface{}{
		"provider": "boldpenguin", "environment": "staging", "token_url": base + bp.TokenPath(),
		"client_id": "hy-bp", "client_secret": bpSecret, "api_key": wrongKey,
	})
	h.expect(400, "GET", "token/hy-bp-key", nil)

	// Eshopbox: a refresh token in a JSON body.
	esb := vs.Vendor(standin.VendorEshopbox)
	esbSecret, esbRT := h.secret("eshopbox client secret"), h.secret("eshopbox refresh token")
	esb.AddClient(standin.Client{ID: "hy-esb", Secret: esbSecret})
	esb.AddRefreshToken("hy-esb", esbRT)
	h.expect(204, "POST", "config/hy-esb", map[string]interface{}{
		"provider": "eshopbox", "token_url": base + esb.TokenPath(),
		"client_id": "hy-esb", "client_secret": esbSecret, "refresh_token": esbRT,
	})
	h.expect(200, "GET", "token/hy-esb", nil)

	// OfficeRnD, and a wrong client secret.
	ornd := vs.Vendor(standin.VendorOfficeRnD)
	orndSecret := h.secret("officernd client secret")
	ornd.AddClient(standin.Client{ID: "hy-ornd", Secret: orndSecret})
	h.expect(204, "POST", "config/hy-ornd", map[string]interface{}{
		"provider": "officernd", "token_url": base + ornd.TokenPath(),
		"client_id": "hy-ornd", "client_secret": orndSecret, "scopes": "officernd.api.read",
	})
	h.expect(200, "GET", "token/hy-ornd", nil)
	wrongSecret := h.secret("wrong client secret")
	h.expect(204, "POST", "config/hy-ornd-wrong", map[string]interface{}{
		"provider": "officernd", "token_url": base + ornd.TokenPath(),
		"client_id": "hy-ornd", "client_secret": wrongSecret, "scopes": "officernd.api.read",
	})
	h.expect(400, "GET", "token/hy-ornd-wrong", nil)
	h.expect(200, "GET", "config/hy-ornd-wrong", nil)

	// Generic: RFC 6749 Basic, an extra header whose value is a secret,
	// then an outage whose error page echoes every secret of the request.
	gen := vs.Vendor(standin.VendorGeneric)
	genSecret, genHeader, genRT := h.secret("generic client secret"), h.secret("generic header value"), h.secret("generic refresh token")
	gen.AddClient(standin.Client{ID: "hy-gen", Secret: genSecret})
	gen.AddRefreshToken("hy-gen", genRT)
	gen.SetExpect(standin.Expect{Headers: map[string]string{"X-Tenant-Key": genHeader}})
	h.secrets["generic Basic credentials"] = base64.StdEncoding.EncodeToString([]byte("hy-gen:" + url.QueryEscape(genSecret)))
	h.expect(204, "POST", "config/hy-gen", map[string]interface{}{
		"token_url": base + gen.TokenPath(), "grant_type": "refresh_token",
		"client_id": "hy-gen", "client_secret": genSecret, "refresh_token": genRT,
		"extra_headers": map[string]interface{}{"X-Tenant-Key": genHeader},
	})
	h.expect(200, "GET", "token/hy-gen", nil)
	gen.SetBehavior(standin.Behavior{FailNext: 1, FailStatus: 503, FailBody: fmt.Sprintf(
		`{"error":"temporarily_unavailable","error_description":"backend refused client secret %s, refresh token %s, header %s"}`,
		genSecret, genRT, genHeader)})
	h.expect(200, "POST", "refresh/hy-gen", nil) // the cached token is served with a warning
	gen.SetBehavior(standin.Behavior{FailNext: 1, FailStatus: 500, FailBody: "<html><body>Internal error for " + genSecret + "</body></html>"})
	h.do("POST", "refresh/hy-gen", nil)
	h.expect(200, "GET", "status", nil)

	// Where secrets may go: a writer without them moves what they can.
	h.destinations(base, gen, "X-Tenant-Key", genHeader)

	// A token endpoint that is down.
	downSecret := h.secret("unreachable client secret")
	port, err := vaulttest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	h.expect(204, "POST", "config/hy-down", map[string]interface{}{
		"token_url": fmt.Sprintf("http://127.0.0.1:%d/oauth/token", port), "client_id": "hy-down", "client_secret": downSecret,
	})
	h.expect(502, "GET", "token/hy-down", nil)

	// A dead refresh token: invalid_grant, then needs_reauthorization.
	deadSecret, deadRT := h.secret("dead client secret"), h.secret("dead refresh token")
	pbx.AddClient(standin.Client{ID: "hy-dead", Secret: deadSecret})
	pbx.AddRefreshToken("hy-dead", deadRT)
	pbx.RevokeRefreshToken(deadRT)
	h.expect(204, "POST", "config/hy-dead", map[string]interface{}{
		"provider": "penbox", "token_url": base + pbx.TokenPath(),
		"client_id": "hy-dead", "client_secret": deadSecret, "refresh_token": deadRT,
	})
	h.expect(400, "GET", "token/hy-dead", nil)
	h.expect(400, "GET", "token/hy-dead", nil)
	h.expect(400, "POST", "refresh/hy-dead", nil)
	h.expect(200, "GET", "config/hy-dead", nil)

	// A user-minted static token.
	static := h.secret("static access token")
	h.expect(204, "POST", "config/hy-static", map[string]interface{}{"provider": "penbox", "grant_type": "static", "access_token": static, "ttl": "1h"})
	if got := str(h.expect(200, "GET", "token/hy-static", nil).Data["access_token"]); got != static {
		t.Errorf("token/hy-static did not hand out the static token")
	}
	h.expect(400, "POST", "refresh/hy-static", nil)
	h.expect(200, "GET", "config/hy-static", nil)

	// Any OAuth2 vendor: signing keys, client certificates, assertions,
	// device codes.
	collectAnyVendor := h.anyVendor()

	// Feeds, webhooks and metrics.
	collectWebhooks := h.eventsAndWebhooks()

	// Refused writes that carry secrets: an unknown field, a token_url
	// with credentials in it, a bad value next to a secret.
	urlPassword := h.secret("token_url password")
	h.expect(400, "POST", "config/hy-bad", map[string]interface{}{
		"token_url": base + gen.TokenPath(), "client_id": "x", "client_secret": h.secret("refused write secret"), "no_such_field": h.secret("unknown field value"),
	})
	h.expect(400, "POST", "config/hy-bad", map[string]interface{}{
		"token_url": "https://user:" + urlPassword + "@auth.example.com/oauth/token", "client_id": "x", "client_secret": h.secret("refused url write secret"),
	})
	h.expect(400, "POST", "config/hy-bad", map[string]interface{}{
		"token_url": base + gen.TokenPath(), "client_id": "x", "client_secret": h.secret("refused ttl write secret"), "default_ttl": "-5s",
	})
	h.expect(400, "POST", "config/hy-bad", map[string]interface{}{
		"token_url": base + gen.TokenPath(), "client_id": "x", "grant_type": "refresh_token",
		"client_secret": h.secret("refused grant write secret"), "refresh_token": h.secret("refused grant write refresh token"),
		"extra_headers": "X-Key=" + h.secret("refused header value"), "body_format": "xml",
	})

	h.expect(200, "LIST", "config", nil)
	h.expect(204, "DELETE", "config/hy-ornd-wrong", nil)
	h.expect(404, "GET", "token/hy-ornd-wrong", nil)
	h.expect(200, "GET", "status", nil)

	collectAnyVendor()
	collectWebhooks()
	// Let the plugin's and the audit device's last lines reach the files.
	hv.Stop()
	vaultLog := hv.Log()
	audit, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	h.check(vaultLog, string(audit))
}

// check searches the logs and answers for secrets and vendor tokens.
func (h *hygiene) check(vaultLog, audit string) {
	t := h.t
	// The search must have something to search: plugin lines at trace
	// and debug, and an audit entry for every path family.
	for _, want := range []string{"name=hy-pbx", "stored rotated refresh token", "vendor=penbox",
		"generated a signing key", "imported a signing key", "connected an account with the device flow", "revoked the refresh token"} {
		if !strings.Contains(vaultLog, want) {
			t.Errorf("the Vault log has no %q: the plugin's log lines did not reach it", want)
		}
	}
	for _, p := range []string{"config/hy-pbx", "token/hy-pbx", "refresh/hy-pbx", "authorize/hy-connect", "exchange/hy-connect", mount + "/status",
		"rotate-key/hy-pkjwt", "jwks/hy-pkjwt", "device/hy-dev", "config/hy-mtls"} {
		if !strings.Contains(audit, p) {
			t.Errorf("the audit log has no entry for %s", p)
		}
	}

	labels := make([]string, 0, len(h.secrets))
	for l := range h.secrets {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	hits := 0
	report := func(where, label string) {
		hits++
		if hits <= 30 {
			t.Errorf("%s holds the %s", where, label)
		}
	}
	search := func(where, text string, allowAccess bool) {
		for _, l := range labels {
			if strings.Contains(text, h.secrets[l]) {
				if inTokenReads[l] && allowAccess {
					continue
				}
				report(where, l)
			}
		}
		for _, m := range vendorToken.FindAllStringSubmatch(text, -1) {
			if m[2] == "at" && allowAccess {
				continue
			}
			kind := map[string]string{"at": "vendor access token", "rt": "vendor refresh token", "dc": "device code"}[m[2]]
			report(where, kind+" "+m[0][:len(m[1])+4]+"…")
		}
		for _, m := range privateKeyPEM.FindAllString(text, -1) {
			report(where, "a PEM private key ("+m+")")
		}
		for _, m := range jwkPrivate.FindAllString(text, -1) {
			report(where, "a JWK private member ("+m+")")
		}
	}
	search("the Vault log", vaultLog, false)
	search("the audit log", audit, false)
	accessSeen := 0
	for _, c := range h.calls {
		// Handing out the access token is token/<name>'s purpose.
		isTokenRead := c.method == "GET" && strings.HasPrefix(c.path, "token/")
		if isTokenRead && c.status == 200 {
			accessSeen++
		}
		search(fmt.Sprintf("the answer to %s %s (HTTP %d)", c.method, c.path, c.status), c.body, isTokenRead && c.status == 200)
	}
	if hits > 30 {
		t.Errorf("… %d hits in all", hits)
	}
	// The pattern must match what the stand-in issues, or the search
	// above proves nothing about vendor tokens.
	matched := 0
	for _, c := range h.calls {
		if c.method == "GET" && strings.HasPrefix(c.path, "token/") && c.status == 200 && vendorToken.MatchString(c.body) {
			matched++
		}
	}
	if matched == 0 {
		t.Errorf("no token/<name> answer matched the vendor token pattern: the pattern is stale")
	}
	t.Logf("searched %d secrets and every vendor token in %d bytes of Vault log, %d bytes of audit log and %d answers (%d of them handing out tokens): %d hits",
		len(labels), len(vaultLog), len(audit), len(h.calls), accessSeen, hits)
}
