package standin

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestEshopbox(t *testing.T) {
	t.Parallel()
	s, base := newServer(t)
	v := s.Vendor(VendorEshopbox)
	v.AddClient(Client{ID: "esb-client", Secret: "esb-secret"})
	v.AddClient(Client{ID: "esb-other", Secret: "other-secret"})
	rt := v.IssueRefreshToken("esb-client")
	revoked := v.IssueRefreshToken("esb-client")
	v.RevokeRefreshToken(revoked)
	othersRT := v.IssueRefreshToken("esb-other")
	path := v.TokenPath()
	params := func(kv ...string) map[string]string {
		m := map[string]string{"client_id": "esb-client", "client_secret": "esb-secret",
			"grant_type": "refresh_token", "refresh_token": rt}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	asJSON := func(kv ...string) call { return call{path: path, json: params(kv...)} }
	asForm := func(kv ...string) call {
		f := form()
		for k, x := range params(kv...) {
			f.Set(k, x)
		}
		return call{path: path, form: f}
	}
	basic := asJSON("client_secret", "")
	basic.header = map[string]string{"Authorization": basicRFC6749("esb-client", "esb-secret")}
	inQuery := asJSON("refresh_token", "")
	inQuery.query = form("refresh_token", rt)
	text := call{path: path, raw: "refresh_token=" + rt, contentType: "text/plain"}
	dupJSON := call{path: path, contentType: "application/json",
		raw: `{"client_id":"esb-client","client_secret":"esb-secret","grant_type":"refresh_token","refresh_token":"x","refresh_token":"` + rt + `"}`}
	numeric := call{path: path, contentType: "application/json",
		raw: `{"client_id":"esb-client","client_secret":"esb-secret","grant_type":"refresh_token","refresh_token":1}`}

	cases := []struct {
		name string
		call call
		want want
	}{
		{"missing refresh token", asJSON("refresh_token", ""), want{400, "invalid_request", []string{"refresh_token"}}},
		{"unknown refresh token", asJSON("refresh_token", "eshopbox-rt-made-up"), want{400, "invalid_grant", nil}},
		{"revoked refresh token", asForm("refresh_token", revoked), want{400, "invalid_grant", []string{"revoked"}}},
		{"another client's refresh token", asJSON("refresh_token", othersRT), want{400, "invalid_grant", nil}},
		{"wrong secret", asJSON("client_secret", "nope"), want{401, "invalid_client", nil}},
		{"basic header", basic, want{401, "invalid_client", []string{"request body"}}},
		{"client credentials grant", asJSON("grant_type", "client_credentials"), want{400, "unsupported_grant_type", nil}},
		{"refresh token in query", inQuery, want{400, "invalid_request", []string{"refresh_token"}}},
		{"text body", text, want{400, "invalid_request", []string{"Content-Type"}}},
		{"repeated JSON key", dupJSON, want{400, "invalid_request", []string{"repeated"}}},
		{"non-string JSON value", numeric, want{400, "invalid_request", []string{"string"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.want.check(t, tc.call.do(t, base))
		})
	}

	t.Run("happy path", func(t *testing.T) {
		t.Parallel()
		for name, c := range map[string]call{"json": asJSON(), "form": asForm()} {
			r := c.do(t, base)
			want{status: 200}.check(t, r)
			at := r.str("access_token")
			if !strings.HasPrefix(at, "eshopbox-at-") || !v.Valid(at) {
				t.Fatalf("%s: access_token %q", name, at)
			}
			if r.str("scope") != "openid,profile" || r.str("token_type") != "Bearer" || r.number(t, "expires_in") != 86400 {
				t.Fatalf("%s: response %s", name, r.body)
			}
			if strings.Count(r.str("id_token"), ".") != 2 {
				t.Fatalf("%s: id_token %q is not JWT-shaped", name, r.str("id_token"))
			}
			if _, has := r.obj["refresh_token"]; has {
				t.Fatalf("%s: refresh_token returned without Rotate: %s", name, r.body)
			}
		}
	})
}

func TestEshopboxAcceptBodyAndRotate(t *testing.T) {
	t.Parallel()
	s, base := newServer(t)
	v := s.Vendor(VendorEshopbox)
	v.AddClient(Client{ID: "c", Secret: "s"})
	rt := v.IssueRefreshToken("c")
	path := v.TokenPath()
	f := form("client_id", "c", "client_secret", "s", "grant_type", "refresh_token", "refresh_token", rt)

	v.SetAcceptBody("json")
	want{400, "invalid_request", []string{"application/json"}}.check(t, call{path: path, form: f}.do(t, base))
	v.SetAcceptBody()
	want{status: 200}.check(t, call{path: path, form: f}.do(t, base))

	v.SetBehavior(Behavior{Rotate: true})
	r := call{path: path, form: f}.do(t, base)
	want{status: 200}.check(t, r)
	next := r.str("refresh_token")
	if !strings.HasPrefix(next, "eshopbox-rt-") {
		t.Fatalf("Rotate: refresh_token %q", next)
	}
	want{400, "invalid_grant", nil}.check(t, call{path: path, form: f}.do(t, base))
	f.Set("refresh_token", next)
	want{status: 200}.check(t, call{path: path, form: f}.do(t, base))
}

func TestEshopboxRateLimit(t *testing.T) {
	t.Parallel()
	s, base := newServer(t)
	v := s.Vendor(VendorEshopbox)
	v.AddClient(Client{ID: "c", Secret: "s"})
	rt := v.IssueRefreshToken("c")
	v.SetBehavior(Behavior{RateLimit: 2, RateWindow: time.Minute})
	c := call{path: v.TokenPath(), json: map[string]string{"client_id": "c", "client_secret": "s",
		"grant_type": "refresh_token", "refresh_token": rt}}
	for i := 0; i < 2; i++ {
		want{status: 200}.check(t, c.do(t, base))
	}
	r := c.do(t, base)
	want{http.StatusTooManyRequests, "rate_limited", nil}.check(t, r)
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || secs < 59 || secs > 60 {
		t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	s.advance(61 * time.Second)
	want{status: 200}.check(t, c.do(t, base))
	st := v.Stats()
	if st.Requests != 4 || st.Grants != 3 || st.Failures["rate_limited"] != 1 {
		t.Fatalf("stats = %+v", st)
	}
}
