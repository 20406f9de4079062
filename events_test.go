package vendoroauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// testWebhookSecret is a Standard Webhooks secret of 32 bytes.
const testWebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw2Tm2sMTEbyI="

// feedEvents reads a whole feed (events or events/<app>) after a cursor.
func (e *testEnv) feedEvents(t *testing.T, app, after string) ([]map[string]interface{}, *logical.Response) {
	t.Helper()
	path := "events"
	if app != "" {
		path += "/" + app
	}
	resp, err := e.request(t, logical.ReadOperation, path, map[string]interface{}{"after": after})
	if err != nil || resp.IsError() {
		t.Fatalf("read %s: %v %v", path, err, resp)
	}
	return resp.Data["events"].([]map[string]interface{}), resp
}

func eventTypes(evs []map[string]interface{}) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, fmt.Sprintf("%s %s", ev["type"], ev["data"].(map[string]interface{})["connection"]))
	}
	return out
}

// Every change of a connection's state is one event of its app's feed,
// in order, with no secret in it; a self-contained credential's go to the
// other feed.
func TestFeedRecordsEveryChangeOfState(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	v := env.penboxApp(t, "ev", nil)
	env.connect(t, "ev/acme", map[string]interface{}{"metadata": "customer_id=c-1"})
	env.connect(t, "ev/beta", nil)
	env.readToken(t, "ev/acme")
	// The vendor revokes acme's consent: its next refresh is refused.
	v.RevokeRefreshToken(storedRefreshToken(t, env, "ev/acme"))
	clk.add(2 * time.Hour)
	resp, err := env.request(t, logical.ReadOperation, "token/ev/acme", nil)
	mustErr(t, resp, err, "invalid_grant")
	// A second refused read announces nothing new.
	resp, err = env.request(t, logical.ReadOperation, "token/ev/acme", nil)
	mustErr(t, resp, err)
	// An operator writes a refresh token the vendor issued anew: the next
	// grant succeeds, and the connection has recovered.
	env.write(t, "ev/acme", map[string]interface{}{"refresh_token": v.IssueRefreshToken("pb-id")})
	env.readToken(t, "ev/acme")
	if resp, err := env.request(t, logical.DeleteOperation, "config/ev/beta", nil); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	// A self-contained credential whose refresh token is dead.
	sv := env.penbox(t, "solo", nil)
	dead := sv.IssueRefreshToken("pb-id")
	sv.RevokeRefreshToken(dead)
	env.write(t, "solo", map[string]interface{}{"refresh_token": dead})
	resp, err = env.request(t, logical.ReadOperation, "token/solo", nil)
	mustErr(t, resp, err, "invalid_grant")

	evs, page := env.feedEvents(t, "ev", "")
	want := []string{
		"connection.connected ev/acme", "connection.connected ev/beta",
		"connection.reauthorization_needed ev/acme", "connection.recovered ev/acme", "connection.deleted ev/beta",
	}
	if got := eventTypes(evs); strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Fatalf("events/ev:\n got %q\nwant %q", got, want)
	}
	reauth := evs[2]["data"].(map[string]interface{})
	if reauth["error_code"] != "invalid_grant" || reauth["account"] != "acme" || reauth["app"] != "ev" ||
		reauth["metadata"].(map[string]string)["customer_id"] != "c-1" {
		t.Errorf("the reauthorization event: %v", reauth)
	}
	if evs[0]["data"].(map[string]interface{})["via"] != "authorization_code" {
		t.Errorf("connected via: %v", evs[0]["data"])
	}
	for i, ev := range evs {
		if ev["cursor"] != fmt.Sprint(i+1) || !strings.HasPrefix(ev["id"].(string), "evt_") {
			t.Errorf("event %d: cursor %v id %v", i, ev["cursor"], ev["id"])
		}
	}
	if page.Data["next"] != "5" || page.Data["more"] != false || page.Data["missed"] != uint64(0) {
		t.Errorf("page: next %v more %v missed %v", page.Data["next"], page.Data["more"], page.Data["missed"])
	}
	// A reader goes on from its cursor.
	if rest, _ := env.feedEvents(t, "ev", "3"); len(rest) != 2 || rest[0]["cursor"] != "4" {
		t.Errorf("after=3: %v", eventTypes(rest))
	}
	self, _ := env.feedEvents(t, "", "")
	if got := eventTypes(self); len(got) != 1 || got[0] != "connection.reauthorization_needed solo" {
		t.Errorf("events: %q", got)
	}
	raw, _ := json.Marshal(append(evs, self...))
	assertNoSecrets(t, "the feeds", string(raw), "pb-secret", dead)
	assertNoVendorTokens(t, "the feeds", string(raw))

	resp, err = env.request(t, logical.ReadOperation, "events/ev", map[string]interface{}{"after": "x"})
	mustErr(t, resp, err, "vendoroauth/events/ev", "not a cursor")
}

// An app whose client the vendor refuses announces it once, whichever of
// its connections met it first, until a grant with it works again.
func TestClientRejectedIsAnnouncedOnce(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	v := env.penboxApp(t, "cr", nil)
	env.connect(t, "cr/a", nil)
	env.connect(t, "cr/b", nil)
	v.RemoveClientSecret("pb-id", "pb-secret")
	v.AddClientSecret("pb-id", "pb-rotated-at-the-vendor")
	clk.add(2 * time.Hour)
	for _, name := range []string{"cr/a", "cr/b", "cr/a"} {
		resp, err := env.request(t, logical.ReadOperation, "token/"+name, nil)
		mustErr(t, resp, err, "invalid_client")
	}
	evs, _ := env.feedEvents(t, "cr", "2")
	if got := eventTypes(evs); len(got) != 1 || got[0] != "app.client_rejected cr/a" {
		t.Fatalf("events after the connections: %q", got)
	}
	if body := env.metrics(t); !strings.Contains(body, `vendoroauth_app_client_rejected{app="cr"} 1`) {
		t.Errorf("metrics do not show the rejected client:\n%s", grepLines(body, "client_rejected"))
	}
}

// A refresh token that could not be stored is announced as held, and as
// stored once a write succeeds, in that order, though the first event's
// own write failed too.
func TestHeldAndStoredEvents(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	rotating(t, env, "pb", standin.Behavior{Lifetime: 2 * time.Minute})
	clk.add(2 * time.Minute)
	env.storage.FailPut(true)
	resp, err := env.request(t, logical.ReadOperation, "token/pb", nil)
	mustErr(t, resp, err)
	if body := env.metrics(t); !strings.Contains(body, "vendoroauth_refresh_tokens_held 1") || !strings.Contains(body, "vendoroauth_events_unwritten 1") {
		t.Errorf("metrics while held:\n%s", grepLines(body, "held", "unwritten"))
	}
	env.storage.FailPut(false)
	if err := env.b.creds.Tick(context.Background(), env.storage, true); err != nil {
		t.Fatal(err)
	}
	evs, _ := env.feedEvents(t, "", "")
	if got := eventTypes(evs); strings.Join(got, "; ") != "refresh_token.held pb; refresh_token.stored pb" {
		t.Errorf("events: %q", got)
	}
	if body := env.metrics(t); !strings.Contains(body, "vendoroauth_refresh_tokens_held 0") {
		t.Errorf("metrics after the tick:\n%s", grepLines(body, "held"))
	}
}

// A feed keeps at most FeedMaxAge of events; a reader whose cursor fell
// behind what was pruned is told, with where to resync from.
func TestFeedPruneTellsAReaderThatFellBehind(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	env.b.creds.SetNotifyManual()
	env.penboxApp(t, "pr", nil)
	for _, a := range []string{"a", "b", "c"} {
		env.connect(t, "pr/"+a, nil)
	}
	clk.add(8 * 24 * time.Hour)
	env.connect(t, "pr/d", nil)
	if err := env.b.creds.DeliverNow(context.Background(), env.storage); err != nil {
		t.Fatal(err)
	}
	evs, resp := env.feedEvents(t, "pr", "1")
	if got := eventTypes(evs); len(got) != 1 || got[0] != "connection.connected pr/d" {
		t.Errorf("after pruning: %q", got)
	}
	if resp.Data["missed"] != uint64(2) || resp.Data["first"] != "4" || len(resp.Warnings) != 1 ||
		!strings.Contains(resp.Warnings[0], "vault read vendoroauth/status/pr") {
		t.Errorf("a reader that fell behind: missed %v first %v warnings %q", resp.Data["missed"], resp.Data["first"], resp.Warnings)
	}
	// A reader from the start is not told it missed anything.
	if _, resp := env.feedEvents(t, "pr", ""); resp.Data["missed"] != uint64(0) || len(resp.Warnings) != 0 {
		t.Errorf("a new reader: %v %q", resp.Data["missed"], resp.Warnings)
	}
	for _, seq := range []uint64{1, 2, 3} {
		if ev, err := store.Of(env.storage).Event(context.Background(), "pr", seq); err != nil || ev != nil {
			t.Errorf("event %d is still stored: %v %v", seq, ev, err)
		}
	}
}

// receiver is a webhook receiver that verifies every delivery with the
// Standard Webhooks library.
type receiver struct {
	t      *testing.T
	wh     *standardwebhooks.Webhook
	mu     sync.Mutex
	fail   bool
	got    []map[string]interface{}
	ids    []string
	raw    []string
	forged int
}

func newReceiver(t *testing.T) (*receiver, *httptest.Server) {
	wh, err := standardwebhooks.NewWebhook(testWebhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, wh: wh}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.forged++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var ev map[string]interface{}
	if err := json.Unmarshal(body, &ev); err != nil || ev["id"] != req.Header.Get("webhook-id") {
		r.forged++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.got = append(r.got, ev)
	r.ids = append(r.ids, req.Header.Get("webhook-id"))
	r.raw = append(r.raw, string(body))
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) setFail(f bool) { r.mu.Lock(); r.fail = f; r.mu.Unlock() }

func (r *receiver) types() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.got {
		out = append(out, fmt.Sprintf("%s %s", ev["type"], ev["data"].(map[string]interface{})["connection"]))
	}
	return out
}

// Webhooks carry every event after notify_url was set, signed, in order;
// a failed delivery is retried with the same webhook-id, and the cursor
// of what was delivered is in storage.
func TestWebhooksDeliverTheFeed(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	env.b.creds.SetNotifyManual()
	rcv, srv := newReceiver(t)
	env.penboxApp(t, "wh", nil)
	env.connect(t, "wh/before", nil) // before the notify_url: not delivered
	resp, err := env.request(t, logical.UpdateOperation, "apps/wh", map[string]interface{}{"notify_url": srv.URL + "/hook", "notify_secret": testWebhookSecret})
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	read, _ := env.request(t, logical.ReadOperation, "apps/wh", nil)
	if read.Data["notify_secret_set"] != true || strings.Contains(fmt.Sprint(read.Data), testWebhookSecret) {
		t.Errorf("apps/wh read: %v", read.Data)
	}
	deliver := func() {
		t.Helper()
		if err := env.b.creds.DeliverNow(context.Background(), env.storage); err != nil {
			t.Fatal(err)
		}
	}
	env.connect(t, "wh/a", nil)
	rcv.setFail(true)
	env.connect(t, "wh/b", nil)
	deliver()
	if got := rcv.types(); len(got) != 0 {
		t.Fatalf("a failing receiver recorded %q", got)
	}
	_, page := env.feedEvents(t, "wh", "")
	if wh := page.Data["webhooks"].(map[string]interface{}); wh["failing_since"] == "" || !strings.Contains(wh["last_error"].(string), "HTTP 503") {
		t.Errorf("events/wh webhooks while failing: %v", wh)
	}
	rcv.setFail(false)
	deliver() // backing off: nothing sent yet
	if len(rcv.types()) != 0 {
		t.Errorf("delivered during the backoff")
	}
	clk.add(2 * time.Second)
	deliver()
	// Connections' events go in parallel: in order per connection only.
	got := rcv.types()
	sort.Strings(got)
	if strings.Join(got, "; ") != "connection.connected wh/a; connection.connected wh/b" {
		t.Fatalf("delivered %q", got)
	}
	evs, page := env.feedEvents(t, "wh", "")
	ids := map[string]bool{evs[1]["id"].(string): true, evs[2]["id"].(string): true}
	if !ids[rcv.ids[0]] || !ids[rcv.ids[1]] || rcv.ids[0] == rcv.ids[1] {
		t.Errorf("webhook-ids %q are not the events' ids", rcv.ids)
	}
	if wh := page.Data["webhooks"].(map[string]interface{}); wh["delivered"] != "3" || wh["failing_since"] != "" {
		t.Errorf("events/wh webhooks after delivery: %v", wh)
	}
	// A new node (a restart, a failover) resumes from the stored cursor:
	// nothing is delivered twice.
	other := newTestEnvOver(t, env)
	other.b.creds.SetNotifyManual()
	env.connect(t, "wh/c", nil)
	if err := other.b.creds.DeliverNow(context.Background(), other.storage); err != nil {
		t.Fatal(err)
	}
	if got := rcv.types(); len(got) != 3 || got[2] != "connection.connected wh/c" || rcv.forged != 0 {
		t.Errorf("after a restart: %q (forged %d)", got, rcv.forged)
	}
	assertNoSecrets(t, "the webhooks", strings.Join(rcv.raw, "\n"), testWebhookSecret, "pb-secret")
	assertNoVendorTokens(t, "the webhooks", strings.Join(rcv.raw, "\n"))
}

// The notify secret goes only with the notify_url it was written with: a
// write that moves notify_url must give it again, and a delivery to
// anywhere else is refused at the gate, where the request would leave.
func TestNotifySecretIsBoundToNotifyURL(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.b.creds.SetNotifyManual()
	rcv, srv := newReceiver(t)
	thief, thiefSrv := newReceiver(t)
	env.penboxApp(t, "nb", map[string]interface{}{"notify_url": srv.URL, "notify_secret": testWebhookSecret})
	for _, c := range []struct {
		name string
		data map[string]interface{}
		want []string
	}{
		{"moved without the secret", map[string]interface{}{"notify_url": thiefSrv.URL}, []string{"vendoroauth/apps/nb was not changed", "notify_url=" + thiefSrv.URL, "give notify_secret again"}},
		{"plain http elsewhere", map[string]interface{}{"notify_url": "http://hooks.example.com/x", "notify_secret": testWebhookSecret}, []string{"must use https"}},
		{"credentials in the URL", map[string]interface{}{"notify_url": "https://u:p@hooks.example.com/x", "notify_secret": testWebhookSecret}, []string{"must not carry credentials"}},
		{"not a Standard Webhooks secret", map[string]interface{}{"notify_secret": "hunter2-hunter2"}, []string{"must start with whsec_"}},
		{"too short a key", map[string]interface{}{"notify_secret": "whsec_c2hvcnQ="}, []string{"24 to 64"}},
		{"a secret without a URL", map[string]interface{}{"notify_url": ""}, []string{"notify_secret is set without notify_url"}},
	} {
		resp, err := env.request(t, logical.UpdateOperation, "apps/nb", c.data)
		msg := mustErr(t, resp, err, c.want...)
		assertNoSecrets(t, c.name, msg, testWebhookSecret, "hunter2-hunter2")
	}
	// A path that forgot the rule (here: storage edited by hand) still
	// cannot have the secret sign for another URL.
	ctx := context.Background()
	a, err := store.Of(env.storage).App(ctx, "nb")
	if err != nil {
		t.Fatal(err)
	}
	a.NotifyURL = thiefSrv.URL
	if err := store.Of(env.storage).PutApp(ctx, "nb", a); err != nil {
		t.Fatal(err)
	}
	env.b.creds.Invalidate(store.AppPrefix + "nb")
	env.connect(t, "nb/a", nil)
	if err := env.b.creds.DeliverNow(ctx, env.storage); err != nil {
		t.Fatal(err)
	}
	if len(thief.types()) != 0 || thief.forged != 0 || len(rcv.types()) != 0 {
		t.Fatalf("a delivery went out with the moved secret: thief %q", thief.types())
	}
	_, page := env.feedEvents(t, "nb", "")
	if wh := page.Data["webhooks"].(map[string]interface{}); !strings.Contains(wh["last_error"].(string), "not sending the notify_secret") {
		t.Errorf("the refused delivery: %v", wh)
	}
	// Given again with the new URL, it signs for it.
	resp, err := env.request(t, logical.UpdateOperation, "apps/nb", map[string]interface{}{"notify_url": srv.URL + "/v2", "notify_secret": testWebhookSecret})
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	// Clearing both stops the webhooks.
	resp, err = env.request(t, logical.UpdateOperation, "apps/nb", map[string]interface{}{"notify_url": "", "notify_secret": ""})
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
}

// metrics reads <mount>/metrics as Vault hands it out: a raw body.
func (e *testEnv) metrics(t *testing.T) string {
	t.Helper()
	resp, err := e.request(t, logical.ReadOperation, "metrics", nil)
	if err != nil || resp == nil || resp.Data[logical.HTTPStatusCode] != http.StatusOK {
		t.Fatalf("read metrics: %v %v", err, resp)
	}
	if ct := resp.Data[logical.HTTPContentType].(string); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content type %q", ct)
	}
	return string(resp.Data[logical.HTTPRawBody].([]byte))
}

// standinToken matches every token a stand-in issues.
var standinToken = regexp.MustCompile(`\b(generic|officernd|boldpenguin|eshopbox|penbox)-(at|rt)-[A-Za-z0-9_-]{32}`)

func assertNoVendorTokens(t *testing.T, where, s string) {
	t.Helper()
	if m := standinToken.FindString(s); m != "" {
		t.Errorf("%s holds a vendor token (%s…)", where, m[:12])
	}
}

// loadedMetrics scrapes once the load of every entry after the start has
// finished (the first scrape starts it): the counts by state are there.
func (e *testEnv) loadedMetrics(t *testing.T) string {
	t.Helper()
	e.metrics(t)
	deadline := time.Now().Add(10 * time.Second)
	for loaded, _ := e.b.creds.ScheduleState(); !loaded; loaded, _ = e.b.creds.ScheduleState() {
		if time.Now().After(deadline) {
			t.Fatal("the load after the start did not finish in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return e.metrics(t)
}

func grepLines(body string, words ...string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// The metrics count reads and vendor requests by outcome and credentials
// by state, and never name a credential.
func TestMetrics(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	env.officernd(t, "secret-name-o", nil)
	env.readToken(t, "secret-name-o")
	env.readToken(t, "secret-name-o")
	v := env.penboxApp(t, "mx", nil)
	env.connect(t, "mx/secret-account", nil)
	v.RevokeRefreshToken(storedRefreshToken(t, env, "mx/secret-account"))
	clk.add(2 * time.Hour)
	resp, err := env.request(t, logical.ReadOperation, "token/mx/secret-account", nil)
	mustErr(t, resp, err)
	env.readToken(t, "secret-name-o") // its token expired: a vendor call
	body := env.loadedMetrics(t)
	for _, want := range []string{
		`vendoroauth_token_reads_total{outcome="cache"} 1`,
		`vendoroauth_token_reads_total{outcome="vendor_call"} 2`,
		`vendoroauth_token_reads_total{outcome="error"} 1`,
		`vendoroauth_credentials{app="mx",state="needs_reauthorization"} 1`,
		`vendoroauth_credentials{app="mx",state="healthy"} 0`,
		`vendoroauth_credentials{app="",state="healthy"} 1`,
		`grant="authorization_code",host="127.0.0.1:`,
		`outcome="invalid_grant"`,
		`vendoroauth_vendor_request_duration_seconds_bucket{grant="client_credentials"`,
		`vendoroauth_refresh_tokens_held 0`,
		`vendoroauth_build_info{goversion="go`,
		`vendoroauth_events_total{type="connection.reauthorization_needed"} 1`,
		`vendoroauth_token_life_used_ratio_bucket{trigger="read"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics have no %s", want)
		}
	}
	if strings.Contains(body, "secret-name") || strings.Contains(body, "secret-account") {
		t.Errorf("a metric names a credential:\n%s", grepLines(body, "secret-"))
	}
	assertNoSecrets(t, "metrics", body, "pb-secret")
	assertNoVendorTokens(t, "metrics", body)
}

// A receiver that hangs delays no token read: deliveries hold no lock a
// read takes.
func TestHangingReceiverDelaysNoRead(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.b.creds.SetNotifyManual()
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hang }))
	t.Cleanup(func() { close(hang); srv.Close() })
	env.penboxApp(t, "hg", map[string]interface{}{"notify_url": srv.URL, "notify_secret": testWebhookSecret})
	env.connect(t, "hg/a", nil)
	env.officernd(t, "o", nil)
	env.readToken(t, "o")
	done := make(chan error, 1)
	go func() { done <- env.b.creds.DeliverNow(context.Background(), env.storage) }()
	time.Sleep(50 * time.Millisecond) // the delivery is in flight, waiting on the receiver
	for i := range 50 {
		start := time.Now()
		env.readToken(t, "o")
		env.readToken(t, "hg/a")
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Fatalf("read %d took %s while a delivery hung", i, took)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the delivery did not wait for the hanging receiver: %v", err)
	default:
	}
}

// The first event on the node that writes starts its deliveries, without
// waiting for a tick.
func TestDeliveriesStartWithTheFirstEvent(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	rcv, srv := newReceiver(t)
	env.penboxApp(t, "rw", map[string]interface{}{"notify_url": srv.URL, "notify_secret": testWebhookSecret})
	env.b.creds.TickNotify(env.storage, false)
	env.connect(t, "rw/a", nil) // an event starts the loop: this is the node that writes
	waitForCond(t, "the first delivery", func() bool { return len(rcv.types()) == 1 })
}

func waitForCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
