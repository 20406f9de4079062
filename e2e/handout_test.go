//go:build e2e

package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// TestHandOutNearTheLimit checks the hand-out rule's two numbers in the
// real server: an hour-long token in use, with default settings, is
// scheduled for its refresh ahead at no less than 95% of its life
// (status next_refresh_at), and 20 s tokens with expiry_skew=1s read by 16
// readers are replaced no earlier than at 90% of their life. It runs in
// parallel with the other parallel tests, on names and a stand-in of its
// own, for 2.5 lives of the 20 s tokens.
func TestHandOutNearTheLimit(t *testing.T) {
	t.Parallel()
	vs := standin.New()
	base, err := vs.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vs.Close()

	// An hour-long token, read twice (the read that obtained it does not
	// count as use).
	hour := vs.Vendor(standin.VendorGeneric)
	hour.AddClient(standin.Client{ID: "handout-hour", Secret: "handout-hour-secret-Qa3"})
	writeConfig(t, "handout-hour", map[string]interface{}{
		"token_url": base + hour.TokenPath(), "client_id": "handout-hour", "client_secret": "handout-hour-secret-Qa3",
	})
	t.Cleanup(func() { call(t, "DELETE", mount+"/config/handout-hour", nil) })
	sent := time.Now()
	first := readToken(t, "handout-hour")
	readToken(t, "handout-hour")
	exp, ok := hour.TokenExpiry(str(first.Data["access_token"]))
	if !ok {
		t.Fatal("the hour-long token is not one the stand-in issued")
	}
	life := exp.Sub(sent)
	status, cr, raw := call(t, "GET", mount+"/config/handout-hour", nil)
	if status != 200 {
		t.Fatalf("config/handout-hour: HTTP %d %s", status, raw)
	}
	next, err := time.Parse(time.RFC3339, str(cr.Data["next_refresh_at"]))
	if err != nil {
		t.Fatalf("next_refresh_at %q of a token in use: %v", cr.Data["next_refresh_at"], err)
	}
	share := float64(next.Sub(sent)) / float64(life)
	t.Logf("an hour-long token in use (life %s) is refreshed ahead at %s, %.2f%% of its life", life.Round(time.Second), next.Format(time.RFC3339), share*100)
	if share < 0.95 {
		t.Errorf("an hour-long token is refreshed ahead at %.2f%% of its life, want at least 95%%", share*100)
	}

	// 20 s tokens under 16 readers.
	const (
		lifetime = 20 * time.Second
		readers  = 16
		run      = 50 * time.Second
	)
	short := vs.Vendor(standin.VendorOfficeRnD)
	short.AddClient(standin.Client{ID: "handout-short", Secret: "handout-short-secret-Wd8", Scopes: []string{"officernd.api.read"}})
	short.SetBehavior(standin.Behavior{Lifetime: lifetime})
	writeConfig(t, "handout-short", map[string]interface{}{
		"provider": "officernd", "token_url": base + short.TokenPath(), "client_id": "handout-short",
		"client_secret": "handout-short-secret-Wd8", "scopes": "officernd.api.read", "expiry_skew": "1s",
	})
	t.Cleanup(func() { call(t, "DELETE", mount+"/config/handout-short", nil) })
	read := readLeased(mount + "/token/handout-short")
	var (
		mu        sync.Mutex
		firstSeen = map[string]time.Time{}
		order     []string
		failed    int
	)
	ctx, cancel := context.WithTimeout(context.Background(), run)
	defer cancel()
	var wg sync.WaitGroup
	for r := 0; r < readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				lt, err := read(ctx)
				at := time.Now()
				mu.Lock()
				switch {
				case err != nil && ctx.Err() == nil:
					failed++
				case err == nil && firstSeen[lt.Token].IsZero():
					firstSeen[lt.Token] = at
					order = append(order, lt.Token)
				}
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if failed > 0 {
		t.Errorf("%d reads failed", failed)
	}
	if len(order) < 3 {
		t.Fatalf("%d tokens in %s of %s tokens, want at least 3", len(order), run, lifetime)
	}
	for i := 1; i < len(order); i++ {
		exp, _ := short.TokenExpiry(order[i-1])
		issued := exp.Add(-lifetime)
		share := float64(firstSeen[order[i]].Sub(issued)) / float64(lifetime)
		t.Logf("token %d replaced at %.1f%% of its life", i, share*100)
		if share < 0.90 {
			t.Errorf("token %d of a 20 s life with expiry_skew=1s was replaced at %.1f%% of its life, want at least 90%%", i, share*100)
		}
	}
	if st := short.Stats(); st.Requests != len(order) {
		t.Errorf("the vendor saw %d token requests for %d tokens", st.Requests, len(order))
	}
}
