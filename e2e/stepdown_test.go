//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// TestClusterStepDownStopsVendorCalls steps the active node of a 3-node
// Raft cluster down (sys/step-down, what `vault operator step-down`
// sends) while its background refresher is part-way through refreshing
// 20 credentials ahead of need, against a vendor that rotates refresh
// tokens and revokes the whole chain when a rotated-away one comes back.
// A node that lost leadership and kept refreshing would have its rotated
// refresh tokens dropped (its storage writes fail), and the new active
// node would then present the old ones and lose every chain.
//
// Every vendor request is attributed to the plugin process that sent it,
// by finding the process that holds the client end of the connection
// (/proc), so the test can assert that the old active node makes no vendor
// call once Vault has closed its plugin (Vault tells a plugin of a
// step-down only then; until then the node is still the Raft leader and
// its writes succeed, so what it refreshes is stored, which the chain
// checks prove); the old node's plugin log must agree. Then every
// rotating credential is refreshed through the new
// active node, which must present the refresh token the vendor issued
// last: the chains survived.
//
// The refresher refreshes a token ahead of need only while it is in use
// (read from the cache at least once) and only if it lives at least 2
// minutes: at its hand-out end minus a lead of 1% of its life minus a
// jitter of up to 0.5%. Tokens of exactly 2 minutes, read a second time
// right after they were obtained, are refreshed about 103 s later, so
// the test takes about 2½ minutes.
func TestClusterStepDownStopsVendorCalls(t *testing.T) {
	vaulttest.SkipOn(t, vaulttest.FlavorOpenBao, "a soak that exercises the plugin, not the server: it runs against Vault only, to keep CI within its time (README, Works with OpenBao)")
	runLeaderChange(t, leaderChange{
		name:         "step-down",
		refreshDelay: 1500 * time.Millisecond,
		lostLog:      []string{"stepping down from active operation to standby"},
		trigger: func(t *testing.T, c *vaulttest.Cluster, lead int) func() {
			status, sd, err := clusterCall(context.Background(), c, lead, "PUT", "sys/step-down", nil)
			if err != nil || status/100 != 2 {
				t.Fatalf("sys/step-down on %s: HTTP %d %v %v", c.Nodes()[lead].ID, status, sd.Errors, err)
			}
			return func() {}
		},
	})
}

// TestClusterQuorumLossStopsVendorCalls is the step-down test with the
// leadership lost instead of given up: while the background refresher is
// at work both standbys stop answering (SIGSTOP, as a network partition
// or hung VMs would look), so the active node loses its Raft leadership
// within a second and every storage write it tries fails from then on,
// but nothing tells the plugin until Vault tears the active duty down. A
// refresh the refresher still sent then would rotate the refresh token
// at the vendor with nowhere to store the new one: the probe write before
// each background vendor call must stop it.
func TestClusterQuorumLossStopsVendorCalls(t *testing.T) {
	vaulttest.SkipOn(t, vaulttest.FlavorOpenBao, "a soak that exercises the plugin, not the server: it runs against Vault only, to keep CI within its time (README, Works with OpenBao)")
	runLeaderChange(t, leaderChange{
		name:         "quorum loss",
		refreshDelay: 3 * time.Second,
		lostLog: []string{
			"failed to contact quorum of nodes, stepping down",
			"leadership lost, stopping active operation",
		},
		readViaLeader:       true,
		writesFailAfterLost: true,
		trigger: func(t *testing.T, c *vaulttest.Cluster, lead int) func() {
			var paused []int
			resume := func() {
				for _, i := range paused {
					if err := c.ResumeNode(i); err != nil {
						t.Errorf("resuming %s: %v", c.Nodes()[i].ID, err)
					}
				}
				paused = nil
			}
			t.Cleanup(resume)
			for i := range c.Nodes() {
				if i == lead {
					continue
				}
				if err := c.PauseNode(i); err != nil {
					t.Fatalf("pausing %s: %v", c.Nodes()[i].ID, err)
				}
				paused = append(paused, i)
			}
			return resume
		},
	})
}

// leaderChange is one way for the active node to stop being active while
// its background refresher is at work.
type leaderChange struct {
	name string
	// refreshDelay is how long each vendor call of the refresher takes.
	refreshDelay time.Duration
	// trigger ends lead's leadership; the func it returns lets the
	// cluster recover once lead has stopped being active.
	trigger func(t *testing.T, c *vaulttest.Cluster, lead int) func()
	// lostLog are log lines of the old node that mark when its
	// leadership ended; the earliest counts.
	lostLog []string
	// readViaLeader limits the readers to the old active node.
	readViaLeader bool
	// writesFailAfterLost: storage writes fail from the moment lostLog
	// marks, not only once the teardown began. No vendor call may be
	// sent after it, and only a refresh in flight at that moment (sent
	// before, processed after) may lose its rotation: nothing can store
	// the refresh token in its answer.
	writesFailAfterLost bool
}

func runLeaderChange(t *testing.T, lc leaderChange) {
	const (
		rotatingN = 16
		ccN       = 4
		// The shortest life the refresher refreshes ahead.
		lifetime = 2 * time.Minute
		// The leadership change starts once the refresher has sent
		// this many vendor calls (at most four at a time to one token
		// endpoint, and all 20 credentials share the tap's).
		stepDownAfter = 6
		// After the old node reports standby, it is watched for late
		// vendor calls this long.
		watch = 5 * time.Second
	)
	testStart := time.Now()
	vs := standin.New()
	tap := newVendorTap(t, vs)
	pb, ornd := vs.Vendor(standin.VendorPenbox), vs.Vendor(standin.VendorOfficeRnD)
	pb.SetBehavior(standin.Behavior{Lifetime: lifetime, Rotate: true, ReuseDetection: true})
	ornd.SetBehavior(standin.Behavior{Lifetime: lifetime})

	c := startCluster(t)
	// Name the node whose plugin sent each request.
	tap.setOwner(func(client, server string) string {
		var err error
		// /proc/net/tcp can miss a line while many connections open at
		// once; the connection stays open, so look again.
		for try := 0; try < 10; try++ {
			var cands []int
			node := map[int]int{}
			for i := range c.Nodes() {
				pids, _ := vaulttest.PluginProcesses(c.PID(i))
				for _, p := range pids {
					cands = append(cands, p)
					node[p] = i
				}
			}
			var pid int
			if pid, err = vaulttest.SocketOwner(client, server, cands); err == nil && pid != 0 {
				return c.Nodes()[node[pid]].ID
			}
			time.Sleep(5 * time.Millisecond)
		}
		return fmt.Sprintf("unknown (%v)", err)
	})
	ctx := context.Background()
	_, lead := c.Leader()
	if lead < 0 {
		t.Fatal("no active node")
	}
	oldID := c.Nodes()[lead].ID

	type cred struct {
		name, client string
		vendor       *standin.Vendor
		rotating     bool
	}
	var creds []cred
	for i := 0; i < rotatingN+ccN; i++ {
		cr := cred{name: fmt.Sprintf("stepdown-%02d", i), client: fmt.Sprintf("stepdown-%02d-client", i), vendor: pb, rotating: i < rotatingN}
		secret := "stepdown-secret-" + randomHex(8)
		body := map[string]interface{}{"client_id": cr.client, "client_secret": secret}
		if cr.rotating {
			pb.AddClient(standin.Client{ID: cr.client, Secret: secret})
			body["provider"], body["refresh_token"] = "penbox", pb.IssueRefreshToken(cr.client)
			body["token_url"] = tap.base + pb.TokenPath()
		} else {
			cr.vendor = ornd
			ornd.AddClient(standin.Client{ID: cr.client, Secret: secret})
			body["provider"], body["scopes"] = "officernd", "officernd.api.read"
			body["token_url"] = tap.base + ornd.TokenPath()
		}
		if status, r, err := clusterCall(ctx, c, lead, "POST", mount+"/config/"+cr.name, body); err != nil || status/100 != 2 {
			t.Fatalf("writing config/%s: HTTP %d %v %v", cr.name, status, r.Errors, err)
		}
		creds = append(creds, cr)
	}
	// The first reads get every token at once, so all are due within a
	// second or so of each other.
	var wg sync.WaitGroup
	errs := make([]error, len(creds))
	for i, cr := range creds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, r, err := clusterCall(ctx, c, i%len(c.Nodes()), "GET", mount+"/token/"+cr.name, nil)
			if err == nil && status != 200 {
				err = fmt.Errorf("HTTP %d %v", status, r.Errors)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	granted := time.Now()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("first read of token/%s: %v", creds[i].name, err)
		}
	}

	// A second read of each makes it in use (the read that obtained a
	// token does not count), which schedules its refresh ahead of need
	// on the active node, the one that served it.
	for i, cr := range creds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, r, err := clusterCall(ctx, c, (i+1)%len(c.Nodes()), "GET", mount+"/token/"+cr.name, nil)
			if err == nil && status != 200 {
				err = fmt.Errorf("HTTP %d %v", status, r.Errors)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("second read of token/%s: %v", creds[i].name, err)
		}
	}
	if n := len(tap.snapshot()); n != len(creds) {
		t.Fatalf("the first two reads of %d credentials made %d vendor calls, want %d", len(creds), n, len(creds))
	}

	// When the plugin means to refresh them (its own schedule): at the
	// hand-out end minus the lead and the jitter.
	status, r, err := clusterCall(ctx, c, lead, "GET", mount+"/status", nil)
	if err != nil || status != 200 {
		t.Fatalf("reading status: HTTP %d %v %v", status, r.Errors, err)
	}
	var due, dueFirst time.Time
	sts, _ := r.Data["credentials"].(map[string]interface{})
	for _, cr := range creds {
		m, _ := sts[cr.name].(map[string]interface{})
		at, err := time.Parse(time.RFC3339, str(m["next_refresh_at"]))
		if err != nil {
			t.Fatalf("status of %s: next_refresh_at %q (%v): a credential in use must be scheduled for its refresh ahead", cr.name, m["next_refresh_at"], err)
		}
		if at.After(due) {
			due = at
		}
		if dueFirst.IsZero() || at.Before(dueFirst) {
			dueFirst = at
		}
	}
	t.Logf("%d tokens obtained by +%s and read again; the plugin schedules their refresh for %s to %s (hand-out end %s after they were obtained, minus a lead of 1%% and a jitter of up to 0.5%% of their life)",
		len(creds), granted.Sub(testStart).Round(time.Millisecond), dueFirst.Format("15:04:05"), due.Format("15:04:05"), handoutLife(lifetime))
	// Only the refresher's calls are slow (readers' reads are cache
	// hits until then), so it is still at work when the leadership
	// change comes.
	b := pb.Behavior()
	b.Delay = lc.refreshDelay
	pb.SetBehavior(b)
	b = ornd.Behavior()
	b.Delay = lc.refreshDelay
	ornd.SetBehavior(b)

	// A few readers go on reading through every node throughout: they
	// must never get an expired token, and show what a reader sees.
	type stepRead struct {
		node          int
		sent, arrived time.Time
		failure, bad  string
	}
	var (
		rmu   sync.Mutex
		reads []stepRead
	)
	stop := make(chan struct{})
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(time.Now().UnixNano() + int64(w)))
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(150+rng.Intn(100)) * time.Millisecond):
				}
				cr := creds[rng.Intn(len(creds))]
				o := stepRead{node: rng.Intn(len(c.Nodes())), sent: time.Now()}
				if lc.readViaLeader {
					o.node = lead
				}
				rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
				status, r, err := clusterCall(rctx, c, o.node, "GET", mount+"/token/"+cr.name, nil)
				cancel()
				o.arrived = time.Now()
				switch {
				case err != nil:
					o.failure = err.Error()
				case status != 200:
					o.failure = fmt.Sprintf("HTTP %d %s", status, strings.Join(r.Errors, "; "))
				default:
					exp, ok := cr.vendor.TokenExpiry(str(r.Data["access_token"]))
					if !ok || !o.arrived.Before(exp) || !cr.vendor.Valid(str(r.Data["access_token"])) {
						o.bad = fmt.Sprintf("%s: a token that is not valid at the vendor (known %v, expiry %s)", cr.name, ok, exp.Format("15:04:05.000"))
					}
				}
				rmu.Lock()
				reads = append(reads, o)
				rmu.Unlock()
			}
		}(w)
	}
	stopReaders := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	defer stopReaders()

	// Wait for the refresher to be under way on the active node.
	refreshCall := func(cl tapCall) bool { return cl.At.After(granted.Add(30*time.Second)) && cl.From == oldID }
	waitUntil := due.Add(30 * time.Second)
	wctx, cancel := context.WithDeadline(ctx, waitUntil)
	calls, err := tap.waitFor(wctx, func(cs []tapCall) bool {
		n := 0
		for _, cl := range cs {
			if refreshCall(cl) {
				n++
			}
		}
		return n >= stepDownAfter
	})
	cancel()
	if err != nil {
		t.Fatalf("the refresher on %s made no %d vendor calls by %s (calls: %s)", oldID, stepDownAfter, waitUntil.Format("15:04:05"), describeCalls(calls, testStart))
	}
	var refreshStart time.Time
	for _, cl := range calls {
		if refreshCall(cl) {
			refreshStart = cl.At
			break
		}
	}
	stepReq := time.Now()
	recover := lc.trigger(t, c, lead)
	stepAnswered := time.Now()
	t.Logf("the refresher began sending at %s (+%s); %d calls sent when the %s of %s began at %s (took %s)",
		refreshStart.Format("15:04:05.000"), refreshStart.Sub(testStart).Round(time.Millisecond), stepDownAfter, lc.name, oldID,
		stepReq.Format("15:04:05.000"), stepAnswered.Sub(stepReq).Round(time.Millisecond))

	// Watch the old node until it says it is a standby.
	var standbyAt time.Time
	for deadline := time.Now().Add(2 * time.Minute); ; {
		h, err := c.Client(lead).Sys().Health()
		if err == nil && h.Standby {
			standbyAt = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still not a standby 2m after the %s began (%v)", oldID, lc.name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	leftover, _ := vaulttest.PluginProcesses(c.PID(lead))
	// Watch the old node for late calls before the cluster may make it
	// active again.
	time.Sleep(time.Until(standbyAt.Add(watch)))
	recoveredAt := time.Now()
	recover()
	next, err := c.WaitLeader()
	if err != nil {
		t.Fatalf("no active node after the %s: %v", lc.name, err)
	}
	if err := c.WaitHealthy(); err != nil {
		t.Fatalf("the cluster did not recover after the %s: %v", lc.name, err)
	}
	newID := c.Nodes()[next].ID
	// The rest needs no slow vendor.
	for _, vend := range []*standin.Vendor{pb, ornd} {
		b := vend.Behavior()
		b.Delay = 0
		vend.SetBehavior(b)
	}

	// What the old node's log says: when Vault took the step-down, when
	// it tore the active duty down, and the plugin's vendor calls.
	oldLog := c.Log(lead)
	var stepLogged time.Time
	for _, marker := range lc.lostLog {
		if at := lastTime(logTimes(oldLog, marker)); !at.IsZero() && (stepLogged.IsZero() || at.Before(stepLogged)) {
			stepLogged = at
		}
	}
	if stepLogged.IsZero() {
		t.Errorf("%s's log has none of %q", oldID, lc.lostLog)
	}
	// The first teardown after the leadership ended (OpenBao tears down
	// again as it sets the standby up).
	teardown := firstAfter(logTimes(oldLog, "pre-seal teardown starting"), stepLogged)
	teardownDone := firstAfter(logTimes(oldLog, "pre-seal teardown complete"), teardown)
	grantsLogged := logTimes(oldLog, "token request succeeded")
	failsLogged := logTimes(oldLog, "token request failed")
	t.Logf("%s's log: leadership ended (%s) at %s, pre-seal teardown %s to %s; it reported standby at %s (polled); %s is active; plugin processes left on %s: %v",
		oldID, lc.name, fmtClock(stepLogged), fmtClock(teardown), fmtClock(teardownDone), standbyAt.Format("15:04:05.000"), newID, oldID, leftover)

	// Force a refresh of every rotating credential through the new active
	// node: it must present the refresh token the vendor issued last.
	stopReaders()
	// The refreshes in flight when the writes began to fail. Raft can log
	// the lost quorum seconds after writes stopped committing, so the
	// window opens at the trigger (both standbys paused: nothing commits
	// from then on) or the log line, whichever came first.
	//
	// A call may also leave just after the trigger: the plugin's probe
	// write before each vendor call committed before it, and building
	// and signing the request took the milliseconds between (15 ms was
	// seen on a loaded machine). Nothing the plugin can see tells it the
	// quorum is gone until the leadership ends, so a call sent before
	// the log line counts as in flight too.
	excused := map[string]bool{}
	lostAt := stepLogged
	if lostAt.IsZero() || stepReq.Before(lostAt) {
		lostAt = stepReq
	}
	sentBy := stepLogged
	if sentBy.IsZero() {
		sentBy = lostAt
	}
	if lc.writesFailAfterLost {
		for _, cl := range tap.snapshot() {
			if cl.From == oldID && cl.Grant == "refresh_token" && cl.At.Before(sentBy) && cl.Processed.After(lostAt) {
				excused[cl.Client] = true
			}
		}
		t.Logf("refreshes in flight when %s's leadership ended, whose rotation nothing could store: %d %v", oldID, len(excused), sortedKeysBool(excused))
	}
	before := len(tap.snapshot())
	for _, cr := range creds {
		if status, r, err := clusterCall(ctx, c, next, "POST", mount+"/refresh/"+cr.name, nil); (err != nil || status != 200) && !excused[cr.client] {
			t.Errorf("refresh/%s through the new active %s: HTTP %d %v %v", cr.name, newID, status, r.Errors, err)
		}
		status, r, err := clusterCall(ctx, c, next, "GET", mount+"/config/"+cr.name, nil)
		if err != nil || status != 200 {
			t.Errorf("config/%s: HTTP %d %v %v", cr.name, status, r.Errors, err)
		} else if reauth, _ := r.Data["needs_reauthorization"].(bool); reauth {
			report := t.Errorf
			if excused[cr.client] {
				report = t.Logf
			}
			report("%s needs reauthorization after the %s: %v", cr.name, lc.name, r.Data["last_error"])
		}
		status, r, err = clusterCall(ctx, c, next, "GET", mount+"/token/"+cr.name, nil)
		switch {
		case excused[cr.client]:
		case err != nil || status != 200:
			t.Errorf("token/%s through the new active %s: HTTP %d %v %v", cr.name, newID, status, r.Errors, err)
		case !cr.vendor.Valid(str(r.Data["access_token"])):
			t.Errorf("token/%s through the new active: a token the vendor does not accept", cr.name)
		}
	}
	all := tap.snapshot()

	// Judge the vendor calls.
	var (
		refreshCalls, duringWait, afterTeardown, afterStandby []tapCall
		refreshedAhead                                        = map[string]bool{}
		forcedFrom                                            = map[string]int{}
	)
	var afterLost []tapCall
	for _, cl := range all[:before] {
		if !refreshCall(cl) || !cl.At.Before(recoveredAt) {
			continue
		}
		if !stepLogged.IsZero() && cl.At.After(stepLogged) {
			afterLost = append(afterLost, cl)
		}
		refreshCalls = append(refreshCalls, cl)
		if cl.Status == http.StatusOK {
			refreshedAhead[cl.Client] = true
		}
		if cl.At.After(stepReq) && (teardown.IsZero() || cl.At.Before(teardown)) {
			duringWait = append(duringWait, cl)
		}
		if !teardown.IsZero() && !cl.At.Before(teardown) {
			afterTeardown = append(afterTeardown, cl)
		}
		if !cl.At.Before(standbyAt) {
			afterStandby = append(afterStandby, cl)
		}
	}
	for _, cl := range all[before:] {
		forcedFrom[cl.From]++
	}
	var pluginAfter []time.Time
	for _, at := range append(append([]time.Time(nil), grantsLogged...), failsLogged...) {
		if !teardown.IsZero() && at.After(teardown) && at.Before(recoveredAt) {
			pluginAfter = append(pluginAfter, at)
		}
	}
	var lastAnswer time.Time
	for _, cl := range refreshCalls {
		if cl.Done.After(lastAnswer) {
			lastAnswer = cl.Done
		}
	}
	t.Logf("the refresher on %s sent %d vendor calls (%d refreshed a credential; last answer at %s); %d of them were sent after the %s began and before the teardown, %d after the leadership ended by the log; %d were sent after the teardown began, %d after %s reported standby",
		oldID, len(refreshCalls), len(refreshedAhead), fmtClock(lastAnswer), len(duringWait), lc.name, len(afterLost), len(afterTeardown), len(afterStandby), oldID)
	if lc.writesFailAfterLost {
		for _, cl := range afterLost {
			t.Errorf("%s sent a vendor call after its leadership ended at %s (its storage writes fail from then): %s %s at %s, vendor answered HTTP %d",
				oldID, fmtClock(stepLogged), cl.Client, cl.Grant, cl.At.Format("15:04:05.000"), cl.Status)
		}
	}
	for _, needle := range []string{
		"storing a refresh token the vendor just issued failed",
		"the backend closed with a rotated refresh token that could not be stored",
		"proactive refresh failed",
	} {
		if n := len(logTimes(oldLog, needle)); n > 0 {
			t.Logf("%s's plugin log: %d × %q", oldID, n, needle)
		}
	}
	t.Logf("%s's plugin log: %d vendor calls logged in all, %d after the teardown began (answers to calls in flight then, or sent after)", oldID, len(grantsLogged)+len(failsLogged), len(pluginAfter))
	t.Logf("%s's log from the refreshes to the recovery (leadership, teardown, and the plugin at info and above):\n%s",
		oldID, logExcerpt(oldLog, refreshStart.Add(-time.Second), recoveredAt, 60))
	t.Logf("forced refreshes after the %s were sent by: %v", lc.name, forcedFrom)
	for _, cl := range all {
		if cl.From != oldID && !strings.HasPrefix(cl.From, "node") {
			t.Errorf("a vendor request from %s could not be attributed to a node's plugin (%s at %s)", cl.Remote, cl.From, cl.At.Format("15:04:05.000"))
		}
	}

	if teardown.IsZero() {
		t.Errorf("%s's log has no \"pre-seal teardown starting\" after the %s", oldID, lc.name)
	}
	// Vault tells a plugin nothing between the step-down and the moment
	// its teardown reaches the mount (Clean): until then the node is
	// still the Raft leader, its storage writes succeed, and a refresh it
	// sends is stored before any other node can become active (the chain
	// checks below prove it). From Clean on, no vendor call may start.
	closed := firstAfter(logTimes(oldLog, "plugin process exited"), teardown)
	for _, cl := range afterTeardown {
		if closed.IsZero() || !cl.At.Before(closed) {
			t.Errorf("%s sent a vendor call after its plugin was closed at %s: %s %s at %s", oldID, fmtClock(closed), cl.Client, cl.Grant, cl.At.Format("15:04:05.000"))
			continue
		}
		t.Logf("%s sent a vendor call during its teardown (began %s), before Vault closed its plugin at %s: %s %s at %s",
			oldID, fmtClock(teardown), fmtClock(closed), cl.Client, cl.Grant, cl.At.Format("15:04:05.000"))
	}
	for _, cl := range afterStandby {
		t.Errorf("%s sent a vendor call after it reported standby at %s: %s %s at %s", oldID, standbyAt.Format("15:04:05.000"), cl.Client, cl.Grant, cl.At.Format("15:04:05.000"))
	}
	// The plugin logs a vendor call when its answer arrives. A call in
	// flight when the teardown began may answer after it (the backend
	// gives calls in flight 5 s to finish and store their answers); any
	// other line after the teardown began is a call the tap did not see
	// come from the old node.
	inFlightAtTeardown := 0
	for _, cl := range refreshCalls {
		if !teardown.IsZero() && cl.At.Before(teardown) && cl.Done.After(teardown) {
			inFlightAtTeardown++
		}
	}
	if len(pluginAfter) > inFlightAtTeardown+len(afterTeardown) {
		t.Errorf("%s's plugin logged %d vendor calls after its teardown began at %s (%s), but the tap saw only %d of its calls in flight then and %d sent after",
			oldID, len(pluginAfter), fmtClock(teardown), fmtTimes(pluginAfter), inFlightAtTeardown, len(afterTeardown))
	}
	if len(refreshCalls) < stepDownAfter {
		t.Errorf("the refresher made only %d vendor calls", len(refreshCalls))
	}
	// All from the active node's plugin; leadership may move once more
	// after the recovery (a node just resumed from SIGSTOP can start an
	// election), so which node that is is not fixed.
	if len(forcedFrom) != 1 || forcedFrom[oldID] == len(creds) && lc.name == "step-down" {
		t.Errorf("the %d forced refreshes should all come from one active node's plugin (not %s's after a step-down): %v", len(creds), oldID, forcedFrom)
	}
	lost := 0
	for _, br := range chainBreaks(all) {
		report := t.Errorf
		if excused[br.Client] {
			report = t.Logf
		} else {
			lost++
		}
		report("%s presented a rotated-away refresh token at %s (rotated at %s by %s, sent at %s): vendor answered %s",
			br.Client, br.At.Format("15:04:05.000"), br.LostIn.Processed.Format("15:04:05.000"), br.LostIn.From, br.LostIn.At.Format("15:04:05.000"), br.Outcome)
	}
	if st := pb.Stats(); st.ReuseDetections+st.Failures["invalid_grant"] > 2*len(excused) {
		t.Errorf("vendor: %d reuse detections, %d invalid_grant: %d chains lost beyond the %d refreshes in flight when the leadership ended",
			st.ReuseDetections, st.Failures["invalid_grant"], lost, len(excused))
	}

	rmu.Lock()
	var failed, bad int
	var slowest time.Duration
	var slowAt time.Time
	problems := map[string]int{}
	for _, o := range reads {
		if d := o.arrived.Sub(o.sent); d > slowest {
			slowest, slowAt = d, o.sent
		}
		switch {
		case o.bad != "":
			bad++
			t.Errorf("read through node%d at %s: %s", o.node, o.arrived.Format("15:04:05.000"), o.bad)
		case o.failure != "":
			failed++
			problems[fmt.Sprintf("via node%d: %s", o.node, shorten(o.failure))]++
		}
	}
	t.Logf("readers: %d reads, %d failed, %d bad tokens; slowest read %s (sent at %s)", len(reads), failed, bad, slowest.Round(time.Millisecond), slowAt.Format("15:04:05.000"))
	for _, k := range sortedKeysInt(problems) {
		t.Logf("  %4d × %s", problems[k], k)
	}
	rmu.Unlock()
	st := pb.Stats()
	t.Logf("vendor penbox: %d requests, %d grants, %d reuse detections, failures %v; test took %s",
		st.Requests, st.Grants, st.ReuseDetections, st.Failures, time.Since(testStart).Round(100*time.Millisecond))
}

// logTimes returns the timestamps of the log lines that contain needle.
// Vault starts every line with an RFC 3339 time.
func logTimes(log, needle string) []time.Time {
	var out []time.Time
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, needle) {
			continue
		}
		ts, _, _ := strings.Cut(line, " ")
		if at, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			out = append(out, at)
		}
	}
	return out
}

func lastTime(ts []time.Time) time.Time {
	if len(ts) == 0 {
		return time.Time{}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	return ts[len(ts)-1]
}

// firstAfter returns the earliest of ts not before after, or zero.
func firstAfter(ts []time.Time, after time.Time) time.Time {
	var first time.Time
	for _, t := range ts {
		if !t.Before(after) && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first
}

func fmtTimes(ts []time.Time) string {
	var out []string
	for _, t := range ts {
		out = append(out, fmtClock(t))
	}
	return strings.Join(out, " ")
}

func fmtClock(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format("15:04:05.000")
}

func describeCalls(calls []tapCall, start time.Time) string {
	var parts []string
	for _, c := range calls {
		parts = append(parts, fmt.Sprintf("+%s %s %s from %s (HTTP %d)", c.At.Sub(start).Round(time.Millisecond), c.Client, c.Grant, c.From, c.Status))
	}
	if len(parts) > 30 {
		parts = append(parts[:10], fmt.Sprintf("… %d more …", len(parts)-20), strings.Join(parts[len(parts)-10:], ", "))
	}
	return strings.Join(parts, ", ")
}

// logExcerpt returns a Vault log's lines between from and to that tell
// the story of a leadership change: the core's and Raft's leadership
// lines and the plugin's lines at info and above, at most n of them.
func logExcerpt(log string, from, to time.Time, n int) string {
	markers := []string{
		"leadership lost", "stepping down", "pre-seal teardown", "failed to contact quorum",
		"entering follower state", "entering leader state", "acquired lock", "post-unseal setup",
	}
	var out []string
	for _, line := range strings.Split(log, "\n") {
		ts, _, _ := strings.Cut(line, " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || at.Before(from) || at.After(to) {
			continue
		}
		keep := strings.Contains(line, "secrets.vendoroauth") && !strings.Contains(line, "[DEBUG]") && !strings.Contains(line, "[TRACE]")
		for _, m := range markers {
			keep = keep || strings.Contains(line, m)
		}
		if !keep {
			continue
		}
		if len(line) > 320 {
			line = line[:320] + "…"
		}
		out = append(out, "    "+line)
	}
	if len(out) > n {
		out = append(out[:n/2], append([]string{fmt.Sprintf("    … %d lines …", len(out)-n)}, out[len(out)-n/2:]...)...)
	}
	return strings.Join(out, "\n")
}

func sortedKeysBool(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
