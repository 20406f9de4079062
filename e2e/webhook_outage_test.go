//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// receiverOutage is how long the webhook receiver is down.
const receiverOutage = 2 * time.Minute

// TestWebhooksSurviveOutageKillsAndStepDown runs an app with a notify_url
// on a 3-node Raft cluster. The receiver goes down (its port refuses
// connections) for 2 minutes; meanwhile accounts are connected, broken,
// recovered and deleted in three rounds, with the active node's plugin
// killed (SIGKILL, as the OOM killer does) after the first and the second,
// and the active node stepped down after the third. When the receiver is
// back, every event of the feed arrives, verified with the Standard
// Webhooks library, exactly once after deduplication and in order per
// connection: nothing was lost to the kills or the failover, since what
// was delivered, and the events themselves, are in storage.
func TestWebhooksSurviveOutageKillsAndStepDown(t *testing.T) {
	vaulttest.SkipOn(t, vaulttest.FlavorOpenBao, "a soak of 2 minutes and more on a 3-node cluster that exercises the plugin, not the server: it runs against Vault only, to keep CI within its time (README, Works with OpenBao)")
	testStart := time.Now()
	vs := standin.New()
	base, err := vs.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vs.Close()
	v := vs.Vendor(standin.VendorPenbox)
	const app, clientID, secret = "outage", "outage-client", "outage-client-secret-Hn7"
	v.AddClient(standin.Client{ID: clientID, Secret: secret, RedirectURIs: []string{partnerCallback}})
	rcv := newHookReceiver(t)

	c := startCluster(t)
	ctx := context.Background()
	// Any node: standbys forward to the active node, whichever it is.
	node := 0
	do := func(method, path string, body map[string]interface{}) (int, apiResponse, error) {
		var status int
		var r apiResponse
		var err error
		// A request that reaches a node while its plugin restarts or
		// leadership moves gets no answer or a 5xx: try again, as a
		// partner's backend would, for a while.
		for try := 0; try < 60; try++ {
			status, r, err = clusterCall(ctx, c, node, method, path, body)
			if err == nil && status < 500 {
				return status, r, nil
			}
			time.Sleep(500 * time.Millisecond)
		}
		return status, r, err
	}
	w := &hookWorld{t: t, v: v, app: app, client: clientID, expected: map[string][]string{}, do: do}
	cfg := partnerAppConfig(base, v, clientID, secret)
	cfg["notify_url"], cfg["notify_secret"] = rcv.url(), e2eWebhookSecret
	w.must("POST", mount+"/apps/"+app, cfg, 204)
	for i := 0; i < 8; i++ {
		w.connect(fmt.Sprintf("a%d", i))
	}
	feed, _ := readFeed(t, func(p string) (int, apiResponse, error) { return do("GET", p, nil) }, app)
	waitDelivered(t, rcv, feed, time.Minute)
	t.Logf("%d events delivered before the outage (%s)", len(feed), time.Since(testStart).Round(100*time.Millisecond))

	rcv.down()
	downAt := time.Now()
	// The rounds are spread over the outage, so the deliveries retry and
	// back off between them: each kill and the step-down land on a loop
	// that is failing.
	until := func(at time.Duration) {
		if wait := at - time.Since(downAt); wait > 0 {
			time.Sleep(wait)
		}
	}
	kill := func(round string) {
		t.Helper()
		_, lead := c.Leader()
		pids, err := vaulttest.KillPlugins(c.PID(lead))
		if err != nil {
			t.Fatalf("killing the plugin on %s: %v", c.Nodes()[lead].ID, err)
		}
		t.Logf("%s: SIGKILL to the plugin %v of the active node %s (%s into the outage)", round, pids, c.Nodes()[lead].ID, time.Since(downAt).Round(100*time.Millisecond))
	}
	// Round 1: new accounts and lapsed consents, then a kill.
	for i := 8; i < 14; i++ {
		w.connect(fmt.Sprintf("a%d", i))
	}
	for _, a := range []string{"a0", "a1", "a2", "a8"} {
		w.breakConsent(a)
	}
	until(25 * time.Second)
	kill("round 1")
	// Round 2 (the first request restarts the plugin): recoveries and
	// deletions, then a second kill.
	w.recover("a0")
	w.recover("a8")
	w.remove("a3")
	w.remove("a1")
	for i := 14; i < 18; i++ {
		w.connect(fmt.Sprintf("a%d", i))
	}
	until(55 * time.Second)
	kill("round 2")
	// Round 3, then the active node steps down.
	w.breakConsent("a14")
	w.connect("a3") // connected again after its delete
	w.remove("a15")
	until(85 * time.Second)
	_, lead := c.Leader()
	if status, r, err := clusterCall(ctx, c, lead, "PUT", "sys/step-down", nil); err != nil || status/100 != 2 {
		t.Fatalf("sys/step-down on %s: HTTP %d %v %v", c.Nodes()[lead].ID, status, r.Errors, err)
	}
	newLead, err := c.WaitLeader(lead)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("round 3: %s stepped down, %s is active (%s into the outage)", c.Nodes()[lead].ID, c.Nodes()[newLead].ID, time.Since(downAt).Round(100*time.Millisecond))
	node = newLead
	w.connect("a18")
	w.recover("a14")

	feed, _ = readFeed(t, func(p string) (int, apiResponse, error) { return do("GET", p, nil) }, app)
	w.checkExpected(feed)
	got, _ := rcv.deliveries()
	before := len(got)
	if wait := receiverOutage - time.Since(downAt); wait > 0 {
		t.Logf("%d events in the feed; waiting %s for the receiver's 2 minutes down to pass", len(feed), wait.Round(time.Second))
		time.Sleep(wait)
	}
	// What the feed says of the deliveries while the receiver is down.
	if status, r, _ := do("GET", mount+"/events/"+app+"?limit=1", nil); status != 200 || r.Data["webhooks"] == nil ||
		str(r.Data["webhooks"].(map[string]interface{})["failing_since"]) == "" {
		t.Errorf("events/%s does not show the failing deliveries: %v", app, r.Data["webhooks"])
	}
	rcv.up(t)
	upAt := time.Now()
	// Deliveries back off to a minute between tries, and a node whose
	// plugin restarted resumes them at its first event or tick.
	took := waitDelivered(t, rcv, feed, 3*time.Minute)
	got, forged := rcv.deliveries()
	dups := checkDelivered(t, feed, got)
	if forged != 0 {
		t.Errorf("%d deliveries failed the signature check", forged)
	}
	status, _, _ := do("GET", mount+"/metrics", nil)
	if status != http.StatusOK {
		t.Errorf("metrics after the failover: HTTP %d", status)
	}
	t.Logf("%d events of %d connections, %d delivered after the outage, all within %s of the receiver's return (%s after it went down); %d duplicate deliveries; test took %s",
		len(feed), len(w.expected), len(got)-before, took.Round(100*time.Millisecond), upAt.Sub(downAt).Round(time.Second), dups, time.Since(testStart).Round(time.Second))
}
