package vendoroauth

// Adversarial review of issue 21 (metrics, event feeds, webhooks) and the
// issue 20 advice fixes: regression tests. Each failed on 3cbf1ac (and on
// the merge of issue 19 after it) before its fix, naming what broke.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// reqOn sends a request to env's backend over storage s (a wrapper of
// env.storage that misbehaves in one chosen way).
func reqOn(t *testing.T, env *testEnv, s logical.Storage, op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
	t.Helper()
	return env.b.HandleRequest(context.Background(), &logical.Request{
		Operation: op, Path: path, Data: data, Storage: s, MountPoint: env.mount,
	})
}

// feedPutsFail fails every write under feed/ while fail is set, and lets
// every other write through: a transient storage error on the one write of
// an event.
type feedPutsFail struct {
	logical.Storage
	fail atomic.Bool
}

func (s *feedPutsFail) Put(ctx context.Context, e *logical.StorageEntry) error {
	if s.fail.Load() && strings.HasPrefix(e.Key, "feed/") {
		return errInjected
	}
	return s.Storage.Put(ctx, e)
}

// An event whose write failed is kept in memory "until it succeeds", but
// Close (seal, step-down, reload, plugin upgrade) neither writes nor even
// logs the events still waiting, while the change they record was stored:
// the partner never learns that the connection needs reauthorization, and
// its webhooks never carry it. Close flushes held refresh tokens
// (flushPending); it does nothing for m.feeds.unwrit.
func TestReview21UnwrittenEventsAreLostOnClose(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	env.b.creds.SetNotifyManual()
	v := env.penboxApp(t, "lz", nil)
	env.connect(t, "lz/a", nil)
	v.RevokeRefreshToken(storedRefreshToken(t, env, "lz/a"))
	clk.add(2 * time.Hour)

	flaky := &feedPutsFail{Storage: env.storage}
	flaky.fail.Store(true)
	resp, err := reqOn(t, env, flaky, logical.ReadOperation, "token/lz/a", nil)
	mustErr(t, resp, err, "invalid_grant")
	flaky.fail.Store(false)
	// The change was stored: the connection needs reauthorization.
	read, err := env.request(t, logical.ReadOperation, "config/lz/a", nil)
	if err != nil || read == nil || read.Data["needs_reauthorization"] != true {
		t.Fatalf("the change was not stored: %v %v", err, read)
	}
	if body := env.metrics(t); !strings.Contains(body, "vendoroauth_events_unwritten 1") {
		t.Fatalf("the event is not waiting in memory:\n%s", grepLines(body, "unwritten"))
	}
	// Storage works again; the node steps down (or is sealed, or the
	// plugin reloads) before the next maintenance pass or event.
	env.b.Cleanup(context.Background())

	other := newTestEnvOver(t, env)
	evs, _ := other.feedEvents(t, "lz", "1")
	if got := eventTypes(evs); len(got) != 1 || got[0] != "connection.reauthorization_needed lz/a" {
		t.Errorf("after Close the feed holds %q after the connection's first event: the stored change (needs_reauthorization) has no event", got)
	}
}

// killAfterEntryDelete lets the delete of a credential's entry through,
// then never returns: the plugin process was killed right after it.
type killAfterEntryDelete struct {
	logical.Storage
	deleted chan struct{}
	never   chan struct{}
	once    sync.Once
}

func (s *killAfterEntryDelete) Delete(ctx context.Context, key string) error {
	err := s.Storage.Delete(ctx, key)
	if strings.HasPrefix(key, "creds/") {
		s.once.Do(func() { close(s.deleted) })
		<-s.never
	}
	return err
}

// README: "The event is written first, then the change: a plugin killed
// between the two never leaves a change without its event". Manager.Delete
// does it the other way round (DeleteEntry, then onDeleted), so a kill in
// between leaves the connection deleted and connection.deleted never
// written, on every node, for good.
func TestReview21DeleteWritesItsEventAfterTheChange(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.b.creds.SetNotifyManual()
	env.penboxApp(t, "dk", nil)
	env.connect(t, "dk/a", nil)

	killed := &killAfterEntryDelete{Storage: env.storage, deleted: make(chan struct{}), never: make(chan struct{})}
	t.Cleanup(func() { close(killed.never) })
	go func() { _, _ = reqOn(t, env, killed, logical.DeleteOperation, "config/dk/a", nil) }()
	select {
	case <-killed.deleted:
	case <-time.After(10 * time.Second):
		t.Fatal("the delete never reached the entry")
	}
	// The process is gone; a new one (or the next active node) serves.
	other := newTestEnvOver(t, env)
	if resp, err := other.request(t, logical.ReadOperation, "config/dk/a", nil); err != nil || resp != nil {
		t.Fatalf("the connection was not deleted: %v %v", err, resp)
	}
	evs, _ := other.feedEvents(t, "dk", "")
	if got := eventTypes(evs); strings.Join(got, "; ") != "connection.connected dk/a; connection.deleted dk/a" {
		t.Errorf("a kill after the entry's delete: the feed holds %q, with no connection.deleted for a connection that is gone", got)
	}
}

// Deliveries of every app run one after another in one loop per mount, so
// a receiver that accepts the connection and never answers holds every
// other app's webhooks for WebhookTimeout (10 s) per wave of 4 of its
// connections (up to 80 s for a batch of 32): README says "A slow or dead
// receiver delays nothing else", notify.go "delays nothing but its own
// events". Whoever may write apps/<one app> can slow every partner's
// webhooks.
func TestReview21HungReceiverHoldsUpOtherAppsWebhooks(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.b.creds.SetNotifyManual()
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(func() { free(); hung.Close() })
	rcv, srv := newReceiver(t)
	env.penboxApp(t, "aa-hung", map[string]interface{}{"notify_url": hung.URL, "notify_secret": testWebhookSecret})
	env.penboxApp(t, "zz-fine", map[string]interface{}{"notify_url": srv.URL, "notify_secret": testWebhookSecret})
	env.connect(t, "aa-hung/a", nil)
	env.connect(t, "zz-fine/a", nil)

	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- env.b.creds.DeliverNow(context.Background(), env.storage) }()
	deadline := time.Now().Add(3 * time.Second)
	for len(rcv.types()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	delivered := len(rcv.types())
	waited := time.Since(start)
	free() // let the hung receiver answer, so the pass ends
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if delivered == 0 {
		t.Errorf("app zz-fine's event was not delivered in %s: it waits behind app aa-hung's hung receiver (WebhookTimeout per wave of its connections)", waited.Round(time.Millisecond))
	}
}

// A token_url (or revocation_url, device_authorization_url) whose host
// percent-encodes bytes that are not UTF-8 passes validateURL, and the
// gate's observer makes it a label value: client_golang's WithLabelValues
// panics on it, after the request was sent. A config writer (the shipped
// operator policy) makes every read of the credential an "internal error",
// and a credential with such a revocation_url cannot be deleted (the panic
// unwinds Delete before DeleteEntry).
func TestReview21NonUTF8HostDoesNotPanic(t *testing.T) {
	t.Parallel()
	const badHost = "https://%ff%fe.example"
	for _, c := range []struct {
		name string
		run  func(t *testing.T, env *testEnv) (*logical.Response, error)
	}{
		{"token read", func(t *testing.T, env *testEnv) (*logical.Response, error) {
			env.write(t, "bad", map[string]interface{}{
				"provider": "generic", "grant_type": "client_credentials", "token_url": badHost + "/token",
				"client_id": "id", "client_secret": "sec",
			})
			return env.request(t, logical.ReadOperation, "token/bad", nil)
		}},
		{"delete that revokes", func(t *testing.T, env *testEnv) (*logical.Response, error) {
			v := env.penbox(t, "bad", nil)
			rt := v.IssueRefreshToken("pb-id")
			env.write(t, "bad", map[string]interface{}{"refresh_token": rt})
			env.write(t, "bad", map[string]interface{}{"revocation_url": badHost + "/revoke", "client_secret": "pb-secret", "refresh_token": rt})
			resp, err := env.request(t, logical.DeleteOperation, "config/bad", nil)
			if err == nil && (resp == nil || !resp.IsError()) {
				if left, _ := env.request(t, logical.ReadOperation, "config/bad", nil); left != nil {
					t.Errorf("the delete answered success but the credential is still there")
				}
			}
			return resp, err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t)
			_, err := c.run(t, env)
			if err != nil && strings.Contains(err.Error(), "internal error") {
				t.Errorf("%s panicked: %v", c.name, err)
			}
			if strings.Contains(env.logs.String(), "not valid UTF-8") {
				t.Errorf("the log shows a panic on a label value:\n%s", grepLines(env.logs.String(), "panic"))
			}
			env.metrics(t) // the scrape still works
		})
	}
}

var hostLabel = regexp.MustCompile(`vendoroauth_vendor_requests_total\{[^}]*host="([^"]*)"`)

// README: "Every label is bounded by configuration, never by the number of
// credentials". The host label is each self-contained credential's own
// token_url host (a per-tenant vendor such as <tenant>.okta.com,
// <sub>.zendesk.com or <shop>.myshopify.com names the customer in it), and
// its series are never removed: a config writer who creates, reads and
// deletes credentials grows the mount's registry, and every Prometheus
// that scrapes it, without bound, with no credential left.
func TestReview21VendorHostLabelsDoNotGrowWithCredentials(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	const churn = 40
	for i := range churn {
		name := fmt.Sprintf("tenant-%d", i)
		env.write(t, name, map[string]interface{}{
			"provider": "generic", "grant_type": "client_credentials",
			"token_url": fmt.Sprintf("http://127.0.0.%d:9/oauth/token", i+2), "client_id": "id", "client_secret": "sec",
		})
		resp, err := env.request(t, logical.ReadOperation, "token/"+name, nil)
		mustErr(t, resp, err)
		if resp, err := env.request(t, logical.DeleteOperation, "config/"+name, nil); err != nil || resp.IsError() {
			t.Fatal(err, resp)
		}
	}
	hosts := map[string]bool{}
	for _, m := range hostLabel.FindAllStringSubmatch(env.metrics(t), -1) {
		hosts[m[1]] = true
	}
	if len(hosts) > 8 {
		t.Errorf("no credential is left, yet the metrics hold %d distinct host labels (one per deleted credential's token_url)", len(hosts))
	}
}

// The per-app gauges outlive what they describe: an app whose webhooks
// were turned off (the natural answer to a dead receiver) or that was
// deleted keeps vendoroauth_webhook_failing_seconds growing, so the
// shipped VendorOAuthWebhooksFailing alert fires until the plugin
// restarts; a deleted app's vendoroauth_app_client_rejected stays 1, so
// VendorOAuthClientRejected fires for an app that no longer exists (its
// orphaned connections make no grant that would clear it).
func TestReview21PerAppGaugesEndWithTheirApp(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		stop  func(t *testing.T, env *testEnv)
		gauge string
	}{
		{"webhooks turned off", func(t *testing.T, env *testEnv) {
			resp, err := env.request(t, logical.UpdateOperation, "apps/ga", map[string]interface{}{"notify_url": "", "notify_secret": ""})
			if err != nil || resp.IsError() {
				t.Fatal(err, resp)
			}
		}, `vendoroauth_webhook_failing_seconds{app="ga"}`},
		{"app deleted (webhooks)", func(t *testing.T, env *testEnv) {
			if resp, err := env.request(t, logical.DeleteOperation, "apps/ga", nil); err != nil || resp.IsError() {
				t.Fatal(err, resp)
			}
		}, `vendoroauth_webhook_failing_seconds{app="ga"}`},
		{"app deleted (client rejected)", func(t *testing.T, env *testEnv) {
			if resp, err := env.request(t, logical.DeleteOperation, "apps/ga", nil); err != nil || resp.IsError() {
				t.Fatal(err, resp)
			}
		}, `vendoroauth_app_client_rejected{app="ga"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t)
			clk := env.useClock()
			env.b.creds.SetNotifyManual()
			rcv, srv := newReceiver(t)
			rcv.setFail(true)
			v := env.penboxApp(t, "ga", map[string]interface{}{"notify_url": srv.URL, "notify_secret": testWebhookSecret})
			env.connect(t, "ga/a", nil)
			if err := env.b.creds.DeliverNow(context.Background(), env.storage); err != nil {
				t.Fatal(err)
			}
			v.RemoveClientSecret("pb-id", "pb-secret")
			clk.add(2 * time.Hour)
			resp, err := env.request(t, logical.ReadOperation, "token/ga/a", nil)
			mustErr(t, resp, err, "invalid_client")
			c.stop(t, env)
			clk.add(30 * time.Minute)
			if err := env.b.creds.DeliverNow(context.Background(), env.storage); err != nil {
				t.Fatal(err)
			}
			body := env.metrics(t)
			for _, l := range strings.Split(body, "\n") {
				if strings.HasPrefix(l, c.gauge+" ") && !strings.HasSuffix(l, " 0") {
					t.Errorf("%s: %s still reports %q; the shipped alert keeps firing", c.name, c.gauge, l)
				}
			}
		})
	}
}

// After Clean, the token client's idle connections are closed
// (Gate.CloseIdleConnections), the webhook client's are not: each keep-
// alive connection to a receiver, and its two transport goroutines,
// outlive the backend until the 90 s idle timeout. Every reload or
// step-down leaves another set.
func TestReview21CleanClosesWebhookConnections(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.b.creds.SetNotifyManual()
	var opened, closed atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			closed.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	env.penboxApp(t, "ic", map[string]interface{}{"notify_url": srv.URL, "notify_secret": testWebhookSecret})
	env.connect(t, "ic/a", nil)
	if err := env.b.creds.DeliverNow(context.Background(), env.storage); err != nil {
		t.Fatal(err)
	}
	if opened.Load() == 0 {
		t.Fatal("nothing was delivered")
	}
	env.b.Cleanup(context.Background())
	deadline := time.Now().Add(3 * time.Second)
	for closed.Load() < opened.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if c, o := closed.Load(), opened.Load(); c < o {
		t.Errorf("%d of %d webhook connections to the receiver are still open 3s after Clean", o-c, o)
	}
}

// Issue 20 asked that a typo not look like a healthy, empty app, and that a
// bad name get a 400 that says what a name is. events/<app>, added after
// (issue 21), answers an unknown app with an empty feed, indistinguishable
// from a quiet one (a partner's poller with a typo in its app never
// learns), and is missing from badName's hand-written namedPaths, so a bad
// name gets Vault's bare "unsupported path". status/<typo> still answers
// 200 with zero counts too.
func TestReview21UnknownAndBadAppNamesAreSaidSo(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.penboxApp(t, "real", nil)
	for _, c := range []struct {
		path string
		want string
	}{
		{"events/bad:name", "is not a name"},
		{"events/no-such-app", "no-such-app"},
		{"status/no-such-app", "no-such-app"},
	} {
		resp, err := env.request(t, logical.ReadOperation, c.path, nil)
		switch {
		case err != nil:
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want an answer that says %q", c.path, err, c.want)
			}
		case resp == nil || !resp.IsError():
			t.Errorf("%s: answered success (%v) for an app that does not exist", c.path, respData(resp))
		case !strings.Contains(resp.Error().Error(), c.want):
			t.Errorf("%s: %v, want %q", c.path, resp.Error(), c.want)
		}
	}
}

func respData(resp *logical.Response) interface{} {
	if resp == nil {
		return nil
	}
	return resp.Data
}
