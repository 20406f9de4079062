//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// TestAgentLikeReaders is the short version of the benchmark's Agent-like
// case: 8 readers each read one credential, hold the token and read again
// at a uniformly random 85-95% of the lease they got (what Vault Agent and
// consul-template do), for 2.5 lifetimes of 60-second tokens with
// expiry_skew=1s. The vendor may see at most 1.07 calls per token
// lifetime (counting the call whose token is in use at the end; the rule
// itself costs 60 / (60 − 1 − 2) = 1.053, backend/lease.go), no reader
// may ever hold an expired token, and every reader must replace every
// token with at least expiry_skew of its life left. It runs in parallel
// with the other parallel tests, on a name and a stand-in of its own.
func TestAgentLikeReaders(t *testing.T) {
	vaulttest.SkipOn(t, vaulttest.FlavorOpenBao, "a soak that exercises the plugin, not the server: it runs against Vault only, to keep CI within its time (README, Works with OpenBao)")
	t.Parallel()
	const (
		readers  = 8
		lifetime = 60 * time.Second
		skew     = time.Second
		run      = 150 * time.Second // 2.5 lifetimes
		maxCalls = 1.07
		name     = "agentlike"
		clientID = "agentlike-client"
		secret   = "agentlike-secret-Hw2"
	)
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

	res := vaulttest.RunAgentLike(context.Background(), vaulttest.AgentLikeOptions{
		Readers:  readers,
		Duration: run,
		Read:     readLeased(mount + "/token/" + name),
		Expiry:   v.TokenExpiry,
	})
	rep := judgeAgentLike(res, v, lifetime, skew)
	t.Log(rep.String())
	for _, p := range res.Problems {
		t.Error(p)
	}
	if rep.perLifetime > maxCalls {
		t.Errorf("%.3f vendor calls per token lifetime, want at most %.2f", rep.perLifetime, maxCalls)
	}
	if rep.minLeft < skew {
		t.Errorf("a token was replaced with %s of its life left, less than expiry_skew (%s)", rep.minLeft, skew)
	}
	if st := v.Stats(); len(st.Failures) != 0 || st.Requests != st.Grants {
		t.Errorf("the vendor refused requests: %v", st.Failures)
	}
	// Every reader went through every token but the last.
	if want := readers * (len(res.Tokens) - 1); len(res.Replacements) != want || len(res.Tokens) < 3 {
		t.Errorf("%d replacements of %d tokens by %d readers, want %d (and at least 3 tokens in %s)", len(res.Replacements), len(res.Tokens), readers, want, run)
	}
	if res.MinLease < time.Second {
		t.Errorf("a lease of %s was handed out", res.MinLease)
	}
}

// readLeased returns an Agent-like reader's read of path from the shared
// Vault.
func readLeased(path string) func(ctx context.Context) (vaulttest.LeasedToken, error) {
	return func(ctx context.Context) (vaulttest.LeasedToken, error) {
		status, out, err := vaulttest.RawWith(ctx, vault.Client, "GET", path, nil)
		if err != nil || status != 200 {
			return vaulttest.LeasedToken{}, fmt.Errorf("HTTP %d %.200s %v", status, out, err) //nolint:errorlint // err is nil when the status is what failed
		}
		var r apiResponse
		if err := json.Unmarshal(out, &r); err != nil {
			return vaulttest.LeasedToken{}, err
		}
		return vaulttest.LeasedToken{Token: str(r.Data["access_token"]), Lease: time.Duration(r.LeaseDuration) * time.Second}, nil
	}
}

// agentLikeReport is what the Agent-like readers cost the vendor.
type agentLikeReport struct {
	res                   *vaulttest.AgentLikeResult
	calls                 []time.Time
	handout               time.Duration
	perLifetime, interval float64
	formula               float64
	left                  []time.Duration
	minLeft               time.Duration
	lifetime              time.Duration
}

func judgeAgentLike(res *vaulttest.AgentLikeResult, v *standin.Vendor, lifetime, skew time.Duration) agentLikeReport {
	rep := agentLikeReport{res: res, lifetime: lifetime, handout: handoutLifeWith(lifetime, skew)}
	for _, r := range v.Requests() {
		rep.calls = append(rep.calls, r.At)
	}
	rep.perLifetime = vaulttest.CallsPerLifetime(rep.calls, lifetime, rep.handout)
	rep.interval = vaulttest.CallIntervalsPerLifetime(rep.calls, lifetime)
	rep.formula = model.VendorCallsPerLifetime(lifetime, skew)
	rep.left = res.LeftAtReplacement()
	if len(rep.left) > 0 {
		rep.minLeft = rep.left[0]
	}
	return rep
}

func (r agentLikeReport) String() string {
	var at []string
	for _, c := range r.calls {
		at = append(at, "+"+c.Sub(r.calls[0]).Round(100*time.Millisecond).String())
	}
	var left []string
	for _, d := range r.left {
		left = append(left, d.Round(10*time.Millisecond).String())
	}
	med := time.Duration(0)
	if len(r.left) > 0 {
		med = r.left[len(r.left)/2]
	}
	return fmt.Sprintf("%d reads in %s, leases %s-%s, %d tokens; %d vendor calls at %s: %.3f per %s lifetime counting the one in progress to its hand-out end (%s after it; the rule's %.3f), %.3f from the intervals between calls; %d replacements with life left min %s, median %s: %s",
		r.res.Reads, r.res.End.Sub(r.res.Start).Round(time.Second), r.res.MinLease, r.res.MaxLease, len(r.res.Tokens),
		len(r.calls), strings.Join(at, " "), r.perLifetime, r.lifetime, r.handout, r.formula, r.interval,
		len(r.left), r.minLeft.Round(10*time.Millisecond), med.Round(10*time.Millisecond), strings.Join(left, " "))
}

// handoutLifeWith is how long after it is obtained a token that lives life
// stops being handed out with expiry_skew skew, by the plugin's own rule.
func handoutLifeWith(life, skew time.Duration) time.Duration {
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
