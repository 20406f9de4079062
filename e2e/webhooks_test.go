//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// e2eWebhookSecret is the apps' notify_secret: whsec_ and 32 bytes.
const e2eWebhookSecret = "whsec_q6KQX0n8sUQnyq1Fj3r8Jk2k1vKpHkD3xY0mFJ9kS2E="

// hookReceiver is a partner's webhook endpoint: it verifies every
// delivery's signature with the Standard Webhooks library (and refuses
// what does not verify), and records what it accepted. It can go down
// (its listener closed: connections are refused) and come back on the
// same port.
type hookReceiver struct {
	wh   *standardwebhooks.Webhook
	addr string

	mu       sync.Mutex
	srv      *http.Server
	accepted []hookDelivery
	forged   int
	attempts int
}

// hookDelivery is one delivery the receiver accepted.
type hookDelivery struct {
	id   string
	body string
	ev   struct {
		ID     string `json:"id"`
		Cursor string `json:"cursor"`
		Type   string `json:"type"`
		Data   struct {
			Connection string `json:"connection"`
		} `json:"data"`
	}
}

func newHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(e2eWebhookSecret)
	if err != nil {
		t.Fatal(err)
	}
	r := &hookReceiver{wh: wh}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = l.Addr().String()
	r.serve(l)
	t.Cleanup(r.down)
	return r
}

func (r *hookReceiver) url() string { return "http://" + r.addr + "/vendoroauth/events" }

func (r *hookReceiver) serve(l net.Listener) {
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(l) }() // ends when down closes it
}

// down closes the listener: the plugin's deliveries are refused.
func (r *hookReceiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// up listens again on the same port.
func (r *hookReceiver) up(t *testing.T) {
	t.Helper()
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if l, err = net.Listen("tcp", r.addr); err == nil {
			r.serve(l)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the receiver cannot listen on %s again: %v", r.addr, err)
}

func (r *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.forged++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	d := hookDelivery{id: req.Header.Get("webhook-id"), body: string(body)}
	if err := json.Unmarshal(body, &d.ev); err != nil || d.ev.ID != d.id {
		r.forged++
		http.Error(w, "bad payload", http.StatusBadRequest)
		return
	}
	r.accepted = append(r.accepted, d)
	w.WriteHeader(http.StatusNoContent)
}

// deliveries returns what was accepted, and how many failed to verify.
func (r *hookReceiver) deliveries() ([]hookDelivery, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookDelivery(nil), r.accepted...), r.forged
}

// feedEvent is an event as events/<app> answers it.
type feedEvent struct {
	ID     string `json:"id"`
	Cursor string `json:"cursor"`
	Type   string `json:"type"`
	Data   struct {
		Connection string `json:"connection"`
	} `json:"data"`
}

// readFeed reads every event of events/<app> with get, page by page.
func readFeed(t *testing.T, get func(path string) (int, apiResponse, error), app string) ([]feedEvent, string) {
	t.Helper()
	var out []feedEvent
	var raw strings.Builder
	after := "0"
	for {
		status, r, err := get(fmt.Sprintf("%s/events/%s?after=%s&limit=1000", mount, app, after))
		if err != nil || status != 200 {
			t.Fatalf("events/%s: HTTP %d %v %v", app, status, err, r.Errors)
		}
		b, _ := json.Marshal(r.Data["events"])
		raw.Write(b)
		var page []feedEvent
		if err := json.Unmarshal(b, &page); err != nil {
			t.Fatal(err)
		}
		if m, _ := r.Data["missed"].(float64); m != 0 {
			t.Fatalf("events/%s: %v events missed", app, m)
		}
		out = append(out, page...)
		after = str(r.Data["next"])
		if r.Data["more"] != true {
			return out, raw.String()
		}
	}
}

// checkDelivered compares what the receiver accepted with the feed: every
// event exactly once after deduplication by webhook-id, nothing else, and
// each connection's events in the feed's order. It returns the number of
// duplicates (redeliveries, which at-least-once allows).
func checkDelivered(t *testing.T, feed []feedEvent, got []hookDelivery) int {
	t.Helper()
	byID := map[string]feedEvent{}
	wantOrder := map[string][]string{}
	for _, ev := range feed {
		byID[ev.ID] = ev
		wantOrder[ev.Data.Connection] = append(wantOrder[ev.Data.Connection], ev.ID)
	}
	seen := map[string]bool{}
	gotOrder := map[string][]string{}
	dups := 0
	for _, d := range got {
		ev, ok := byID[d.id]
		if !ok {
			t.Errorf("a delivery of an event the feed does not hold: %s %s", d.id, d.ev.Type)
			continue
		}
		if ev.Type != d.ev.Type || ev.Data.Connection != d.ev.Data.Connection || ev.Cursor != d.ev.Cursor {
			t.Errorf("delivery %s is not the feed's event: %+v, feed %+v", d.id, d.ev, ev)
		}
		if seen[d.id] {
			dups++
			continue
		}
		seen[d.id] = true
		gotOrder[ev.Data.Connection] = append(gotOrder[ev.Data.Connection], d.id)
	}
	missing := 0
	for id, ev := range byID {
		if !seen[id] {
			missing++
			if missing <= 10 {
				t.Errorf("never delivered: %s %s %s", ev.Cursor, ev.Type, ev.Data.Connection)
			}
		}
	}
	if missing > 10 {
		t.Errorf("… %d events never delivered in all", missing)
	}
	for conn, want := range wantOrder {
		if strings.Join(gotOrder[conn], ",") != strings.Join(want, ",") && missing == 0 {
			t.Errorf("%s: delivered in the order %v, the feed's is %v", conn, gotOrder[conn], want)
		}
	}
	return dups
}

// hookWorld is a stand-in Penbox, an app of the plugin with a notify_url,
// and the calls to reach the plugin (one Vault, or a cluster's nodes).
type hookWorld struct {
	t      *testing.T
	v      *standin.Vendor
	app    string
	client string
	do     func(method, path string, body map[string]interface{}) (int, apiResponse, error)
	// expected per connection, in order: what the test did.
	mu       sync.Mutex
	expected map[string][]string
}

func (w *hookWorld) must(method, path string, body map[string]interface{}, want int) apiResponse {
	w.t.Helper()
	status, r, err := w.do(method, path, body)
	if err != nil || status != want {
		w.t.Fatalf("%s %s: HTTP %d %v %v, want %d", method, path, status, r.Errors, err, want)
	}
	return r
}

func (w *hookWorld) expect(name, typ string) {
	w.mu.Lock()
	w.expected[name] = append(w.expected[name], typ)
	w.mu.Unlock()
}

// connect connects <app>/<account> through authorize, the stand-in's
// consent and exchange.
func (w *hookWorld) connect(account string) {
	w.t.Helper()
	name := w.app + "/" + account
	r := w.must("POST", mount+"/authorize/"+name, map[string]interface{}{"redirect_uri": partnerCallback, "metadata": "customer=" + account}, 200)
	code, state := browse(w.t, str(r.Data["url"]))
	w.must("POST", mount+"/exchange/"+name, map[string]interface{}{"code": code, "state": state}, 200)
	w.expect(name, "connection.connected")
}

// breakConsent revokes the connection's refresh token at the vendor (the
// customer withdrew consent) and forces a refresh: the vendor refuses it
// with invalid_grant. The refresh token is learned from a first forced
// refresh, as the vendor recorded it.
func (w *hookWorld) breakConsent(account string) {
	w.t.Helper()
	name := w.app + "/" + account
	w.must("POST", mount+"/refresh/"+name, nil, 200)
	last, ok := w.v.LastRequest()
	if !ok || last.Form["refresh_token"] == "" {
		w.t.Fatalf("the vendor recorded no refresh of %s", name)
	}
	w.v.RevokeRefreshToken(last.Form["refresh_token"])
	// Refused: the token still valid is served with a warning (200), or
	// the read fails (400); either way the connection needs
	// reauthorization now.
	if status, r, err := w.do("POST", mount+"/refresh/"+name, nil); err != nil || (status != 200 && status != 400) {
		w.t.Fatalf("refresh/%s after the revocation: HTTP %d %v %v", name, status, r.Errors, err)
	}
	w.expect(name, "connection.reauthorization_needed")
}

// recover writes a refresh token the vendor issued anew and reads a token
// with it.
func (w *hookWorld) recover(account string) {
	w.t.Helper()
	name := w.app + "/" + account
	w.must("POST", mount+"/config/"+name, map[string]interface{}{"refresh_token": w.v.IssueRefreshToken(w.client)}, 204)
	w.must("GET", mount+"/token/"+name, nil, 200)
	w.expect(name, "connection.recovered")
}

func (w *hookWorld) remove(account string) {
	w.t.Helper()
	name := w.app + "/" + account
	w.must("DELETE", mount+"/config/"+name, nil, 204)
	w.expect(name, "connection.deleted")
}

// checkExpected compares the feed with what the test did: each state
// change exactly once, in order per connection.
func (w *hookWorld) checkExpected(feed []feedEvent) {
	w.t.Helper()
	got := map[string][]string{}
	for _, ev := range feed {
		got[ev.Data.Connection] = append(got[ev.Data.Connection], ev.Type)
	}
	names := make([]string, 0, len(w.expected))
	for n := range w.expected {
		names = append(names, n)
	}
	sort.Strings(names)
	bad := 0
	for _, n := range names {
		if strings.Join(got[n], ",") != strings.Join(w.expected[n], ",") {
			bad++
			if bad <= 10 {
				w.t.Errorf("%s: the feed has %v, the test did %v", n, got[n], w.expected[n])
			}
		}
	}
	if len(got) != len(w.expected) {
		w.t.Errorf("the feed is about %d connections, the test changed %d", len(got), len(w.expected))
	}
}

// waitDelivered waits until the receiver has every event of the feed.
func waitDelivered(t *testing.T, r *hookReceiver, feed []feedEvent, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	want := map[string]bool{}
	for _, ev := range feed {
		want[ev.ID] = true
	}
	for {
		got, _ := r.deliveries()
		n := 0
		seen := map[string]bool{}
		for _, d := range got {
			if want[d.id] && !seen[d.id] {
				seen[d.id] = true
				n++
			}
		}
		if n == len(want) {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%d of %d events delivered within %s", n, len(want), within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestWebhooksDeliverEveryChangeOnce connects 100 accounts of an app with
// a notify_url, breaks half of their consents at the vendor, recovers half
// of those and deletes a fifth of all: 195 changes of state. The receiver
// verifies every delivery's signature with the Standard Webhooks library;
// every change arrives exactly once after deduplication by webhook-id, in
// order per connection, and the feed says the same; no secret is in a
// delivery or the feed.
func TestWebhooksDeliverEveryChangeOnce(t *testing.T) {
	start := time.Now()
	const app = "hooks100"
	vs := standin.New()
	base, err := vs.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vs.Close()
	v := vs.Vendor(standin.VendorPenbox)
	const clientID, secret = "hooks-client", "hooks-client-secret-Qe4"
	v.AddClient(standin.Client{ID: clientID, Secret: secret, RedirectURIs: []string{partnerCallback}})
	rcv := newHookReceiver(t)
	cfg := partnerAppConfig(base, v, clientID, secret)
	cfg["notify_url"], cfg["notify_secret"] = rcv.url(), e2eWebhookSecret
	if status, r, _ := call(t, "POST", mount+"/apps/"+app, cfg); status != 204 {
		t.Fatalf("apps/%s: HTTP %d %v", app, status, r.Errors)
	}
	t.Cleanup(func() { call(t, "DELETE", mount+"/apps/"+app, nil) })
	w := &hookWorld{t: t, v: v, app: app, client: clientID, expected: map[string][]string{},
		do: func(method, path string, body map[string]interface{}) (int, apiResponse, error) {
			status, r, _ := call(t, method, path, body)
			return status, r, nil
		}}
	accounts := make([]string, 100)
	for i := range accounts {
		accounts[i] = fmt.Sprintf("acct-%03d", i)
	}
	// Eight partner backends at once: the feed orders what happens in
	// parallel.
	parallel(t, 8, accounts, w.connect)
	var broken, recovered, deleted []string
	for i, a := range accounts {
		if i%2 == 0 {
			broken = append(broken, a)
		}
		if i%4 == 0 {
			recovered = append(recovered, a)
		}
		if i%5 == 0 {
			deleted = append(deleted, a)
		}
	}
	for _, a := range broken { // one at a time: the vendor's last request names the token
		w.breakConsent(a)
	}
	parallel(t, 8, recovered, w.recover)
	parallel(t, 8, deleted, w.remove)
	get := func(path string) (int, apiResponse, error) {
		status, r, _ := call(t, "GET", path, nil)
		return status, r, nil
	}
	feed, rawFeed := readFeed(t, get, app)
	w.checkExpected(feed)
	took := waitDelivered(t, rcv, feed, time.Minute)
	got, forged := rcv.deliveries()
	dups := checkDelivered(t, feed, got)
	if forged != 0 {
		t.Errorf("%d deliveries failed the signature check", forged)
	}
	var bodies strings.Builder
	for _, d := range got {
		bodies.WriteString(d.body)
	}
	for _, where := range []struct{ name, text string }{{"a delivery", bodies.String()}, {"the feed", rawFeed}} {
		for _, s := range []string{secret, e2eWebhookSecret, strings.TrimPrefix(e2eWebhookSecret, "whsec_"), "penbox-rt-", "penbox-at-"} {
			if strings.Contains(where.text, s) {
				t.Errorf("%s holds %q", where.name, s)
			}
		}
	}
	t.Logf("%d events of %d connections: all delivered %s after the last change, %d duplicate deliveries, %d attempts; test took %s",
		len(feed), len(accounts), took.Round(10*time.Millisecond), dups, rcv.attempts, time.Since(start).Round(100*time.Millisecond))
}

// parallel runs f for every item, n at a time.
func parallel(t *testing.T, n int, items []string, f func(string)) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, n)
	for _, it := range items {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f(it)
		}()
	}
	wg.Wait()
}

var errNotUp = errors.New("not up")

// waitHTTP polls u until it answers 200.
func waitHTTP(ctx context.Context, u string) error {
	last := errNotUp
	for {
		resp, err := http.Get(u) //nolint:noctx // a local readiness probe
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		} else {
			last = fmt.Errorf("%w: %w", errNotUp, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", u, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
