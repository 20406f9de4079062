//go:build e2e

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// TestRotationStress has 64 readers read one refresh-token credential for
// a minute, through the real Vault, while the vendor rotates the refresh
// token on every refresh, revokes the whole chain if a rotated-away one is
// presented again, and issues tokens that live 5 seconds. Every read must
// succeed with a token that has not expired when the answer arrives, the
// vendor must never see a refresh token twice, and the readers' load must
// not turn into more vendor calls than one per token hand-out life.
func TestRotationStress(t *testing.T) {
	vaulttest.SkipOn(t, vaulttest.FlavorOpenBao, "a soak that exercises the plugin, not the server: it runs against Vault only, to keep CI within its time (README, Works with OpenBao)")
	const (
		readers  = 64
		duration = 60 * time.Second
		lifetime = 5 * time.Second
		// The vendor takes this long to answer, so that many readers
		// arrive while a refresh is in flight and must wait for it.
		vendorDelay = 200 * time.Millisecond
		name        = "stress-rotation"
		clientID    = "stress-rotation-client"
	)
	// handout is how long the plugin hands out one token (its life minus
	// the default expiry_skew and the last stretch it never hands out),
	// taken from the plugin's own rule, model.Lease. A refresh is due
	// once per handout, so a correct plugin makes at most
	// elapsed/handout + 1.
	handout := handoutLife(lifetime)

	secret := "stress-secret-" + randomHex(12)
	vs := standin.New()
	base, err := vs.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vs.Close()
	v := vs.Vendor(standin.VendorPenbox)
	v.AddClient(standin.Client{ID: clientID, Secret: secret})
	firstRT := v.IssueRefreshToken(clientID)
	v.SetBehavior(standin.Behavior{Lifetime: lifetime, Rotate: true, ReuseDetection: true, Delay: vendorDelay})

	writeConfig(t, name, map[string]interface{}{
		"provider":      "penbox",
		"token_url":     base + v.TokenPath(),
		"client_id":     clientID,
		"client_secret": secret,
		"refresh_token": firstRT,
	})
	t.Cleanup(func() { call(t, "DELETE", mount+"/config/"+name, nil) })

	type failure struct {
		at  time.Time
		msg string
	}
	var (
		mu       sync.Mutex
		reads    int
		failures []failure
		tokens   = map[string]int{}
		maxWait  time.Duration
	)
	fail := func(msg string) {
		mu.Lock()
		failures = append(failures, failure{time.Now(), msg})
		mu.Unlock()
	}
	start := time.Now()
	deadline := start.Add(duration)
	var wg sync.WaitGroup
	for w := 0; w < readers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := mrand.New(mrand.NewSource(int64(w) + time.Now().UnixNano()))
			for time.Now().Before(deadline) {
				sent := time.Now()
				status, out, err := vault.Raw("GET", mount+"/token/"+name, nil)
				arrived := time.Now()
				var r apiResponse
				if err == nil && len(out) > 0 {
					err = json.Unmarshal(out, &r)
				}
				switch {
				case status != 200 || err != nil:
					fail(fmt.Sprintf("HTTP %d %v %v", status, r.Errors, err))
				default:
					tok := str(r.Data["access_token"])
					exp, ok := v.TokenExpiry(tok)
					switch {
					case !ok:
						fail("a token the vendor never issued")
					case !arrived.Before(exp):
						fail(fmt.Sprintf("EXPIRED: the token expired %s before the answer arrived", arrived.Sub(exp)))
					default:
						mu.Lock()
						reads++
						tokens[tok]++
						if d := arrived.Sub(sent); d > maxWait {
							maxWait = d
						}
						mu.Unlock()
					}
				}
				// A short pause keeps 64 readers from burying two cores
				// in lease bookkeeping; each still reads many times per
				// token.
				time.Sleep(time.Duration(20+rng.Intn(30)) * time.Millisecond)
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)

	st := v.Stats()
	refreshes := st.ByGrantType["refresh_token"]
	seen := map[string]int{}
	for _, req := range v.Requests() {
		if rt := req.Form["refresh_token"]; rt != "" {
			seen[rt]++
		}
	}
	t.Logf("%d readers for %s: %d good reads, %d failed; %d distinct tokens; slowest good read %s",
		readers, elapsed.Round(100*time.Millisecond), reads, len(failures), len(tokens), maxWait.Round(time.Millisecond))
	t.Logf("vendor: %d token requests, %d refreshes, %d reuse detections, failures %v; %d distinct refresh tokens presented",
		st.Requests, refreshes, st.ReuseDetections, st.Failures, len(seen))

	for i, f := range failures {
		if i == 10 {
			t.Errorf("… and %d more failed reads", len(failures)-10)
			break
		}
		t.Errorf("read failed at +%s: %s", f.at.Sub(start).Round(time.Millisecond), f.msg)
	}
	if st.ReuseDetections != 0 {
		t.Errorf("the vendor detected reuse of a rotated-away refresh token %d times", st.ReuseDetections)
	}
	if len(st.Failures) != 0 {
		t.Errorf("the vendor refused token requests: %v", st.Failures)
	}
	for rt, n := range seen {
		if n > 1 {
			t.Errorf("a refresh token was presented %d times (the configured one: %v)", n, rt == firstRT)
		}
	}
	// A refresh per hand-out life, plus the first grant.
	bound := int(elapsed/handout) + 1
	lifetimes := int(elapsed/lifetime) + 1
	t.Logf("refreshes %d: bound %d (one per %s hand-out life, plus one); %d lifetimes of %s elapsed, plus one",
		refreshes, bound, handout, lifetimes, lifetime)
	if refreshes > bound {
		t.Errorf("%d refreshes in %s: more than one per %s hand-out life plus one (%d): concurrent readers were not collapsed into one vendor call",
			refreshes, elapsed.Round(time.Second), handout, bound)
	}
	// Fewer means the test did not exercise rotation, or handed out
	// tokens past their hand-out life.
	if least := int(elapsed/(handout+vendorDelay+time.Second)) - 1; refreshes < least {
		t.Errorf("only %d refreshes in %s, expected at least %d", refreshes, elapsed.Round(time.Second), least)
	}
	if reads < readers*10 {
		t.Errorf("only %d good reads: the readers did not run", reads)
	}
	if t.Failed() {
		counts := make([]int, 0, len(tokens))
		for _, n := range tokens {
			counts = append(counts, n)
		}
		sort.Ints(counts)
		t.Logf("reads per token: %v", counts)
	}
}

// randomHex returns n random bytes in hex, for secrets that must be
// unmistakable when found in a log.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// handoutLife is how long after it is obtained a token that lives life
// stops being handed out under the default settings.
func handoutLife(life time.Duration) time.Duration {
	t0 := time.Unix(0, 0)
	tok := &model.Token{ObtainedAt: t0, ExpiresAt: t0.Add(life)}
	s := &model.Settings{ExpirySkew: model.DefaultExpirySkew}
	at := time.Duration(0)
	for ; at < life; at += 10 * time.Millisecond {
		if _, ok := model.Lease(tok, s, t0.Add(at)); !ok {
			break
		}
	}
	return at
}
