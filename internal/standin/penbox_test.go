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

// A client with registered redirect URIs gets a code only for one of them,
// compared as exact strings; any other is an error shown to the user, with
// no redirect to it. The exchange must repeat the authorization's own
// redirect_uri, even where another registered one would pass /authorize.
func TestPenboxRegisteredRedirectURIs(t *testing.T) {
	t.Parallel()
	_, v, base := newPenboxServer(t)
	const (
		id     = "pb-registered"
		secret = "pb-registered-secret"
		other  = "https://partner.example/penbox/other-callback"
	)
	v.AddClient(Client{ID: id, Secret: secret, RedirectURIs: []string{pbRedirect, other}})
	v.AddClient(Client{ID: "pb-none", Secret: "none-secret", RedirectURIs: []string{}})
	q := func(kv ...string) url.Values { return authQuery(append([]string{"client_id", id}, kv...)...) }

	refused := []struct {
		name string
		q    url.Values
	}{
		{"another host", q("redirect_uri", "https://evil.example/penbox/callback?tenant=7")},
		{"another path", q("redirect_uri", "https://partner.example/penbox/callback2?tenant=7")},
		{"another query", q("redirect_uri", "https://partner.example/penbox/callback?tenant=8")},
		{"query left out", q("redirect_uri", "https://partner.example/penbox/callback")},
		{"trailing slash", q("redirect_uri", "https://partner.example/penbox/callback/?tenant=7")},
		{"http for https", q("redirect_uri", "http://partner.example/penbox/callback?tenant=7")},
		{"host case", q("redirect_uri", "https://Partner.example/penbox/callback?tenant=7")},
		{"explicit port", q("redirect_uri", "https://partner.example:443/penbox/callback?tenant=7")},
		{"registered none", authQuery("client_id", "pb-none")},
	}
	for _, tc := range refused {
		r := authorize(t, base, tc.q)
		if r.status != http.StatusBadRequest || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") ||
			r.header.Get("Location") != "" || !strings.Contains(string(r.body), "not registered") {
			t.Errorf("%s: status %d, type %q, location %q, body %q", tc.name, r.status, r.header.Get("Content-Type"), r.header.Get("Location"), r.body)
		}
	}
	v.mu.Lock()
	n := len(v.codes)
	v.mu.Unlock()
	if n != 0 {
		t.Fatalf("refused authorizations issued %d codes", n)
	}

	codeFor := func(t *testing.T, redirect string) string {
		t.Helper()
		r := authorize(t, base, q("redirect_uri", redirect))
		u, err := url.Parse(r.header.Get("Location"))
		if r.status != http.StatusFound || err != nil || u.Query().Get("code") == "" {
			t.Fatalf("authorize with %s: status %d, Location %q", redirect, r.status, r.header.Get("Location"))
		}
		if got := u.Scheme + "://" + u.Host + u.Path; !strings.HasPrefix(redirect, got) {
			t.Fatalf("redirected to %q, not to the registered %q", r.header.Get("Location"), redirect)
		}
		return u.Query().Get("code")
	}
	ex := func(code, redirect string) call {
		return exchange(v, code, "client_id", id, "client_secret", secret, "redirect_uri", redirect)
	}
	t.Run("each registered one", func(t *testing.T) {
		t.Parallel()
		want{status: 200}.check(t, ex(codeFor(t, pbRedirect), pbRedirect).do(t, base))
		want{status: 200}.check(t, ex(codeFor(t, other), other).do(t, base))
	})
	t.Run("exchange with the other registered one", func(t *testing.T) {
		t.Parallel()
		code := codeFor(t, pbRedirect)
		want{400, "invalid_grant", []string{"redirect_uri"}}.check(t, ex(code, other).do(t, base))
		// The refusal did not spend the code.
		want{status: 200}.check(t, ex(code, pbRedirect).do(t, base))
	})
	t.Run("IssueCode", func(t *testing.T) {
		t.Parallel()
		defer func() {
			if recover() == nil {
				t.Fatal("IssueCode for an unregistered redirect URI did not panic")
			}
		}()
		v.IssueCode(id, "https://evil.example/cb", "")
	})
}

// Parameters the server does not know are ignored, at /authorize and at
// the token endpoint (RFC 6749 sections 3.1 and 3.2); a known one repeated
// is still refused.
func TestPenboxIgnoresUnknownParameters(t *testing.T) {
	t.Parallel()
	_, v, base := newPenboxServer(t)
	verifier := strings.Repeat("u", 50)
	sum := sha256.Sum256([]byte(verifier))
	r := authorize(t, base, authQuery("code_challenge", base64.RawURLEncoding.EncodeToString(sum[:]), "code_challenge_method", "S256",
		"prompt", "consent", "nonce", "n-1", "x-partner-tenant", "7", "access_type", "offline"))
	u, _ := url.Parse(r.header.Get("Location"))
	code := u.Query().Get("code")
	if r.status != http.StatusFound || code == "" {
		t.Fatalf("authorize with unknown parameters: status %d, Location %q", r.status, r.header.Get("Location"))
	}
	for _, k := range []string{"prompt", "nonce", "x-partner-tenant", "access_type"} {
		if u.Query().Has(k) {
			t.Errorf("the redirect echoes the unknown parameter %s", k)
		}
	}
	rr := exchange(v, code, "code_verifier", verifier, "audience", "penbox", "custom_data", `{"tenant":7}`).do(t, base)
	want{status: 200}.check(t, rr)
	want{status: 200}.check(t, refreshCall(v, rr.str("refresh_token"), "resource", "https://api.penbox.io", "x-trace", "1").do(t, base))

	r = authorize(t, base, authQuery("nonce", "a", "state", "st-123"))
	if r.status != http.StatusFound {
		t.Fatalf("status %d", r.status)
	}
	q := authQuery()
	q.Add("scope", "workspace:write")
	r = authorize(t, base, q)
	if u, _ := url.Parse(r.header.Get("Location")); u == nil || u.Query().Get("error") != "invalid_request" {
		t.Fatalf("a repeated scope: status %d, Location %q", r.status, r.header.Get("Location"))
	}
}

// With a challenge sent to /authorize, the exchange needs its verifier,
// whichever client library redeems it; without one, a verifier is refused
// (a downgrade). A failed check does not spend the code, the right
// verifier then works, and the code works once.
func TestPenboxPKCEStrict(t *testing.T) {
	t.Parallel()
	_, v, base := newPenboxServer(t)
	verifier := strings.Repeat("A", 43)
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	codeWith := func(t *testing.T, kv ...string) string {
		t.Helper()
		r := authorize(t, base, authQuery(kv...))
		u, _ := url.Parse(r.header.Get("Location"))
		if r.status != http.StatusFound || u == nil || u.Query().Get("code") == "" {
			t.Fatalf("authorize: status %d, Location %q", r.status, r.header.Get("Location"))
		}
		return u.Query().Get("code")
	}
	code := codeWith(t, "code_challenge", challenge, "code_challenge_method", "S256")
	refusals := []struct {
		name string
		kv   []string
		want want
	}{
		{"no verifier", nil, want{400, "invalid_grant", []string{"code_verifier is required"}}},
		{"empty verifier", []string{"code_verifier", ""}, want{400, "invalid_grant", []string{"code_verifier is required"}}},
		{"the challenge itself", []string{"code_verifier", challenge}, want{400, "invalid_grant", []string{"does not match"}}},
		{"one character off", []string{"code_verifier", strings.Repeat("A", 42) + "B"}, want{400, "invalid_grant", []string{"does not match"}}},
		{"too long", []string{"code_verifier", strings.Repeat("A", 129)}, want{400, "invalid_request", []string{"malformed"}}},
		{"bad character", []string{"code_verifier", strings.Repeat("A", 42) + "+"}, want{400, "invalid_request", []string{"malformed"}}},
	}
	for _, tc := range refusals {
		tc.want.check(t, exchange(v, code, tc.kv...).do(t, base))
	}
	want{status: 200}.check(t, exchange(v, code, "code_verifier", verifier).do(t, base))
	want{400, "invalid_grant", []string{"already used"}}.check(t, exchange(v, code, "code_verifier", verifier).do(t, base))

	plain := codeWith(t)
	want{400, "invalid_grant", []string{"no code_challenge"}}.check(t, exchange(v, plain, "code_verifier", verifier).do(t, base))
	want{status: 200}.check(t, exchange(v, plain).do(t, base))
}

// A client can hold more than one secret, as while a partner rotates its
// client secret: AddClientSecret makes a new one work beside the old,
// RemoveClientSecret retires one. A refused secret does not spend the
// refresh token.
func TestClientSecretRotation(t *testing.T) {
	t.Parallel()
	_, v, base := newPenboxServer(t)
	v.SetBehavior(Behavior{Rotate: true})
	rt := v.IssueRefreshToken(pbID)
	refresh := func(secret string, w want) {
		t.Helper()
		r := refreshCall(v, rt, "client_secret", secret).do(t, base)
		w.check(t, r)
		if r.status == 200 {
			rt = r.str("refresh_token")
		}
	}
	refresh("pb-secret-2", want{401, "invalid_client", nil})
	v.AddClientSecret(pbID, "pb-secret-2")
	refresh(pbSecret, want{status: 200})
	refresh("pb-secret-2", want{status: 200})
	v.RemoveClientSecret(pbID, pbSecret)
	refresh(pbSecret, want{401, "invalid_client", nil})
	refresh("pb-secret-2", want{status: 200})
	// Another client's secret is still no good, nor is this one for it.
	r := refreshCall(v, rt, "client_id", "pb-other", "client_secret", "pb-secret-2").do(t, base)
	want{401, "invalid_client", nil}.check(t, r)
	// AddClient replaces the client, and with it every secret.
	v.AddClient(Client{ID: pbID, Secret: "pb-secret-3"})
	refresh("pb-secret-2", want{401, "invalid_client", nil})
	refresh("pb-secret-3", want{status: 200})

	for name, f := range map[string]func(){
		"add to an unknown client":   func() { v.AddClientSecret("nobody", "x") },
		"add an empty secret":        func() { v.AddClientSecret(pbID, "") },
		"remove from an unknown one": func() { v.RemoveClientSecret("nobody", "x") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			f()
		}()
	}
}
