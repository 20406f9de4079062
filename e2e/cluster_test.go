//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// startCluster starts a 3-node Raft cluster with the plugin binary that
// TestMain built, registered and enabled at mount. Node logs are printed
// when the test fails.
func startCluster(t *testing.T) *vaulttest.Cluster {
	t.Helper()
	sha, err := vaulttest.FileSHA256(filepath.Join(vault.PluginDir, vaulttest.PluginBinary))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c, err := vaulttest.StartCluster(vaulttest.ClusterOptions{
		Dir:           t.TempDir(),
		PluginDir:     vault.PluginDir,
		PluginVersion: pluginVersion,
		PluginSHA256:  sha,
		Mount:         mount,
		Logf:          t.Logf,
	})
	if err != nil {
		t.Fatalf("starting a 3-node cluster: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("cluster logs:\n%s", c.LogTails(150))
		}
		c.Stop()
	})
	t.Logf("3-node Raft cluster up in %s", time.Since(start).Round(100*time.Millisecond))
	return c
}

// clusterCall does one request through node i and decodes the answer. A
// status of 0 means the node gave no HTTP answer.
func clusterCall(ctx context.Context, c *vaulttest.Cluster, i int, method, path string, body map[string]interface{}) (int, apiResponse, error) {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return 0, apiResponse{}, err
		}
	}
	status, out, err := vaulttest.RawWith(ctx, c.Client(i), method, path, raw)
	var r apiResponse
	if len(out) > 0 {
		if jerr := json.Unmarshal(out, &r); jerr != nil && err == nil {
			err = fmt.Errorf("answer is not JSON: %w", jerr)
		}
	}
	return status, r, err
}

// readOutcome is one reader's read.
type readOutcome struct {
	node     int
	sent     time.Time
	arrived  time.Time
	status   int
	token    string
	problem  string // why the read failed; "" on success
	leaseTTL int
}

// failoverWindow is the span from stopping the active node until the
// cluster is whole again: reads may fail inside it, never outside.
type failoverWindow struct {
	round            int
	oldLeader        int
	newLeader        int
	start, leaderAt  time.Time
	resumedAt, end   time.Time
	lastOKBeforeStop time.Time
}

// TestClusterFailoverKeepsRefreshChain runs a rotating, reuse-detecting
// refresh-token credential on a 3-node Raft cluster while readers hit
// random nodes, and stops and restarts the active node three times. It
// proves that reads resume after each failover, that no read hands out an
// expired token, and that the refresh-token chain is never broken: the
// vendor never sees a rotated-away refresh token again, and the last one
// still works at the end.
func TestClusterFailoverKeepsRefreshChain(t *testing.T) {
	const (
		readers  = 8
		lifetime = 4 * time.Second
		name     = "cluster-failover"
		clientID = "cluster-failover-client"
		secret   = "cluster-failover-secret-Vb7"
		rounds   = 3
	)
	testStart := time.Now()
	vs := standin.New()
	base, err := vs.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vs.Close()
	v := vs.Vendor("penbox")
	v.AddClient(standin.Client{ID: clientID, Secret: secret})
	firstRT := v.IssueRefreshToken(clientID)
	v.SetBehavior(standin.Behavior{Lifetime: lifetime, Rotate: true, ReuseDetection: true})

	c := startCluster(t)
	_, lead := c.Leader()
	if lead < 0 {
		t.Fatal("no active node")
	}
	ctx := context.Background()
	status, r, err := clusterCall(ctx, c, lead, "POST", mount+"/config/"+name, map[string]interface{}{
		"provider":      "penbox",
		"token_url":     base + v.TokenPath(),
		"client_id":     clientID,
		"client_secret": secret,
		"refresh_token": firstRT,
		"expiry_skew":   "0s",
	})
	if err != nil || status/100 != 2 {
		t.Fatalf("writing config/%s: HTTP %d %v %v", name, status, r.Errors, err)
	}

	// Readers pick a random node among those up; a node is taken out
	// before it is stopped and put back once it has rejoined, as a load
	// balancer with health checks would.
	var up atomic.Uint32
	up.Store(1<<len(c.Nodes()) - 1)
	pick := func(rng *rand.Rand) int {
		mask := up.Load()
		var live []int
		for i := range c.Nodes() {
			if mask&(1<<i) != 0 {
				live = append(live, i)
			}
		}
		return live[rng.Intn(len(live))]
	}

	var (
		mu       sync.Mutex
		outcomes []readOutcome
		lastOK   time.Time
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < readers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(time.Now().UnixNano() + int64(w)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				node := pick(rng)
				o := readOutcome{node: node, sent: time.Now()}
				rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				status, r, err := clusterCall(rctx, c, node, "GET", mount+"/token/"+name, nil)
				cancel()
				o.arrived, o.status = time.Now(), status
				switch {
				case err != nil:
					o.problem = err.Error()
				case status != 200:
					o.problem = fmt.Sprintf("HTTP %d %s", status, strings.Join(r.Errors, "; "))
				default:
					o.token, o.leaseTTL = str(r.Data["access_token"]), r.LeaseDuration
					exp, ok := v.TokenExpiry(o.token)
					switch {
					case !ok:
						o.problem = "the token was not issued by the vendor"
					case !o.arrived.Before(exp):
						o.problem = fmt.Sprintf("EXPIRED: the token expired %s before the answer arrived", o.arrived.Sub(exp))
					}
				}
				mu.Lock()
				outcomes = append(outcomes, o)
				if o.problem == "" {
					lastOK = o.arrived
				}
				mu.Unlock()
				// A short pause keeps 8 readers from saturating 2 cores
				// with lease writes; they still read many times per
				// token lifetime.
				time.Sleep(time.Duration(10+rng.Intn(20)) * time.Millisecond)
			}
		}(w)
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	refreshes := func() int { return v.Stats().ByGrantType["refresh_token"] }
	// waitRefreshes waits until the vendor has granted n more refreshes:
	// the chain moves on under the current leader before it is stopped.
	waitRefreshes := func(n int) {
		t.Helper()
		target := refreshes() + n
		deadline := time.Now().Add(time.Duration(n+2) * lifetime * 3)
		for refreshes() < target {
			if time.Now().After(deadline) {
				st := v.Stats()
				t.Fatalf("the vendor granted %d of %d refreshes expected within %s (reuse detections %d, failures %v)",
					refreshes()-(target-n), n, time.Duration(n+2)*lifetime*3, st.ReuseDetections, st.Failures)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitRefreshes(2)

	var windows []failoverWindow
	for round := 1; round <= rounds; round++ {
		_, old := c.Leader()
		if old < 0 {
			t.Fatalf("round %d: no active node", round)
		}
		w := failoverWindow{round: round, oldLeader: old}
		up.And(^uint32(1 << old))
		mu.Lock()
		w.lastOKBeforeStop = lastOK
		mu.Unlock()
		w.start = time.Now()
		if err := c.StopNode(old); err != nil {
			t.Fatalf("round %d: stopping node %d: %v", round, old, err)
		}
		next, err := c.WaitLeader(old)
		if err != nil {
			t.Fatalf("round %d: no new leader after stopping node %d: %v", round, old, err)
		}
		w.newLeader, w.leaderAt = next, time.Now()
		// Reads must resume through the remaining nodes.
		deadline := time.Now().Add(2 * time.Minute)
		for {
			mu.Lock()
			ok := lastOK.After(w.leaderAt)
			mu.Unlock()
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: no successful read within 2m of node %d becoming active", round, next)
			}
			time.Sleep(20 * time.Millisecond)
		}
		w.resumedAt = time.Now()
		if err := c.StartNode(old); err != nil {
			t.Fatalf("round %d: restarting node %d: %v", round, old, err)
		}
		if err := c.WaitHealthy(); err != nil {
			t.Fatalf("round %d: node %d did not rejoin: %v", round, old, err)
		}
		up.Or(1 << old)
		w.end = time.Now()
		windows = append(windows, w)
		// Let the chain rotate under the new leader, with every node
		// serving, before the next failover.
		waitRefreshes(2)
	}
	close(stop)
	wg.Wait()

	// The last refresh token still works: wait out the cached token's
	// hand-out life and read once more; the plugin must refresh with the
	// refresh token it stored last, and the vendor must accept it.
	mu.Lock()
	lastTok := outcomes[len(outcomes)-1].token
	mu.Unlock()
	before := refreshes()
	deadline := time.Now().Add(3 * lifetime)
	var finalTok string
	for {
		_, lead := c.Leader()
		if lead >= 0 {
			status, r, err := clusterCall(ctx, c, lead, "GET", mount+"/token/"+name, nil)
			if err == nil && status == 200 {
				finalTok = str(r.Data["access_token"])
			}
		}
		if finalTok != "" && refreshes() > before && finalTok != lastTok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no refresh with the last stored refresh token within %s (vendor failures: %v)", 3*lifetime, v.Stats().Failures)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !v.Valid(finalTok) {
		t.Errorf("the token from the final refresh is not valid at the vendor: the chain was revoked")
	}

	st := v.Stats()
	if st.ReuseDetections != 0 {
		t.Errorf("the vendor detected reuse of a rotated-away refresh token %d times: a rotated refresh token was lost in a failover", st.ReuseDetections)
	}
	if n := st.Failures["invalid_grant"]; n != 0 {
		t.Errorf("the vendor refused %d refresh grants (invalid_grant)", n)
	}
	// Every refresh token was presented at most once.
	seen := map[string]int{}
	for _, req := range v.Requests() {
		if rt := req.Form["refresh_token"]; rt != "" {
			seen[rt]++
		}
	}
	for rt, n := range seen {
		if n > 1 {
			t.Errorf("a refresh token was presented %d times (first was the configured one: %v)", n, rt == firstRT)
		}
	}

	// Judge and report every read.
	inWindow := func(at time.Time) int {
		for i, w := range windows {
			if !at.Before(w.start) && !at.After(w.end) {
				return i
			}
		}
		return -1
	}
	var (
		total, ok, expired, outside int
		perWindow                   = make([]int, len(windows))
		problems                    = map[string]int{}
	)
	for _, o := range outcomes {
		total++
		if o.problem == "" {
			ok++
			continue
		}
		if strings.HasPrefix(o.problem, "EXPIRED") || o.problem == "the token was not issued by the vendor" {
			expired++
			t.Errorf("read through node %d at %s: %s", o.node, o.arrived.Format("15:04:05.000"), o.problem)
			continue
		}
		problems[fmt.Sprintf("via node%d: %s", o.node, shorten(o.problem))]++
		// A read that was in flight when a window opened belongs to it.
		if i := inWindow(o.arrived); i >= 0 {
			perWindow[i]++
		} else if i := inWindow(o.sent); i >= 0 {
			perWindow[i]++
		} else {
			outside++
			t.Errorf("read through node %d failed outside any failover window at %s: %s", o.node, o.arrived.Format("15:04:05.000"), o.problem)
		}
	}
	t.Logf("reads: %d total, %d ok, %d failed inside failover windows, %d failed outside, %d expired or foreign tokens", total, ok, sum(perWindow), outside, expired)
	for i, w := range windows {
		t.Logf("failover %d: stopped node %d; node %d active after %s; reads resumed %s after the stop (gap since the last good read %s); node %d back as a healthy voter after %s; %d failed reads",
			w.round, w.oldLeader, w.newLeader,
			w.leaderAt.Sub(w.start).Round(time.Millisecond),
			w.resumedAt.Sub(w.start).Round(time.Millisecond),
			w.resumedAt.Sub(w.lastOKBeforeStop).Round(time.Millisecond),
			w.oldLeader, w.end.Sub(w.start).Round(time.Millisecond), perWindow[i])
	}
	if len(problems) > 0 {
		keys := make([]string, 0, len(problems))
		for k := range problems {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			t.Logf("  %5d × %s", problems[k], k)
		}
	}
	t.Logf("vendor: %d token requests, %d refresh grants, %d reuse detections, failures %v; %d distinct refresh tokens presented; test took %s",
		st.Requests, st.ByGrantType["refresh_token"], st.ReuseDetections, st.Failures, len(seen), time.Since(testStart).Round(100*time.Millisecond))
}

// shorten trims an error for a summary line: node addresses and request
// ids differ per read and would make every line unique.
func shorten(s string) string {
	if i := strings.Index(s, "URL:"); i >= 0 {
		if j := strings.Index(s[i:], "\n"); j >= 0 {
			s = s[:i] + s[i+j:]
		}
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}
