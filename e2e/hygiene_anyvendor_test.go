//go:build e2e

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// storedSigningKey is what the plugin stores of a signing key (backend/keys
// storedKey): read here only to search for the generated private keys.
type storedSigningKey struct {
	Kid          string `json:"kid"`
	Imported     bool   `json:"imported"`
	PrivatePKCS8 []byte `json:"private_pkcs8"`
}

// pemSecret registers a PEM text as a secret by every full line of its
// base64 body: a JSON answer or a log line escapes the newlines, so the
// whole text would never match.
func (h *hygiene) pemSecret(label, text string) {
	n := 0
	for _, line := range strings.Split(text, "\n") {
		if len(line) >= 40 && !strings.HasPrefix(line, "-----") {
			n++
			h.secrets[fmt.Sprintf("%s (PEM line %d)", label, n)] = line
		}
	}
	if n == 0 {
		h.t.Fatalf("the %s has no PEM body to search for", label)
	}
}

// privateKeySecrets registers a private key by what would betray it: its
// PKCS#8 DER in base64 (as JSON writes bytes), its PEM body, and its JWK
// private members (base64url).
func (h *hygiene) privateKeySecrets(label string, der []byte) {
	h.secrets[label+" (PKCS#8, base64)"] = base64.StdEncoding.EncodeToString(der)
	h.pemSecret(label, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		h.t.Fatalf("the %s is not PKCS#8: %v", label, err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		d, err := k.Bytes() // the private scalar, fixed-length big-endian: JWK d
		if err != nil {
			h.t.Fatalf("the %s: %v", label, err)
		}
		h.secrets[label+" (JWK d)"] = b64(d)
	case *rsa.PrivateKey:
		h.secrets[label+" (JWK d)"] = b64(k.D.Bytes())
		h.secrets[label+" (JWK p)"] = b64(k.Primes[0].Bytes())
		h.secrets[label+" (JWK q)"] = b64(k.Primes[1].Bytes())
	default:
		h.t.Fatalf("the %s is a %T", label, key)
	}
}

// unauthenticated is a GET without a Vault token, as a vendor fetching a
// jwks_uri makes it; its answer is searched like every other.
func (h *hygiene) unauthenticated(want int, path string) string {
	h.t.Helper()
	resp, err := http.Get(h.v.Addr + "/v1/" + mount + "/" + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	h.calls = append(h.calls, hygieneCall{"GET (no token)", path, resp.StatusCode, string(body)})
	if resp.StatusCode != want {
		h.t.Fatalf("GET %s without a token: HTTP %d %s, want %d", path, resp.StatusCode, body, want)
	}
	return string(body)
}

// waitDevice reads device/<name> until its status is no longer pending.
func (h *hygiene) waitDevice(name string) string {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		status := str(h.expect(200, "GET", "device/"+name, nil).Data["status"])
		if status != "pending" {
			return status
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("device/%s still pending after 20s", name)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// anyVendor exercises the secrets of issue 14 against the strict
// authorization server: signing keys born in Vault and an imported one
// (private_key_jwt), client_secret_jwt, a TLS client key (tls_client_auth
// on the mutual-TLS listener, with a private CA), discovery, the device
// flow approved and denied, revocation on delete (and a revocation that
// fails), and a secret response field. The returned func, called once
// the plugin is done, registers what only the stand-in saw (the client
// assertions and the device codes) and the generated private keys, read
// from storage through sys/raw.
func (h *hygiene) anyVendor() func() {
	t := h.t
	as, err := standin.NewAuthServer(standin.AuthServerOptions{DeviceInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = as.Close() })
	add := func(c standin.AuthClient) {
		t.Helper()
		if err := as.AddClient(c); err != nil {
			t.Fatal(err)
		}
	}
	plain, mtls := as.Endpoints(standin.Plain), as.Endpoints(standin.MutualTLS)

	// private_key_jwt with keys born in Vault; an id_token kept as a
	// secret response field.
	idToken := h.secret("id token")
	add(standin.AuthClient{ID: "hy-pkjwt", Method: standin.MethodPrivateKeyJWT, JWKSURL: jwksURL(h.v.Addr, "hy-pkjwt"),
		ResponseFields: map[string]any{"instance_url": "https://hy.my.salesforce.example", "id_token": idToken}})
	h.expect(200, "POST", "config/hy-pkjwt", map[string]interface{}{ // warns: no signing key yet
		"token_url": plain.Token, "client_id": "hy-pkjwt", "auth_style": "private_key_jwt",
		"response_fields": "instance_url", "secret_response_fields": "id_token",
	})
	h.expect(400, "GET", "token/hy-pkjwt", nil) // no signing key yet
	h.expect(200, "POST", "rotate-key/hy-pkjwt", nil)
	if n := h.storedPrivateKeys("cred/hy-pkjwt"); n != 1 {
		t.Errorf("found %d generated private keys of hy-pkjwt in storage after rotate-key, want 1", n)
	}
	if got := str(h.expect(200, "GET", "token/hy-pkjwt", nil).Data["id_token"]); got != idToken {
		t.Errorf("token/hy-pkjwt did not return the secret response field")
	}
	// A staged rotation: the first key signs until the second is made to
	// sign now.
	h.expect(200, "POST", "rotate-key/hy-pkjwt", map[string]interface{}{"algorithm": "RS256"})
	h.expect(200, "POST", "refresh/hy-pkjwt", nil)
	h.expect(200, "POST", "rotate-key/hy-pkjwt", map[string]interface{}{"activate_staged": true})
	h.expect(200, "POST", "refresh/hy-pkjwt", nil)
	h.expect(200, "GET", "token/hy-pkjwt", nil)
	h.expect(400, "POST", "rotate-key/hy-pkjwt", map[string]interface{}{"algorithm": "HS256"})
	h.unauthenticated(200, "jwks/hy-pkjwt")
	h.expect(200, "GET", "jwks/hy-pkjwt", nil)
	h.expect(200, "GET", "config/hy-pkjwt", nil)

	// An imported signing key, then one that does not parse.
	imported, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(imported)
	if err != nil {
		t.Fatal(err)
	}
	h.privateKeySecrets("imported signing key", der)
	add(standin.AuthClient{ID: "hy-import", Method: standin.MethodPrivateKeyJWT, JWKSURL: jwksURL(h.v.Addr, "hy-import")})
	importedPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	h.expect(200, "POST", "config/hy-import", map[string]interface{}{
		"token_url": plain.Token, "client_id": "hy-import", "auth_style": "private_key_jwt",
	}) // warns: no signing key yet
	h.expect(400, "POST", "config/hy-import", map[string]interface{}{"signing_key": importedPEM}) // not a config field
	h.expect(200, "POST", "import-key/hy-import", map[string]interface{}{"signing_key": importedPEM})
	h.expect(200, "GET", "token/hy-import", nil)
	h.expect(200, "GET", "config/hy-import", nil)
	garbage := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte(h.secret("unparsable signing key") + randomHex(24))}))
	h.pemSecret("unparsable signing key", garbage)
	h.expect(400, "POST", "import-key/hy-import", map[string]interface{}{"signing_key": garbage})

	// client_secret_jwt: HS256 with the client secret.
	csj := h.secret("client_secret_jwt secret")
	add(standin.AuthClient{ID: "hy-csj", Method: standin.MethodClientSecretJWT, Secret: csj})
	h.expect(204, "POST", "config/hy-csj", map[string]interface{}{
		"token_url": plain.Token, "client_id": "hy-csj", "client_secret": csj, "auth_style": "client_secret_jwt",
	})
	h.expect(200, "GET", "token/hy-csj", nil)

	// tls_client_auth with a private CA; a certificate from another CA; a
	// key that is not the certificate's.
	cert, err := as.ClientCA().IssueClient("hy-mtls")
	if err != nil {
		t.Fatal(err)
	}
	h.pemSecret("tls client key", cert.KeyPEM)
	add(standin.AuthClient{ID: "hy-mtls", Method: standin.MethodTLSClientAuth})
	mtlsConfig := func(c *standin.Issued) map[string]interface{} {
		return map[string]interface{}{"token_url": mtls.Token, "client_id": "hy-mtls", "auth_style": "tls_client_auth",
			"tls_client_certificate": c.CertPEM, "tls_client_key": c.KeyPEM, "ca_bundle": as.ServerCA().CertPEM()}
	}
	h.expect(204, "POST", "config/hy-mtls", mtlsConfig(cert))
	h.expect(200, "GET", "token/hy-mtls", nil)
	h.expect(200, "GET", "config/hy-mtls", nil)
	rogueCA, err := standin.NewTestCA("hygiene rogue CA")
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := rogueCA.IssueClient("hy-mtls")
	if err != nil {
		t.Fatal(err)
	}
	h.pemSecret("untrusted tls client key", rogue.KeyPEM)
	h.expect(204, "POST", "config/hy-mtls-rogue", mtlsConfig(rogue))
	if status, _ := h.do("GET", "token/hy-mtls-rogue", nil); status == 200 {
		t.Error("token/hy-mtls-rogue: a certificate from an untrusted CA got a token")
	}
	other, err := as.ClientCA().IssueClient("hy-other")
	if err != nil {
		t.Fatal(err)
	}
	h.pemSecret("mismatched tls client key", other.KeyPEM)
	mismatched := mtlsConfig(cert)
	mismatched["tls_client_key"] = other.KeyPEM
	h.expect(400, "POST", "config/hy-mtls-bad", mismatched)

	// Discovery and the device flow, approved; then a delete that revokes
	// the refresh token it got.
	devSecret := h.secret("device client secret")
	add(standin.AuthClient{ID: "hy-dev", Secret: devSecret})
	devConfig := map[string]interface{}{"issuer": as.Issuer(), "client_id": "hy-dev", "client_secret": devSecret, "grant_type": "refresh_token"}
	h.expect(204, "POST", "config/hy-dev", devConfig)
	start := h.expect(200, "POST", "device/hy-dev", nil)
	if err := as.ApproveDevice(str(start.Data["user_code"])); err != nil {
		t.Fatal(err)
	}
	if s := h.waitDevice("hy-dev"); s != "approved" {
		t.Fatalf("device/hy-dev: %s", s)
	}
	h.expect(200, "GET", "token/hy-dev", nil)
	h.expect(200, "GET", "config/hy-dev", nil)
	if r := h.expect(200, "DELETE", "config/hy-dev", nil); r.Data["refresh_token_revoked"] != true {
		t.Errorf("deleting config/hy-dev did not revoke its refresh token: %v %v", r.Data, r.Warnings)
	}
	// Denied.
	h.expect(204, "POST", "config/hy-dev-denied", devConfig)
	start = h.expect(200, "POST", "device/hy-dev-denied", nil)
	if err := as.DenyDevice(str(start.Data["user_code"])); err != nil {
		t.Fatal(err)
	}
	if s := h.waitDevice("hy-dev-denied"); s != "denied" {
		t.Fatalf("device/hy-dev-denied: %s", s)
	}
	h.expect(400, "GET", "token/hy-dev-denied", nil)
	// A revocation that fails: the warning.
	rt, err := as.IssueRefreshToken("hy-dev")
	if err != nil {
		t.Fatal(err)
	}
	h.expect(204, "POST", "config/hy-revoke-fails", map[string]interface{}{
		"token_url": plain.Token, "revocation_url": as.URL(standin.Plain) + "/no-revocation-here", "client_id": "hy-dev",
		"client_secret": devSecret, "grant_type": "refresh_token", "refresh_token": rt,
	})
	h.expect(200, "GET", "token/hy-revoke-fails", nil)
	if r := h.expect(200, "DELETE", "config/hy-revoke-fails", nil); len(r.Warnings) == 0 {
		t.Error("a failed revocation gave no warning")
	}
	// A mismatched issuer, refused.
	as.SetMetadata(standin.MetadataOptions{Issuer: "https://impostor.example"})
	h.expect(400, "POST", "config/hy-dev-impostor", map[string]interface{}{
		"issuer": as.Issuer(), "client_id": "hy-dev", "client_secret": h.secret("impostor issuer write secret"), "grant_type": "refresh_token",
	})
	as.SetMetadata(standin.MetadataOptions{})

	return func() {
		t.Helper()
		assertions, codes := 0, map[string]bool{}
		for _, r := range as.Requests() {
			if a := r.Form["client_assertion"]; a != "" {
				assertions++
				h.secrets[fmt.Sprintf("client assertion %d", assertions)] = a
				h.secrets[fmt.Sprintf("client assertion %d's signature", assertions)] = a[strings.LastIndex(a, ".")+1:]
			}
			if c := r.Form["device_code"]; c != "" && !codes[c] {
				codes[c] = true
				h.secrets[fmt.Sprintf("device code %d", len(codes))] = c
			}
		}
		// Grants signed by a key born in Vault (before and after its
		// rotation), an imported one and the client secret; two device
		// flows.
		if assertions < 4 || len(codes) != 2 {
			t.Errorf("the stand-in saw %d client assertions and %d device codes; want at least 4 and 2", assertions, len(codes))
		}
		// The generated keys, as stored: the only place they exist (the
		// first one of hy-pkjwt was collected before its rotation, which
		// keeps only the public half of a previous key).
		generated := 0
		for _, owner := range []string{"cred/hy-pkjwt", "cred/hy-import"} {
			generated += h.storedPrivateKeys(owner)
		}
		if generated != 1 {
			t.Errorf("found %d generated private keys in storage, want hy-pkjwt's current one", generated)
		}
	}
}

// storedPrivateKeys reads owner's signing keys as stored (sys/raw), adds
// each generated private key to the secrets searched for, and returns how
// many it found.
func (h *hygiene) storedPrivateKeys(owner string) int {
	t := h.t
	t.Helper()
	m, err := h.v.Client.Sys().GetMount(mount)
	if err != nil {
		t.Fatal(err)
	}
	s, err := h.v.Client.Logical().Read("sys/raw/logical/" + m.UUID + "/keys/" + owner)
	if err != nil || s == nil {
		t.Fatalf("reading the signing keys of %s through sys/raw: %v", owner, err)
	}
	var set struct {
		Current  *storedSigningKey  `json:"current"`
		Previous []storedSigningKey `json:"previous"`
	}
	if err := json.Unmarshal([]byte(str(s.Data["value"])), &set); err != nil || set.Current == nil {
		t.Fatalf("the stored signing keys of %s are not the JSON expected (%v)", owner, err)
	}
	generated := 0
	for _, k := range append(set.Previous, *set.Current) {
		if len(k.PrivatePKCS8) == 0 || k.Imported {
			continue
		}
		generated++
		h.privateKeySecrets(fmt.Sprintf("generated signing key %s of %s", k.Kid, owner), k.PrivatePKCS8)
	}
	return generated
}
