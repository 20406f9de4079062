package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// The vendor-economy phases: what readers cost the vendor, in vendor calls
// per token lifetime. They run in the background of the other phases (on
// a plugin process of their own, econName), because they take several
// token lifetimes of mostly waiting.
const (
	agentMount = "agent"
	idleMount  = "idle"
)

// ---- Agent-like readers ------------------------------------------------------

type agentLikeResult struct {
	Readers         int     `json:"readers"`
	LifetimeSeconds float64 `json:"token_lifetime_seconds"`
	SkewSeconds     float64 `json:"expiry_skew_seconds"`
	Seconds         float64 `json:"seconds"`
	Lifetimes       float64 `json:"lifetimes"`
	Reads           int     `json:"reads"`
	Tokens          int     `json:"tokens"`
	VendorCalls     int     `json:"vendor_calls"`
	VendorFailures  int     `json:"vendor_failures"`
	// PerLifetime counts every call, the one whose token is in use at
	// the end included, over the time their tokens are handed out: from
	// the first call to the last token's hand-out end
	// (vaulttest.CallsPerLifetime). Intervals is (n-1) calls over the
	// first to the last call. Rule is L over the hand-out life by
	// model.Lease; Formula is model.VendorCallsPerLifetime,
	// L / (L - s - M) with M = max(3% of L, 2 s), which is
	// 1 / (0.97 - s/L) for tokens of 67 s or more: 60 / 57 = 1.053 for
	// 60 s tokens with expiry_skew=1s.
	PerLifetime       float64   `json:"vendor_calls_per_lifetime"`
	Intervals         float64   `json:"vendor_calls_per_lifetime_from_intervals"`
	PerRunLifetime    float64   `json:"vendor_calls_per_run_lifetime"`
	Rule              float64   `json:"rule_vendor_calls_per_lifetime"`
	Formula           float64   `json:"formula_vendor_calls_per_lifetime"`
	HandoutSeconds    float64   `json:"handout_seconds"`
	CallsAtSeconds    []float64 `json:"vendor_calls_at_seconds"`
	MinLeaseSeconds   float64   `json:"min_lease_seconds"`
	MaxLeaseSeconds   float64   `json:"max_lease_seconds"`
	Replacements      int       `json:"replacements"`
	LeftSeconds       []float64 `json:"life_left_at_replacement_seconds"` // shortest first
	MinLeftSeconds    float64   `json:"min_life_left_seconds"`
	MedianLeftSeconds float64   `json:"median_life_left_seconds"`
	MaxLeftSeconds    float64   `json:"max_life_left_seconds"`
	Problems          []string  `json:"problems"`
}

// agentLike runs Agent-like readers (vaulttest.RunAgentLike) of one
// credential whose tokens live o.agentLifetime, with expiry_skew
// o.agentSkew, for o.agentLifetimes lifetimes.
func (e *env) agentLike(ctx context.Context, o *options) (*agentLikeResult, error) {
	srv, v, tokenURL, err := startVendor(standin.Behavior{Lifetime: o.agentLifetime})
	if err != nil {
		return nil, err
	}
	defer stopVendor(srv)
	body := credential(tokenURL)
	body["expiry_skew"] = o.agentSkew.String()
	if _, err := e.call(ctx, http.MethodPost, agentMount+"/config/agent", body); err != nil {
		return nil, err
	}
	v.Reset()
	dur := time.Duration(o.agentLifetimes) * o.agentLifetime
	logf("Agent-like readers: %d readers for %s (%d lifetimes of %s, expiry_skew %s), in the background", o.agentReaders, dur, o.agentLifetimes, o.agentLifetime, o.agentSkew)
	path := e.vault.Addr + "/v1/" + agentMount + "/token/agent"
	res := vaulttest.RunAgentLike(ctx, vaulttest.AgentLikeOptions{
		Readers:  o.agentReaders,
		Duration: dur,
		Expiry:   v.TokenExpiry,
		Read: func(ctx context.Context) (vaulttest.LeasedToken, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, path, nil)
			if err != nil {
				return vaulttest.LeasedToken{}, err
			}
			req.Header.Set("X-Vault-Token", vaulttest.RootToken)
			var buf bytes.Buffer
			if _, err := send(e.hc, req, http.StatusOK, &buf); err != nil {
				return vaulttest.LeasedToken{}, err
			}
			var r struct {
				LeaseDuration int `json:"lease_duration"`
				Data          struct {
					AccessToken string `json:"access_token"`
				} `json:"data"`
			}
			if err := json.Unmarshal(buf.Bytes(), &r); err != nil {
				return vaulttest.LeasedToken{}, err
			}
			return vaulttest.LeasedToken{Token: r.Data.AccessToken, Lease: time.Duration(r.LeaseDuration) * time.Second}, nil
		},
	})
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	st := v.Stats()
	out := &agentLikeResult{
		Readers:         o.agentReaders,
		LifetimeSeconds: o.agentLifetime.Seconds(),
		SkewSeconds:     o.agentSkew.Seconds(),
		Seconds:         res.End.Sub(res.Start).Seconds(),
		Reads:           res.Reads,
		Tokens:          len(res.Tokens),
		VendorCalls:     st.Requests,
		VendorFailures:  st.Requests - st.Grants,
		MinLeaseSeconds: res.MinLease.Seconds(),
		MaxLeaseSeconds: res.MaxLease.Seconds(),
		Replacements:    len(res.Replacements),
		Problems:        res.Problems,
		Formula:         model.VendorCallsPerLifetime(o.agentLifetime, o.agentSkew),
	}
	out.Lifetimes = out.Seconds / out.LifetimeSeconds
	handout := handoutLife(o.agentLifetime, o.agentSkew)
	out.HandoutSeconds = handout.Seconds()
	out.Rule = float64(o.agentLifetime) / float64(handout)
	var calls []time.Time
	for _, r := range v.Requests() {
		calls = append(calls, r.At)
	}
	for _, c := range calls {
		out.CallsAtSeconds = append(out.CallsAtSeconds, round3(c.Sub(calls[0]).Seconds()))
	}
	out.PerLifetime = vaulttest.CallsPerLifetime(calls, o.agentLifetime, handout)
	out.Intervals = vaulttest.CallIntervalsPerLifetime(calls, o.agentLifetime)
	if out.Lifetimes > 0 {
		out.PerRunLifetime = float64(len(calls)) / out.Lifetimes
	}
	left := res.LeftAtReplacement()
	for _, d := range left {
		out.LeftSeconds = append(out.LeftSeconds, round3(d.Seconds()))
	}
	if n := len(left); n > 0 {
		out.MinLeftSeconds, out.MedianLeftSeconds, out.MaxLeftSeconds = round3(left[0].Seconds()), round3(left[n/2].Seconds()), round3(left[n-1].Seconds())
	}
	logf("Agent-like readers: %d vendor calls, %.3f per lifetime (rule %.3f); life left at replacement %.2f-%.2fs; %d problems",
		out.VendorCalls, out.PerLifetime, out.Rule, out.MinLeftSeconds, out.MaxLeftSeconds, len(out.Problems))
	return out, nil
}

// handoutLife is how long after it is obtained a token of life life stops
// being handed out with expiry_skew skew, by the plugin's own rule.
func handoutLife(life, skew time.Duration) time.Duration {
	t0 := time.Unix(0, 0)
	tok := &model.Token{ObtainedAt: t0, ExpiresAt: t0.Add(life)}
	s := &model.Settings{ExpirySkew: skew}
	at := time.Duration(0)
	for ; at < life; at += 10 * time.Millisecond {
		if _, ok := model.Lease(tok, s, t0.Add(at)); !ok {
			break
		}
	}
	return at
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// ---- idle credentials --------------------------------------------------------

type idleResult struct {
	Credentials     int     `json:"credentials"`
	LifetimeSeconds float64 `json:"token_lifetime_seconds"`
	WindowSeconds   float64 `json:"unread_seconds"`
	FirstReadCalls  int     `json:"vendor_calls_first_reads"`
	// CallsAfter is what the vendor saw after every credential was read
	// once: the goal is none.
	CallsAfter int `json:"vendor_calls_after_first_reads"`
	// OldRuleCalls is what the rule before commit 27b5b17 would have
	// made in the window: every token of 5 minutes or more refreshed by
	// the tick before its hand-out end, read or not.
	OldRuleCalls int `json:"old_rule_vendor_calls"`
	// Scheduled is how many credentials status shows a next_refresh_at
	// for at the end (none should be).
	Scheduled int `json:"scheduled"`
}

type idlePhase struct {
	srv   *standin.Server
	v     *standin.Vendor
	res   *idleResult
	start time.Time
}

// idleStart writes o.idleCredentials credentials and reads each once; the
// caller leaves them alone and calls idleFinish later.
func (e *env) idleStart(ctx context.Context, o *options) (*idlePhase, error) {
	srv, v, tokenURL, err := startVendor(standin.Behavior{Lifetime: o.idleLifetime})
	if err != nil {
		return nil, err
	}
	n := o.idleCredentials
	logf("idle credentials: writing %d credentials with %s tokens and reading each once", n, o.idleLifetime)
	if err := e.writeConfigs(ctx, idleMount, "i", 0, n, tokenURL); err != nil {
		_ = srv.Close() // the phase's error is the one to report
		return nil, err
	}
	if err := e.readTokens(ctx, idleMount, "i", 0, n); err != nil {
		_ = srv.Close() // the phase's error is the one to report
		return nil, err
	}
	st := v.Stats()
	return &idlePhase{srv: srv, v: v, start: time.Now(), res: &idleResult{
		Credentials: n, LifetimeSeconds: o.idleLifetime.Seconds(), FirstReadCalls: st.Requests,
	}}, nil
}

// idleFinish counts the vendor calls made since idleStart.
func (e *env) idleFinish(ctx context.Context, p *idlePhase) (*idleResult, error) {
	defer stopVendor(p.srv)
	r := p.res
	window := time.Since(p.start)
	r.WindowSeconds = window.Seconds()
	r.CallsAfter = p.v.Stats().Requests - r.FirstReadCalls
	// The old rule (commit 42cb963, e2e/idle_test.go): a token of L >= 5
	// min was refreshed by the first tick after H_old - 1 min, H_old =
	// L - s - (L - s)/5, so every credential at least once per H_old.
	life := time.Duration(r.LifetimeSeconds * float64(time.Second))
	if life >= 5*time.Minute {
		s := min(model.DefaultExpirySkew, life/10)
		hOld := life - s - (life-s)/5
		r.OldRuleCalls = r.Credentials * int(window/hOld)
	}
	data, err := e.call(ctx, http.MethodGet, idleMount+"/status", nil)
	if err != nil {
		return r, err
	}
	creds, _ := data["credentials"].(map[string]any)
	for _, c := range creds {
		if m, ok := c.(map[string]any); ok {
			if s, _ := m["next_refresh_at"].(string); s != "" {
				r.Scheduled++
			}
		}
	}
	logf("idle credentials: %d vendor calls in %.0fs after reading %d credentials once (the old rule: %d); %d scheduled",
		r.CallsAfter, r.WindowSeconds, r.Credentials, r.OldRuleCalls, r.Scheduled)
	return r, nil
}

// ---- Vault Proxy ---------------------------------------------------------------

// proxyPolicy lets the proxy's auto-auth token read the throughput
// credential, as a reader policy of bootstrap/ would.
const proxyPolicy = `path "vendoroauth/token/bench" { capabilities = ["read"] }`

// startProxy runs the shipped Vault Proxy configuration (listener moved to
// a free port) with a token that holds a reader policy for the throughput
// credential.
func (e *env) startProxy(ctx context.Context) error {
	if _, err := e.call(ctx, http.MethodPut, "sys/policies/acl/bench-reader", map[string]any{"policy": proxyPolicy}); err != nil {
		return err
	}
	tok, err := e.vault.Client.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{"bench-reader"}, Period: "24h"})
	if err != nil {
		return fmt.Errorf("creating the proxy's token: %w", err)
	}
	port, err := vaulttest.FreePort()
	if err != nil {
		return err
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	cfg, err := vaulttest.ProxyConfig(listen)
	if err != nil {
		return err
	}
	dir := filepath.Join(e.dir, "proxy")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	logf("starting vault proxy (bootstrap/proxy/vault-proxy.hcl) on %s", listen)
	e.proxy, err = vaulttest.StartProxy(vaulttest.ProxyOptions{
		Dir: dir, Config: cfg, Listen: listen, VaultAddr: e.vault.Addr, Token: tok.Auth.ClientToken, LogLevel: "warn",
	})
	return err
}

// proxyGET reads a path through the proxy without a token of its own, so
// the proxy answers with its auto-auth token, from its cache once it
// holds the lease.
func (e *env) proxyGET(path string) doer {
	addr := e.proxy.Addr + "/v1/" + path
	return func(ctx context.Context, _ *rand.Rand, buf *bytes.Buffer) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, addr, nil)
		if err != nil {
			return 0, err
		}
		return send(e.hc, req, http.StatusOK, buf)
	}
}

// proxyWarm reads path through the proxy until the answer comes from its
// cache.
func (e *env) proxyWarm(ctx context.Context, path string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.proxy.Addr+"/v1/"+path, nil)
		if err != nil {
			return err
		}
		resp, err := e.hc.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close() // only the status matters
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s through the proxy: HTTP %d", path, resp.StatusCode)
		}
		if resp.Header.Get("X-Cache") == "HIT" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the proxy does not cache %s (X-Cache %q); its log:\n%s", path, resp.Header.Get("X-Cache"), tail(e.proxy.Log(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
