package standin

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const (
	pbID       = "pb-client"
	pbSecret   = "pb-secret"
	pbRedirect = "https://partner.example/penbox/callback?tenant=7"
)

func newPenboxServer(t *testing.T) (*Server, *Vendor, string) {
	t.Helper()
	s, base := newServer(t)
	v := s.Vendor(VendorPenbox)
	v.AddClient(Client{ID: pbID, Secret: pbSecret})
	v.AddClient(Client{ID: "pb-other", Secret: "other-secret"})
	return s, v, base
}

// authorize runs GET /penbox/authorize and returns the response.
func authorize(t *testing.T, base string, q url.Values) result {
	t.Helper()
	return call{method: http.MethodGet, path: "/penbox/authorize", query: q}.do(t, base)
}

func authQuery(kv ...string) url.Values {
	q := form("client_id", pbID, "redirect_uri", pbRedirect, "response_type", "code", "state", "st-123", "scope", "workspace:read")
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			q.Del(kv[i])
		} else {
			q.Set(kv[i], kv[i+1])
		}
	}
	return q
}

// exchange redeems a code the way a correct partner does.
func exchange(v *Vendor, code string, kv ...string) call {
	f := form("client_id", pbID, "client_secret", pbSecret, "grant_type", "authorization_code",
		"code", code, "redirect_uri", pbRedirect)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			f.Del(kv[i])
		} else {
			f.Set(kv[i], kv[i+1])
		}
	}
	return call{path: v.TokenPath(), form: f}
}

func refreshCall(v *Vendor, rt string, kv ...string) call {
	f := form("client_id", pbID, "client_secret", pbSecret, "grant_type", "refresh_token", "refresh_token", rt)
	for i := 0; i+1 < len(kv); i += 2 {
		f.Set(kv[i], kv[i+1])
	}
	return call{path: v.TokenPath(), form: f}
}

func TestPenboxAuthorize(t *testing.T) {
	t.Parallel()
	_, v, base := newPenboxServer(t)

	r := authorize(t, base, authQuery())
	if r.status != http.StatusFound {
		t.Fatalf("status %d, body %s", r.status, r.body)
	}
	loc := r.header.Get("Location")
	u, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(loc, "https://partner.example/penbox/callback?") {
		t.Fatalf("Location = %q", loc)
	}
	code := u.Query().Get("code")
	if u.Query().Get("state") != "st-123" || u.Query().Get("tenant") != "7" || !strings.HasPrefix(code, "penbox-code/") {
		t.Fatalf("Location = %q", loc)
	}
	if !strings.Contains(u.RawQuery, "%2F") {
		t.Fatalf("the code in %q needs no URL-encoding; it should", loc)
	}
	// A partner that forgets to URL-decode the code fails.
	want{400, "invalid_grant", nil}.check(t, exchange(v, url.QueryEscape(code)).do(t, base))
	r = exchange(v, code).do(t, base)
	want{status: 200}.check(t, r)
	if !strings.HasPrefix(r.str("access_token"), "penbox-at-") || !strings.HasPrefix(r.str("refresh_token"), "penbox-rt-") ||
		r.str("token_type") != "Bearer" || r.number(t, "expires_in") != 3600 || r.str("scope") != "workspace:read" {
		t.Fatalf("response %s", r.body)
	}

	plainErrors := []struct {
		name string
		q    url.Values
	}{
		{"unknown client", authQuery("client_id", "who")},
		{"missing client", authQuery("client_id", "")},
		{"missing redirect", authQuery("redirect_uri", "")},
		{"non-http redirect", authQuery("redirect_uri", "ftp://partner.example/cb")},
		{"relative redirect", authQuery("redirect_uri", "/cb")},
		{"redirect with fragment", authQuery("redirect_uri", "https://partner.example/cb#frag")},
	}
	for _, tc := range plainErrors {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := authorize(t, base, tc.q)
			if r.status != http.StatusBadRequest || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") ||
				r.header.Get("Location") != "" {
				t.Fatalf("status %d, type %q, location %q", r.status, r.header.Get("Content-Type"), r.header.Get("Location"))
			}
		})
	}

	redirectErrors := []struct {
		name, code string
		q          url.Values
	}{
		{"response_type token", "unsupported_response_type", authQuery("response_type", "token")},
		{"missing response_type", "invalid_request", authQuery("response_type", "")},
		{"plain PKCE", "invalid_request", authQuery("code_challenge", strings.Repeat("a", 43), "code_challenge_method", "plain")},
		{"PKCE without method", "invalid_request", authQuery("code_challenge", strings.Repeat("a", 43))},
		{"malformed challenge", "invalid_request", authQuery("code_challenge", "short", "code_challenge_method", "S256")},
	}
	for _, tc := range redirectErrors {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := authorize(t, base, tc.q)
			u, _ := url.Parse(r.header.Get("Location"))
			if r.status != http.StatusFound || u == nil || u.Query().Get("error") != tc.code ||
				u.Query().Get("state") != "st-123" || u.Query().Get("code") != "" {
				t.Fatalf("status %d, Location %q", r.status, r.header.Get("Location"))
			}
		})
	}

	t.Run("POST", func(t *testing.T) {
		t.Parallel()
		if r := (call{path: "/penbox/authorize", form: authQuery()}).do(t, base); r.status != http.StatusMethodNotAllowed {
			t.Fatalf("status %d", r.status)
		}
	})
}

func TestPenboxCodeExchange(t *testing.T) {
	t.Parallel()
	_, v, base := newPenboxServer(t)
	jsonBody := exchange(v, v.IssueCode(pbID, pbRedirect, ""))
	jsonBody.json = map[string]string{}
	for k := range jsonBody.form {
		jsonBody.json[k] = jsonBody.form.Get(k)
	}
	jsonBody.form = nil
	basicAuth := exchange(v, v.IssueCode(pbID, pbRedirect, ""), "client_id", "", "client_secret", "")
	basicAuth.header = map[string]string{"Authorization": basicRFC6749(pbID, pbSecret)}

	cases := []struct {
		name string
		call call
		want want
	}{
		{"wrong redirect_uri", exchange(v, v.IssueCode(pbID, pbRedirect, ""), "redirect_uri", "https://partner.example/other"),
			want{400, "invalid_grant", []string{"redirect_uri"}}},
		{"another client's code", exchange(v, v.IssueCode("pb-other", pbRedirect, "")), want{400, "invalid_grant", nil}},
		{"made-up code", exchange(v, "penbox-code/nope"), want{400, "invalid_grant", nil}},
		{"missing code", exchange(v, ""), want{400, "invalid_request", []string{"code"}}},
		{"missing redirect_uri", exchange(v, v.IssueCode(pbID, pbRedirect, ""), "redirect_uri", ""),
			want{400, "invalid_request", []string{"redirect_uri"}}},
		{"verifier without challenge", exchange(v, v.IssueCode(pbID, pbRedirect, ""), "code_verifier", strings.Repeat("v", 43)),
			want{400, "invalid_grant", []string{"code_challenge"}}},
		{"json body", jsonBody, want{400, "invalid_request", []string{"application/x-www-form-urlencoded"}}},
		{"basic auth", basicAuth, want{401, "invalid_client", []string{"request body"}}},
		{"wrong secret", exchange(v, v.IssueCode(pbID, pbRedirect, ""), "client_secret", "nope"), want{401, "invalid_client", nil}},
		{"client credentials", exchange(v, "", "grant_type", "client_credentials"), want{400, "unsupported_grant_type", nil}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.want.check(t, tc.call.do(t, base))
		})
	}
}

func TestPenboxCodeReuseRevokes(t *testing.T) {
	t.Parallel()
	_, v, base := newPenboxServer(t)
	code := v.IssueCode(pbID, pbRedirect, "")
	r := exchange(v, code).do(t, base)
	want{status: 200}.check(t, r)
	at, rt := r.str("access_token"), r.str("refresh_token")
	if !v.Valid(at) {
		t.Fatal("fresh token not Valid")
	}
	want{400, "invalid_grant", []string{"already used"}}.check(t, exchange(v, code).do(t, base))
	if v.Valid(at) {
		t.Fatal("access token from a reused code still Valid")
	}
	want{400, "invalid_grant", nil}.check(t, refreshCall(v, rt).do(t, base))
}

func TestPenboxCodeExpires(t *testing.T) {
	t.Parallel()
	s, v, base := newPenboxServer(t)
	code := v.IssueCode(pbID, pbRedirect, "")
	s.advance(codeLifetime + time.Second)
	want{400, "invalid_grant", []string{"expired"}}.check(t, exchange(v, code).do(t, base))
}

func TestPenboxPKCE(t *testing.T) {
	t.Parallel()
	_, v, base := newPenboxServer(t)
	verifier := strings.Repeat("k", 20) + "-._~" + strings.Repeat("Z", 30)
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	r := authorize(t, base, authQuery("code_challenge", challenge, "code_challenge_method", "S256"))
	u, _ := url.Parse(r.header.Get("Location"))
	code := u.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %d %q", r.status, r.header.Get("Location"))
	}
	want{400, "invalid_grant", []string{"code_verifier"}}.check(t, exchange(v, code).do(t, base))
	want{400, "invalid_grant", []string{"does not match"}}.check(t,
		exchange(v, code, "code_verifier", strings.Repeat("w", 43)).do(t, base))
	want{400, "invalid_request", []string{"code_verifier"}}.check(t, exchange(v, code, "code_verifier", "short").do(t, base))
	want{status: 200}.check(t, exchange(v, code, "code_verifier", verifier).do(t, base))
}

func TestPenboxRefresh(t *testing.T) {
	t.Parallel()
	type step struct {
		rt   string // "0" first token, "1" the one rotation gave, "other" another consent's
		want want
	}
	cases := []struct {
		name      string
		behavior  Behavior
		steps     []step
		reuses    int
		firstWins bool
	}{
		{"no rotation", Behavior{}, []step{{"0", want{status: 200}}, {"0", want{status: 200}}}, 0, false},
		{"rotation", Behavior{Rotate: true}, []step{
			{"0", want{status: 200}},
			{"0", want{400, "invalid_grant", []string{"already used"}}},
			{"1", want{status: 200}},
		}, 0, false},
		{"rotation with reuse detection", Behavior{Rotate: true, ReuseDetection: true}, []step{
			{"0", want{status: 200}},
			{"0", want{400, "invalid_grant", []string{"reuse detected"}}},
			{"1", want{400, "invalid_grant", []string{"revoked"}}},
			{"other", want{status: 200}},
		}, 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, v, base := newPenboxServer(t)
			v.SetBehavior(tc.behavior)
			r := exchange(v, v.IssueCode(pbID, pbRedirect, "a b")).do(t, base)
			want{status: 200}.check(t, r)
			firstAT := r.str("access_token")
			tokens := map[string]string{"0": r.str("refresh_token"), "other": v.IssueRefreshToken(pbID)}
			var issued []string
			for i, st := range tc.steps {
				r := refreshCall(v, tokens[st.rt]).do(t, base)
				st.want.check(t, r)
				if r.status != 200 {
					continue
				}
				issued = append(issued, r.str("access_token"))
				next, has := r.obj["refresh_token"]
				if has != tc.behavior.Rotate {
					t.Fatalf("step %d: refresh_token present = %v with Rotate = %v", i, has, tc.behavior.Rotate)
				}
				if has && st.rt == "0" {
					tokens["1"] = next.(string)
				}
				if st.rt == "0" && r.str("scope") != "a b" {
					t.Fatalf("step %d: scope %q, want the consent's", i, r.str("scope"))
				}
			}
			if got := v.Stats().ReuseDetections; got != tc.reuses {
				t.Fatalf("ReuseDetections = %d, want %d", got, tc.reuses)
			}
			if tc.reuses > 0 {
				if v.Valid(firstAT) || v.Valid(issued[0]) {
					t.Fatal("access tokens of a revoked chain still Valid")
				}
				if !v.Valid(issued[len(issued)-1]) {
					t.Fatal("another consent's token was revoked with the chain")
				}
			}
		})
	}
}

func TestPenboxRefreshScope(t *testing.T) {
	t.Parallel()
	_, v, base := newPenboxServer(t)
	v.SetBehavior(Behavior{Rotate: true})
	r := exchange(v, v.IssueCode(pbID, pbRedirect, "a b")).do(t, base)
	rt := r.str("refresh_token")
	want{400, "invalid_scope", []string{`"c"`}}.check(t, refreshCall(v, rt, "scope", "a c").do(t, base))
	// The refused request did not spend the token.
	r = refreshCall(v, rt, "scope", "a").do(t, base)
	want{status: 200}.check(t, r)
	if r.str("scope") != "a" {
		t.Fatalf("scope = %q", r.str("scope"))
	}
}
