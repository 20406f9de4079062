package standin

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestGenericExpect(t *testing.T) {
	t.Parallel()
	const (
		id     = "gen client+1"
		secret = "p@ss w%rd+/="
	)
	cc := func() url.Values { return form("grant_type", "client_credentials") }
	bodyCreds := func() url.Values {
		return form("grant_type", "client_credentials", "client_id", id, "client_secret", secret)
	}
	rfc := map[string]string{"Authorization": basicRFC6749(id, secret)}
	raw := map[string]string{"Authorization": basicRaw(id, secret)}
	with := func(h map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, x := range h {
			m[k] = x
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	ccJSON := map[string]string{"grant_type": "client_credentials"}
	ccWith := func(kv ...string) url.Values {
		f := cc()
		for i := 0; i+1 < len(kv); i += 2 {
			f.Set(kv[i], kv[i+1])
		}
		return f
	}

	cases := []struct {
		name   string
		expect Expect
		call   call
		want   want
	}{
		{"basic rfc6749", Expect{}, call{form: cc(), header: rfc}, want{status: 200}},
		{"basic raw where rfc6749 expected", Expect{}, call{form: cc(), header: raw}, want{401, "invalid_client", nil}},
		{"basic raw", Expect{BasicEncoding: "raw"}, call{form: cc(), header: raw}, want{status: 200}},
		{"basic rfc6749 where raw expected", Expect{BasicEncoding: "raw"}, call{form: cc(), header: rfc}, want{401, "invalid_client", nil}},
		{"body credentials", Expect{AuthStyle: "body"}, call{form: bodyCreds()}, want{status: 200}},
		{"basic where body expected", Expect{AuthStyle: "body"}, call{form: cc(), header: rfc}, want{401, "invalid_client", []string{"request body"}}},
		{"body where basic expected", Expect{}, call{form: bodyCreds()}, want{401, "invalid_client", []string{"HTTP Basic"}}},
		{"matching client_id in body with basic", Expect{}, call{form: ccWith("client_id", id), header: rfc}, want{status: 200}},
		{"json body", Expect{BodyFormat: "json"}, call{json: ccJSON, header: rfc}, want{status: 200}},
		{"form where json expected", Expect{BodyFormat: "json"}, call{form: cc(), header: rfc}, want{400, "invalid_request", []string{"application/json"}}},
		{"json where form expected", Expect{}, call{json: ccJSON, header: rfc}, want{400, "invalid_request", []string{"application/x-www-form-urlencoded"}}},
		{"grant type in query", Expect{GrantTypeInQuery: true}, call{query: cc(), form: form(), header: rfc}, want{status: 200}},
		{"grant type in body where query expected", Expect{GrantTypeInQuery: true}, call{form: cc(), header: rfc}, want{400, "invalid_request", []string{"query string"}}},
		{"grant type in query where body expected", Expect{}, call{query: cc(), form: form(), header: rfc}, want{400, "invalid_request", []string{"request body"}}},
		{"header present", Expect{Headers: map[string]string{"X-Tenant": "acme"}}, call{form: cc(), header: with(rfc, "X-Tenant", "acme")}, want{status: 200}},
		{"header missing", Expect{Headers: map[string]string{"X-Tenant": "acme"}}, call{form: cc(), header: rfc}, want{400, "invalid_request", []string{"X-Tenant"}}},
		{"header wrong", Expect{Headers: map[string]string{"X-Tenant": "acme"}}, call{form: cc(), header: with(rfc, "X-Tenant", "evil")}, want{400, "invalid_request", []string{"X-Tenant"}}},
		{"param present", Expect{Params: map[string]string{"audience": "https://api.example"}}, call{form: ccWith("audience", "https://api.example"), header: rfc}, want{status: 200}},
		{"param missing", Expect{Params: map[string]string{"audience": "https://api.example"}}, call{form: cc(), header: rfc}, want{400, "invalid_request", []string{"audience"}}},
		{"param wrong", Expect{Params: map[string]string{"audience": "https://api.example"}}, call{form: ccWith("audience", "x"), header: rfc}, want{400, "invalid_request", []string{"audience"}}},
		{"password grant", Expect{}, call{form: ccWith("grant_type", "password"), header: rfc}, want{400, "unsupported_grant_type", nil}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, base := newServer(t)
			v := s.Vendor(VendorGeneric)
			v.AddClient(Client{ID: id, Secret: secret})
			v.SetExpect(tc.expect)
			tc.call.path = v.TokenPath()
			r := tc.call.do(t, base)
			tc.want.check(t, r)
			if r.status == 200 && (!strings.HasPrefix(r.str("access_token"), "generic-at-") || r.number(t, "expires_in") != 3600) {
				t.Fatalf("response %s", r.body)
			}
		})
	}
}

func TestGenericResponseFormats(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		behavior Behavior
		contains string
		absent   string
	}{
		{"int", Behavior{}, `"expires_in":3600,`, ""},
		{"float", Behavior{ExpiresInFormat: "float", Lifetime: 3599 * time.Second}, `"expires_in":3599.0,`, ""},
		{"string", Behavior{ExpiresInFormat: "string"}, `"expires_in":"3600"`, ""},
		{"missing", Behavior{ExpiresInFormat: "missing"}, `"access_token"`, "expires_in"},
		{"form", Behavior{ResponseFormat: "form", ExpiresInFormat: "float"}, "expires_in=3600.0", "{"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, base := newServer(t)
			v := s.Vendor(VendorGeneric)
			v.AddClient(Client{ID: "c", Secret: "s", Scopes: []string{"read"}})
			v.SetBehavior(tc.behavior)
			r := call{path: v.TokenPath(), form: form("grant_type", "client_credentials", "scope", "read"),
				header: map[string]string{"Authorization": basicRFC6749("c", "s")}}.do(t, base)
			if r.status != 200 || !strings.Contains(string(r.body), tc.contains) ||
				(tc.absent != "" && strings.Contains(string(r.body), tc.absent)) {
				t.Fatalf("status %d body %s", r.status, r.body)
			}
			if tc.behavior.ResponseFormat == "form" {
				vals, err := url.ParseQuery(string(r.body))
				if err != nil || r.header.Get("Content-Type") != "application/x-www-form-urlencoded" ||
					!strings.HasPrefix(vals.Get("access_token"), "generic-at-") || vals.Get("scope") != "read" {
					t.Fatalf("form response %q (%s)", r.body, r.header.Get("Content-Type"))
				}
				// Errors come back form-encoded too.
				r = call{path: v.TokenPath(), form: form("grant_type", "client_credentials", "scope", "write"),
					header: map[string]string{"Authorization": basicRFC6749("c", "s")}}.do(t, base)
				vals, _ = url.ParseQuery(string(r.body))
				if r.status != 400 || vals.Get("error") != "invalid_scope" {
					t.Fatalf("form error %d %q", r.status, r.body)
				}
			}
		})
	}
}

func TestGenericRefreshAndLifetime(t *testing.T) {
	t.Parallel()
	s, base := newServer(t)
	v := s.Vendor(VendorGeneric)
	v.AddClient(Client{ID: "c", Secret: "s"})
	v.SetBehavior(Behavior{Rotate: true, ReuseDetection: true, Lifetime: 90 * time.Second})
	rt0 := v.IssueRefreshToken("c")
	auth := map[string]string{"Authorization": basicRFC6749("c", "s")}
	refresh := func(rt string) result {
		return call{path: v.TokenPath(), form: form("grant_type", "refresh_token", "refresh_token", rt), header: auth}.do(t, base)
	}
	r := refresh(rt0)
	want{status: 200}.check(t, r)
	at, rt1 := r.str("access_token"), r.str("refresh_token")
	if r.number(t, "expires_in") != 90 || !strings.HasPrefix(rt1, "generic-rt-") || !v.Valid(at) {
		t.Fatalf("response %s", r.body)
	}
	s.advance(91 * time.Second)
	if v.Valid(at) {
		t.Fatal("expired token still Valid")
	}
	if exp, ok := v.TokenExpiry(at); !ok || exp.After(time.Now().Add(91*time.Second)) {
		t.Fatalf("TokenExpiry = %v, %v", exp, ok)
	}
	want{400, "invalid_grant", []string{"reuse"}}.check(t, refresh(rt0))
	want{400, "invalid_grant", nil}.check(t, refresh(rt1))
	st := v.Stats()
	if st.ReuseDetections != 1 || st.ByGrantType["refresh_token"] != 1 || st.Failures["invalid_grant"] != 2 {
		t.Fatalf("stats = %+v", st)
	}
}
