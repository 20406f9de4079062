package standin

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestOfficeRnD(t *testing.T) {
	t.Parallel()
	s, base := newServer(t)
	v := s.Vendor(VendorOfficeRnD)
	v.AddClient(Client{ID: "ornd-app", Secret: "ornd-secret", Scopes: []string{"officernd.api.read", "officernd.api.write"}})
	v.AddClient(Client{ID: "ornd-readonly", Secret: "ro-secret", Scopes: []string{"officernd.api.read"}})
	path := v.TokenPath()
	ok := func(kv ...string) call {
		f := form("client_id", "ornd-app", "client_secret", "ornd-secret", "grant_type", "client_credentials",
			"scope", "officernd.api.read officernd.api.write")
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				f.Del(kv[i])
			} else {
				f.Set(kv[i], kv[i+1])
			}
		}
		return call{path: path, form: f}
	}
	jsonBody := call{path: path, json: map[string]string{"client_id": "ornd-app", "client_secret": "ornd-secret",
		"grant_type": "client_credentials", "scope": "officernd.api.read"}}
	basic := call{path: path, form: form("grant_type", "client_credentials", "scope", "officernd.api.read"),
		header: map[string]string{"Authorization": basicRFC6749("ornd-app", "ornd-secret")}}
	both := ok()
	both.header = map[string]string{"Authorization": basicRFC6749("ornd-app", "ornd-secret")}
	repeated := ok()
	repeated.form.Add("scope", "officernd.api.read")
	inQuery := call{path: path, query: form("grant_type", "client_credentials"),
		form: form("client_id", "ornd-app", "client_secret", "ornd-secret", "scope", "officernd.api.read")}
	noCT := ok()
	noCT.contentType = "-"

	cases := []struct {
		name string
		call call
		want want
	}{
		{"json body", jsonBody, want{400, "invalid_request", []string{"application/x-www-form-urlencoded"}}},
		{"no content type", noCT, want{400, "invalid_request", []string{"Content-Type"}}},
		{"basic header instead of body", basic, want{401, "invalid_client", []string{"request body"}}},
		{"basic header and body secret", both, want{400, "invalid_request", []string{"more than one"}}},
		{"wrong secret", ok("client_secret", "nope"), want{401, "invalid_client", nil}},
		{"unknown client", ok("client_id", "who"), want{401, "invalid_client", nil}},
		{"missing secret", ok("client_secret", ""), want{401, "invalid_client", nil}},
		{"missing scope", ok("scope", ""), want{400, "invalid_request", []string{"scope"}}},
		{"blank scope", ok("scope", "  "), want{400, "invalid_request", []string{"scope"}}},
		{"scope beyond permissions", ok("client_id", "ornd-readonly", "client_secret", "ro-secret"),
			want{400, "invalid_scope", []string{`"officernd.api.write"`, "lacks permission"}}},
		{"comma-joined scopes", ok("scope", "officernd.api.read,officernd.api.write"),
			want{400, "invalid_scope", []string{"officernd.api.read,officernd.api.write"}}},
		{"refresh grant", ok("grant_type", "refresh_token"), want{400, "unsupported_grant_type", nil}},
		{"missing grant type", ok("grant_type", ""), want{400, "invalid_request", []string{"grant_type"}}},
		{"grant type in query", inQuery, want{400, "invalid_request", []string{"grant_type"}}},
		{"repeated parameter", repeated, want{400, "invalid_request", []string{"repeated"}}},
		{"GET", call{method: http.MethodGet, path: path}, want{405, "", nil}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.want.check(t, tc.call.do(t, base))
		})
	}

	t.Run("happy path", func(t *testing.T) {
		t.Parallel()
		for _, scope := range []string{"officernd.api.read officernd.api.write", "officernd.api.read"} {
			before := time.Now()
			r := ok("scope", scope).do(t, base)
			want{status: 200}.check(t, r)
			at := r.str("access_token")
			if !strings.HasPrefix(at, "officernd-at-") {
				t.Fatalf("access_token %q lacks the vendor prefix", at)
			}
			if r.str("token_type") != "Bearer" || r.number(t, "expires_in") != 3599 || r.str("scope") != scope {
				t.Fatalf("response %s", r.body)
			}
			if _, has := r.obj["refresh_token"]; has {
				t.Fatalf("client credentials answered with a refresh token: %s", r.body)
			}
			if !v.Valid(at) {
				t.Fatal("issued token is not Valid")
			}
			exp, known := v.TokenExpiry(at)
			if !known || exp.Before(before.Add(3598*time.Second)) || exp.After(time.Now().Add(3600*time.Second)) {
				t.Fatalf("TokenExpiry = %v, %v", exp, known)
			}
			if s.Vendor(VendorPenbox).Valid(at) {
				t.Fatal("another vendor claims the token")
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Fatalf("Cache-Control = %q", r.header.Get("Cache-Control"))
			}
		}
	})
}
