package vendoroauth

// Second adversarial review of the merge of issue 19 with issue 21 (and
// the fixes after the review of 21): failing tests, one per finding.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
)

// hungReceiver holds every delivery until released, then records it.
type hungReceiver struct {
	mu      sync.Mutex
	got     []string
	arrived chan struct{}
	once    sync.Once
	release chan struct{}
	free    sync.Once
}

func newHungReceiver(t *testing.T) (*hungReceiver, *httptest.Server) {
	h := &hungReceiver{arrived: make(chan struct{}), release: make(chan struct{})}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { h.open(); srv.Close() })
	return h, srv
}

func (h *hungReceiver) open() { h.free.Do(func() { close(h.release) }) }

func (h *hungReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.once.Do(func() { close(h.arrived) })
	select {
	case <-h.release:
	case <-r.Context().Done():
		return
	}
	body, _ := io.ReadAll(r.Body)
	var ev struct {
		Type string `json:"type"`
		Data struct {
			Connection string `json:"connection"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &ev)
	h.mu.Lock()
	h.got = append(h.got, ev.Type+" "+ev.Data.Connection)
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (h *hungReceiver) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.got...)
}

// Finding 1 (notify.go deliverApp / forgetWebhooks): a delivery in flight
// keeps the *model.App it started with and reads batch after batch of the
// feed for up to 10 s; forgetWebhooks only drops the map entry. So after
// an operator removes notify_url (or deletes the app) while a delivery is
// under way (a slow receiver), events written AFTER that change are still
// signed and posted to the removed receiver; and the in-flight delivery
// counts vendoroauth_webhook_deliveries_total{app=...} again after
// forgetApp dropped it, so a deleted app's series comes back and stays.
// (The next pass also starts a second goroutine for the same app, since
// the new appDelivery is not busy, if notify_url is set again.)
func TestReview2RemovedReceiverGetsEventsWrittenAfterItsRemoval(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		remove func(t *testing.T, env *testEnv)
		late   func(t *testing.T, env *testEnv) string
	}{
		{"notify_url removed", func(t *testing.T, env *testEnv) {
			resp, err := env.request(t, logical.UpdateOperation, "apps/rm", map[string]interface{}{"notify_url": "", "notify_secret": ""})
			if err != nil || resp.IsError() {
				t.Fatal(err, resp)
			}
		}, func(t *testing.T, env *testEnv) string {
			env.connect(t, "rm/late", nil)
			return "connection.connected rm/late"
		}},
		{"app deleted", func(t *testing.T, env *testEnv) {
			if resp, err := env.request(t, logical.DeleteOperation, "apps/rm", nil); err != nil || resp.IsError() {
				t.Fatal(err, resp)
			}
		}, func(t *testing.T, env *testEnv) string {
			if resp, err := env.request(t, logical.DeleteOperation, "config/rm/c00", nil); err != nil || resp.IsError() {
				t.Fatal(err, resp)
			}
			return "connection.deleted rm/c00"
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t)
			env.b.creds.SetNotifyManual()
			h, srv := newHungReceiver(t)
			env.penboxApp(t, "rm", map[string]interface{}{"notify_url": srv.URL, "notify_secret": testWebhookSecret})
			// More than one batch (32) of events, so the delivery reads on.
			for i := range 34 {
				env.connect(t, fmt.Sprintf("rm/c%02d", i), nil)
			}
			done := make(chan error, 1)
			go func() { done <- env.b.creds.DeliverNow(context.Background(), env.storage) }()
			select {
			case <-h.arrived:
			case <-time.After(5 * time.Second):
				t.Fatal("no delivery reached the receiver")
			}
			c.remove(t, env)
			late := c.late(t, env)
			h.open()
			if err := <-done; err != nil {
				t.Logf("pass: %v", err)
			}
			for _, got := range h.received() {
				if got == late {
					t.Errorf("%s: the event %q, written after the change, was signed and posted to the removed receiver", c.name, got)
				}
			}
			if c.name == "app deleted" {
				if body := env.metrics(t); strings.Contains(body, `vendoroauth_webhook_deliveries_total{app="rm"`) {
					t.Errorf("the deleted app's webhook series is back after forgetApp:\n%s", grepLines(body, `app="rm"`))
				}
			}
		})
	}
}

// snapThenHook reads a key, then (once, for the armed key) runs hook before
// handing back what it read: a change that lands between a read and
// what the reader does with it.
type snapThenHook struct {
	logical.Storage
	key   string
	armed atomic.Bool
	hook  func()
}

func (s *snapThenHook) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	v, err := s.Storage.Get(ctx, key)
	if key == s.key && s.armed.CompareAndSwap(true, false) {
		s.hook()
	}
	return v, err
}

// Finding 2 (loader.go scheduleFrom -> index.put, index.go put clears
// gone): the index's new `gone` set exists so that "the load does not
// bring back" a name deleted while it runs, but only loaded() honours it.
// scheduleFrom reads an entry without the name's lock and then calls
// index.put, which deletes the name from gone and files it again: a
// credential deleted while the load reads it is back in the index (LIST,
// status, the metrics' counts), on the refresh schedule, and written into
// the stored index. The same race files a stale record (reauth, stopped,
// static expiry) over a write's newer one, and the stored index then
// carries it over restarts.
func TestReview2LoadBringsBackACredentialDeletedWhileItReadsIt(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	v := env.penbox(t, "gx0", nil)
	env.penbox(t, "gx", map[string]interface{}{"refresh_token": v.IssueRefreshToken("pb-id")})
	env.readToken(t, "gx")
	fresh := newTestEnvOver(t, env)
	m := fresh.b.creds
	w := &snapThenHook{Storage: env.storage, key: store.EntryPrefix + "gx"}
	w.hook = func() {
		resp, err := reqOn(t, fresh, w, logical.DeleteOperation, "config/gx", nil)
		if err != nil || resp.IsError() {
			t.Errorf("delete during the load: %v %v", err, resp)
		}
	}
	w.armed.Store(true)
	if err := m.Tick(context.Background(), w, true); err != nil {
		t.Fatal(err)
	}
	waitLoad(t, m)
	if loaded, _ := m.ScheduleState(); !loaded {
		t.Fatal("the load did not finish")
	}
	if e, _ := store.Of(env.storage).Entry(context.Background(), "gx"); e != nil {
		t.Fatal("the delete did not happen")
	}
	if h := m.Health("", false); h.Total != 1 {
		t.Errorf("after the load, the index holds %d self-contained credentials; 1 (gx0) is stored", h.Total)
	}
	if p, err := m.ListPage(context.Background(), w, "", "", 100); err == nil {
		for _, k := range p.Keys {
			if k == "gx" {
				t.Errorf("LIST config/ shows the deleted credential gx: %v", p.Keys)
			}
		}
	}
	if !m.NextRefresh("gx").IsZero() {
		t.Errorf("the deleted credential gx is on the refresh schedule")
	}
}

// Finding 3 (metrics.go hostLabels): a host label is released only by
// forgetCredential, on the delete of a credential. A vendor request made
// for a name that never becomes a credential (an exchange or a device
// flow that fails: the partner's paths) pins its host in byName for the
// life of the process, and deleting the app does not release it either:
// churning apps (each its own per-tenant token_url host) leaves one host
// label per app, with no credential left, up to maxHostLabels, after
// which every real host counts as "other"; byName grows by one entry per
// failed name without bound.
func TestReview2FailedFlowsPinHostLabelsForever(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	const churn = 20
	for i := range churn {
		app := fmt.Sprintf("tenant%d", i)
		resp, err := env.request(t, logical.CreateOperation, "apps/"+app, map[string]interface{}{
			"provider": "generic", "token_url": fmt.Sprintf("http://127.0.0.%d:9/oauth/token", i+2),
			"authorize_url": "https://idp.example/authorize", "client_id": "id", "client_secret": "sec",
			"allowed_redirect_uris": partnerCallback,
		})
		if err != nil || resp.IsError() {
			t.Fatal(err, resp)
		}
		resp, err = env.request(t, logical.UpdateOperation, "authorize/"+app+"/u", map[string]interface{}{"redirect_uri": partnerCallback})
		if err != nil || resp.IsError() {
			t.Fatal(err, resp)
		}
		resp, err = env.request(t, logical.UpdateOperation, "exchange/"+app+"/u", map[string]interface{}{"code": "bogus", "state": resp.Data["state"]})
		mustErr(t, resp, err)
		if i == churn-1 {
			break // the last app stays: its host is counted
		}
		if resp, err := env.request(t, logical.DeleteOperation, "apps/"+app, nil); err != nil || resp.IsError() {
			t.Fatal(err, resp)
		}
	}
	hosts := map[string]bool{}
	for _, m := range hostLabel.FindAllStringSubmatch(env.metrics(t), -1) {
		hosts[m[1]] = true
	}
	if want := fmt.Sprintf("127.0.0.%d:9", churn+1); !hosts[want] {
		t.Fatalf("the remaining app's host %s was not counted: %v", want, hosts)
	}
	if len(hosts) > 1 {
		t.Errorf("one app is left, yet the metrics hold %d host labels (one per failed exchange's app)", len(hosts))
	}
}

// A new notify_url starts afresh: the backoff the old receiver earned
// (and its failing time) does not hold back the first delivery to the
// new one. Fails without forgetWebhooks on a change of receiver.
func TestNewReceiverDoesNotInheritTheOldOnesBackoff(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.useClock()
	env.b.creds.SetNotifyManual()
	dead, deadSrv := newReceiver(t)
	dead.setFail(true)
	env.penboxApp(t, "nr", map[string]interface{}{"notify_url": deadSrv.URL, "notify_secret": testWebhookSecret})
	env.connect(t, "nr/a", nil)
	if err := env.b.creds.DeliverNow(context.Background(), env.storage); err != nil {
		t.Fatal(err)
	}
	live, liveSrv := newReceiver(t)
	resp, err := env.request(t, logical.UpdateOperation, "apps/nr", map[string]interface{}{"notify_url": liveSrv.URL, "notify_secret": testWebhookSecret})
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	env.connect(t, "nr/b", nil)
	if err := env.b.creds.DeliverNow(context.Background(), env.storage); err != nil {
		t.Fatal(err)
	}
	// The old receiver's backlog moves with the URL (the partner moved its
	// receiver), then the event after the write.
	if got := live.types(); len(got) != 2 {
		t.Errorf("the new receiver got %v at once, want the old one's undelivered event and the one after the write (the old receiver's backoff held them back)", got)
	}
	if body := env.metrics(t); !strings.Contains(body, `vendoroauth_webhook_failing_seconds{app="nr"} 0`) {
		t.Errorf("the new receiver inherits the old one's failing time:\n%s", grepLines(body, `app="nr"`))
	}
}
