package vendoroauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// Regression tests for the hardening issue: each reproduces a way the
// plugin broke its promise (never panic, never refresh after losing the
// backend, never send a secret where it was not written, never lose or
// resurrect a credential) and fails without its fix.

// waitFor fails the test unless ch is closed or sent on within a generous
// limit; the limit only stops a test that would otherwise hang.
func waitFor(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// holdFirst returns a hook that, the first time it runs, closes reached
// and waits for release; later calls pass.
func holdFirst(reached, release chan struct{}) func(string) {
	var first atomic.Bool
	return func(string) {
		// Not a sync.Once: later callers must pass, not wait for the
		// first.
		if first.CompareAndSwap(false, true) {
			close(reached)
			<-release
		}
	}
}

// signalOnce returns a func that closes ch the first time it is called.
func signalOnce(ch chan struct{}) func() {
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// A tick that finds nothing to do once it holds the name's lock must not
// hand a nil result to a reader that came in meanwhile: the reader used to
// join the tick's flight and dereference it, a panic that ends every mount
// of the process.
func TestTickWithNothingDueNeverReachesReaders(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	v := env.officernd(t, "o", nil)
	env.readToken(t, "o")
	env.readToken(t, "o")       // in use
	clk.add(3450 * time.Second) // due for a proactive refresh (H - 15 s - jitter), before H

	tickWaiting, readerWaiting := make(chan struct{}), make(chan struct{})
	tickSignal, readerSignal := signalOnce(tickWaiting), signalOnce(readerWaiting)
	env.b.creds.SetTestHooks(backend.TestHooks{BeforeLock: func(op, name string) {
		switch op {
		case "proactive":
			tickSignal()
		case "read":
			readerSignal()
		}
	}})

	// A config write holds the lock and drops the token (a new scope).
	inWrite, release := make(chan struct{}), make(chan struct{})
	writeDone := make(chan error, 1)
	go func() {
		_, err := env.b.creds.Update(context.Background(), env.storage, "o", func(e *model.Entry) (*model.Entry, error) {
			close(inWrite)
			<-release
			e.Token = nil
			return e, nil
		})
		writeDone <- err
	}()
	waitFor(t, "the write to hold the lock", inWrite)
	tickDone := make(chan error, 1)
	go func() { tickDone <- env.b.creds.RefreshDue(context.Background(), env.storage) }()
	waitFor(t, "the refresher to wait for the lock", tickWaiting)

	type read struct {
		res *backend.Result
		err error
	}
	readDone := make(chan read, 1)
	go func() {
		res, err := env.b.creds.Token(context.Background(), env.storage, "o", func() bool { return true })
		readDone <- read{res, err}
	}()
	// The reader either waits for the lock itself (fixed) or has joined
	// the tick's flight (the bug), which has no hook to wait for.
	select {
	case <-readerWaiting:
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	if err := <-writeDone; err != nil {
		t.Fatal(err)
	}
	r := <-readDone
	if r.err != nil || r.res == nil || !v.Valid(r.res.Token.AccessToken) {
		t.Fatalf("reader got %+v, %v; want a valid new token", r.res, r.err)
	}
	if err := <-tickDone; err != nil {
		t.Fatal(err)
	}
}

// A panic in a handler must fail that request, not the process.
func TestHandlerPanicFailsOnlyTheRequest(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.officernd(t, "o", nil)
	// No storage: the handlers dereference a nil interface, in the
	// request's goroutine and inside a refresh that readers share.
	for _, path := range []string{"config/uncached", "token/o"} {
		resp, err := env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: path, MountPoint: "vendoroauth/"})
		if err == nil || !strings.Contains(err.Error(), "internal error") {
			t.Fatalf("%s: got %v, %v; want an internal error", path, resp, err)
		}
	}
	if logs := env.logs.String(); !strings.Contains(logs, "handler panicked") || !strings.Contains(logs, "a refresh panicked") {
		t.Errorf("the panics were not logged")
	}
	env.readToken(t, "o") // and the backend keeps serving, no lock left held
}

// officerndDue configures n OfficeRnD credentials with tokens that are due
// for a proactive refresh at the clock's time.
func officerndDue(t *testing.T, env *testEnv, clk *clock, n int) *standin.Vendor {
	t.Helper()
	var v *standin.Vendor
	for i := range n {
		v = env.officernd(t, fmt.Sprintf("o%d", i), nil)
		env.readToken(t, fmt.Sprintf("o%d", i))
		env.readToken(t, fmt.Sprintf("o%d", i)) // in use
	}
	// Past every refresh time (H - 15 s - under 10 s), before H = 3461 s.
	clk.add(3450 * time.Second)
	return v
}

// Background refreshes whose context ends, and a backend that is closed
// (unmounted, sealed, stepped down), start no vendor call: an old active
// node that keeps refreshing sends refresh tokens it cannot store.
func TestBackgroundRefreshesStopWhenTheirTimeIsUp(t *testing.T) {
	t.Parallel()
	t.Run("context already done", func(t *testing.T) {
		t.Parallel()
		env := newTestEnv(t)
		v := officerndDue(t, env, env.useClock(), 40)
		before := v.Stats().Requests
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := env.b.creds.RefreshDue(ctx, env.storage); err != nil {
			t.Fatal(err)
		}
		env.b.clean(context.Background())
		time.Sleep(300 * time.Millisecond) // let any stray call arrive
		if got := v.Stats().Requests - before; got != 0 {
			t.Errorf("%d vendor calls after the context ended, want 0", got)
		}
	})
	t.Run("storage no longer writable", func(t *testing.T) {
		t.Parallel()
		// A node that lost leadership to a partition is not told so; its
		// failing writes must stop it.
		env := newTestEnv(t)
		v := officerndDue(t, env, env.useClock(), 10)
		before := v.Stats().Requests
		env.storage.FailPut(true)
		if err := env.b.creds.RefreshDue(context.Background(), env.storage); err == nil {
			t.Errorf("a failed write did not stop the background refreshes")
		}
		if got := v.Stats().Requests - before; got != 0 {
			t.Errorf("%d vendor calls from a node that cannot write, want 0", got)
		}
		env.storage.FailPut(false)
		if err := env.b.creds.RefreshDue(context.Background(), env.storage); err != nil {
			t.Fatal(err)
		}
		if got := v.Stats().Requests - before; got != 10 {
			t.Errorf("%d vendor calls once writes work again, want the 10 requeued", got)
		}
	})
	t.Run("cancelled midway, then closed", func(t *testing.T) {
		t.Parallel()
		env := newTestEnv(t)
		v := officerndDue(t, env, env.useClock(), 40)
		v.SetBehavior(standin.Behavior{Delay: 300 * time.Millisecond})
		before := v.Stats().Requests
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		if err := env.b.creds.RefreshDue(ctx, env.storage); err != nil {
			t.Fatal(err)
		}
		env.b.clean(context.Background())
		time.Sleep(500 * time.Millisecond)
		// One token endpoint: at most 4 at a time, 10 a second.
		if got := v.Stats().Requests - before; got > 4 {
			t.Errorf("%d vendor calls after being cancelled at 100 ms and closed; want at most the 4 in flight", got)
		}
		if _, err := env.b.creds.Refresh(context.Background(), env.storage, "o1", true); err == nil {
			t.Errorf("a closed backend refreshed a token")
		}
		if got := v.Stats().Requests - before; got > 4 {
			t.Errorf("a closed backend called the vendor")
		}
	})
}

// A write that changes where secrets go must carry them again; otherwise
// whoever may update the config but not read it collects every secret in
// the mount by pointing token_url at a host of theirs.
func TestDestinationChangeNeedsTheSecretsAgain(t *testing.T) {
	t.Parallel()
	thief := standin.New()
	thiefSrv := newHTTPServer(t, thief)
	// Another CA makes another host the endpoint, at the same URL.
	otherCA := selfSignedCAPEM(t)
	cases := []struct {
		name   string
		preset string // penbox, or boldpenguin for its environments
		change map[string]interface{}
		ok     bool
	}{
		{"token_url alone", "penbox", map[string]interface{}{"token_url": thiefSrv + "/generic/token"}, false},
		{"authorize_url alone", "penbox", map[string]interface{}{"authorize_url": thiefSrv + "/authorize"}, false},
		{"environment alone", "boldpenguin", map[string]interface{}{"environment": "production"}, false},
		{"provider alone", "boldpenguin", map[string]interface{}{"provider": "officernd", "environment": "", "api_key": "", "scopes": "x"}, false},
		{"token_url with the client secret but not the refresh token", "penbox", map[string]interface{}{"token_url": thiefSrv + "/generic/token", "client_secret": "pb-secret"}, false},
		{"token_url with every secret", "penbox", map[string]interface{}{"token_url": thiefSrv + "/generic/token", "client_secret": "x", "refresh_token": "y"}, true},
		{"token_url, clearing the refresh token", "penbox", map[string]interface{}{"token_url": thiefSrv + "/generic/token", "client_secret": "x", "refresh_token": ""}, true},
		{"environment with every secret", "boldpenguin", map[string]interface{}{"environment": "production", "client_secret": "x", "api_key": "y"}, true},
		{"ca_bundle alone", "penbox", map[string]interface{}{"ca_bundle": otherCA}, false},
		{"ca_bundle with the client secret but not the refresh token", "penbox", map[string]interface{}{"ca_bundle": otherCA, "client_secret": "pb-secret"}, false},
		{"ca_bundle with every secret", "penbox", map[string]interface{}{"ca_bundle": otherCA, "client_secret": "x", "refresh_token": "y"}, true},
		{"assertion_audience alone", "penbox", map[string]interface{}{"assertion_audience": thiefSrv + "/generic/token"}, false},
		{"scopes alone", "penbox", map[string]interface{}{"scopes": "a,b"}, true},
		{"the same token_url again", "penbox", map[string]interface{}{"token_url": "SAME"}, true},
		{"provider to one with the same endpoints", "penbox", map[string]interface{}{"provider": "generic"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t)
			if c.preset == "boldpenguin" {
				env.write(t, "pb", map[string]interface{}{"provider": "boldpenguin", "environment": "staging",
					"client_id": "bp-id", "client_secret": "bp-secret", "api_key": "bp-key"})
			} else {
				v := env.penbox(t, "pb", nil)
				env.write(t, "pb", map[string]interface{}{"refresh_token": v.IssueRefreshToken("pb-id")})
				if c.change["token_url"] == "SAME" {
					c.change = map[string]interface{}{"token_url": env.url + v.TokenPath()}
				}
			}
			before, _ := env.request(t, logical.ReadOperation, "config/pb", nil)
			resp, err := env.request(t, logical.UpdateOperation, "config/pb", c.change)
			if c.ok {
				if err != nil || resp.IsError() {
					t.Fatalf("refused: %v %v", err, resp)
				}
				return
			}
			msg := mustErr(t, resp, err, "was not changed", "changes where the credential's secrets are sent", "again in the same write")
			assertNoSecrets(t, "the refusal", msg, "pb-secret", "bp-secret", "bp-key")
			after, _ := env.request(t, logical.ReadOperation, "config/pb", nil)
			if fmt.Sprint(before.Data) != fmt.Sprint(after.Data) {
				t.Errorf("a refused write changed the config:\n%v\n%v", before.Data, after.Data)
			}
			if c.preset == "penbox" {
				env.readToken(t, "pb")
			}
			if n := thief.Vendor("generic").Stats().Requests; n != 0 {
				t.Errorf("the new host got %d requests", n)
			}
		})
	}
}

// selfSignedCAPEM is a new CA certificate, as an operator would paste into
// ca_bundle.
func selfSignedCAPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "another CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// After a restart the schedule is rebuilt from storage; an entry whose
// read fails is retried, not dropped, and the load never holds up a tick.
func TestScheduleLoadResumesAfterFailedReads(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	// Refresh-token credentials: after a start their keep-alives are what
	// the schedule must hold.
	v := env.penbox(t, "o0", nil)
	for i := range 10 {
		name := fmt.Sprintf("o%d", i)
		env.penbox(t, name, map[string]interface{}{"refresh_token": v.IssueRefreshToken("pb-id")})
		env.readToken(t, name)
	}
	// A new backend over the same storage, as after a restart.
	fresh := newTestEnvOver(t, env)
	m := fresh.b.creds
	m.SetLoadRetryDelay(time.Millisecond)
	failing := func(key string) bool {
		return strings.HasPrefix(key, store.EntryPrefix) && key >= store.EntryPrefix+"o3"
	}
	env.storage.setFailGet(failing)

	gate := make(chan struct{})
	env.storage.setGate(gate)
	if err := m.Tick(context.Background(), env.storage, true); err != nil {
		t.Fatal(err)
	}
	if loaded, loading := m.ScheduleState(); loaded || !loading {
		t.Fatalf("the tick waited for the load (loaded %v, loading %v)", loaded, loading)
	}
	close(gate)
	waitLoad(t, m)
	scheduled := func() (n int) {
		for i := range 10 {
			if !m.NextRefresh(fmt.Sprintf("o%d", i)).IsZero() {
				n++
			}
		}
		return n
	}
	if loaded, _ := m.ScheduleState(); loaded || scheduled() != 3 {
		t.Fatalf("with 7 reads failing: loaded %v with %d scheduled; want not loaded, 3", loaded, scheduled())
	}
	env.storage.setFailGet(nil)
	if err := m.Tick(context.Background(), env.storage, true); err != nil {
		t.Fatal(err)
	}
	waitLoad(t, m)
	if loaded, _ := m.ScheduleState(); !loaded || scheduled() != 10 {
		t.Fatalf("after storage healed: loaded %v with %d scheduled; want loaded, 10", loaded, scheduled())
	}
}

func waitLoad(t *testing.T, m *backend.Manager) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, loading := m.ScheduleState(); !loading {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the schedule load did not finish")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A read that missed the cache and read storage before a delete or an
// invalidation must not put what it read into the cache: the deleted or
// changed credential would be served again for the rest of its lease.
func TestCacheMissCannotResurrectACredential(t *testing.T) {
	t.Parallel()
	t.Run("delete", func(t *testing.T) {
		t.Parallel()
		env := newTestEnv(t)
		env.officernd(t, "o", nil)
		env.readToken(t, "o")
		env.b.invalidate(context.Background(), store.EntryPrefix+"o") // a cold cache
		readStorage, release := make(chan struct{}), make(chan struct{})
		env.b.creds.SetTestHooks(backend.TestHooks{AfterStorageRead: holdFirst(readStorage, release)})
		done := make(chan struct{})
		go func() { defer close(done); env.request(t, logical.ReadOperation, "token/o", nil) }()
		waitFor(t, "the read to reach storage", readStorage)
		resp, err := env.request(t, logical.DeleteOperation, "config/o", nil)
		if err != nil || resp.IsError() {
			t.Fatal(err, resp)
		}
		close(release)
		<-done
		resp, err = env.request(t, logical.ReadOperation, "token/o", nil)
		if err == nil && !resp.IsError() {
			t.Fatalf("a deleted credential handed out %v under a %s lease", resp.Data["access_token"], resp.Secret.TTL)
		}
	})
	t.Run("invalidate", func(t *testing.T) {
		t.Parallel()
		env := newTestEnv(t)
		env.officernd(t, "o", nil)
		old := env.readToken(t, "o").Data["access_token"]
		env.b.invalidate(context.Background(), store.EntryPrefix+"o")
		readStorage, release := make(chan struct{}), make(chan struct{})
		env.b.creds.SetTestHooks(backend.TestHooks{AfterStorageRead: holdFirst(readStorage, release)})
		done := make(chan struct{})
		go func() { defer close(done); env.request(t, logical.ReadOperation, "token/o", nil) }()
		waitFor(t, "the read to reach storage", readStorage)
		// The active node changes the entry (a new scope drops the
		// token); replication brings it here with an invalidation.
		other := newTestEnvOver(t, env)
		other.write(t, "o", map[string]interface{}{"scopes": "officernd.api.read,officernd.api.write"})
		env.b.invalidate(context.Background(), store.EntryPrefix+"o")
		close(release)
		<-done
		env.b.creds.SetTestHooks(backend.TestHooks{})
		e, err := env.b.creds.Get(context.Background(), env.storage, "o")
		if err != nil || e == nil {
			t.Fatal(err)
		}
		if e.Token != nil && e.Token.AccessToken == old {
			t.Errorf("the standby still holds the token the change dropped")
		}
	})
}

// One slow vendor must not make other credentials wait: names used to
// share 256 striped locks held across the vendor call.
func TestSlowVendorDoesNotBlockOtherNames(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	// b shares a's stripe in the striped locks the plugin used to have.
	stripes := locksutil.CreateLocks()
	a, b := "slow", ""
	for i := 0; b == ""; i++ {
		if n := fmt.Sprintf("other%d", i); locksutil.LockForKey(stripes, n) == locksutil.LockForKey(stripes, a) {
			b = n
		}
	}
	env.officernd(t, a, nil)
	env.officernd(t, b, nil)
	inCall, release := make(chan struct{}), make(chan struct{})
	signal := signalOnce(inCall)
	env.b.creds.SetTestHooks(backend.TestHooks{BeforeVendorCall: func(name string) {
		if name == a {
			signal()
			<-release
		}
	}})
	defer close(release)
	go env.request(t, logical.ReadOperation, "token/"+a, nil)
	waitFor(t, "the slow vendor call", inCall)
	deleted := make(chan struct{})
	go func() {
		defer close(deleted)
		if resp, err := env.request(t, logical.DeleteOperation, "config/"+b, nil); err != nil || resp.IsError() {
			t.Errorf("delete: %v %v", err, resp)
		}
	}()
	waitFor(t, "the delete of an unrelated credential during a slow vendor call", deleted)
}

// rotating configures a Penbox credential whose vendor rotates refresh
// tokens and detects reuse, and reads it once so the rotation is seen.
func rotating(t *testing.T, env *testEnv, name string, b standin.Behavior) *standin.Vendor {
	t.Helper()
	v := env.penbox(t, name, nil)
	env.write(t, name, map[string]interface{}{"refresh_token": v.IssueRefreshToken("pb-id")})
	b.Rotate, b.ReuseDetection = true, true
	v.SetBehavior(b)
	env.readToken(t, name)
	return v
}

func storedRefreshToken(t *testing.T, env *testEnv, name string) string {
	t.Helper()
	raw, err := env.storage.InmemStorage.Get(context.Background(), store.EntryPrefix+name)
	if err != nil || raw == nil {
		t.Fatalf("reading %s from storage: %v", name, err)
	}
	var e model.Entry
	if err := raw.DecodeJSON(&e); err != nil {
		t.Fatal(err)
	}
	return e.Config.RefreshToken
}

// A rotated refresh token whose write failed lives only in memory: the
// failing request retries the write, every tick retries it, and an
// exchange's new refresh token is held the same way.
func TestHeldRefreshTokensReachStorage(t *testing.T) {
	t.Parallel()
	t.Run("the request retries a failed write", func(t *testing.T) {
		t.Parallel()
		env := newTestEnv(t)
		clk := env.useClock()
		v := rotating(t, env, "pb", standin.Behavior{Lifetime: time.Hour})
		clk.add(time.Hour)
		env.storage.failPuts.Store(1)
		tok := env.readToken(t, "pb").Data["access_token"].(string)
		if !v.Valid(tok) || v.Stats().ReuseDetections != 0 {
			t.Errorf("the read after one failed write did not hand out a valid token")
		}
	})
	t.Run("a tick stores what a failed request held", func(t *testing.T) {
		t.Parallel()
		env := newTestEnv(t)
		clk := env.useClock()
		// Tokens this short are not refreshed ahead by the tick, so only
		// its retry of held writes can store the rotated one.
		rotating(t, env, "pb", standin.Behavior{Lifetime: 2 * time.Minute})
		before := storedRefreshToken(t, env, "pb")
		clk.add(2 * time.Minute)
		env.storage.FailPut(true)
		resp, err := env.request(t, logical.ReadOperation, "token/pb", nil)
		mustErr(t, resp, err)
		env.storage.FailPut(false)
		if err := env.b.creds.Tick(context.Background(), env.storage, true); err != nil {
			t.Fatal(err)
		}
		if storedRefreshToken(t, env, "pb") == before {
			t.Errorf("the tick did not store the rotated refresh token held in memory")
		}
	})
	t.Run("an exchange whose write failed", func(t *testing.T) {
		t.Parallel()
		env := newTestEnv(t)
		v := env.penbox(t, "pb", nil)
		resp, err := env.request(t, logical.UpdateOperation, "authorize/pb", map[string]interface{}{"redirect_uri": "https://partner.example/cb"})
		if err != nil || resp.IsError() {
			t.Fatal(err, resp)
		}
		code, state := follow(t, resp.Data["url"].(string))
		env.storage.FailPut(true)
		resp, err = env.request(t, logical.UpdateOperation, "exchange/pb", map[string]interface{}{"code": code, "state": state})
		msg := mustErr(t, resp, err, "holds it in memory")
		assertNoSecrets(t, "exchange error", msg, "pb-secret")
		env.storage.FailPut(false)
		if err := env.b.creds.Tick(context.Background(), env.storage, true); err != nil {
			t.Fatal(err)
		}
		if tok := env.readToken(t, "pb").Data["access_token"].(string); !v.Valid(tok) {
			t.Errorf("the connection was lost with the failed write")
		}
		if st := v.Stats(); st.ByGrantType["authorization_code"] != 1 {
			t.Errorf("code exchanges = %d, want 1", st.ByGrantType["authorization_code"])
		}
	})
}

// Starting an authorization changes nothing that is sent to the vendor, so
// it must not lift the backoff or the unknown-outcome guard.
func TestAuthorizeKeepsTheBackoff(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	v := rotating(t, env, "pb", standin.Behavior{Lifetime: time.Hour})
	clk.add(time.Hour)
	v.SetBehavior(standin.Behavior{Rotate: true, ReuseDetection: true, Lifetime: time.Hour, FailNext: 1})
	resp, err := env.request(t, logical.ReadOperation, "token/pb", nil)
	mustErr(t, resp, err)
	n := v.Stats().Requests
	resp, err = env.request(t, logical.UpdateOperation, "authorize/pb", map[string]interface{}{"redirect_uri": "https://partner.example/cb"})
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	resp, err = env.request(t, logical.ReadOperation, "token/pb", nil)
	mustErr(t, resp, err, "not calling the vendor again before")
	if got := v.Stats().Requests; got != n {
		t.Errorf("authorize lifted the backoff: %d vendor calls, want %d", got, n)
	}
}

// Every message that shows a path shows the mount the request came
// through.
func TestMessagesNameTheRealMount(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.mount = "oauth/prod/"
	v := env.penbox(t, "pb", nil) // no refresh token yet
	env.write(t, "static", map[string]interface{}{"grant_type": "static", "access_token": "tok", "ttl": "1s", "provider": "penbox"})
	refusing := newRecordingAS(t)
	refusing.tokenCode.Store(http.StatusUnauthorized)
	if resp, err := env.request(t, logical.CreateOperation, "apps/partner", map[string]interface{}{"token_url": refusing.URL + "/token",
		"client_id": "id", "client_secret": "s", "grant_type": "client_credentials"}); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	env.write(t, "partner/a", nil)
	time.Sleep(1100 * time.Millisecond)
	v.SetBehavior(standin.Behavior{})
	cases := []struct {
		name, path string
		op         logical.Operation
		data       map[string]interface{}
		want       string
	}{
		{"unknown credential", "token/nope", logical.ReadOperation, nil, "vault write oauth/prod/config/nope"},
		{"needs reauthorization", "token/pb", logical.ReadOperation, nil, "vault write oauth/prod/authorize/pb"},
		{"static expired", "token/static", logical.ReadOperation, nil, "vault write oauth/prod/config/static"},
		{"unknown state", "exchange/pb", logical.UpdateOperation, map[string]interface{}{"code": "c", "state": "s"}, "vault write oauth/prod/authorize/pb"},
		{"config refused", "config/pb", logical.UpdateOperation, map[string]interface{}{"token_url": "http://127.0.0.1:1/x"}, "oauth/prod/config/pb was not changed"},
		// A connection's client settings are its app's.
		{"connection's client refused", "token/partner/a", logical.ReadOperation, nil, "check client_id and client_secret in oauth/prod/apps/partner;"},
		{"connecting to an unknown app", "authorize/nosuch/a", logical.UpdateOperation, map[string]interface{}{"redirect_uri": "https://partner.example/cb"}, "vault write oauth/prod/apps/nosuch"},
		{"authorizing a credential under another app", "authorize/pb", logical.UpdateOperation, map[string]interface{}{"app": "partner", "redirect_uri": "https://partner.example/cb"}, "vault write oauth/prod/config/pb app=partner"},
	}
	for _, c := range cases {
		resp, err := env.request(t, c.op, c.path, c.data)
		msg := mustErr(t, resp, err, c.want)
		if strings.Contains(msg, "vendoroauth/") {
			t.Errorf("%s: names a mount that does not exist: %s", c.name, msg)
		}
	}
}

// A refresh whose answer was lost is retried once, at once: a vendor with
// rotation leeway still takes the old refresh token, so the chain lives;
// a strict vendor refuses it and the credential needs reauthorization, as
// after any refused refresh token.
func TestLostRefreshAnswerIsRetriedOnce(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		grace       time.Duration
		retry       string // retry_lost_refresh, "" for the default
		wantToken   bool
		wantErr     string
		wantReuses  int
		wantGrace   int
		wantCalls   int
		wantBlocked bool
	}{
		{name: "vendor with a grace period", grace: 30 * time.Second, wantToken: true, wantGrace: 1, wantCalls: 2},
		{name: "strict vendor", wantErr: "needs reauthorization", wantReuses: 1, wantCalls: 2},
		{name: "retry turned off", grace: 30 * time.Second, retry: "false", wantErr: "outcome unknown", wantCalls: 1, wantBlocked: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t)
			clk := env.useClock()
			v := rotating(t, env, "pb", standin.Behavior{Lifetime: time.Hour, RotationGrace: c.grace})
			if c.retry != "" {
				env.write(t, "pb", map[string]interface{}{"retry_lost_refresh": c.retry})
			}
			clk.add(time.Hour)
			v.SetBehavior(standin.Behavior{Rotate: true, ReuseDetection: true, Lifetime: time.Hour, RotationGrace: c.grace, LoseNext: 1})
			before := v.Stats().Requests
			resp, err := env.request(t, logical.ReadOperation, "token/pb", nil)
			if c.wantToken {
				if err != nil || resp.IsError() || !v.Valid(resp.Data["access_token"].(string)) {
					t.Fatalf("want a valid token, got %v %v", err, resp)
				}
			} else {
				mustErr(t, resp, err, c.wantErr)
			}
			st := v.Stats()
			if st.Requests-before != c.wantCalls || st.ReuseDetections != c.wantReuses || st.GraceReuses != c.wantGrace {
				t.Errorf("vendor calls %d, reuse detections %d, grace reuses %d; want %d, %d, %d",
					st.Requests-before, st.ReuseDetections, st.GraceReuses, c.wantCalls, c.wantReuses, c.wantGrace)
			}
			if c.wantBlocked {
				clk.add(10 * time.Minute)
				resp, err := env.request(t, logical.ReadOperation, "token/pb", nil)
				mustErr(t, resp, err, "refresh/pb to try once")
				if got := v.Stats().Requests - before; got != c.wantCalls {
					t.Errorf("with retries off the plugin retried on its own")
				}
			}
		})
	}
}

// expires_at counts from when the request was sent: the vendor's
// expires_in starts then, and an expiry counted from the answer's arrival
// is late by the round trip.
func TestExpiryCountsFromTheRequest(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	var sent time.Time
	env.b.creds.SetTestHooks(backend.TestHooks{BeforeVendorCall: func(string) {
		sent = clk.now()
		clk.add(10 * time.Second) // the round trip
	}})
	env.officernd(t, "o", nil)
	exp := env.readToken(t, "o").Data["expires_at"].(string)
	if want := sent.Add(3599 * time.Second).UTC().Format(time.RFC3339); exp != want {
		t.Errorf("expires_at = %s, want %s (sent + expires_in)", exp, want)
	}
}

// grant_type_in_query and expiry_skew overrides go back to the preset's
// default with "", like every other field.
func TestTypedOverridesResetToPreset(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.write(t, "bp", map[string]interface{}{
		"provider": "boldpenguin", "client_id": "id", "client_secret": "s", "api_key": "k",
		"grant_type_in_query": false, "expiry_skew": "5s", "retry_lost_refresh": false,
	})
	read := func() map[string]interface{} {
		resp, err := env.request(t, logical.ReadOperation, "config/bp", nil)
		if err != nil || resp.IsError() {
			t.Fatal(err, resp)
		}
		return resp.Data
	}
	if d := read(); d["grant_type_in_query"] != false || d["expiry_skew"] != int64(5) || d["retry_lost_refresh"] != false {
		t.Fatalf("overrides not applied: %v", d)
	}
	env.write(t, "bp", map[string]interface{}{"grant_type_in_query": "", "expiry_skew": "", "retry_lost_refresh": ""})
	if d := read(); d["grant_type_in_query"] != true || d["expiry_skew"] != int64(30) || d["retry_lost_refresh"] != true {
		t.Errorf("\"\" did not return to the preset's defaults: %v", d)
	}
}

// newHTTPServer serves h on loopback for the test and returns its URL.
func newHTTPServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// newTestEnvOver is a second backend over env's storage and vendors: the
// plugin after a restart, or another node of the cluster.
func newTestEnvOver(t *testing.T, env *testEnv) *testEnv {
	t.Helper()
	other := newTestEnv(t)
	other.storage = env.storage
	other.vendors, other.url = env.vendors, env.url
	return other
}

// Routing headers would send every secret of the request to another
// tenant behind the same front end without changing token_url.
func TestRoutingHeadersAreRefused(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.officernd(t, "o", nil)
	for _, h := range []string{"Host", "host", "X-Forwarded-Host", "Forwarded"} {
		resp, err := env.request(t, logical.UpdateOperation, "config/o", map[string]interface{}{"extra_headers": h + "=attacker.example"})
		mustErr(t, resp, err, "was not changed", "would change where the request goes")
	}
}

// A reload, seal or unmount while the vendor is answering a rotation must
// still store the refresh token in that answer.
func TestCloseLetsARotationInFlightFinish(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	v := rotating(t, env, "pb", standin.Behavior{Lifetime: time.Hour})
	clk.add(time.Hour)
	v.SetBehavior(standin.Behavior{Rotate: true, ReuseDetection: true, Lifetime: time.Hour, LateAnswer: 400 * time.Millisecond})
	inCall := make(chan struct{})
	signal := signalOnce(inCall)
	env.b.creds.SetTestHooks(backend.TestHooks{BeforeVendorCall: func(string) { signal() }})
	done := make(chan struct{})
	go func() { defer close(done); env.request(t, logical.ReadOperation, "token/pb", nil) }()
	waitFor(t, "the refresh to be sent", inCall)
	time.Sleep(100 * time.Millisecond) // the vendor has rotated; its answer is on the way
	env.b.clean(context.Background())
	<-done
	fresh := newTestEnvOver(t, env)
	fresh.b.creds.SetClock(clk.now)
	if _, err := fresh.b.creds.Refresh(context.Background(), env.storage, "pb", true); err != nil {
		t.Fatalf("after the reload the stored refresh token was refused: %v", err)
	}
	if st := v.Stats(); st.ReuseDetections != 0 {
		t.Errorf("the reload lost the rotation: %d reuse detections", st.ReuseDetections)
	}
}

// A preset without refresh tokens cannot connect an account, and a stored
// config that no longer resolves can still be fixed without a panic.
func TestConnectingNeedsRefreshTokensAndBrokenConfigsCanBeFixed(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.officernd(t, "o", map[string]interface{}{"authorize_url": "https://auth.example/authorize"})
	resp, err := env.request(t, logical.UpdateOperation, "authorize/o", map[string]interface{}{"redirect_uri": "https://cb.example/cb"})
	mustErr(t, resp, err, "does not take refresh tokens")

	// As an exchange on such a preset used to leave it.
	e, err := env.b.creds.Get(context.Background(), env.storage, "o")
	if err != nil {
		t.Fatal(err)
	}
	broken := *e
	broken.Config.GrantType = "refresh_token"
	raw, _ := json.Marshal(&broken)
	if err := env.storage.InmemStorage.Put(context.Background(), &logical.StorageEntry{Key: store.EntryPrefix + "o", Value: raw}); err != nil {
		t.Fatal(err)
	}
	env.b.invalidate(context.Background(), store.EntryPrefix+"o")
	resp, err = env.request(t, logical.UpdateOperation, "config/o", map[string]interface{}{"grant_type": "client_credentials"})
	if err != nil {
		t.Fatalf("fixing a config that does not resolve: %v", err)
	}
	_ = resp
}

// The stop after a lost answer holds across a restart: it lives in
// storage, not only in the node's memory.
func TestUnknownOutcomeSurvivesARestart(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	v := rotating(t, env, "pb", standin.Behavior{Lifetime: time.Hour})
	env.write(t, "pb", map[string]interface{}{"retry_lost_refresh": "false"})
	clk.add(time.Hour)
	v.SetBehavior(standin.Behavior{Rotate: true, ReuseDetection: true, Lifetime: time.Hour, LoseNext: 1})
	resp, err := env.request(t, logical.ReadOperation, "token/pb", nil)
	mustErr(t, resp, err, "outcome unknown")
	before := v.Stats().Requests
	fresh := newTestEnvOver(t, env)
	fresh.b.creds.SetClock(clk.now)
	resp, err = fresh.request(t, logical.ReadOperation, "token/pb", nil)
	mustErr(t, resp, err, "does not retry on its own", "refresh/pb to try once")
	if v.Stats().Requests != before {
		t.Errorf("after a restart the plugin presented a refresh token whose outcome was unknown")
	}
	// One deliberate try is one request, and its answer clears the stop.
	v.SetBehavior(standin.Behavior{Rotate: true, ReuseDetection: true, Lifetime: time.Hour, RotationGrace: time.Minute})
	if _, err := fresh.b.creds.Refresh(context.Background(), env.storage, "pb", true); err != nil {
		t.Errorf("the deliberate try, within the vendor's grace: %v", err)
	}
	if got := v.Stats().Requests - before; got != 1 {
		t.Errorf("a forced refresh made %d requests, want 1", got)
	}
}

// A background refresh whose answer timed out is retried once at once,
// even when the background work was told to start nothing more meanwhile.
func TestTickRetriesATimedOutRefresh(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	v := rotating(t, env, "pb", standin.Behavior{Lifetime: time.Hour, RotationGrace: 30 * time.Second})
	env.readToken(t, "pb") // a cache hit: in use
	env.b.creds.SetClient(tokenclient.New(tokenclient.WithTimeout(300 * time.Millisecond)))
	clk.add(3450 * time.Second)
	v.SetBehavior(standin.Behavior{Rotate: true, ReuseDetection: true, Lifetime: time.Hour, RotationGrace: 30 * time.Second, LateAnswer: time.Second})
	before := v.Stats().Requests
	// Stops new calls after 200 ms: enough to start one call, not to wait
	// for its 300 ms timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	go func() {
		time.Sleep(350 * time.Millisecond)
		v.SetBehavior(standin.Behavior{Rotate: true, ReuseDetection: true, Lifetime: time.Hour, RotationGrace: 30 * time.Second})
	}()
	if err := env.b.creds.RefreshDue(ctx, env.storage); err != nil {
		t.Fatal(err)
	}
	if got := v.Stats().Requests - before; got != 2 {
		t.Errorf("%d vendor calls, want the call and its retry", got)
	}
	if st := v.Stats(); st.ReuseDetections != 0 || st.GraceReuses != 1 {
		t.Errorf("reuse detections %d, grace reuses %d; want 0, 1", st.ReuseDetections, st.GraceReuses)
	}
}

// A reader whose request ended does not wait for a slow vendor; the
// refresh goes on without it.
func TestReaderStopsWaitingWhenItsRequestEnds(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.officernd(t, "o", nil)
	inCall, release := make(chan struct{}), make(chan struct{})
	signal := signalOnce(inCall)
	env.b.creds.SetTestHooks(backend.TestHooks{BeforeVendorCall: func(string) { signal(); <-release }})
	defer close(release)
	go env.request(t, logical.ReadOperation, "token/o", nil)
	waitFor(t, "the vendor call", inCall)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := env.b.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "token/o", Storage: env.storage, MountPoint: "vendoroauth/"})
		if err == nil {
			t.Errorf("want the request's own deadline error")
		}
	}()
	waitFor(t, "the reader to give up with its request", done)
}

// refresh/<name> after a lost answer is one deliberate try: one request.
func TestForcedRefreshIsOneRequest(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	v := rotating(t, env, "pb", standin.Behavior{Lifetime: time.Hour})
	v.SetBehavior(standin.Behavior{Rotate: true, ReuseDetection: true, Lifetime: time.Hour, LoseNext: 2})
	before := v.Stats().Requests
	env.request(t, logical.UpdateOperation, "refresh/pb", nil)
	if n := v.Stats().Requests - before; n != 1 {
		t.Errorf("a forced refresh made %d requests, want 1", n)
	}
}

// When a vendor seen to rotate refresh tokens refuses one, it has most
// likely revoked the whole chain: the access token that came with it is
// not handed out any more, stale or not.
func TestRefusedRotatingChainStopsHandingOutItsToken(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	v := rotating(t, env, "pb", standin.Behavior{Lifetime: time.Hour})
	v.RevokeRefreshToken(storedRefreshToken(t, env, "pb"))
	resp, err := env.request(t, logical.UpdateOperation, "refresh/pb", nil)
	mustErr(t, resp, err, "needs reauthorization")
	resp, err = env.request(t, logical.ReadOperation, "token/pb", nil)
	mustErr(t, resp, err, "needs reauthorization", "vault write vendoroauth/authorize/pb")
}

// An answer with a new refresh token but an unusable field (here a
// malformed expires_in) still rotated the refresh token at the vendor:
// the new one is kept.
func TestUnusableAnswerKeepsItsRefreshToken(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	v := env.vendors.Vendor("generic")
	v.AddClient(standin.Client{ID: "g-id", Secret: "g-secret"})
	v.SetBehavior(standin.Behavior{Rotate: true, ReuseDetection: true, Lifetime: time.Hour})
	env.write(t, "g", map[string]interface{}{"token_url": env.url + v.TokenPath(), "client_id": "g-id", "client_secret": "g-secret",
		"grant_type": "refresh_token", "refresh_token": v.IssueRefreshToken("g-id")})
	env.readToken(t, "g")
	clk.add(time.Hour)
	v.SetBehavior(standin.Behavior{Rotate: true, ReuseDetection: true, Lifetime: time.Hour, ExpiresInFormat: "duration"})
	resp, err := env.request(t, logical.ReadOperation, "token/g", nil)
	msg := mustErr(t, resp, err, "unusable")
	assertNoSecrets(t, "the error", msg, storedRefreshToken(t, env, "g"))
	v.SetBehavior(standin.Behavior{Rotate: true, ReuseDetection: true, Lifetime: time.Hour})
	clk.add(10 * time.Minute) // past the backoff
	if tok := env.readToken(t, "g").Data["access_token"].(string); !v.Valid(tok) || v.Stats().ReuseDetections != 0 {
		t.Errorf("the refresh token from the unusable answer was lost")
	}
}
