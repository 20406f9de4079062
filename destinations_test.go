package vendoroauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
)

// Regression tests for where secrets go: nothing a caller could not read
// is ever sent to a destination chosen after the secret was written, not
// by a write that gives only some secrets again, not by an app written
// anew, not by an issuer's metadata that changed. Each fails without its
// fix.

// recordingAS is an authorization server that records every request it
// gets (path, Authorization header and body), to find secrets in.
type recordingAS struct {
	URL       string
	mu        sync.Mutex
	seen      []string
	tokenCode atomic.Int32 // the token endpoint's status; 401 is invalid_client
	doc       atomic.Value // func(base string) map[string]any: the metadata
}

func newRecordingAS(t *testing.T) *recordingAS {
	t.Helper()
	f := &recordingAS{}
	f.tokenCode.Store(http.StatusOK)
	f.setDoc(func(base string) map[string]any {
		return map[string]any{"issuer": base, "token_endpoint": base + "/token", "revocation_endpoint": base + "/revoke"}
	})
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func (f *recordingAS) setDoc(doc func(base string) map[string]any) { f.doc.Store(doc) }

func (f *recordingAS) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	auth := r.Header.Get("Authorization")
	if enc, ok := strings.CutPrefix(auth, "Basic "); ok {
		if dec, err := base64.StdEncoding.DecodeString(enc); err == nil {
			auth = "Basic " + string(dec)
		}
	}
	f.mu.Lock()
	f.seen = append(f.seen, r.URL.Path+" auth="+auth+" body="+string(body))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case strings.HasPrefix(r.URL.Path, "/.well-known/"):
		_ = json.NewEncoder(w).Encode(f.doc.Load().(func(string) map[string]any)(f.URL))
	case r.URL.Path == "/token" && f.tokenCode.Load() != http.StatusOK:
		w.WriteHeader(int(f.tokenCode.Load()))
		fmt.Fprint(w, `{"error":"invalid_client"}`)
	case r.URL.Path == "/token":
		fmt.Fprintf(w, `{"access_token":"AT-%d","expires_in":3600}`, time.Now().UnixNano())
	case r.URL.Path == "/revoke":
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// mark is how many requests came so far, for sawSince.
func (f *recordingAS) mark() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

// sawSince reports the first request since mark that carried s (in the
// body or the decoded Basic header), or "".
func (f *recordingAS) sawSince(mark int, s string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, x := range f.seen[mark:] {
		if strings.Contains(x, s) {
			return x
		}
	}
	return ""
}

// A write that changes an app's destination while giving the client
// secret again must not keep the old secret for the overlap: it was
// written for the old destination, and trying it once on invalid_client
// would send it to the new one.
func TestPreviousSecretStaysWithItsDestination(t *testing.T) {
	t.Parallel()
	otherCA := selfSignedCAPEM(t)
	cases := []struct {
		name string
		// change is the write after the rotation; "THIEF" is replaced
		// with the other server's URL.
		change   map[string]interface{}
		dropped  bool // the previous secret is gone, and the write says so
		tryOnce  bool // the previous secret is tried on invalid_client
		toThief  bool // requests go to the other server after the change
		warnings bool
	}{
		{"token_url with the secret again", map[string]interface{}{"token_url": "THIEF/token", "client_secret": "junk"}, true, false, true, true},
		{"ca_bundle with the secret again", map[string]interface{}{"ca_bundle": otherCA, "client_secret": "junk"}, true, false, false, true},
		{"the secret alone", map[string]interface{}{"client_secret": "NEXT-SECRET"}, false, true, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t)
			clk := env.useClock()
			legit, thief := newRecordingAS(t), newRecordingAS(t)
			thief.tokenCode.Store(http.StatusUnauthorized)
			resp, err := env.request(t, logical.CreateOperation, "apps/a", map[string]interface{}{
				"token_url": legit.URL + "/token", "client_id": "id", "client_secret": "OLD-SECRET", "grant_type": "client_credentials"})
			if err != nil || resp.IsError() {
				t.Fatal(err, resp)
			}
			env.write(t, "a/x", nil)
			env.readToken(t, "a/x")
			// A rotation: OLD-SECRET is the previous one, in its overlap.
			if resp, err := env.request(t, logical.UpdateOperation, "apps/a", map[string]interface{}{"client_secret": "REAL-SECRET"}); err != nil || resp.IsError() {
				t.Fatal(err, resp)
			}
			change := map[string]interface{}{}
			for k, v := range c.change {
				if s, ok := v.(string); ok {
					v = strings.ReplaceAll(s, "THIEF", thief.URL)
				}
				change[k] = v
			}
			resp, err = env.request(t, logical.UpdateOperation, "apps/a", change)
			if err != nil || resp.IsError() {
				t.Fatal(err, resp)
			}
			warned := resp != nil && strings.Contains(strings.Join(resp.Warnings, " "), "previous client_secret is not kept")
			if warned != c.warnings {
				t.Errorf("warned that the previous secret is dropped: %v, want %v (%v)", warned, c.warnings, resp)
			}
			read, _ := env.request(t, logical.ReadOperation, "apps/a", nil)
			if dropped := read.Data["previous_client_secret_until"] == ""; dropped != c.dropped {
				t.Errorf("previous secret dropped: %v, want %v", dropped, c.dropped)
			}
			// Wherever the app now sends, the vendor refuses the client.
			legit.tokenCode.Store(http.StatusUnauthorized)
			mLegit, mThief := legit.mark(), thief.mark()
			clk.add(2 * time.Hour)
			_, _ = env.request(t, logical.ReadOperation, "token/a/x", nil)
			for _, old := range []string{"OLD-SECRET", "REAL-SECRET"} {
				if got := thief.sawSince(mThief, old); got != "" {
					t.Errorf("the new token endpoint got %s: %s", old, got)
				}
			}
			prev := "REAL-SECRET"
			got := legit.sawSince(mLegit, prev)
			if c.toThief {
				got = thief.sawSince(mThief, prev)
			}
			if (got != "") != c.tryOnce {
				t.Errorf("the previous secret was tried after the change: %q, want tried=%v", got, c.tryOnce)
			}
			assertNoSecrets(t, "the log", env.logs.String(), "OLD-SECRET", "REAL-SECRET")
		})
	}
}

// A previous secret an older release kept says nothing of the endpoint it
// was written for (it may have been kept across a change of token_url): it
// is not tried.
func TestUnboundPreviousSecretIsNotTried(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	as := newRecordingAS(t)
	resp, err := env.request(t, logical.CreateOperation, "apps/a", map[string]interface{}{
		"token_url": as.URL + "/token", "client_id": "id", "client_secret": "OLD-SECRET", "grant_type": "client_credentials"})
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	env.write(t, "a/x", nil)
	if resp, err := env.request(t, logical.UpdateOperation, "apps/a", map[string]interface{}{"client_secret": "NEW-SECRET"}); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	ctx := context.Background()
	raw, err := env.storage.InmemStorage.Get(ctx, store.AppPrefix+"a")
	if err != nil || raw == nil {
		t.Fatal(err)
	}
	var stored map[string]any
	if err := json.Unmarshal(raw.Value, &stored); err != nil || !strings.Contains(fmt.Sprint(stored["previous_bound"]), as.URL+"/token") {
		t.Fatalf("the previous secret is not bound to its token endpoint: %v %v", err, stored["previous_bound"])
	}
	delete(stored, "previous_bound")
	raw.Value, _ = json.Marshal(stored)
	if err := env.storage.InmemStorage.Put(ctx, raw); err != nil {
		t.Fatal(err)
	}
	env.b.invalidate(ctx, store.AppPrefix+"a")
	as.tokenCode.Store(http.StatusUnauthorized)
	m := as.mark()
	clk.add(time.Hour)
	_, _ = env.request(t, logical.ReadOperation, "token/a/x", nil)
	if got := as.sawSince(m, "OLD-SECRET"); got != "" {
		t.Errorf("an unbound previous secret was sent: %s", got)
	}
}

// Deleting a connection revokes its refresh token only at the revocation
// endpoint in effect when it was stored: not at one an app write moved it
// to with the app's secrets alone, nor at one of an app deleted and
// written anew.
func TestRevocationStaysWithItsDestination(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// legacy: the connection was stored before its revocation
		// endpoint was recorded.
		legacy bool
		// move changes the app after the connection is stored;
		// "LEGIT" and "THIEF" are replaced with the servers' URLs.
		move    func(t *testing.T, env *testEnv, legit, thief string)
		revoked bool // at the legit server
	}{
		{"nothing changed", false, nil, true},
		{"revocation_url moved with the app's secret again", false, func(t *testing.T, env *testEnv, _, thief string) {
			writeApp(t, env, logical.UpdateOperation, map[string]interface{}{"revocation_url": thief + "/revoke", "client_secret": "REAL-SECRET"})
		}, false},
		{"app deleted and written anew", false, func(t *testing.T, env *testEnv, legit, thief string) {
			if resp, err := env.request(t, logical.DeleteOperation, "apps/a", nil); err != nil || resp.IsError() {
				t.Fatal(err, resp)
			}
			writeApp(t, env, logical.CreateOperation, map[string]interface{}{"token_url": legit + "/token", "revocation_url": thief + "/revoke",
				"client_id": "id", "client_secret": "junk", "grant_type": "refresh_token"})
		}, false},
		{"stored before the binding, revocation moved to another host", true, func(t *testing.T, env *testEnv, _, thief string) {
			writeApp(t, env, logical.UpdateOperation, map[string]interface{}{"revocation_url": thief + "/revoke", "client_secret": "REAL-SECRET"})
		}, false},
		{"stored before the binding, revocation on the token endpoint's host", true, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t)
			legit, thief := newRecordingAS(t), newRecordingAS(t)
			writeApp(t, env, logical.CreateOperation, map[string]interface{}{"token_url": legit.URL + "/token", "revocation_url": legit.URL + "/revoke",
				"client_id": "id", "client_secret": "REAL-SECRET", "grant_type": "refresh_token"})
			env.write(t, "a/victim", map[string]interface{}{"refresh_token": "VICTIM-RT"})
			if c.legacy {
				forgetRevocationBinding(t, env, "a/victim")
			}
			if c.move != nil {
				c.move(t, env, legit.URL, thief.URL)
			}
			resp, err := env.request(t, logical.DeleteOperation, "config/a/victim", nil)
			if err != nil || resp.IsError() {
				t.Fatal(err, resp)
			}
			if got := thief.sawSince(0, "VICTIM-RT"); got != "" {
				t.Errorf("the new revocation endpoint got the refresh token: %s", got)
			}
			if got := thief.sawSince(0, "REAL-SECRET"); got != "" {
				t.Errorf("the new revocation endpoint got the client secret: %s", got)
			}
			revoked := legit.sawSince(0, "/revoke auth=Basic id:REAL-SECRET body=token=VICTIM-RT") != ""
			if revoked != c.revoked {
				t.Errorf("revoked at the original endpoint: %v, want %v", revoked, c.revoked)
			}
			if !c.revoked && (resp == nil || !strings.Contains(strings.Join(resp.Warnings, " "), "refresh token was not revoked")) {
				t.Errorf("the delete does not say the refresh token was not revoked: %v", resp)
			}
			if e, _ := env.b.creds.Get(context.Background(), env.storage, "a/victim"); e != nil {
				t.Errorf("the connection was not deleted")
			}
		})
	}
}

func writeApp(t *testing.T, env *testEnv, op logical.Operation, data map[string]interface{}) {
	t.Helper()
	if resp, err := env.request(t, op, "apps/a", data); err != nil || resp.IsError() {
		t.Fatalf("write apps/a: %v %v", err, resp)
	}
}

// forgetRevocationBinding makes name's stored entry look as an older
// release wrote it, without the revocation endpoint its refresh token was
// stored for.
func forgetRevocationBinding(t *testing.T, env *testEnv, name string) {
	t.Helper()
	storeAsReleaseBeforeBindings(t, env, name, false)
}

// storeAsReleaseBeforeBindings rewrites name's stored entry as the release
// before bindings stored it: its refresh token recorded by its token
// endpoint (refresh_token_for) and, with revocation, its revocation
// endpoint (revoke_url_for), and nothing else bound.
func storeAsReleaseBeforeBindings(t *testing.T, env *testEnv, name string, revocation bool) {
	t.Helper()
	ctx := context.Background()
	raw, err := env.storage.InmemStorage.Get(ctx, store.EntryPrefix+name)
	if err != nil || raw == nil {
		t.Fatal(err)
	}
	var stored map[string]any
	if err := json.Unmarshal(raw.Value, &stored); err != nil {
		t.Fatal(err)
	}
	cfg := stored["config"].(map[string]any)
	bound, _ := cfg["bound"].(map[string]any)
	rt, _ := bound["refresh_token"].(map[string]any)
	endpoints, _ := rt["endpoints"].([]any)
	if len(endpoints) < 2 {
		t.Fatalf("the refresh token is not bound to a token and a revocation endpoint: %v", cfg)
	}
	delete(cfg, "bound")
	cfg["refresh_token_for"] = endpoints[0]
	if revocation {
		cfg["revoke_url_for"] = endpoints[1]
	}
	raw.Value, _ = json.Marshal(stored)
	if err := env.storage.InmemStorage.Put(ctx, raw); err != nil {
		t.Fatal(err)
	}
	env.b.invalidate(ctx, store.EntryPrefix+name)
}

// The daily rediscovery of an app's issuer does not adopt metadata that
// moves an endpoint its secrets go to: the app keeps the endpoints it had
// and says what moved, until an operator writes it again with the
// secrets.
func TestRediscoveryDoesNotMoveSecrets(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		doc   func(base, thief string) map[string]any
		moved string // in discovery_changed; "" when nothing moved
	}{
		{"token_endpoint moved", func(base, thief string) map[string]any {
			return map[string]any{"issuer": base, "token_endpoint": thief + "/token", "revocation_endpoint": base + "/revoke"}
		}, "token_url="},
		{"revocation_endpoint moved", func(base, thief string) map[string]any {
			return map[string]any{"issuer": base, "token_endpoint": base + "/token", "revocation_endpoint": thief + "/revoke"}
		}, "revocation_url="},
		{"only the PKCE methods changed", func(base, _ string) map[string]any {
			return map[string]any{"issuer": base, "token_endpoint": base + "/token", "revocation_endpoint": base + "/revoke", "code_challenge_methods_supported": []string{"S256"}}
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t)
			env.mount = "oauth/prod/"
			clk := env.useClock()
			iss, thief := newRecordingAS(t), newRecordingAS(t)
			writeApp(t, env, logical.CreateOperation, map[string]interface{}{"issuer": iss.URL, "client_id": "id", "client_secret": "REAL-SECRET", "grant_type": "refresh_token"})
			env.write(t, "a/victim", map[string]interface{}{"refresh_token": "VICTIM-RT"})
			before, _ := env.request(t, logical.ReadOperation, "apps/a", nil)
			iss.setDoc(func(base string) map[string]any { return c.doc(base, thief.URL) })
			clk.add(25 * time.Hour)
			if err := env.b.creds.Tick(context.Background(), env.storage, true); err != nil {
				t.Fatal(err)
			}
			read, _ := env.request(t, logical.ReadOperation, "apps/a", nil)
			status, _ := env.request(t, logical.ReadOperation, "status/a", nil)
			for where, got := range map[string]interface{}{"apps/a": read.Data["discovery_changed"], "status/a": status.Data["discovery_changed"]} {
				msg := got.(string)
				if c.moved == "" {
					if msg != "" {
						t.Errorf("%s: discovery_changed %q with nothing moved", where, msg)
					}
					continue
				}
				for _, want := range []string{c.moved + thief.URL, "vault write oauth/prod/apps/a issuer=" + iss.URL + " client_secret=..."} {
					if !strings.Contains(msg, want) {
						t.Errorf("%s: discovery_changed %q does not say %q", where, msg, want)
					}
				}
			}
			if adopted := read.Data["discovered_at"] != before.Data["discovered_at"]; adopted != (c.moved == "") {
				t.Errorf("the new metadata was adopted: %v (discovered_at %v, was %v)", adopted, read.Data["discovered_at"], before.Data["discovered_at"])
			}
			// The token endpoint and the revocation endpoint in use are
			// still the issuer's.
			_, _ = env.request(t, logical.ReadOperation, "token/a/victim", nil)
			_, _ = env.request(t, logical.DeleteOperation, "config/a/victim", nil)
			for _, secret := range []string{"REAL-SECRET", "VICTIM-RT"} {
				if got := thief.sawSince(0, secret); got != "" {
					t.Errorf("the moved endpoint got %s: %s", secret, got)
				}
				if iss.sawSince(0, secret) == "" {
					t.Errorf("the issuer's endpoints did not get %s", secret)
				}
			}
			assertNoSecrets(t, "the log", env.logs.String(), "REAL-SECRET", "VICTIM-RT")
			if c.moved == "" {
				return
			}
			// The fix the answer names: write the issuer again, with the
			// secrets.
			resp, err := env.request(t, logical.UpdateOperation, "apps/a", map[string]interface{}{"issuer": iss.URL})
			mustErr(t, resp, err, "changes where the credential's secrets are sent")
			writeApp(t, env, logical.UpdateOperation, map[string]interface{}{"issuer": iss.URL, "client_secret": "NEW-SECRET"})
			if read, _ := env.request(t, logical.ReadOperation, "apps/a", nil); read.Data["discovery_changed"] != "" {
				t.Errorf("discovery_changed after the app was written again: %v", read.Data["discovery_changed"])
			}
		})
	}
}

// Issuers that fail do not starve the others' rediscovery: every try is
// recorded and backs off, so each tick asks about other apps, and a
// failing issuer is not asked again every tick.
func TestRediscoveryGivesEveryAppItsTurn(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	var failing atomic.Bool
	var calls atomic.Int32
	var base string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		issuerPath, ok := strings.CutPrefix(r.URL.Path, "/.well-known/oauth-authorization-server")
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		calls.Add(1)
		// Only the last app's issuer answers once the others fail.
		if failing.Load() && issuerPath != "/i9" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer":%q,"token_endpoint":%q}`, base+issuerPath, base+"/token")
	}))
	t.Cleanup(srv.Close)
	base = srv.URL
	for i := range 10 {
		resp, err := env.request(t, logical.CreateOperation, fmt.Sprintf("apps/a%d", i), map[string]interface{}{
			"issuer": fmt.Sprintf("%s/i%d", base, i), "client_id": "id", "client_secret": "S", "grant_type": "client_credentials"})
		if err != nil || resp.IsError() {
			t.Fatal(err, resp)
		}
	}
	failing.Store(true)
	clk.add(25 * time.Hour)
	tick := func() int32 {
		calls.Store(0)
		if err := env.b.creds.Tick(context.Background(), env.storage, true); err != nil {
			t.Fatal(err)
		}
		return calls.Load()
	}
	for i := range 3 {
		if n := tick(); n == 0 || n > 4 {
			t.Errorf("tick %d asked %d issuers, want 1 to 4", i, n)
		}
	}
	read, _ := env.request(t, logical.ReadOperation, "apps/a9", nil)
	if got, want := read.Data["discovered_at"], clk.now().UTC().Format(time.RFC3339); got != want {
		t.Errorf("after 3 ticks the last app's metadata was fetched at %v, want %v: the failing issuers before it took every turn", got, want)
	}
	if n := tick(); n != 0 {
		t.Errorf("the next tick asked %d issuers again; failures must back off", n)
	}
	clk.add(20 * time.Minute)
	if n := tick(); n == 0 {
		t.Errorf("after the backoff no failing issuer was asked again")
	}
}
