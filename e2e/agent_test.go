//go:build e2e

package e2e

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/bootstrap"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

const (
	// agentTokenLife is the life of the stand-in's access tokens: short, so
	// a few minutes hold several refreshes, and not under 40 s, the
	// shortest life whose last lease is 2 s or more (backend/lease.go).
	agentTokenLife = 40 * time.Second
	// agentRun is how long Agent keeps the file fresh after its first render.
	agentRun = 3 * time.Minute
)

// TestAgentKeepsTokenFileFresh runs the shipped bootstrap/agent/agent.hcl
// and token.ctmpl, unmodified, in a real `vault agent` (auto-auth with a
// token file holding the shipped reader policy) against the shared dev
// Vault, for three minutes of 40-second OfficeRnD tokens. Every token the
// file ever holds was valid at the vendor when it appeared, each token is
// replaced before it expires, Agent re-reads a handful of times per token
// (renewing in between), and the vendor sees at most one grant per token
// lifetime elapsed, plus one.
func TestAgentKeepsTokenFileFresh(t *testing.T) {
	vaulttest.SkipOn(t, vaulttest.FlavorOpenBao, "a soak that exercises the plugin, not the server: it runs against Vault only, to keep CI within its time (README, Works with OpenBao)")
	// Its own stand-in, name, policy and token: it only waits on Agent,
	// so it overlaps the other parallel tests.
	t.Parallel()
	root, err := vaulttest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := vaulttest.VaultBin()
	if err != nil {
		t.Fatal(err)
	}
	// The shipped files name this credential.
	const name = "officernd-demo"

	// A stand-in of its own: the token lifetime is a per-vendor knob, and
	// the shared one serves other tests.
	vend := standin.New()
	base, err := vend.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vend.Close()
	ornd := vend.Vendor("officernd")
	ornd.AddClient(standin.Client{ID: "agent-client", Secret: "agent-secret-Pq7", Scopes: []string{"officernd.api.read"}})
	ornd.SetBehavior(standin.Behavior{Lifetime: agentTokenLife})

	writeConfig(t, name, map[string]interface{}{
		"provider":      "officernd",
		"token_url":     base + ornd.TokenPath(),
		"client_id":     "agent-client",
		"client_secret": "agent-secret-Pq7",
		"scopes":        "officernd.api.read",
		// The default skew (30 s, capped at a tenth of the token's life)
		// would end every lease 4 s early, on top of the part of the
		// lease Agent leaves unused. Agent's own margin is enough here.
		"expiry_skew": "0s",
	})
	t.Cleanup(func() { call(t, "DELETE", mount+"/config/"+name, nil) })

	reader, err := bootstrap.ReaderPolicy(mount, name)
	if err != nil {
		t.Fatal(err)
	}
	putPolicyForTest(t, bootstrap.ReaderPolicyName(name), reader)
	agentToken := tokenWithPolicies(t, false, bootstrap.ReaderPolicyName(name))

	dir := t.TempDir()
	for _, f := range []string{"agent.hcl", "token.ctmpl"} {
		b, err := os.ReadFile(filepath.Join(root, "bootstrap", "agent", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "vault-token"), []byte(agentToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name+".token")

	var agentLog bytes.Buffer
	cmd := exec.Command(bin, "agent", "-config=agent.hcl")
	cmd.Dir = dir
	// VAULT_ADDR (BAO_ADDR for bao agent) overrides the config's address,
	// as the shipped file says.
	cmd.Env = vaulttest.CLIEnv("ADDR", vault.Addr, "TOKEN", "", "AGENT_ADDR", "")
	logw := &lockedWriter{w: &agentLog}
	cmd.Stdout, cmd.Stderr = logw, logw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	defer func() {
		stop()
		if t.Failed() {
			t.Logf("vault agent output (tail):\n%s", tail(agentLog.String(), 60))
		}
	}()

	type rendered struct {
		token  string
		seen   time.Time // first time the poller saw it
		expiry time.Time // at the vendor
	}
	var tokens []rendered
	var first time.Time
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	startDeadline := time.Now().Add(2 * time.Minute)
	for {
		var now time.Time
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("vault agent exited early: %v", err)
		case now = <-poll.C:
		}
		if first.IsZero() && now.After(startDeadline) {
			t.Fatalf("vault agent rendered nothing within 2 minutes")
		}
		if !first.IsZero() && now.Sub(first) >= agentRun {
			break
		}
		b, err := os.ReadFile(out)
		if err != nil || len(b) == 0 {
			continue // not rendered yet, or being replaced
		}
		tok := string(b)
		if len(tokens) > 0 && tokens[len(tokens)-1].token == tok {
			continue
		}
		now = time.Now()
		exp, issued := ornd.TokenExpiry(tok)
		if !issued {
			t.Fatalf("the file holds something the vendor never issued (%d bytes)", len(tok))
		}
		if !ornd.Valid(tok) {
			t.Errorf("token %d was rendered already invalid (expired %s ago)", len(tokens)+1, now.Sub(exp).Round(time.Millisecond))
		}
		if len(tokens) > 0 {
			prev := tokens[len(tokens)-1]
			if !now.Before(prev.expiry) {
				t.Errorf("token %d replaced %s after it expired", len(tokens), now.Sub(prev.expiry).Round(time.Millisecond))
			}
		}
		if first.IsZero() {
			first = now
			if fi, err := os.Stat(out); err == nil && fi.Mode().Perm() != 0o600 {
				t.Errorf("the token file has mode %v, want 0600", fi.Mode().Perm())
			}
		}
		tokens = append(tokens, rendered{token: tok, seen: now, expiry: exp})
	}
	end := time.Now()
	last := tokens[len(tokens)-1]
	if !end.Before(last.expiry) {
		t.Errorf("at the end the file holds a token that expired %s ago", end.Sub(last.expiry).Round(time.Millisecond))
	}
	stop()

	// What the vendor saw, against how many token lives the run spanned.
	st := ornd.Stats()
	reqs := ornd.Requests()
	elapsed := end.Sub(reqs[0].At)
	lifetimes := elapsed.Seconds() / agentTokenLife.Seconds()
	// The token life under way at the end counts, and one more: a grant
	// comes at the hand-out end of each token (38 s into its 40 s), so
	// the last of a 180 s run may come just before its end.
	allowed := int(math.Ceil(lifetimes)) + 1
	status, sr, body := call(t, "GET", mount+"/status", nil)
	var reads, hits float64
	if c, ok := sr.Data["credentials"].(map[string]interface{})[name].(map[string]interface{}); status == 200 && ok {
		reads, _ = c["reads"].(float64)
		hits, _ = c["cache_hits"].(float64)
	} else {
		t.Fatalf("status: HTTP %d %s", status, body)
	}
	var ages []string
	for i := 1; i < len(tokens); i++ {
		issued := tokens[i-1].expiry.Add(-agentTokenLife)
		ages = append(ages, tokens[i].seen.Sub(issued).Round(100*time.Millisecond).String())
	}
	t.Logf("%s from the first grant (%.2f token lives): %d vendor requests (%d grants, allowed %d), %d tokens rendered, replaced at ages %s; Vault reads %v, cache hits %v",
		elapsed.Round(time.Millisecond), lifetimes, st.Requests, st.Grants, allowed, len(tokens), strings.Join(ages, " "), reads, hits)
	// Agent renews each lease until less than 10-20% of it is left, then
	// reads again: before the hand-out end it gets the same token under a
	// shorter lease, so the re-reads per token are a handful (leases
	// shrink geometrically), never a tight loop. Every token was replaced
	// in the file before it expired (checked above), which a same-second
	// answer dropped by consul-template would break (backend/lease.go).
	if maxReads := 5 * st.Grants; int(reads) > maxReads || int(reads) < st.Grants {
		t.Errorf("Agent read token/%s %v times for %d grants (%v cache hits), want %d to %d: re-reads must stay a handful per token", name, reads, st.Grants, hits, st.Grants, maxReads)
	}
	if st.Requests > allowed {
		t.Errorf("the vendor saw %d token requests in %.2f token lives; at most %d expected", st.Requests, lifetimes, allowed)
	}
	if len(st.Failures) != 0 {
		t.Errorf("the vendor refused requests: %v", st.Failures)
	}
	if want := int(agentRun/agentTokenLife) - 1; len(tokens) < want {
		t.Errorf("only %d tokens rendered in %s; each lives %s", len(tokens), agentRun, agentTokenLife)
	}
}

// lockedWriter lets a process's stdout and stderr share one buffer.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
