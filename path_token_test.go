package vendoroauth

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

func (e *testEnv) officernd(t testing.TB, name string, extra map[string]interface{}) *standin.Vendor {
	t.Helper()
	v := e.vendors.Vendor("officernd")
	v.AddClient(standin.Client{ID: "o-id", Secret: "o-secret", Scopes: []string{"officernd.api.read"}})
	data := map[string]interface{}{
		"provider":      "officernd",
		"token_url":     e.url + v.TokenPath(),
		"client_id":     "o-id",
		"client_secret": "o-secret",
		"scopes":        "officernd.api.read",
	}
	for k, val := range extra {
		data[k] = val
	}
	e.write(t, name, data)
	return v
}

func (e *testEnv) readToken(t testing.TB, name string) *logical.Response {
	t.Helper()
	resp, err := e.request(t, logical.ReadOperation, "token/"+name, nil)
	if err != nil || resp.IsError() {
		t.Fatalf("read token/%s: %v %v", name, err, resp)
	}
	return resp
}

func TestTokenReadCachesAndLeases(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	v := env.officernd(t, "o", map[string]interface{}{"expiry_skew": "60s"})

	resp := env.readToken(t, "o")
	tok := resp.Data["access_token"].(string)
	if !v.Valid(tok) {
		t.Fatalf("not a vendor token: %q", tok)
	}
	if resp.Secret == nil || !resp.Secret.Renewable {
		t.Fatalf("want a renewable lease, got %+v", resp.Secret)
	}
	// To the lease end: 3599 s - 60 s skew - 3% of 3599 s + 2 s.
	if want := 3433 * time.Second; resp.Secret.TTL > want || resp.Secret.TTL < want-2*time.Second {
		t.Errorf("lease TTL = %s, want about %s", resp.Secret.TTL, want)
	}
	if resp.Data["token_type"] != "Bearer" {
		t.Errorf("token_type = %v", resp.Data["token_type"])
	}
	for i := 0; i < 5; i++ {
		if got := env.readToken(t, "o").Data["access_token"]; got != tok {
			t.Fatalf("read %d got another token", i)
		}
	}
	if st := v.Stats(); st.Requests != 1 {
		t.Errorf("upstream requests = %d, want 1", st.Requests)
	}

	// max_ttl caps the lease but keeps the token.
	env.write(t, "o", map[string]interface{}{"max_ttl": "5m"})
	resp = env.readToken(t, "o")
	if resp.Secret.TTL != 5*time.Minute || resp.Data["access_token"] != tok {
		t.Errorf("with max_ttl=5m: TTL %s, same token %v", resp.Secret.TTL, resp.Data["access_token"] == tok)
	}
	// Changing the credential drops the cached token.
	env.write(t, "o", map[string]interface{}{"scopes": "officernd.api.read,officernd.api.read"})
	if got := env.readToken(t, "o").Data["access_token"]; got == tok {
		t.Errorf("a credential change kept the old token")
	}
	assertNoSecrets(t, "log", env.logs.String(), "o-secret", tok)
}

func TestTokenConcurrentReadsMakeOneRequest(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	v := env.officernd(t, "o", nil)
	v.SetBehavior(standin.Behavior{Delay: 200 * time.Millisecond})
	var wg sync.WaitGroup
	tokens := make([]string, 40)
	for i := range tokens {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := env.request(t, logical.ReadOperation, "token/o", nil)
			if err == nil && !resp.IsError() {
				tokens[i] = resp.Data["access_token"].(string)
			}
		}(i)
	}
	wg.Wait()
	for i, tok := range tokens {
		if tok == "" || tok != tokens[0] {
			t.Fatalf("reader %d got %q, want the shared token", i, tok)
		}
	}
	if st := v.Stats(); st.Requests != 1 {
		t.Errorf("upstream requests = %d, want 1", st.Requests)
	}
}

// A rotated refresh token must be stored before the access token is handed
// out; when the write fails, the rotated token is kept and stored first by
// the next read, so the vendor never sees the dead one again.
func TestRotatedRefreshTokenIsNeverLost(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	v := env.vendors.Vendor("penbox")
	v.AddClient(standin.Client{ID: "p-id", Secret: "p-secret"})
	rt := v.IssueRefreshToken("p-id")
	v.SetBehavior(standin.Behavior{Rotate: true, ReuseDetection: true})
	env.write(t, "p", map[string]interface{}{
		"provider": "penbox", "token_url": env.url + v.TokenPath(),
		"client_id": "p-id", "client_secret": "p-secret", "refresh_token": rt,
	})

	env.storage.FailPut(true)
	resp, err := env.request(t, logical.ReadOperation, "token/p", nil)
	if err == nil && !resp.IsError() {
		t.Fatalf("a token was handed out although its rotated refresh token was not stored")
	}
	if !strings.Contains(env.logs.String(), "storing a refresh token the vendor just issued failed") {
		t.Errorf("the lost write was not logged at error level")
	}
	env.storage.FailPut(false)

	// The next read stores the held token and hands out the token that came
	// with it, without asking the vendor again.
	resp = env.readToken(t, "p")
	if st := v.Stats(); st.Requests != 1 || st.ReuseDetections != 0 {
		t.Errorf("requests %d, reuse detections %d; want 1 and 0", st.Requests, st.ReuseDetections)
	}
	if !v.Valid(resp.Data["access_token"].(string)) {
		t.Errorf("handed-out token is not valid")
	}
	// And a forced refresh later uses the rotated token, which the vendor
	// accepts.
	if _, err := env.b.creds.Refresh(context.Background(), env.storage, "p", true); err != nil {
		t.Fatalf("refresh with the stored rotated token: %v", err)
	}
	if st := v.Stats(); st.ReuseDetections != 0 {
		t.Errorf("vendor detected reuse of a rotated refresh token")
	}
	assertNoSecrets(t, "log", env.logs.String(), "p-secret", rt)
}

func TestReadOnlyNodeForwardsInsteadOfCallingVendor(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	v := env.officernd(t, "o", nil)
	env.setReadOnly()
	_, err := env.request(t, logical.ReadOperation, "token/o", nil)
	if !errors.Is(err, logical.ErrReadOnly) {
		t.Fatalf("err = %v, want logical.ErrReadOnly", err)
	}
	if st := v.Stats(); st.Requests != 0 {
		t.Fatalf("a read-only node called the vendor")
	}
	// Even with a token cached, a standby forwards the read: it cannot
	// register the lease (OpenBao's standbys, Vault's performance
	// standbys), and the active node's cache is as good.
	env.system.ReplicationStateVal = 0
	env.readToken(t, "o")
	env.setReadOnly()
	if _, err := env.request(t, logical.ReadOperation, "token/o", nil); !errors.Is(err, logical.ErrReadOnly) {
		t.Errorf("a standby served a leased token read itself: %v", err)
	}
	if st := v.Stats(); st.Requests != 1 {
		t.Errorf("vendor requests = %d, want 1", st.Requests)
	}
}

func TestVendorFailureServesStillValidToken(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	v := env.officernd(t, "o", map[string]interface{}{"expiry_skew": "1h"})
	// A skew longer than the token's life is capped at a tenth of it
	// (6 minutes), so this token is handed out for about 52 minutes (to
	// 3599 s - 360 s - 108 s) and may be served stale until 54 minutes;
	// move the clock in between.
	tok := env.readToken(t, "o").Data["access_token"]
	now := time.Now()
	env.b.creds.SetClock(func() time.Time { return now.Add(53 * time.Minute) })
	v.SetBehavior(standin.Behavior{FailNext: 1, FailStatus: 503, FailBody: `{"error":"temporarily_unavailable"}`})
	resp := env.readToken(t, "o")
	if resp.Data["access_token"] != tok || len(resp.Warnings) == 0 {
		t.Fatalf("want the still-valid token with a warning, got %v %v", resp.Data["access_token"], resp.Warnings)
	}
	if !strings.Contains(strings.Join(resp.Warnings, " "), "temporarily_unavailable") {
		t.Errorf("warning does not say what failed: %v", resp.Warnings)
	}
	// The stale lease ends expiry_skew before the vendor's expiry, like
	// every other lease: 3599 s - 359.9 s skew - 3180 s = 59 s.
	if resp.Secret.TTL <= 0 || resp.Secret.TTL > 60*time.Second || resp.Secret.Renewable {
		t.Errorf("stale lease TTL %s runs into the expiry skew", resp.Secret.TTL)
	}
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		behavior standin.Behavior
		secret   string
		status   int // 0: an error response (400); else a coded error
		want     []string
	}{
		{"wrong secret", standin.Behavior{}, "wrong", 0, []string{"invalid_client", "client_secret", `"o"`}},
		{"vendor down", standin.Behavior{FailNext: 1, FailStatus: 502, FailBody: "<html>bad gateway</html>"}, "o-secret", 502, []string{"HTTP 502", "OfficeRnD"}},
		{"rate limited", standin.Behavior{FailNext: 1, FailStatus: 429, FailBody: `{"error":"rate_limited"}`}, "o-secret", -1, []string{"rate"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t)
			v := env.officernd(t, "o", map[string]interface{}{"client_secret": c.secret})
			v.SetBehavior(c.behavior)
			resp, err := env.request(t, logical.ReadOperation, "token/o", nil)
			var msg string
			switch {
			case c.status == 0:
				if err != nil || !resp.IsError() {
					t.Fatalf("want an error response, got %v %v", resp, err)
				}
				msg = resp.Error().Error()
			case c.status == -1:
				if !errors.Is(err, logical.ErrUpstreamRateLimited) {
					t.Fatalf("err = %v, want ErrUpstreamRateLimited", err)
				}
				msg = err.Error()
			default:
				var coded logical.HTTPCodedError
				if !errors.As(err, &coded) || coded.Code() != c.status {
					t.Fatalf("err = %v, want HTTP %d", err, c.status)
				}
				msg = err.Error()
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not mention %q", msg, w)
				}
			}
			assertNoSecrets(t, "error", msg, "o-secret", c.secret)
			assertNoSecrets(t, "log", env.logs.String(), "o-secret", c.secret)
		})
	}
}

// TestInvalidateServesWhatIsStored plays a write made on another node
// (replicated storage): the node serves its cached entry until Vault calls
// InvalidateKey, and what is stored after it, without a vendor call.
func TestInvalidateServesWhatIsStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := newTestEnv(t)
	v := env.officernd(t, "o", nil)
	first := env.readToken(t, "o").Data["access_token"].(string)

	raw, err := env.storage.Get(ctx, store.EntryPrefix+"o")
	if err != nil || raw == nil {
		t.Fatalf("stored entry: %v %v", raw, err)
	}
	var e model.Entry
	if err := json.Unmarshal(raw.Value, &e); err != nil {
		t.Fatal(err)
	}
	e.Token.AccessToken = "replicated-" + first
	raw.Value, err = json.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.storage.Put(ctx, raw); err != nil {
		t.Fatal(err)
	}
	requests := v.Stats().Requests

	// A cached read does not touch storage (TestCachedReadIsLocal), so
	// until the invalidation the node still has the entry it wrote.
	if got := env.readToken(t, "o").Data["access_token"]; got != first {
		t.Fatalf("before invalidation got a different token; the cache this test is about is gone")
	}
	env.b.InvalidateKey(ctx, store.EntryPrefix+"o")
	if got := env.readToken(t, "o").Data["access_token"]; got != e.Token.AccessToken {
		t.Errorf("after InvalidateKey the read still serves the entry cached before the storage change")
	}
	if n := v.Stats().Requests - requests; n != 0 {
		t.Errorf("%d vendor requests; the stored token was still good", n)
	}
}

// TestLogLinesNameCredentialAndVendor: an operator greps Vault's log for a
// credential or a vendor, so every plugin line carries both.
func TestLogLinesNameCredentialAndVendor(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.officernd(t, "o", nil)
	env.readToken(t, "o")
	for _, step := range []struct {
		op   logical.Operation
		path string
		data map[string]interface{}
	}{
		{logical.UpdateOperation, "refresh/o", nil},
		{logical.UpdateOperation, "config/o", map[string]interface{}{"client_secret": "not-the-secret"}},
		{logical.ReadOperation, "token/o", nil},
		{logical.DeleteOperation, "config/o", nil},
	} {
		if _, err := env.request(t, step.op, step.path, step.data); err != nil {
			t.Fatalf("%s %s: %v", step.op, step.path, err)
		}
	}
	logs := strings.TrimSpace(env.logs.String())
	for _, want := range []string{"credential configured", "token request succeeded", "token request failed", "credential deleted"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %q line in the log", want)
		}
	}
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, "name=o ") || !strings.Contains(line, "vendor=officernd") {
			t.Errorf("log line without name=o and vendor=officernd: %s", line)
		}
	}
}

// TestTokenLeaseRenewal: a lease renews to its token's lease end while the
// token is the one handed out, and still does once a successor replaced
// it (a reader that renews right after a read must not be told to read
// again within the same second: lease.go), but not past that end, and not
// once the token was dropped by a config change.
func TestTokenLeaseRenewal(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.officernd(t, "o", nil)
	clk := env.useClock()
	renew := func(sec *logical.Secret) (*logical.Response, error) {
		t.Helper()
		return env.b.HandleRequest(context.Background(), &logical.Request{
			Operation: logical.RenewOperation, Path: "token/o", Storage: env.storage,
			Secret: sec, MountPoint: "vendoroauth/",
		})
	}
	first := env.readToken(t, "o")
	first.Secret.IssueTime = clk.now()
	if resp, err := renew(first.Secret); err != nil || resp.IsError() || resp.Secret.TTL != first.Secret.TTL {
		t.Fatalf("renewing the current token's lease: %v %v", resp, err)
	}

	clk.add(10 * time.Minute)
	if resp, err := env.request(t, logical.UpdateOperation, "refresh/o", nil); err != nil || resp.IsError() {
		t.Fatalf("refresh: %v %v", resp, err)
	}
	second := env.readToken(t, "o")
	if second.Data["access_token"] == first.Data["access_token"] {
		t.Fatal("refresh/o did not replace the token")
	}
	want := first.Secret.TTL - 10*time.Minute
	resp, err := renew(first.Secret)
	if err != nil || resp.IsError() {
		t.Fatalf("renewing a replaced token's lease before its end: %v %v", resp, err)
	}
	if resp.Secret.TTL > want || resp.Secret.TTL < want-time.Second {
		t.Errorf("a replaced token's lease renewed to %s, want its own end (%s)", resp.Secret.TTL, want)
	}

	clk.add(want)
	if resp, err := renew(first.Secret); err == nil && !resp.IsError() {
		t.Errorf("renewed a lease past its token's lease end: %v", resp)
	}

	env.write(t, "o", map[string]interface{}{"scopes": "officernd.api.read officernd.api.write"})
	if resp, err := renew(second.Secret); err == nil && !resp.IsError() {
		t.Errorf("renewed the lease of a token a config change dropped: %v", resp)
	}
	// Nor once a new token follows the dropped one: it replaced nothing.
	env.write(t, "o", map[string]interface{}{"scopes": "officernd.api.read"})
	env.readToken(t, "o")
	if resp, err := renew(second.Secret); err == nil && !resp.IsError() {
		t.Errorf("renewed the lease of a dropped token once a new one was got: %v", resp)
	}
}
