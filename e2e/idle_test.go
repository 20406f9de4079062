//go:build e2e

package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// Idle credentials cost nothing.
//
// Before "refresh ahead only what is used" (the rule of commit 42cb963 and
// up to e6ae337), every token that lived at least 5 minutes was put on the
// proactive schedule when it was obtained, read or not: due "the tick
// before the hand-out end", where the hand-out end came once less than a
// fifth of the full lease was left,
//
//	H_old = expiry − s − (L − s)/5          (s = expiry_skew, at most L/10)
//	due   = H_old − 1 min, refreshed by the first tick at or after it,
//
// and the tick came once a minute, so every such token was refreshed at
// the latest by H_old. For the shortest token the old rule refreshed (L =
// 5 min, the default 30 s skew) that is 300 − 30 − 54 = 216 s after it was
// obtained: a window of 4 unread minutes holds at least one vendor call
// per credential under the old rule, and must hold none now.
const (
	idleCredentials = 100
	idleLifetime    = 5 * time.Minute
	idleWindow      = 4 * time.Minute
)

// oldRuleRefreshedBy is when, after a token of life life was obtained, the
// old rule had refreshed it at the latest (H_old above), or zero for a
// token it never refreshed ahead.
func oldRuleRefreshedBy(life, skew time.Duration) time.Duration {
	if life < 5*time.Minute {
		return 0
	}
	skew = min(skew, life/10)
	return life - skew - (life-skew)/5
}

// TestIdleCredentialsMakeNoVendorCalls writes 100 client-credentials
// credentials whose tokens live 5 minutes, reads each once, and leaves
// them unread for 4 minutes in the real Vault: the vendor must see the
// 100 first grants and nothing more, and no credential may be on the
// proactive schedule. It runs in parallel with the other parallel tests:
// it only waits, on names and a stand-in of its own.
func TestIdleCredentialsMakeNoVendorCalls(t *testing.T) {
	vaulttest.SkipOn(t, vaulttest.FlavorOpenBao, "a soak that exercises the plugin, not the server: it runs against Vault only, to keep CI within its time (README, Works with OpenBao)")
	t.Parallel()
	by := oldRuleRefreshedBy(idleLifetime, model.DefaultExpirySkew)
	if by == 0 || idleWindow < by+10*time.Second {
		t.Fatalf("the window (%s) must hold the old rule's refresh of %s tokens (by %s after they were obtained), with room for its tick to finish", idleWindow, idleLifetime, by)
	}
	testStart := time.Now()

	vs := standin.New()
	base, err := vs.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vs.Close()
	v := vs.Vendor(standin.VendorGeneric)
	const clientID, secret = "idle-client", "idle-secret-Xq4"
	v.AddClient(standin.Client{ID: clientID, Secret: secret})
	v.SetBehavior(standin.Behavior{Lifetime: idleLifetime})

	names := make([]string, idleCredentials)
	for i := range names {
		names[i] = fmt.Sprintf("idle-%03d", i)
	}
	each := func(f func(name string) error) {
		t.Helper()
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			first error
			next  = make(chan string)
		)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for name := range next {
					if err := f(name); err != nil {
						mu.Lock()
						if first == nil {
							first = err
						}
						mu.Unlock()
					}
				}
			}()
		}
		for _, name := range names {
			next <- name
		}
		close(next)
		wg.Wait()
		if first != nil {
			t.Fatal(first)
		}
	}
	t.Cleanup(func() {
		for _, name := range names {
			_, _, _ = vault.Raw("DELETE", mount+"/config/"+name, nil)
		}
	})
	each(func(name string) error {
		body := fmt.Sprintf(`{"token_url":%q,"client_id":%q,"client_secret":%q}`, base+v.TokenPath(), clientID, secret)
		status, out, err := vault.Raw("POST", mount+"/config/"+name, []byte(body))
		if err != nil || status/100 != 2 {
			return fmt.Errorf("writing config/%s: HTTP %d %s %v", name, status, out, err) //nolint:errorlint // err is nil when the status is what failed
		}
		return nil
	})
	each(func(name string) error {
		status, out, err := vault.Raw("GET", mount+"/token/"+name, nil)
		if err != nil || status != 200 {
			return fmt.Errorf("reading token/%s: HTTP %d %s %v", name, status, out, err) //nolint:errorlint // err is nil when the status is what failed
		}
		return nil
	})
	read := time.Now()
	if st := v.Stats(); st.Requests != idleCredentials || st.Grants != idleCredentials {
		t.Fatalf("the first reads made %d vendor requests (%d grants), want %d", st.Requests, st.Grants, idleCredentials)
	}
	t.Logf("%d credentials written and read once by +%s; now left unread for %s (the old rule would have refreshed each by %s after its token was obtained)",
		idleCredentials, read.Sub(testStart).Round(time.Millisecond), idleWindow, by)

	// Nothing may be scheduled: the read that obtained a token does not
	// make it in use.
	checkStatus := func(when string) {
		t.Helper()
		status, r, body := call(t, "GET", mount+"/status", nil)
		if status != 200 {
			t.Fatalf("status: HTTP %d %s", status, body)
		}
		creds, _ := r.Data["credentials"].(map[string]interface{})
		bad := 0
		for _, name := range names {
			c, ok := creds[name].(map[string]interface{})
			if !ok {
				t.Fatalf("status has no %s", name)
			}
			reads, _ := c["reads"].(float64)
			grants, _ := c["upstream_grants"].(float64)
			next := str(c["next_refresh_at"])
			if reads != 1 || grants != 1 || next != "" {
				if bad++; bad <= 5 {
					t.Errorf("%s: %s: reads %v, upstream_grants %v, next_refresh_at %q; want 1, 1 and none", when, name, reads, grants, next)
				}
			}
		}
		if bad > 5 {
			t.Errorf("%s: … %d credentials in all", when, bad)
		}
	}
	checkStatus("after the first reads")

	// Watch the vendor through the window, so a regression fails at
	// once rather than at the end.
	deadline := read.Add(idleWindow)
	for time.Now().Before(deadline) {
		time.Sleep(min(15*time.Second, time.Until(deadline)))
		if st := v.Stats(); st.Requests != idleCredentials {
			last, _ := v.LastRequest()
			t.Fatalf("at +%s of the unread window the vendor has seen %d requests, %d more than the first reads (the last at +%s, %s)",
				time.Since(read).Round(time.Second), st.Requests, st.Requests-idleCredentials, last.At.Sub(read).Round(time.Second), last.Form["grant_type"])
		}
	}
	st := v.Stats()
	t.Logf("after %s unread: %d vendor requests in all (%d in the window); test took %s",
		time.Since(read).Round(time.Second), st.Requests, st.Requests-idleCredentials, time.Since(testStart).Round(time.Second))
	checkStatus("at the end of the window")
}
