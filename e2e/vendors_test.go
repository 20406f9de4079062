//go:build e2e

package e2e

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// Each vendor test writes only the fields a user of that vendor has (plus
// token_url, pointing the preset at the stand-in), reads a token through
// Vault's HTTP API, and checks both what the vendor received and what the
// reader got.

func TestOfficeRnD(t *testing.T) {
	v := vendors.Vendor("officernd")
	v.AddClient(standin.Client{ID: "ornd-e2e", Secret: "ornd-e2e-secret", Scopes: []string{"officernd.api.read", "officernd.api.write"}})
	writeConfig(t, "ornd", map[string]interface{}{
		"provider": "officernd", "token_url": baseURL + v.TokenPath(),
		"client_id": "ornd-e2e", "client_secret": "ornd-e2e-secret",
		"scopes": "officernd.api.read,officernd.api.write",
	})
	r := readToken(t, "ornd")
	assertToken(t, v, r, 3599)
	req := lastFrom(t, v, "ornd-e2e")
	if ct := req.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		t.Errorf("Content-Type = %q, want a form body", ct)
	}
	if req.Form["client_secret"] != "ornd-e2e-secret" || req.Form["grant_type"] != "client_credentials" || req.Header.Get("Authorization") != "" {
		t.Errorf("want id and secret in the body and no Authorization header: form %v", keys(req.Form))
	}
	if req.Form["scope"] != "officernd.api.read officernd.api.write" {
		t.Errorf("scope = %q", req.Form["scope"])
	}

	// A scope the application lacks.
	writeConfig(t, "ornd-scope", map[string]interface{}{
		"provider": "officernd", "token_url": baseURL + v.TokenPath(),
		"client_id": "ornd-e2e", "client_secret": "ornd-e2e-secret",
		"scopes": "officernd.api.read,officernd.api.admin",
	})
	expectRefusal(t, "ornd-scope", "invalid_scope", "scopes", "ornd-e2e-secret")
}

func TestBoldPenguin(t *testing.T) {
	v := vendors.Vendor("boldpenguin")
	// Characters that RFC 6749 form-encoding would change: Bold Penguin
	// wants the raw id:secret.
	secret := "bp+e2e/secret=x y"
	v.AddClient(standin.Client{ID: "bp-e2e", Secret: secret, APIKey: "bp-e2e-api-key"})
	writeConfig(t, "bp", map[string]interface{}{
		"provider": "boldpenguin", "environment": "staging", "token_url": baseURL + v.TokenPath(),
		"client_id": "bp-e2e", "client_secret": secret, "api_key": "bp-e2e-api-key",
	})
	r := readToken(t, "bp")
	assertToken(t, v, r, 43200)
	req := lastFrom(t, v, "bp-e2e")
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("bp-e2e:"+secret)); req.Header.Get("Authorization") != want {
		t.Errorf("Authorization is not Basic with the raw id:secret")
	}
	if req.Header.Get("x-api-key") != "bp-e2e-api-key" {
		t.Errorf("x-api-key header missing")
	}
	if req.Query.Get("grant_type") != "client_credentials" || req.Form["grant_type"] != "" {
		t.Errorf("grant_type must be in the query only: query %v, body %v", req.Query, keys(req.Form))
	}
	_, cfg, body := call(t, "GET", mount+"/config/bp", nil)
	if strings.Contains(body, "bp-e2e-api-key") || cfg.Data["api_key_set"] != true {
		t.Errorf("config read shows the API key or does not say it is set")
	}

	// A wrong API key: the gateway's 403.
	writeConfig(t, "bp-key", map[string]interface{}{
		"provider": "boldpenguin", "environment": "staging", "token_url": baseURL + v.TokenPath(),
		"client_id": "bp-e2e", "client_secret": secret, "api_key": "not-the-key",
	})
	expectRefusal(t, "bp-key", "HTTP 403", "api_key", "not-the-key")

	// Leaving the API key out is caught before anything is stored.
	status, resp, _ := call(t, "POST", mount+"/config/bp-nokey", map[string]interface{}{
		"provider": "boldpenguin", "client_id": "bp-e2e", "client_secret": secret,
	})
	if status != 400 || !strings.Contains(strings.Join(resp.Errors, " "), "api_key is required") {
		t.Errorf("missing api_key: HTTP %d %v", status, resp.Errors)
	}
}

func TestEshopbox(t *testing.T) {
	v := vendors.Vendor("eshopbox")
	v.AddClient(standin.Client{ID: "esb-e2e", Secret: "esb-e2e-secret"})
	rt := v.IssueRefreshToken("esb-e2e")
	writeConfig(t, "esb", map[string]interface{}{
		"provider": "eshopbox", "token_url": baseURL + v.TokenPath(),
		"client_id": "esb-e2e", "client_secret": "esb-e2e-secret", "refresh_token": rt,
	})
	r := readToken(t, "esb")
	assertToken(t, v, r, 86400)
	req := lastFrom(t, v, "esb-e2e")
	if !req.BodyJSON || req.Form["grant_type"] != "refresh_token" || req.Form["refresh_token"] != rt || req.Form["client_secret"] != "esb-e2e-secret" {
		t.Errorf("want a JSON body with the refresh grant: json=%v fields %v", req.BodyJSON, keys(req.Form))
	}
	// The endpoint rate-limits: reads while the token is good never call it.
	n := len(requestsFrom(v, "esb-e2e"))
	for i := 0; i < 5; i++ {
		readToken(t, "esb")
	}
	if got := len(requestsFrom(v, "esb-e2e")); got != n {
		t.Errorf("cached reads called Eshopbox %d times", got-n)
	}

	// body_format=form switches the body for workspaces that want form.
	v.SetAcceptBody("form")
	defer v.SetAcceptBody()
	writeConfig(t, "esb", map[string]interface{}{"body_format": "form"})
	readToken(t, "esb")
	if req := lastFrom(t, v, "esb-e2e"); req.BodyJSON || req.Form["refresh_token"] != rt {
		t.Errorf("body_format=form still sent JSON, or lost the stored refresh token")
	}

	// A refresh token Eshopbox does not know.
	writeConfig(t, "esb-bad", map[string]interface{}{
		"provider": "eshopbox", "token_url": baseURL + v.TokenPath(), "body_format": "form",
		"client_id": "esb-e2e", "client_secret": "esb-e2e-secret", "refresh_token": "esb-not-a-token",
	})
	expectRefusal(t, "esb-bad", "invalid_grant", "refresh_token", "esb-not-a-token")
}

func TestPenbox(t *testing.T) {
	v := vendors.Vendor("penbox")
	v.AddClient(standin.Client{ID: "pbx-e2e", Secret: "pbx-e2e-secret"})
	for _, rotate := range []bool{false, true} {
		name := "pbx-keep"
		if rotate {
			name = "pbx-rotate"
		}
		t.Run(name, func(t *testing.T) {
			rt := v.IssueRefreshToken("pbx-e2e")
			b := v.Behavior()
			b.Rotate = rotate
			v.SetBehavior(b)
			writeConfig(t, name, map[string]interface{}{
				"provider": "penbox", "token_url": baseURL + v.TokenPath(),
				"client_id": "pbx-e2e", "client_secret": "pbx-e2e-secret", "refresh_token": rt,
			})
			assertToken(t, v, readToken(t, name), 3600)
			req := lastFrom(t, v, "pbx-e2e")
			if req.Form["client_secret"] != "pbx-e2e-secret" || req.Form["refresh_token"] != rt || req.Form["grant_type"] != "refresh_token" {
				t.Errorf("want id, secret and refresh token in the body: %v", keys(req.Form))
			}
			// A forced new grant (by changing a lease-only setting nothing
			// happens; write the same secret to drop the cache) must use
			// whichever refresh token is current.
			writeConfig(t, name, map[string]interface{}{"client_id": "pbx-e2e", "scopes": "offline_access"})
			readToken(t, name)
			next := lastFrom(t, v, "pbx-e2e").Form["refresh_token"]
			if rotate && next == rt {
				t.Errorf("the rotated refresh token was not stored: the old one was sent again")
			}
			if !rotate && next != rt {
				t.Errorf("without rotation the original refresh token must be kept")
			}
			if v.Stats().ReuseDetections != 0 {
				t.Errorf("reuse detected")
			}
		})
	}
	writeConfig(t, "pbx-bad", map[string]interface{}{
		"provider": "penbox", "token_url": baseURL + v.TokenPath(),
		"client_id": "pbx-e2e", "client_secret": "pbx-wrong-secret", "refresh_token": v.IssueRefreshToken("pbx-e2e"),
	})
	expectRefusal(t, "pbx-bad", "invalid_client", "client_secret", "pbx-wrong-secret")
}

// assertToken checks what the reader got: a token the vendor issued, type
// Bearer, and a lease renewable up to its lease end: the vendor's
// expires_in less the default skew and 3% of the life, plus 2 s.
func assertToken(t *testing.T, v *standin.Vendor, r apiResponse, expiresIn int) {
	t.Helper()
	if tok := str(r.Data["access_token"]); !v.Valid(tok) {
		t.Errorf("access_token is not a valid token from the vendor")
	}
	if got := str(r.Data["token_type"]); got != "Bearer" {
		t.Errorf("token_type = %q, want Bearer", got)
	}
	if want := expiresIn - 30 - expiresIn*3/100 + 2; r.LeaseDuration < want-2 || r.LeaseDuration > want {
		t.Errorf("lease_duration = %d, want about %d (expires_in %d less 30 s skew and 3%% of the life, plus 2 s)", r.LeaseDuration, want, expiresIn)
	}
	if !r.Renewable || r.LeaseID == "" {
		t.Errorf("want a lease renewable up to the hand-out end")
	}
}

// expectRefusal reads a misconfigured credential: a 400 naming the vendor's
// error code and the field to fix, with no secret in it.
func expectRefusal(t *testing.T, name, code, field, secret string) {
	t.Helper()
	status, r, raw := call(t, "GET", mount+"/token/"+name, nil)
	msg := strings.Join(r.Errors, " ")
	if status != 400 || !strings.Contains(msg, code) || !strings.Contains(msg, field) {
		t.Errorf("token/%s: HTTP %d %q; want 400 naming %q and %q", name, status, msg, code, field)
	}
	if strings.Contains(raw, secret) {
		t.Errorf("token/%s: the error shows a secret", name)
	}
}

func requestsFrom(v *standin.Vendor, clientID string) []standin.Recorded {
	var out []standin.Recorded
	for _, r := range v.Requests() {
		if r.Form["client_id"] == clientID || basicUser(r) == clientID {
			out = append(out, r)
		}
	}
	return out
}

func lastFrom(t *testing.T, v *standin.Vendor, clientID string) standin.Recorded {
	t.Helper()
	reqs := requestsFrom(v, clientID)
	if len(reqs) == 0 {
		t.Fatalf("the vendor saw no request from %s", clientID)
	}
	return reqs[len(reqs)-1]
}

// keys lists field names only, so failure output never prints a secret.
func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
