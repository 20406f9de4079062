package vendoroauth

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// clock is a settable clock for the manager.
// clock is a test's time, which background work (device pollers) reads
// while the test moves it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (e *testEnv) useClock() *clock { c := &clock{t: time.Now()}; e.b.creds.SetClock(c.now); return c }
func mustErr(t *testing.T, resp *logical.Response, err error, want ...string) string {
	t.Helper()
	msg := ""
	switch {
	case err != nil:
		msg = err.Error()
	case resp != nil && resp.IsError():
		msg = resp.Error().Error()
	default:
		t.Fatalf("want an error mentioning %q, got success: %v", want, resp)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not mention %q", msg, w)
		}
	}
	return msg
}

func (e *testEnv) penbox(t *testing.T, name string, extra map[string]interface{}) *standin.Vendor {
	t.Helper()
	v := e.vendors.Vendor("penbox")
	v.AddClient(standin.Client{ID: "pb-id", Secret: "pb-secret"})
	data := map[string]interface{}{
		"provider": "penbox", "token_url": e.url + v.TokenPath(), "authorize_url": e.url + "/penbox/authorize",
		"client_id": "pb-id", "client_secret": "pb-secret",
	}
	for k, val := range extra {
		data[k] = val
	}
	e.write(t, name, data)
	return v
}

// follow plays the user's browser: open the authorization URL and return
// the code and state the vendor redirects back with, as the partner's
// callback receives them.
func follow(t *testing.T, authURL string) (code, state string) {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize answered HTTP %d, want a redirect", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	// The raw (still encoded) code, as a callback that does not decode
	// would pass it on.
	for _, kv := range strings.Split(loc.RawQuery, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if k == "code" {
			code = v
		}
	}
	return code, loc.Query().Get("state")
}

func TestAuthorizationCodeFlow(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	v := env.penbox(t, "pb", map[string]interface{}{"use_pkce": true})
	v.SetBehavior(standin.Behavior{Rotate: true, ReuseDetection: true})

	// Before connecting, reads say what to do.
	resp, err := env.request(t, logical.ReadOperation, "token/pb", nil)
	mustErr(t, resp, err, "needs reauthorization", "authorize/pb")

	resp, err = env.request(t, logical.UpdateOperation, "authorize/pb", map[string]interface{}{"redirect_uri": "https://partner.example/callback"})
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	authURL := resp.Data["url"].(string)
	u, _ := url.Parse(authURL)
	q := u.Query()
	if q.Get("client_id") != "pb-id" || q.Get("response_type") != "code" || q.Get("scope") != "offline_access" ||
		q.Get("state") != resp.Data["state"] || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		t.Fatalf("authorization URL lacks parameters: %s", authURL)
	}
	code, state := follow(t, authURL)

	// A wrong state changes nothing.
	resp, err = env.request(t, logical.UpdateOperation, "exchange/pb", map[string]interface{}{"code": code, "state": state + "x"})
	mustErr(t, resp, err, "state does not match")
	if st := v.Stats(); st.Requests != 0 {
		t.Fatalf("a wrong state reached the vendor")
	}

	resp, err = env.request(t, logical.UpdateOperation, "exchange/pb", map[string]interface{}{"code": code, "state": state})
	if err != nil || resp.IsError() {
		t.Fatalf("exchange: %v %v", err, resp)
	}
	for k, val := range resp.Data {
		if s, ok := val.(string); ok && strings.HasPrefix(s, "penbox-") {
			t.Errorf("exchange returned a token in %s", k)
		}
	}
	tok := env.readToken(t, "pb").Data["access_token"].(string)
	if !v.Valid(tok) || v.Stats().Requests != 1 {
		t.Fatalf("token after exchange: valid %v, vendor requests %d", v.Valid(tok), v.Stats().Requests)
	}
	last, _ := v.LastRequest()
	if last.Form["grant_type"] != "authorization_code" || last.Form["code_verifier"] == "" || strings.Contains(last.Form["code"], "%") {
		t.Errorf("exchange request: grant %q, verifier set %v, code decoded %v", last.Form["grant_type"], last.Form["code_verifier"] != "", !strings.Contains(last.Form["code"], "%"))
	}

	// The same state again: used up.
	resp, err = env.request(t, logical.UpdateOperation, "exchange/pb", map[string]interface{}{"code": code, "state": state})
	mustErr(t, resp, err, "already used")

	// The same code with a fresh state: the vendor refuses it, nothing
	// stored changes.
	before, _ := env.b.creds.Get(context.Background(), env.storage, "pb")
	resp, _ = env.request(t, logical.UpdateOperation, "authorize/pb", map[string]interface{}{"redirect_uri": "https://partner.example/callback"})
	resp, err = env.request(t, logical.UpdateOperation, "exchange/pb", map[string]interface{}{"code": code, "state": resp.Data["state"]})
	mustErr(t, resp, err, "invalid_grant", "authorize/pb")
	after, _ := env.b.creds.Get(context.Background(), env.storage, "pb")
	if after.Config.RefreshToken != before.Config.RefreshToken || after.Token.AccessToken != before.Token.AccessToken {
		t.Errorf("a refused exchange changed the stored credential")
	}
	assertNoSecrets(t, "log", env.logs.String(), "pb-secret", code, before.Config.RefreshToken, tok)
}

func TestAuthorizationStateExpires(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	v := env.penbox(t, "pb", nil)
	resp, _ := env.request(t, logical.UpdateOperation, "authorize/pb", map[string]interface{}{"redirect_uri": "https://partner.example/cb"})
	code, state := follow(t, resp.Data["url"].(string))
	clk.add(11 * time.Minute)
	resp, err := env.request(t, logical.UpdateOperation, "exchange/pb", map[string]interface{}{"code": code, "state": state})
	mustErr(t, resp, err, "expired", "authorize/pb")
	if v.Stats().Requests != 0 {
		t.Errorf("an expired state reached the vendor")
	}
	for _, bad := range []map[string]interface{}{
		{"redirect_uri": "not a url"},
		{"redirect_uri": "https://x.example/cb#frag"},
		{"redirect_uri": "https://x.example/cb", "state": "short"},
	} {
		resp, err := env.request(t, logical.UpdateOperation, "authorize/pb", bad)
		mustErr(t, resp, err)
	}
	env.write(t, "o", map[string]interface{}{"provider": "officernd", "client_id": "i", "client_secret": "s", "scopes": "a"})
	resp, err = env.request(t, logical.UpdateOperation, "authorize/o", map[string]interface{}{"redirect_uri": "https://x.example/cb"})
	mustErr(t, resp, err, "has no authorize_url", "vault write vendoroauth/config/o authorize_url=")
}

func TestStaticToken(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	env.write(t, "st", map[string]interface{}{"provider": "penbox", "grant_type": "static", "access_token": "user-minted-token", "ttl": "24h"})
	resp := env.readToken(t, "st")
	if resp.Data["access_token"] != "user-minted-token" || resp.Secret.TTL < 23*time.Hour {
		t.Fatalf("static token read: %v TTL %s", resp.Data["access_token"], resp.Secret.TTL)
	}
	cfg, _ := env.request(t, logical.ReadOperation, "config/st", nil)
	if cfg.Data["access_token_set"] != true {
		t.Errorf("access_token_set = %v", cfg.Data["access_token_set"])
	}
	assertNoSecrets(t, "config read", toString(cfg.Data["token_url"])+toString(cfg.Data["last_error"]), "user-minted-token")

	clk.add(24*time.Hour + time.Second)
	r, err := env.request(t, logical.ReadOperation, "token/st", nil)
	mustErr(t, r, err, "expired", "connect.penbox.io/authorize", "access_token=")
	r, err = env.request(t, logical.UpdateOperation, "refresh/st", nil)
	mustErr(t, r, err, "cannot be refreshed")

	for _, bad := range []map[string]interface{}{
		{"provider": "penbox", "grant_type": "static"},
		{"provider": "penbox", "grant_type": "static", "access_token": "x"},
		{"provider": "penbox", "grant_type": "static", "access_token": "x", "expires_at": "tomorrow"},
		{"provider": "penbox", "grant_type": "static", "access_token": "x", "expires_at": "2001-01-01T00:00:00Z"},
		{"provider": "officernd", "grant_type": "static", "access_token": "x", "ttl": "1h"},
	} {
		r, err := env.request(t, logical.CreateOperation, "config/bad-static", bad)
		mustErr(t, r, err)
	}
}

func TestForcedRefreshMakesOneRequest(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	v := env.officernd(t, "o", nil)
	first := env.readToken(t, "o").Data["access_token"]
	resp, err := env.request(t, logical.UpdateOperation, "refresh/o", nil)
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	if _, leaked := resp.Data["access_token"]; leaked {
		t.Errorf("refresh/<name> returned the token")
	}
	if st := v.Stats(); st.Requests != 2 {
		t.Errorf("vendor requests = %d, want 2 (the read and one refresh)", st.Requests)
	}
	if got := env.readToken(t, "o").Data["access_token"]; got == first {
		t.Errorf("readers still get the old token after refresh")
	}
}

func TestInvalidGrantNeedsReauthorization(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	v := env.vendors.Vendor("eshopbox")
	v.AddClient(standin.Client{ID: "e-id", Secret: "e-secret"})
	rt := v.IssueRefreshToken("e-id")
	env.write(t, "e", map[string]interface{}{"provider": "eshopbox", "token_url": env.url + v.TokenPath(), "client_id": "e-id", "client_secret": "e-secret", "refresh_token": rt})
	v.RevokeRefreshToken(rt)
	resp, err := env.request(t, logical.ReadOperation, "token/e", nil)
	mustErr(t, resp, err, "needs reauthorization", "invalid_grant", "refresh_token")
	cfg, _ := env.request(t, logical.ReadOperation, "config/e", nil)
	if cfg.Data["needs_reauthorization"] != true || cfg.Data["last_error_code"] != "invalid_grant" {
		t.Errorf("config status: %v %v", cfg.Data["needs_reauthorization"], cfg.Data["last_error_code"])
	}
	n := v.Stats().Requests
	for i := 0; i < 3; i++ {
		resp, err := env.request(t, logical.ReadOperation, "token/e", nil)
		mustErr(t, resp, err, "needs reauthorization")
	}
	if v.Stats().Requests != n {
		t.Errorf("reads kept calling the vendor after invalid_grant")
	}
	env.write(t, "e", map[string]interface{}{"refresh_token": v.IssueRefreshToken("e-id")})
	env.readToken(t, "e")
	cfg, _ = env.request(t, logical.ReadOperation, "config/e", nil)
	if cfg.Data["needs_reauthorization"] != false {
		t.Errorf("a new refresh token did not clear needs_reauthorization")
	}
}

func TestBackoffAfterFailures(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	v := env.officernd(t, "o", nil)
	v.SetBehavior(standin.Behavior{FailNext: 100, FailStatus: 503, FailHeader: http.Header{"Retry-After": {"120"}}})
	resp, err := env.request(t, logical.ReadOperation, "token/o", nil)
	mustErr(t, resp, err, "503")
	for i := 0; i < 5; i++ {
		resp, err = env.request(t, logical.ReadOperation, "token/o", nil)
		mustErr(t, resp, err, "not calling the vendor again before")
	}
	if st := v.Stats(); st.Requests != 1 {
		t.Errorf("a failing vendor was called %d times within its Retry-After", st.Requests)
	}
	clk.add(121 * time.Second)
	v.SetBehavior(standin.Behavior{})
	env.readToken(t, "o")
	status, _ := env.request(t, logical.ReadOperation, "status", nil)
	st := status.Data["credentials"].(map[string]interface{})["o"].(map[string]interface{})
	if st["upstream_grants"].(int64) != 1 || st["failures"].(map[string]int64)["temporarily_unavailable"] != 1 || st["reads"].(int64) != 7 {
		t.Errorf("status counters: %v", st)
	}
}

func TestUnknownOutcomeIsNotRetriedOnRotatingVendor(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	v := env.penbox(t, "pb", map[string]interface{}{"refresh_token": "x"})
	rt := v.IssueRefreshToken("pb-id")
	env.write(t, "pb", map[string]interface{}{"refresh_token": rt})
	v.SetBehavior(standin.Behavior{Rotate: true, ReuseDetection: true, Lifetime: time.Hour})
	env.readToken(t, "pb") // rotation seen
	env.b.creds.SetClient(tokenclient.New(tokenclient.WithTimeout(300 * time.Millisecond)))
	v.SetBehavior(standin.Behavior{Rotate: true, ReuseDetection: true, Lifetime: time.Hour, Delay: 2 * time.Second})
	clk.add(time.Hour)
	resp, err := env.request(t, logical.ReadOperation, "token/pb", nil)
	mustErr(t, resp, err)
	clk.add(10 * time.Minute) // past any backoff
	resp, err = env.request(t, logical.ReadOperation, "token/pb", nil)
	mustErr(t, resp, err, "no answer came back", "refresh/pb")
	n := v.Stats().Requests
	v.SetBehavior(standin.Behavior{Rotate: true, ReuseDetection: true, Lifetime: time.Hour})
	resp, err = env.request(t, logical.ReadOperation, "token/pb", nil)
	mustErr(t, resp, err, "no answer came back")
	if v.Stats().Requests != n {
		t.Errorf("the plugin retried a refresh of unknown outcome on its own")
	}
}

// TestProactiveRefresh: only a token read from the cache (in use) is
// refreshed ahead, close to its hand-out end; a credential read once and
// left alone makes no further vendor call.
func TestProactiveRefresh(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	v := env.officernd(t, "busy", nil)
	env.officernd(t, "idle", nil)
	env.readToken(t, "busy")
	env.readToken(t, "idle") // read once: the grant, never a cache hit
	env.readToken(t, "busy") // a cache hit: in use
	ctx := context.Background()
	obtained := clk.now()
	next := env.b.creds.NextRefresh("busy")
	// A 3599 s token is handed out to 3599 - 30 - 108 s; its refresh comes
	// 15 s (plus under 10 s of jitter) before that: at no less than 95%.
	if share := next.Sub(obtained).Seconds() / 3599; share < 0.95 || share > 0.97 {
		t.Errorf("next refresh at %.1f%% of the token's life, want 95-97%%", share*100)
	}
	if !env.b.creds.NextRefresh("idle").IsZero() {
		t.Errorf("a credential nobody read is scheduled for %s", env.b.creds.NextRefresh("idle"))
	}
	if err := env.b.creds.RefreshDue(ctx, env.storage); err != nil || v.Stats().Requests != 2 {
		t.Fatalf("refreshed what was not due (%v, %d requests)", err, v.Stats().Requests)
	}
	clk.set(next)
	if err := env.b.creds.Tick(ctx, env.storage, false); err != nil || v.Stats().Requests != 2 {
		t.Fatalf("a node that cannot write refreshed (%v)", err)
	}
	if err := env.b.creds.RefreshDue(ctx, env.storage); err != nil {
		t.Fatal(err)
	}
	if got := v.Stats().Requests; got != 3 {
		t.Fatalf("vendor requests after the due refresh = %d, want 3 (busy refreshed, idle not)", got)
	}
	// Readers now get the new token without calling the vendor.
	clk.add(5 * time.Minute)
	env.readToken(t, "busy")
	if got := v.Stats().Requests; got != 3 {
		t.Errorf("a read after a proactive refresh called the vendor")
	}
	// Hours later: the busy credential's second token was read once more,
	// so it was refreshed ahead once more; its third was never read, and
	// the idle credential has still made no call.
	for range 20 {
		clk.add(30 * time.Minute)
		if err := env.b.creds.RefreshDue(ctx, env.storage); err != nil {
			t.Fatal(err)
		}
	}
	if got := v.Stats().Requests; got != 4 {
		t.Errorf("vendor requests = %d after 10 more hours, want 4", got)
	}
}

// TestKeepAlive: a refresh-token credential nobody reads is refreshed once
// per keepalive_interval, so vendors that expire idle refresh tokens do
// not; 0 turns it off; client credentials never need it.
func TestKeepAlive(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		interval string // "" for the default
		after    time.Duration
		want     int // vendor calls after the first
	}{
		{"default 72h: not yet after 71h", "", 71 * time.Hour, 0},
		{"default 72h: once after 72h", "", 72*time.Hour + time.Minute, 1},
		{"1h interval", "1h", time.Hour + time.Minute, 1},
		{"turned off", "0", 1000 * time.Hour, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t)
			clk := env.useClock()
			v := env.penbox(t, "pb", nil)
			extra := map[string]interface{}{"refresh_token": v.IssueRefreshToken("pb-id")}
			if c.interval != "" {
				extra["keepalive_interval"] = c.interval
			}
			env.write(t, "pb", extra)
			env.readToken(t, "pb")
			before := v.Stats().Requests
			// Step through the idle time as the timer would.
			for step := time.Duration(0); step < c.after; step += 30 * time.Minute {
				clk.add(min(30*time.Minute, c.after-step))
				if err := env.b.creds.RefreshDue(context.Background(), env.storage); err != nil {
					t.Fatal(err)
				}
			}
			if got := v.Stats().Requests - before; got != c.want {
				t.Errorf("%d keep-alive calls, want %d", got, c.want)
			}
		})
	}
	t.Run("client credentials need none", func(t *testing.T) {
		t.Parallel()
		env := newTestEnv(t)
		clk := env.useClock()
		v := env.officernd(t, "o", nil)
		env.readToken(t, "o")
		clk.add(1000 * time.Hour)
		if err := env.b.creds.RefreshDue(context.Background(), env.storage); err != nil || v.Stats().Requests != 1 {
			t.Errorf("an idle client-credentials credential was refreshed: %v, %d requests", err, v.Stats().Requests)
		}
	})
}
