package vendoroauth

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Regression tests for background work and the backend's lifetime: device
// pollers and the refresher stop with the backend and on a node that
// cannot write, never resurrect a deleted connection, and never lose a
// refresh token the vendor issued.

// deviceVendor is a vendor with a device authorization endpoint whose
// user approves when the test says so.
type deviceVendor struct {
	url      string
	polls    atomic.Int32
	polled   chan struct{} // one send per poll, dropped when full
	approved atomic.Bool
	// hold, when set, keeps an approving answer until it is closed.
	hold chan struct{}
}

func newDeviceVendor(t *testing.T) *deviceVendor {
	t.Helper()
	v := &deviceVendor{polled: make(chan struct{}, 100)}
	v.url = newHTTPServer(t, http.HandlerFunc(v.serve))
	return v
}

func (v *deviceVendor) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/device":
		fmt.Fprint(w, `{"device_code":"DC","user_code":"ABCD","verification_uri":"https://vendor.example/d","expires_in":600,"interval":1}`)
	case r.URL.Path == "/token" && strings.Contains(string(body), "device_code"):
		v.polls.Add(1)
		select {
		case v.polled <- struct{}{}:
		default:
		}
		if !v.approved.Load() {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"authorization_pending"}`)
			return
		}
		if v.hold != nil {
			<-v.hold
		}
		fmt.Fprint(w, `{"access_token":"AT-dev","expires_in":3600,"refresh_token":"RT-dev"}`)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// app creates app name, whose connections use the device flow.
func (v *deviceVendor) app(t *testing.T, env *testEnv, name string) {
	t.Helper()
	resp, err := env.request(t, logical.CreateOperation, "apps/"+name, map[string]interface{}{
		"token_url": v.url + "/token", "device_authorization_url": v.url + "/device",
		"client_id": "id", "client_secret": "S", "grant_type": "refresh_token"})
	if err != nil || resp.IsError() {
		t.Fatalf("create app %s: %v %v", name, err, resp)
	}
}

func (env *testEnv) startDevice(t *testing.T, name string) {
	t.Helper()
	resp, err := env.request(t, logical.UpdateOperation, "device/"+name, nil)
	if err != nil || resp.IsError() {
		t.Fatalf("start device/%s: %v %v", name, err, resp)
	}
}

// Close waits for vendor calls in flight, not for the loops that start
// them: the refresher and the device pollers used to hold a slot for their
// whole life, so every Close waited the full closeWait and warned of calls
// whose results were not stored.
func TestCloseDoesNotWaitForBackgroundLoops(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	v := newDeviceVendor(t)
	v.app(t, env, "a")
	env.startDevice(t, "a/x")
	if err := env.b.creds.Tick(context.Background(), env.storage, true); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	env.b.clean(context.Background())
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close with nothing in flight took %s", took)
	}
	if strings.Contains(env.logs.String(), "still in flight") {
		t.Errorf("Close with nothing in flight warned of calls in flight:\n%s", env.logs.String())
	}
}
