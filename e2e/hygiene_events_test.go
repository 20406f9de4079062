//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// rawDo makes a request whose answer is not JSON (metrics' raw body) and
// remembers it for the search like every other answer.
func (h *hygiene) rawDo(want int, method, path string) string {
	h.t.Helper()
	status, out, err := h.v.Raw(method, mount+"/"+path, nil)
	if err != nil && status == 0 {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	if status != want {
		h.t.Fatalf("%s %s: HTTP %d, want %d", method, path, status, want)
	}
	h.calls = append(h.calls, hygieneCall{method, path, status, string(out)})
	return string(out)
}

// eventsAndWebhooks runs the feeds, the webhooks and the metrics where a
// secret could leak into them: an app whose notify_url receives signed
// events (the notify secret is a secret of the test), a connection whose
// refresh token the vendor refuses with an error page that echoes the
// refresh token and the client secret, a refused move
// of notify_url, and a self-contained credential whose client the vendor
// refuses. It returns what collects the receiver's deliveries, as answers
// for the search, once the webhooks have been delivered.
func (h *hygiene) eventsAndWebhooks() func() {
	t := h.t
	vs := standin.New()
	base, err := vs.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vs.Close() })
	gen := vs.Vendor(standin.VendorGeneric)
	clientSecret := h.secret("events app client secret")
	gen.AddClient(standin.Client{ID: "hy-ev", Secret: clientSecret})
	h.secrets["notify secret"] = e2eWebhookSecret
	h.secrets["notify secret key"] = strings.TrimPrefix(e2eWebhookSecret, "whsec_")
	rcv := newHookReceiver(t)
	h.expect(204, "POST", "apps/hy-ev", map[string]interface{}{
		"token_url": base + gen.TokenPath(), "grant_type": "refresh_token", "client_id": "hy-ev", "client_secret": clientSecret,
		"notify_url": rcv.url(), "notify_secret": e2eWebhookSecret,
	})
	// Moving the webhooks without the secret is refused, and says so
	// without the secret.
	h.expect(400, "POST", "apps/hy-ev", map[string]interface{}{"notify_url": "https://elsewhere.example/hook"})
	h.expect(400, "POST", "apps/hy-ev", map[string]interface{}{"notify_secret": "whsec_" + h.secret("short notify secret")})
	h.expect(200, "GET", "apps/hy-ev", nil)

	rt := h.secret("events refresh token")
	gen.AddRefreshToken("hy-ev", rt)
	h.expect(204, "POST", "config/hy-ev/acct", map[string]interface{}{"refresh_token": rt, "metadata": "customer=c-42"})
	h.expect(200, "GET", "token/hy-ev/acct", nil)
	// The vendor refuses the refresh token, quoting every secret of the
	// request in its description, which the event carries.
	gen.SetBehavior(standin.Behavior{FailNext: 1, FailStatus: 400, FailBody: fmt.Sprintf(
		`{"error":"invalid_grant","error_description":"refresh token %s of client %s is revoked"}`, rt, clientSecret)})
	h.do("POST", "refresh/hy-ev/acct", nil)
	// A new refresh token: recovered.
	rt2 := h.secret("events second refresh token")
	gen.AddRefreshToken("hy-ev", rt2)
	h.expect(204, "POST", "config/hy-ev/acct", map[string]interface{}{"refresh_token": rt2})
	h.expect(200, "GET", "token/hy-ev/acct", nil)
	h.expect(204, "DELETE", "config/hy-ev/acct", nil)

	// A self-contained credential whose client the vendor refuses.
	wrong := h.secret("events wrong client secret")
	h.expect(204, "POST", "config/hy-ev-self", map[string]interface{}{
		"token_url": base + gen.TokenPath(), "client_id": "hy-ev", "client_secret": wrong,
	})
	h.expect(400, "GET", "token/hy-ev-self", nil)

	feed := h.expect(200, "GET", "events/hy-ev", nil)
	if n := len(feed.Data["events"].([]interface{})); n != 3 {
		t.Errorf("events/hy-ev holds %d events, want reauthorization_needed, recovered, deleted", n)
	}
	h.expect(200, "GET", "events", nil)
	metrics := h.rawDo(200, "GET", "metrics")
	if !strings.Contains(metrics, `vendoroauth_events_total{type="connection.reauthorization_needed"}`) {
		t.Errorf("the metrics do not count the events")
	}
	return func() {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, forged := rcv.deliveries()
			if len(got) >= 3 || time.Now().After(deadline) {
				if len(got) < 3 || forged != 0 {
					t.Errorf("the receiver accepted %d deliveries (%d failed the signature check), want 3", len(got), forged)
				}
				for _, d := range got {
					h.calls = append(h.calls, hygieneCall{"WEBHOOK", "notify_url " + d.ev.Type, 200, d.body})
				}
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
