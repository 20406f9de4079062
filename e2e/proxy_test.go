//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/bootstrap"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// TestProxyCachesTokens runs the shipped bootstrap/proxy/vault-proxy.hcl
// (only its listener moved to a free port) in a real `vault proxy` (`bao
// proxy` with OpenBao), the same binary as the server, with the shipped
// reader policy in its auto-auth token, in front of the plugin:
//
//  1. 1,000 reads of one token through the proxy within a lease reach the
//     plugin once: the plugin's own read counter (status, read from Vault
//     directly) goes up by one, and every answer is the same lease;
//  2. once the token is past its hand-out end, the next read through the
//     proxy returns a new token, valid at the vendor;
//  3. readers hammering the proxy for two more token lives never get an
//     expired token, nor one with less than expiry_skew of its life left
//     (every lease ends by then), nor, 2 s past a token's hand-out
//     end (a lease handed out just before it may run a second more,
//     ending by the skew, and the proxy may serve it), the old token.
//
// Tokens live 20 s (expiry_skew=1s) so that the test takes about a
// minute. It runs in parallel with the other parallel tests, on a name,
// a policy and a stand-in of its own.
func TestProxyCachesTokens(t *testing.T) {
	t.Parallel()
	const (
		name     = "proxy-demo"
		clientID = "proxy-client"
		secret   = "proxy-secret-Lm8"
		lifetime = 20 * time.Second
		skew     = time.Second
		first    = 1000
		hammer   = 2 * lifetime
		readers  = 4
	)
	testStart := time.Now()
	vs := standin.New()
	base, err := vs.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vs.Close()
	v := vs.Vendor(standin.VendorGeneric)
	v.AddClient(standin.Client{ID: clientID, Secret: secret})
	v.SetBehavior(standin.Behavior{Lifetime: lifetime})
	writeConfig(t, name, map[string]interface{}{
		"token_url":     base + v.TokenPath(),
		"client_id":     clientID,
		"client_secret": secret,
		"expiry_skew":   skew.String(),
	})
	t.Cleanup(func() { call(t, "DELETE", mount+"/config/"+name, nil) })
	policy, err := bootstrap.ReaderPolicy(mount, name)
	if err != nil {
		t.Fatal(err)
	}
	putPolicyForTest(t, bootstrap.ReaderPolicyName(name), policy)
	token := tokenWithPolicies(t, false, bootstrap.ReaderPolicyName(name))

	port, err := vaulttest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	cfg, err := vaulttest.ProxyConfig(listen)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := vaulttest.StartProxy(vaulttest.ProxyOptions{
		Dir: t.TempDir(), Config: cfg, Listen: listen, VaultAddr: vault.Addr, Token: token, LogLevel: "debug",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		proxy.Stop()
		if t.Failed() {
			t.Logf("vault proxy output (tail):\n%s", tail(proxy.Log(), 80))
		}
	}()
	t.Logf("proxy up at %s in %s", proxy.Addr, time.Since(testStart).Round(100*time.Millisecond))

	// The plugin's own count of token reads for the name.
	pluginReads := func() int {
		t.Helper()
		status, r, body := call(t, "GET", mount+"/status", nil)
		c, ok := r.Data["credentials"].(map[string]interface{})[name].(map[string]interface{})
		if status != 200 || !ok {
			t.Fatalf("status: HTTP %d %s", status, body)
		}
		n, _ := c["reads"].(float64)
		return int(n)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	type answer struct {
		sent, arrived time.Time
		token, lease  string
		ttl           int
		cached        bool // the proxy answered from its cache (X-Cache: HIT)
		problem       string
	}
	var (
		mu      sync.Mutex
		answers []answer
	)
	read := func() answer {
		a := answer{sent: time.Now()}
		status, body, hdr, err := proxy.Get(context.Background(), hc, mount+"/token/"+name)
		a.arrived = time.Now()
		var r apiResponse
		if err == nil && status == 200 {
			err = json.Unmarshal(body, &r)
		}
		switch {
		case err != nil || status != 200:
			a.problem = fmt.Sprintf("HTTP %d %.200s %v", status, body, err)
		default:
			a.token, a.lease, a.ttl = str(r.Data["access_token"]), r.LeaseID, r.LeaseDuration
			a.cached = hdr.Get("X-Cache") == "HIT"
			exp, ok := v.TokenExpiry(a.token)
			switch {
			case !ok:
				a.problem = "a token the vendor never issued"
			case !a.arrived.Before(exp) || !v.Valid(a.token):
				a.problem = fmt.Sprintf("EXPIRED: a token that expired %s before the answer arrived", a.arrived.Sub(exp).Round(time.Millisecond))
			}
		}
		mu.Lock()
		answers = append(answers, a)
		mu.Unlock()
		return a
	}
	// hOf is the latest the plugin hands a token out: its vendor expiry
	// minus the skew and the margin, 3% of the life but at least 1 s for
	// these 20 s tokens (backend/lease.go; the plugin counts the token's life from when it
	// sent the request, a little before the vendor issued it, so its own
	// hand-out end is no later than this).
	hOf := func(tok string) time.Time {
		exp, _ := v.TokenExpiry(tok)
		return exp.Add(-skew - max(lifetime*3/100, time.Second))
	}

	// 1. One token, 1,000 reads, one plugin read.
	before := pluginReads()
	a0 := read()
	if a0.problem != "" {
		t.Fatalf("the first read through the proxy: %s", a0.problem)
	}
	var wg sync.WaitGroup
	next := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				read()
			}
		}()
	}
	for i := 1; i < first; i++ {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	phase1 := time.Now()
	reached := pluginReads() - before
	mu.Lock()
	burst := append([]answer(nil), answers...)
	mu.Unlock()
	var other, cachedN int
	for _, a := range burst {
		if a.problem != "" {
			t.Errorf("read through the proxy at %s: %s", a.arrived.Format("15:04:05.000"), a.problem)
		}
		if a.token != a0.token || a.lease != a0.lease {
			other++
		}
		if a.cached {
			cachedN++
		}
	}
	t.Logf("1. %d reads through the proxy in %s (lease %ds, hand-out end in %s): %d reached the plugin (status reads), %d answered from the proxy's cache (X-Cache: HIT), %d with another token or lease",
		len(burst), phase1.Sub(a0.sent).Round(time.Millisecond), a0.ttl, time.Until(hOf(a0.token)).Round(100*time.Millisecond), reached, cachedN, other)
	if reached != 1 {
		t.Errorf("%d reads through the proxy within one lease reached the plugin %d times, want once", len(burst), reached)
	}
	if other != 0 || cachedN != len(burst)-1 {
		t.Errorf("%d of %d answers were not the first one's token and lease, %d were from the cache; want all the same, all but the first cached", other, len(burst), cachedN)
	}

	// 2. Past the hand-out end, a new token.
	h0 := hOf(a0.token)
	time.Sleep(time.Until(h0.Add(50 * time.Millisecond)))
	before = pluginReads()
	a1 := read()
	switch {
	case a1.problem != "":
		t.Errorf("2. the first read past the hand-out end: %s", a1.problem)
	case a1.token == a0.token:
		t.Errorf("2. the first read %s past the hand-out end returned the old token (lease %ds, cached %v)", a1.sent.Sub(h0).Round(time.Millisecond), a1.ttl, a1.cached)
	default:
		t.Logf("2. the first read %s past the hand-out end got a new token, valid at the vendor, under a %ds lease (reached the plugin: %d read)",
			a1.sent.Sub(h0).Round(time.Millisecond), a1.ttl, pluginReads()-before)
	}

	// 3. Readers hammer the proxy for two more token lives.
	before = pluginReads()
	mu.Lock()
	from := len(answers)
	mu.Unlock()
	stop := time.Now().Add(hammer)
	for w := 0; w < readers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(time.Now().UnixNano() + int64(w)))
			for time.Now().Before(stop) {
				read()
				time.Sleep(time.Duration(20+rng.Intn(60)) * time.Millisecond)
			}
		}(w)
	}
	wg.Wait()
	reached = pluginReads() - before
	mu.Lock()
	ham := append([]answer(nil), answers[from:]...)
	all := append([]answer(nil), answers...)
	mu.Unlock()
	type served struct {
		first, last time.Time
		n, cached   int
	}
	byToken := map[string]*served{}
	var order []string
	for _, a := range ham {
		if a.problem != "" {
			t.Errorf("3. read through the proxy at %s: %s", a.arrived.Format("15:04:05.000"), a.problem)
			continue
		}
		s := byToken[a.token]
		if s == nil {
			s = &served{first: a.arrived}
			byToken[a.token] = s
			order = append(order, a.token)
		}
		s.n++
		if a.cached {
			s.cached++
		}
		if a.arrived.After(s.last) {
			s.last = a.arrived
		}
		exp, _ := v.TokenExpiry(a.token)
		if left := exp.Sub(a.arrived); left < skew {
			t.Errorf("3. a read at %s got a token with %s left, less than expiry_skew: a lease outlived the skew", a.arrived.Format("15:04:05.000"), left.Round(time.Millisecond))
		}
		if late := a.sent.Sub(hOf(a.token)); late > 2*time.Second {
			t.Errorf("3. a read sent %s past its token's hand-out end got that token", late.Round(time.Millisecond))
		}
	}
	var lines []string
	for i, tok := range order {
		s := byToken[tok]
		exp, _ := v.TokenExpiry(tok)
		lines = append(lines, fmt.Sprintf("token %d: %d answers (%d from the cache), last served %s its hand-out end, %s before its expiry",
			i+1, s.n, s.cached, beforeAfter(s.last.Sub(hOf(tok))), exp.Sub(s.last).Round(time.Millisecond)))
	}
	sort.Strings(lines)
	t.Logf("3. %d readers for %s: %d answers, %d tokens, %d reads reached the plugin:\n  %s", readers, hammer, len(ham), len(order), reached, strings.Join(lines, "\n  "))
	if len(order) < 2 {
		t.Errorf("3. only %d tokens in %s of %s tokens", len(order), hammer, lifetime)
	}
	bad := 0
	for _, a := range all {
		if a.problem != "" {
			bad++
		}
	}
	st := v.Stats()
	t.Logf("in all: %d reads through the proxy, %d problems; vendor: %d requests, %d grants, failures %v; proxy log: %d cached answers, %d evictions; test took %s",
		len(all), bad, st.Requests, st.Grants, st.Failures, strings.Count(proxy.Log(), "returning cached dynamic secret response"),
		strings.Count(proxy.Log(), "evicting index from cache"), time.Since(testStart).Round(100*time.Millisecond))
	if len(st.Failures) != 0 {
		t.Errorf("the vendor refused requests: %v", st.Failures)
	}
}

// beforeAfter says how far d (a time minus a mark) lies before or after the
// mark.
func beforeAfter(d time.Duration) string {
	if d < 0 {
		return (-d).Round(time.Millisecond).String() + " before"
	}
	return d.Round(time.Millisecond).String() + " after"
}
