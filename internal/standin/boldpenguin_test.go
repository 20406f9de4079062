package standin

import (
	"net/http"
	"strings"
	"testing"
)

func TestBoldPenguin(t *testing.T) {
	t.Parallel()
	s, base := newServer(t)
	v := s.Vendor(VendorBoldPenguin)
	const (
		id, secret, key = "bp-client", "bp-secret", "bp-api-key"
		// An id and secret with characters form-encoding changes.
		spID, spSecret, spKey = "bp+client/é", "s%cr+t:/ =&x", "bp-api-key-2"
	)
	v.AddClient(Client{ID: id, Secret: secret, APIKey: key})
	v.AddClient(Client{ID: spID, Secret: spSecret, APIKey: spKey})
	path := v.TokenPath()
	q := form("grant_type", "client_credentials")
	mk := func(auth, apiKey string) call {
		h := map[string]string{}
		if auth != "" {
			h["Authorization"] = auth
		}
		if apiKey != "" {
			h["x-api-key"] = apiKey
		}
		return call{path: path, query: q, header: h, contentType: "-"}
	}
	good := basicRaw(id, secret)

	inBody := mk(good, key)
	inBody.query, inBody.form = nil, form("grant_type", "client_credentials")
	inBody.contentType = ""
	inBoth := mk(good, key)
	inBoth.form = form("grant_type", "client_credentials")
	inBoth.contentType = ""
	noGrant := mk(good, key)
	noGrant.query = nil
	credsInBody := mk("", key)
	credsInBody.form = form("client_id", id, "client_secret", secret)
	credsInBody.contentType = ""
	refresh := mk(good, key)
	refresh.query = form("grant_type", "refresh_token")
	refresh.form = form("refresh_token", "boldpenguin-rt-whatever")
	refresh.contentType = ""
	secretInQuery := mk("", key)
	secretInQuery.query = form("grant_type", "client_credentials", "client_id", id, "client_secret", secret)
	emptyForm := mk(good, key)
	emptyForm.contentType = "application/x-www-form-urlencoded"

	forbidden := want{status: 403}
	cases := []struct {
		name string
		call call
		want want
	}{
		{"raw basic, special characters", mk(basicRaw(spID, spSecret), spKey), want{status: 200}},
		{"empty form body", emptyForm, want{status: 200}},
		{"rfc6749-encoded basic, special characters", mk(basicRFC6749(spID, spSecret), spKey), want{401, "invalid_client", nil}},
		{"missing x-api-key", mk(good, ""), forbidden},
		{"wrong x-api-key", mk(good, "nope"), forbidden},
		{"another client's x-api-key", mk(good, spKey), forbidden},
		{"grant type in body", inBody, want{400, "invalid_request", []string{"query string"}}},
		{"grant type in query and body", inBoth, want{400, "invalid_request", []string{"query string"}}},
		{"no grant type", noGrant, want{400, "invalid_request", []string{"grant_type"}}},
		{"credentials in body", credsInBody, want{401, "invalid_client", []string{"HTTP Basic"}}},
		{"credentials in query", secretInQuery, want{400, "invalid_request", []string{"client_id"}}},
		{"no authorization", mk("", key), want{401, "invalid_client", nil}},
		{"wrong secret", mk(basicRaw(id, "nope"), key), want{401, "invalid_client", nil}},
		{"bearer scheme", mk("Bearer "+secret, key), want{401, "invalid_client", []string{"Basic"}}},
		{"refresh grant", refresh, want{400, "unsupported_grant_type", nil}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := tc.call.do(t, base)
			tc.want.check(t, r)
			if tc.want.status == 403 {
				if string(r.body) != `{"message":"Forbidden"}` {
					t.Fatalf("403 body = %s, want API Gateway's", r.body)
				}
			}
			if tc.want.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without a WWW-Authenticate challenge")
			}
		})
	}

	t.Run("happy path", func(t *testing.T) {
		t.Parallel()
		r := mk(good, key).do(t, base)
		want{status: 200}.check(t, r)
		at, rt := r.str("access_token"), r.str("refresh_token")
		if !strings.HasPrefix(at, "boldpenguin-at-") || !strings.HasPrefix(rt, "boldpenguin-rt-") {
			t.Fatalf("tokens lack the vendor prefix: %s", r.body)
		}
		if r.str("token_type") != "bearer" || r.number(t, "expires_in") != 43200 {
			t.Fatalf("response %s", r.body)
		}
		if sc, has := r.obj["scope"]; !has || sc != "" {
			t.Fatalf("scope = %#v, want \"\"", sc)
		}
		if r.str("uid") == "" {
			t.Fatal("no uid")
		}
		info, _ := r.obj["info"].(map[string]any)
		if info["name"] != "SmartData Integrations Service Client" {
			t.Fatalf("info = %#v", info)
		}
		extra, _ := r.obj["extra"].(map[string]any)
		raw, _ := extra["raw_info"].(map[string]any)
		if perms, _ := raw["permissions"].([]any); len(perms) != 7 || raw["user_id"] != r.str("uid") {
			t.Fatalf("extra.raw_info = %#v", raw)
		}
		if !v.Valid(at) {
			t.Fatal("issued token is not Valid")
		}
		// Refresh tokens are not enabled: the one just issued is refused.
		back := mk(good, key)
		back.query = form("grant_type", "refresh_token")
		back.form = form("refresh_token", rt)
		back.contentType = ""
		want{400, "unsupported_grant_type", nil}.check(t, back.do(t, base))
	})
}

// TestBoldPenguinFailureCodes checks the gateway's 403 counts as http_403.
func TestBoldPenguinFailureCodes(t *testing.T) {
	t.Parallel()
	s, base := newServer(t)
	v := s.Vendor(VendorBoldPenguin)
	v.AddClient(Client{ID: "c", Secret: "s", APIKey: "k"})
	call{path: v.TokenPath(), query: form("grant_type", "client_credentials"),
		header: map[string]string{"Authorization": basicRaw("c", "s")}}.do(t, base)
	st := v.Stats()
	if st.Failures["http_403"] != 1 || st.Requests != 1 || st.Grants != 0 {
		t.Fatalf("stats = %+v", st)
	}
	if r, ok := v.LastRequest(); !ok || r.Header.Get("x-api-key") != "" || r.Method != http.MethodPost {
		t.Fatalf("LastRequest = %+v, %v", r, ok)
	}
}
