//go:build e2e

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	signingkeys "github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/keys"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// The tests of issue 14 ("any OAuth2 vendor"): each feature of the generic
// provider beyond a client secret, in the real Vault, against the strict
// standards authorization server of internal/standin. Each test has an
// authorization server of its own (the device flow test moves its clock)
// and runs in parallel with the others; none waits for more than a
// device flow's slow_down.

// newAuthServer starts a strict authorization server for one test.
func newAuthServer(t *testing.T, opts standin.AuthServerOptions) *standin.AuthServer {
	t.Helper()
	a, err := standin.NewAuthServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func addClient(t *testing.T, a *standin.AuthServer, c standin.AuthClient) {
	t.Helper()
	if err := a.AddClient(c); err != nil {
		t.Fatal(err)
	}
}

// jwksURL is where a vendor fetches a credential's public keys: Vault's
// address and the plugin's unauthenticated path.
func jwksURL(addr, name string) string { return addr + "/v1/" + mount + "/jwks/" + name }

// getWithoutToken is a GET as a vendor fetching a jwks_uri makes it: no
// Vault token, no Vault client.
func getWithoutToken(t *testing.T, u string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

// publishedKIDs checks that a JWKS answer is a JWKS document of public
// signing keys only and returns their kids.
func publishedKIDs(t *testing.T, body []byte) []string {
	t.Helper()
	var raw struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil || raw.Keys == nil {
		t.Fatalf("the JWKS answer is not a JWKS document (%v): %s", err, body)
	}
	for i, k := range raw.Keys {
		for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"} {
			if _, ok := k[m]; ok {
				t.Fatalf("key %d of the published JWKS has the private member %q", i, m)
			}
		}
	}
	parsed, err := signingkeys.ParseJWKS(body)
	if err != nil {
		t.Fatalf("the published JWKS does not parse as public signing keys: %v", err)
	}
	var kids []string
	for _, k := range parsed {
		if k.Use != "sig" || k.ID == "" || k.Algorithm == "" {
			t.Errorf("published key %+v lacks use=sig, kid or alg", k)
		}
		kids = append(kids, k.ID)
	}
	return kids
}

// assertionHeader decodes a compact JWS's protected header.
func assertionHeader(t *testing.T, jws string) (kid, alg string) {
	t.Helper()
	first, _, _ := strings.Cut(jws, ".")
	raw, err := base64.RawURLEncoding.DecodeString(first)
	if err != nil {
		t.Fatalf("the assertion's header is not base64url: %v", err)
	}
	var h struct {
		Kid string `json:"kid"`
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("the assertion's header is not JSON: %v", err)
	}
	return h.Kid, h.Alg
}

// assertionRequests are the recorded token requests that carried a client
// assertion, oldest first.
func assertionRequests(a *standin.AuthServer) []standin.Recorded {
	var out []standin.Recorded
	for _, r := range a.Requests() {
		if r.Form["client_assertion"] != "" && strings.HasSuffix(r.Path, "/token") {
			out = append(out, r)
		}
	}
	return out
}

// devicePolls are the recorded device access token requests, oldest
// first.
func devicePolls(a *standin.AuthServer) []standin.Recorded {
	var out []standin.Recorded
	for _, r := range a.Requests() {
		if r.Form["grant_type"] == "urn:ietf:params:oauth:grant-type:device_code" {
			out = append(out, r)
		}
	}
	return out
}

// waitFor polls cond every 100 ms until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// noSecretIn fails if text holds any of the secrets (or, for PEM ones,
// any line of their base64 body, which JSON escaping would not hide).
func noSecretIn(t *testing.T, where, text string, secrets map[string]string) {
	t.Helper()
	for label, s := range secrets {
		for _, needle := range needles(s) {
			if strings.Contains(text, needle) {
				t.Errorf("%s holds the %s: %s", where, label, text)
				break
			}
		}
	}
}

// needles are the strings that betray s: s itself, and for a PEM text
// every full line of its base64 body.
func needles(s string) []string {
	if !strings.Contains(s, "-----BEGIN ") {
		return []string{s}
	}
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if len(line) >= 40 && !strings.HasPrefix(line, "-----") {
			out = append(out, line)
		}
	}
	return out
}

// TestAnyVendorPrivateKeyJWT: a key born in Vault signs the client's
// assertions; the stand-in verifies them against the JWKS it fetches from
// the plugin's unauthenticated path in this Vault, and caches it as
// Keycloak does: it fetches it again for an unknown kid at most every
// 10 s. A rotation while readers of short-lived tokens read fails no
// read: the new key is published at once and signs only from its
// activation on, by when the vendor may fetch the JWKS again. A recorded
// assertion posted again is refused (jti replay).
func TestAnyVendorPrivateKeyJWT(t *testing.T) {
	t.Parallel()
	// Three-second tokens: the readers below cause a grant every ~2.6 s,
	// so grants happen on both sides of the rotation.
	a := newAuthServer(t, standin.AuthServerOptions{TokenLifetime: 3 * time.Second, JWKSRefetchInterval: 10 * time.Second})
	const name, client = "any-pkjwt", "any-pkjwt-client"
	jwks := jwksURL(vault.Addr, name)
	addClient(t, a, standin.AuthClient{ID: client, Method: standin.MethodPrivateKeyJWT, JWKSURL: jwks})
	writeConfig(t, name, map[string]interface{}{
		"token_url": a.Endpoints(standin.Plain).Token, "client_id": client, "auth_style": "private_key_jwt",
	})

	// No key yet: a 400 that says what to do, and the JWKS path answers
	// 404, as it does for names that do not exist (it needs no token, so
	// it must not tell which accounts exist).
	status, r, _ := call(t, "GET", mount+"/token/"+name, nil)
	if status != 400 || !strings.Contains(strings.Join(r.Errors, " "), "rotate-key") {
		t.Fatalf("token/%s without a signing key: HTTP %d %v, want 400 naming rotate-key", name, status, r.Errors)
	}
	if status, _, body := getWithoutToken(t, jwks); status != 404 {
		t.Fatalf("the JWKS before any key: HTTP %d %s, want 404", status, body)
	}
	if status, _, body := getWithoutToken(t, jwksURL(vault.Addr, "no-such-credential")); status != 404 {
		t.Fatalf("the JWKS of a name that does not exist: HTTP %d %s, want 404", status, body)
	}

	status, r, _ = call(t, "POST", mount+"/rotate-key/"+name, map[string]interface{}{"algorithm": "ES256"})
	if status != 200 {
		t.Fatalf("rotate-key/%s: HTTP %d %v", name, status, r.Errors)
	}
	kid1 := str(r.Data["kid"])
	if kid1 == "" || str(r.Data["jwks_path"]) != "/v1/"+mount+"/jwks/"+name || !strings.Contains(str(r.Data["public_key"]), "BEGIN PUBLIC KEY") {
		t.Fatalf("rotate-key answered %v", r.Data)
	}
	if strings.Contains(str(r.Data["public_key"]), "PRIVATE") {
		t.Fatal("rotate-key answered a private key")
	}

	// Served without a token, as the JWKS document itself.
	status, hdr, body := getWithoutToken(t, jwks)
	if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/jwk-set+json") {
		t.Fatalf("GET %s without a token: HTTP %d, Content-Type %q: %s", jwks, status, hdr.Get("Content-Type"), body)
	}
	if kids := publishedKIDs(t, body); len(kids) != 1 || kids[0] != kid1 {
		t.Fatalf("the JWKS holds %v, want [%s]", kids, kid1)
	}

	tok := readToken(t, name)
	if !a.AccessTokenValid(str(tok.Data["access_token"])) {
		t.Fatal("token/ handed out a token the stand-in did not issue")
	}
	if st := a.Stats(); st.AssertionsVerified != 1 || st.JWKSFetches < 1 {
		t.Fatalf("after the first grant: %d assertions verified, %d JWKS fetches; want 1 and at least 1", st.AssertionsVerified, st.JWKSFetches)
	}

	// Readers read throughout a rotation to another algorithm.
	var (
		stop          atomic.Bool
		reads, failed atomic.Int64
		failures      sync.Map
		wg            sync.WaitGroup
	)
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				status, out, err := vault.Raw("GET", mount+"/token/"+name, nil)
				reads.Add(1)
				if status != 200 || err != nil {
					failed.Add(1)
					failures.Store(fmt.Sprintf("HTTP %d %v %s", status, err, out), true)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	time.Sleep(time.Second)
	// The vendor fetched the JWKS a moment ago, for the first grant: a key
	// that signed now would be refused for the next 10 s (with 3 s
	// tokens, most reads in that time). Staged, it is published now and
	// signs from its activation on.
	const activation = 12 * time.Second
	status, r, _ = call(t, "POST", mount+"/rotate-key/"+name, map[string]interface{}{"algorithm": "RS256", "activate_after": int(activation.Seconds())})
	if status != 200 {
		stop.Store(true)
		wg.Wait()
		t.Fatalf("the second rotate-key: HTTP %d %v", status, r.Errors)
	}
	kid2 := str(r.Data["kid"])
	signsFrom, err := time.Parse(time.RFC3339, str(r.Data["signs_from"]))
	if err != nil || time.Until(signsFrom) < activation-3*time.Second {
		t.Errorf("signs_from = %v, want about %s from now", r.Data["signs_from"], activation)
	}
	_, _, body = getWithoutToken(t, jwks)
	if kids := publishedKIDs(t, body); !contains(kids, kid2) {
		t.Errorf("the staged key is not published at once: %v", kids)
	}
	// Wait for a grant signed with the new key, once it is active.
	waitFor(t, activation+15*time.Second, "a grant signed with the new key", func() bool {
		for _, rec := range assertionRequests(a) {
			if kid, _ := assertionHeader(t, rec.Form["client_assertion"]); kid == kid2 {
				return true
			}
		}
		return false
	})
	time.Sleep(time.Second)
	stop.Store(true)
	wg.Wait()
	if failed.Load() != 0 {
		failures.Range(func(k, _ any) bool { t.Errorf("a read failed during the rotation: %s", k); return true })
	}
	// And one forced now, by an operator; readers get its token.
	if status, r, _ := call(t, "POST", mount+"/refresh/"+name, nil); status != 200 {
		t.Fatalf("refresh/%s after rotate-key: HTTP %d %v", name, status, r.Errors)
	}
	if !a.AccessTokenValid(str(readToken(t, name).Data["access_token"])) {
		t.Fatal("token/ after the forced refresh is not the stand-in's")
	}

	// The first key signs until the new one's activation, the new one
	// from then on: no assertion goes back to the first key.
	recs := assertionRequests(a)
	before := 0
	for i, rec := range recs {
		kid, alg := assertionHeader(t, rec.Form["client_assertion"])
		switch {
		case kid == kid1 && alg == "ES256" && before == i:
			before = i + 1
		case kid == kid2 && alg == "RS256":
		default:
			t.Errorf("assertion %d (of %d, %d with the first key) is signed with %s/%s", i, len(recs), before, kid, alg)
		}
	}
	st := a.Stats()
	if st.AssertionsVerified != len(recs) || len(st.Rejections) != 0 || len(st.Failures) != 0 {
		t.Errorf("%d assertions sent, %d verified; rejections %v, failures %v", len(recs), st.AssertionsVerified, st.Rejections, st.Failures)
	}
	// The previous public key stays published for its overlap.
	_, _, body = getWithoutToken(t, jwks)
	if kids := publishedKIDs(t, body); len(kids) != 2 || !(contains(kids, kid1) && contains(kids, kid2)) {
		t.Errorf("the JWKS after rotate-key holds %v, want %s and %s", kids, kid1, kid2)
	}
	t.Logf("%d reads during the rotation, none failed; %d grants (%d with the first key), %d JWKS fetches from %s",
		reads.Load(), len(recs), before, st.JWKSFetches, jwks)

	// A reused jti: the last assertion, posted again as it was sent.
	last := recs[len(recs)-1]
	form := url.Values{}
	for k, v := range last.Form {
		form.Set(k, v)
	}
	resp, err := http.PostForm(a.Endpoints(standin.Plain).Token, form)
	if err != nil {
		t.Fatal(err)
	}
	replayed, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var code struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(replayed, &code)
	if resp.StatusCode != 401 || code.Error != "invalid_client" || a.Stats().Rejections[standin.RejectReplay] != 1 {
		t.Fatalf("a replayed assertion: HTTP %d %s, replays counted %d; want 401 invalid_client, 1", resp.StatusCode, replayed, a.Stats().Rejections[standin.RejectReplay])
	}
	// The plugin's own next grant is not affected: a new jti each time.
	if status, r, _ := call(t, "POST", mount+"/refresh/"+name, nil); status != 200 {
		t.Fatalf("refresh/%s after the replay: HTTP %d %v", name, status, r.Errors)
	}
	call(t, "DELETE", mount+"/config/"+name, nil)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestAnyVendorMutualTLS: tls_client_auth on the stand-in's mutual-TLS
// listener, whose certificate a private CA signed (ca_bundle), and the
// errors an operator gets for each way it goes wrong: each says what to
// fix and holds no key.
func TestAnyVendorMutualTLS(t *testing.T) {
	t.Parallel()
	a := newAuthServer(t, standin.AuthServerOptions{})
	const client = "any-mtls-client"
	addClient(t, a, standin.AuthClient{ID: client, Method: standin.MethodTLSClientAuth, TLSSubject: "CN=" + client})
	good, err := a.ClientCA().IssueClient(client)
	if err != nil {
		t.Fatal(err)
	}
	rogueCA, err := standin.NewTestCA("not the client CA")
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := rogueCA.IssueClient(client)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{"client key": good.KeyPEM, "untrusted client key": rogue.KeyPEM}
	mtls := a.Endpoints(standin.MutualTLS).Token
	base := func(extra map[string]interface{}) map[string]interface{} {
		body := map[string]interface{}{"token_url": mtls, "client_id": client, "auth_style": "tls_client_auth",
			"tls_client_certificate": good.CertPEM, "tls_client_key": good.KeyPEM, "ca_bundle": a.ServerCA().CertPEM()}
		for k, v := range extra {
			if v == nil {
				delete(body, k)
			} else {
				body[k] = v
			}
		}
		return body
	}

	writeConfig(t, "any-mtls", base(nil))
	tok := readToken(t, "any-mtls")
	if !a.AccessTokenValid(str(tok.Data["access_token"])) {
		t.Fatal("token/any-mtls handed out a token the stand-in did not issue")
	}
	_, r, raw := call(t, "GET", mount+"/config/any-mtls", nil)
	if r.Data["tls_client_key_set"] != true || !strings.Contains(str(r.Data["tls_client_certificate"]), "BEGIN CERTIFICATE") {
		t.Errorf("config read: tls_client_key_set %v, tls_client_certificate %q", r.Data["tls_client_key_set"], str(r.Data["tls_client_certificate"]))
	}
	noSecretIn(t, "the config read", raw, secrets)

	// A write that lacks the client certificate is refused at once.
	status, r, raw := call(t, "POST", mount+"/config/any-mtls-nocert", base(map[string]interface{}{"tls_client_certificate": nil, "tls_client_key": nil}))
	if msg := strings.Join(r.Errors, " "); status != 400 || !strings.Contains(msg, "tls_client_certificate") || !strings.Contains(msg, "tls_client_key") {
		t.Errorf("tls_client_auth without a certificate: HTTP %d %v, want 400 naming tls_client_certificate and tls_client_key", status, r.Errors)
	}
	noSecretIn(t, "the refused write", raw, secrets)

	// Each is the operator's to fix in the config, so a 400 (tokenclient
	// classifies certificate failures as FailureTLS: "a 400 with the
	// advice"), never advice to check that the endpoint is reachable.
	tests := []struct {
		name string
		body map[string]interface{}
		// want are phrases the error must hold: what is wrong and what
		// to fix.
		want []string
	}{
		{name: "any-mtls-nocert", body: base(map[string]interface{}{"auth_style": "none", "tls_client_certificate": nil, "tls_client_key": nil}),
			want: []string{"requires a client certificate", "set a client certificate and key"}},
		{name: "any-mtls-untrusted", body: base(map[string]interface{}{"tls_client_certificate": rogue.CertPEM, "tls_client_key": rogue.KeyPEM}),
			want: []string{"did not accept the client certificate", "issued by a CA the vendor trusts"}},
		{name: "any-mtls-noca", body: base(map[string]interface{}{"ca_bundle": nil}),
			want: []string{"not signed by a CA this client trusts", "CA bundle"}},
		{name: "any-mtls-wrong-endpoint", body: base(map[string]interface{}{"token_url": a.Endpoints(standin.TLS).Token}),
			want: []string{"did not ask for the client certificate", "mutual-TLS endpoint"}},
	}
	for _, tc := range tests {
		writeConfig(t, tc.name, tc.body)
		status, r, raw := call(t, "GET", mount+"/token/"+tc.name, nil)
		msg := strings.Join(r.Errors, " ")
		if status != 400 {
			t.Errorf("%s: HTTP %d, want 400: the operator fixes the config", tc.name, status)
		}
		if strings.Contains(msg, "reachable") || strings.Contains(msg, "cannot reach") {
			t.Errorf("%s: the error says the endpoint could not be reached; the TLS handshake did reach it: %q", tc.name, msg)
		}
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: HTTP %d %q does not say %q", tc.name, status, msg, w)
			}
		}
		noSecretIn(t, "the error of token/"+tc.name, raw, secrets)
		t.Logf("%s: HTTP %d %s", tc.name, status, msg)
		call(t, "DELETE", mount+"/config/"+tc.name, nil)
	}
	if st := a.Stats(); st.TLSHandshakeErrors < 2 {
		t.Errorf("the stand-in refused %d handshakes, want the missing and the untrusted certificate's", st.TLSHandshakeErrors)
	}
	call(t, "DELETE", mount+"/config/any-mtls", nil)
}

// TestAnyVendorDiscovery: issuer= fills the endpoints from the stand-in's
// RFC 8414 metadata; a document naming another issuer is refused with a
// 400 that changes nothing.
func TestAnyVendorDiscovery(t *testing.T) {
	t.Parallel()
	a := newAuthServer(t, standin.AuthServerOptions{IssuerPath: "/tenant-1"})
	const name, client, secret = "any-discovery", "any-discovery-client", "any-discovery-secret-5d1f"
	addClient(t, a, standin.AuthClient{ID: client, Secret: secret})
	ep := a.Endpoints(standin.Plain)
	writeConfig(t, name, map[string]interface{}{"issuer": a.Issuer(), "client_id": client, "client_secret": secret, "scopes": "read"})
	_, cfg, _ := call(t, "GET", mount+"/config/"+name, nil)
	for field, want := range map[string]string{"token_url": ep.Token, "revocation_url": ep.Revocation, "device_authorization_url": ep.DeviceAuthorization, "issuer": a.Issuer()} {
		if got := str(cfg.Data[field]); got != want {
			t.Errorf("after discovery %s = %q, want %q", field, got, want)
		}
	}
	if str(cfg.Data["discovered_at"]) == "" {
		t.Error("discovered_at is empty after discovery")
	}
	tok := readToken(t, name)
	if !a.AccessTokenValid(str(tok.Data["access_token"])) {
		t.Fatal("the token from the discovered endpoint is not the stand-in's")
	}

	// The metadata now names an impostor issuer.
	const impostor = "https://impostor.example"
	a.SetMetadata(standin.MetadataOptions{Issuer: impostor})
	status, r, _ := call(t, "POST", mount+"/config/"+name, map[string]interface{}{"issuer": a.Issuer(), "scopes": "read,write"})
	msg := strings.Join(r.Errors, " ")
	if status != 400 || !strings.Contains(msg, "was not changed") || !strings.Contains(msg, impostor) || !strings.Contains(msg, a.Issuer()) {
		t.Fatalf("a mismatched issuer: HTTP %d %q, want 400 saying nothing changed and naming both issuers", status, msg)
	}
	t.Logf("mismatched issuer: HTTP %d %s", status, msg)
	_, after, _ := call(t, "GET", mount+"/config/"+name, nil)
	for _, f := range []string{"token_url", "revocation_url", "device_authorization_url", "issuer", "discovered_at", "scopes", "client_secret_set"} {
		if fmt.Sprint(after.Data[f]) != fmt.Sprint(cfg.Data[f]) {
			t.Errorf("the refused write changed %s: %v, was %v", f, after.Data[f], cfg.Data[f])
		}
	}
	if again := readToken(t, name); str(again.Data["access_token"]) != str(tok.Data["access_token"]) {
		t.Error("the refused write dropped the cached token")
	}
	// A new credential with that issuer is not created.
	status, r, _ = call(t, "POST", mount+"/config/"+name+"-new", map[string]interface{}{"issuer": a.Issuer(), "client_id": client, "client_secret": secret})
	if status != 400 || !strings.Contains(strings.Join(r.Errors, " "), impostor) {
		t.Errorf("a new credential with a mismatched issuer: HTTP %d %v", status, r.Errors)
	}
	if status, _, _ := call(t, "GET", mount+"/config/"+name+"-new", nil); status != 404 {
		t.Errorf("the refused credential exists: HTTP %d", status)
	}
	call(t, "DELETE", mount+"/config/"+name, nil)
}

// TestAnyVendorRevocation: deleting a credential revokes its refresh token
// at the stand-in (RFC 7009) and says so; a revocation that fails is a
// warning and the credential is deleted all the same; revoke_on_delete=false
// opts out.
func TestAnyVendorRevocation(t *testing.T) {
	t.Parallel()
	a := newAuthServer(t, standin.AuthServerOptions{})
	const client, secret = "any-revoke-client", "any-revoke-secret-77a0"
	addClient(t, a, standin.AuthClient{ID: client, Secret: secret})
	ep := a.Endpoints(standin.Plain)
	configure := func(name, revocationURL string, extra map[string]interface{}) (rt, at string) {
		t.Helper()
		rt, err := a.IssueRefreshToken(client)
		if err != nil {
			t.Fatal(err)
		}
		body := map[string]interface{}{"token_url": ep.Token, "revocation_url": revocationURL, "client_id": client, "client_secret": secret,
			"grant_type": "refresh_token", "refresh_token": rt}
		for k, v := range extra {
			body[k] = v
		}
		writeConfig(t, name, body)
		return rt, str(readToken(t, name).Data["access_token"])
	}

	rt, at := configure("any-revoke", ep.Revocation, nil)
	status, r, raw := call(t, "DELETE", mount+"/config/any-revoke", nil)
	if status != 200 || r.Data["refresh_token_revoked"] != true || len(r.Warnings) != 0 {
		t.Fatalf("delete: HTTP %d %s, want 200 with refresh_token_revoked", status, raw)
	}
	revs := a.Revocations()
	if len(revs) != 1 || revs[0].ClientID != client || revs[0].Kind != "refresh_token" || revs[0].Hint != "refresh_token" {
		t.Fatalf("revocations at the stand-in: %+v, want one of the refresh token", revs)
	}
	if a.RefreshTokenValid(rt) || a.AccessTokenValid(at) {
		t.Error("the refresh token (or its access token) still works after the delete")
	}
	if status, _, _ := call(t, "GET", mount+"/config/any-revoke", nil); status != 404 {
		t.Errorf("config read after the delete: HTTP %d", status)
	}

	// A revocation endpoint that fails: a warning, and the delete happens.
	rt, _ = configure("any-revoke-fails", a.URL(standin.Plain)+"/no-revocation-here", nil)
	status, r, raw = call(t, "DELETE", mount+"/config/any-revoke-fails", nil)
	warn := strings.Join(r.Warnings, " ")
	if status/100 != 2 || !strings.Contains(warn, "was deleted") || !strings.Contains(warn, "revok") || r.Data["refresh_token_revoked"] == true {
		t.Fatalf("delete with a failing revocation: HTTP %d %s, want a warning", status, raw)
	}
	t.Logf("failed revocation: HTTP %d warning %q", status, warn)
	noSecretIn(t, "the delete's warning", raw, map[string]string{"refresh token": rt, "client secret": secret})
	for _, p := range []string{"config/any-revoke-fails", "token/any-revoke-fails"} {
		if status, _, _ := call(t, "GET", mount+"/"+p, nil); status != 404 {
			t.Errorf("%s after the delete: HTTP %d, want 404", p, status)
		}
	}
	if !a.RefreshTokenValid(rt) || len(a.Revocations()) != 1 {
		t.Error("the failed revocation revoked something")
	}

	// Opted out.
	rt, _ = configure("any-revoke-off", ep.Revocation, map[string]interface{}{"revoke_on_delete": false})
	if status, r, raw := call(t, "DELETE", mount+"/config/any-revoke-off", nil); status/100 != 2 || r.Data["refresh_token_revoked"] != nil || len(r.Warnings) != 0 {
		t.Errorf("delete with revoke_on_delete=false: HTTP %d %s", status, raw)
	}
	if !a.RefreshTokenValid(rt) || len(a.Revocations()) != 1 {
		t.Error("revoke_on_delete=false revoked the refresh token")
	}
}

// TestAnyVendorResponseFields: instance_url (as Salesforce sends it) is
// returned beside the access token; a secret response field (an id_token)
// is returned at token/<name> and nowhere else.
func TestAnyVendorResponseFields(t *testing.T) {
	t.Parallel()
	a := newAuthServer(t, standin.AuthServerOptions{})
	const name, client, secret = "any-fields", "any-fields-client", "any-fields-secret-02c4"
	const instance = "https://acme.my.salesforce.example"
	idToken := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbnktZmllbGRzIn0.sig-" + randomHex(16)
	addClient(t, a, standin.AuthClient{ID: client, Secret: secret, ResponseFields: map[string]any{"instance_url": instance, "id_token": idToken, "not_kept": "x"}})
	writeConfig(t, name, map[string]interface{}{"token_url": a.Endpoints(standin.Plain).Token, "client_id": client, "client_secret": secret,
		"response_fields": "instance_url", "secret_response_fields": "id_token"})
	for i := 0; i < 2; i++ { // the grant, then the cached token
		tok := readToken(t, name)
		if str(tok.Data["instance_url"]) != instance || str(tok.Data["id_token"]) != idToken || tok.Data["not_kept"] != nil {
			t.Fatalf("read %d of token/%s: %v", i, name, tok.Data)
		}
	}
	_, cfg, raw := call(t, "GET", mount+"/config/"+name, nil)
	if fmt.Sprint(cfg.Data["response_fields"]) != "[instance_url]" || fmt.Sprint(cfg.Data["secret_response_fields"]) != "[id_token]" {
		t.Errorf("config read: response_fields %v, secret_response_fields %v", cfg.Data["response_fields"], cfg.Data["secret_response_fields"])
	}
	noSecretIn(t, "the config read", raw, map[string]string{"id_token": idToken})
	_, _, raw = call(t, "GET", mount+"/status", nil)
	noSecretIn(t, "the status read", raw, map[string]string{"id_token": idToken})
	call(t, "DELETE", mount+"/config/"+name, nil)
}

// TestAnyVendorDeviceFlow: device/<name> starts an RFC 8628 flow; the
// plugin polls at the interval, slows down when told to, and stores the
// tokens when the user approves; a denial is reported.
func TestAnyVendorDeviceFlow(t *testing.T) {
	t.Parallel()
	t.Run("approved", func(t *testing.T) {
		t.Parallel()
		a := newAuthServer(t, standin.AuthServerOptions{DeviceInterval: time.Second})
		const name, client, secret = "any-device", "any-device-client", "any-device-secret-9e3b"
		addClient(t, a, standin.AuthClient{ID: client, Secret: secret, Scopes: []string{"offline_access", "read"}})
		writeConfig(t, name, map[string]interface{}{"issuer": a.Issuer(), "client_id": client, "client_secret": secret, "grant_type": "refresh_token"})
		status, r, raw := call(t, "POST", mount+"/device/"+name, map[string]interface{}{"scopes": "offline_access"})
		if status != 200 {
			t.Fatalf("device/%s: HTTP %d %v", name, status, r.Errors)
		}
		code := str(r.Data["user_code"])
		ep := a.Endpoints(standin.Plain)
		if code == "" || str(r.Data["verification_uri"]) != ep.Verification || str(r.Data["status"]) != "pending" || fmt.Sprint(r.Data["interval"]) != "1" || str(r.Data["expires_at"]) == "" {
			t.Fatalf("device/%s answered %v", name, r.Data)
		}
		if _, ok := r.Data["device_code"]; ok {
			t.Fatalf("device/%s answered the device code", name)
		}
		// Two pending polls at the interval, then the stand-in's clock
		// goes back 2 s: the next poll looks too early and is answered
		// slow_down (which the plugin did not cause), and every later one
		// must come 5 s slower.
		waitFor(t, 10*time.Second, "two polls", func() bool { return len(devicePolls(a)) >= 2 })
		n := len(devicePolls(a))
		a.Advance(-2 * time.Second)
		waitFor(t, 10*time.Second, "the slow_down poll", func() bool { return a.Stats().SlowDowns == 1 })
		var cur apiResponse
		waitFor(t, 5*time.Second, "device/ showing the slower interval", func() bool {
			_, cur, _ = call(t, "GET", mount+"/device/"+name, nil)
			return fmt.Sprint(cur.Data["interval"]) == "6"
		})
		if str(cur.Data["status"]) != "pending" {
			t.Errorf("device/%s after slow_down: %v, want pending", name, cur.Data)
		}
		// The user approves now; the plugin learns it at its next poll, 6 s
		// after the slow_down.
		if err := a.ApproveDevice(code); err != nil {
			t.Fatal(err)
		}
		var done apiResponse
		waitFor(t, 15*time.Second, "the approval", func() bool {
			_, done, _ = call(t, "GET", mount+"/device/"+name, nil)
			return str(done.Data["status"]) != "pending"
		})
		if str(done.Data["status"]) != "approved" {
			t.Fatalf("device/%s: %v, want approved", name, done.Data)
		}
		tok := readToken(t, name)
		if !a.AccessTokenValid(str(tok.Data["access_token"])) || str(tok.Data["scope"]) != "offline_access" {
			t.Fatalf("token/%s after the approval: %v", name, tok.Data)
		}
		if _, cfg, _ := call(t, "GET", mount+"/config/"+name, nil); cfg.Data["refresh_token_set"] != true {
			t.Errorf("no refresh token stored after the approval")
		}

		polls := devicePolls(a)
		st := a.Stats()
		if st.SlowDowns != 1 {
			t.Errorf("%d slow_down answers, want only the one provoked: the plugin polled faster than the interval", st.SlowDowns)
		}
		for i := 1; i < len(polls); i++ {
			gap := polls[i].At.Sub(polls[i-1].At)
			want := time.Second
			switch {
			case i == n: // spans the clock change
				continue
			case i > n: // after the slow_down answer
				want = 6 * time.Second
			}
			if gap < want-20*time.Millisecond {
				t.Errorf("poll %d came %s after the one before, want at least %s", i, gap, want)
			}
		}
		var secrets = map[string]string{}
		for i, p := range polls {
			secrets[fmt.Sprintf("device code of poll %d", i)] = p.Form["device_code"]
		}
		noSecretIn(t, "the device/ start answer", raw, secrets)
		_, _, doneRaw := call(t, "GET", mount+"/device/"+name, nil)
		noSecretIn(t, "the device/ read", doneRaw, secrets)
		t.Logf("%d polls, %d slow_down; approved", len(polls), st.SlowDowns)
		call(t, "DELETE", mount+"/config/"+name, nil)
	})
	t.Run("denied", func(t *testing.T) {
		t.Parallel()
		a := newAuthServer(t, standin.AuthServerOptions{DeviceInterval: time.Second})
		const name, client, secret = "any-device-denied", "any-device-denied-client", "any-device-secret-4aa1"
		addClient(t, a, standin.AuthClient{ID: client, Secret: secret})
		writeConfig(t, name, map[string]interface{}{"issuer": a.Issuer(), "client_id": client, "client_secret": secret, "grant_type": "refresh_token"})
		status, r, _ := call(t, "POST", mount+"/device/"+name, nil)
		if status != 200 {
			t.Fatalf("device/%s: HTTP %d %v", name, status, r.Errors)
		}
		waitFor(t, 10*time.Second, "a poll", func() bool { return len(devicePolls(a)) >= 1 })
		if err := a.DenyDevice(str(r.Data["user_code"])); err != nil {
			t.Fatal(err)
		}
		var done apiResponse
		waitFor(t, 10*time.Second, "the denial", func() bool {
			_, done, _ = call(t, "GET", mount+"/device/"+name, nil)
			return str(done.Data["status"]) != "pending"
		})
		if str(done.Data["status"]) != "denied" {
			t.Fatalf("device/%s: %v, want denied", name, done.Data)
		}
		if _, cfg, _ := call(t, "GET", mount+"/config/"+name, nil); cfg.Data["refresh_token_set"] != false {
			t.Error("a refresh token is stored after a denial")
		}
		status, tr, _ := call(t, "GET", mount+"/token/"+name, nil)
		if status == 200 {
			t.Errorf("token/%s after a denial: HTTP 200", name)
		}
		n := len(devicePolls(a))
		time.Sleep(1500 * time.Millisecond)
		if later := len(devicePolls(a)); later != n {
			t.Errorf("the plugin polled %d more times after the denial", later-n)
		}
		if st := a.Stats(); st.SlowDowns != 0 || st.Grants != 0 {
			t.Errorf("slow_down answers %d, grants %d; want 0 and 0", st.SlowDowns, st.Grants)
		}
		t.Logf("denied: %v; token/ then: HTTP %d %v", done.Data, status, tr.Errors)
		call(t, "DELETE", mount+"/config/"+name, nil)
	})
}
