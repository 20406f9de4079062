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

// waitPoll waits for the vendor to see a device poll.
func (v *deviceVendor) waitPoll(t *testing.T) {
	t.Helper()
	select {
	case <-v.polled:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a device poll")
	}
}

// storedRefreshTokenOf is name's refresh token as storage holds it, read
// by a backend of its own, or "".
func storedRefreshTokenOf(t *testing.T, env *testEnv, name string) string {
	t.Helper()
	e, err := newTestEnvOver(t, env).b.creds.Get(context.Background(), env.storage, name)
	if err != nil || e == nil {
		return ""
	}
	return e.Config.RefreshToken
}

// A node that cannot write (a performance standby, or one that lost
// leadership) makes no vendor call: the device pollers used to go on
// polling after the tick that halted the refresher, and without a probe
// write, so an approval would hand a refresh token to a node that cannot
// store it. The next tick that finds the node writable resumes them.
func TestDevicePollersStopOnANodeThatCannotWrite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		lose func(*testEnv)
		back func(*testEnv)
	}{
		{name: "a tick finds the node cannot write",
			lose: func(env *testEnv) {
				env.setReadOnly()
				if err := env.b.creds.Tick(context.Background(), env.storage, env.b.writable()); err != nil {
					panic(err)
				}
			},
			back: func(env *testEnv) { env.system.ReplicationStateVal = 0 }},
		{name: "storage writes fail",
			lose: func(env *testEnv) { env.storage.failPuts.Store(1 << 20) },
			back: func(env *testEnv) { env.storage.failPuts.Store(0) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t)
			defer env.b.clean(context.Background())
			v := newDeviceVendor(t)
			v.app(t, env, "a")
			env.startDevice(t, "a/x")
			v.waitPoll(t)
			tc.lose(env)
			before := v.polls.Load()
			time.Sleep(2500 * time.Millisecond) // two intervals and more
			if after := v.polls.Load(); after != before {
				t.Fatalf("the device poller polled %d times on a node that cannot write", after-before)
			}
			tc.back(env)
			if err := env.b.creds.Tick(context.Background(), env.storage, env.b.writable()); err != nil {
				t.Fatal(err)
			}
			v.approved.Store(true)
			deadline := time.Now().Add(10 * time.Second)
			for storedRefreshTokenOf(t, env, "a/x") != "RT-dev" {
				if time.Now().After(deadline) {
					t.Fatal("the writable tick did not resume the device flow")
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// An approval whose answer is on its way when the pollers stop (a tick on
// a node that lost writability, or Close) is still stored: the vendor has
// issued the only copy of its refresh token.
func TestDeviceApprovalInFlightIsStored(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		stop func(*testEnv)
	}{
		{name: "tick on a node that cannot write", stop: func(env *testEnv) {
			_ = env.b.creds.Tick(context.Background(), env.storage, false)
		}},
		{name: "clean", stop: func(env *testEnv) { env.b.clean(context.Background()) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t)
			defer env.b.clean(context.Background())
			v := newDeviceVendor(t)
			v.hold = make(chan struct{})
			v.approved.Store(true)
			v.app(t, env, "a")
			env.startDevice(t, "a/x")
			v.waitPoll(t) // the approving answer is held
			stopped := make(chan struct{})
			go func() { defer close(stopped); tc.stop(env) }()
			time.Sleep(100 * time.Millisecond) // the pollers are stopped
			close(v.hold)
			waitFor(t, "the pollers to stop", stopped)
			deadline := time.Now().Add(10 * time.Second)
			for storedRefreshTokenOf(t, env, "a/x") != "RT-dev" {
				if time.Now().After(deadline) {
					t.Fatal("the refresh token of an approval in flight was lost")
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// A connection deleted while its device flow is pending stays deleted when
// the user approves: the delete used to leave the flow, whose poller then
// created the connection again with a new refresh token. A flow that
// connects an existing credential stops if the credential is gone, even
// when its record was left (another node's delete, a failed delete).
func TestDeletedConnectionIsNotConnectedAgainByItsDeviceFlow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		delete func(*testing.T, *testEnv)
	}{
		{name: "delete", delete: func(t *testing.T, env *testEnv) {
			if resp, err := env.request(t, logical.DeleteOperation, "config/a/x", nil); err != nil || resp.IsError() {
				t.Fatal(err, resp)
			}
			if raw, _ := env.storage.InmemStorage.Get(context.Background(), "device/a/x"); raw != nil {
				t.Error("the delete left the device flow")
			}
		}},
		{name: "entry gone, flow left", delete: func(t *testing.T, env *testEnv) {
			_ = env.storage.InmemStorage.Delete(context.Background(), "creds/a/x")
			env.b.creds.Invalidate("creds/a/x")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t)
			defer env.b.clean(context.Background())
			v := newDeviceVendor(t)
			v.app(t, env, "a")
			env.write(t, "a/x", map[string]interface{}{"refresh_token": "RT0"})
			env.startDevice(t, "a/x")
			v.waitPoll(t)
			tc.delete(t, env)
			v.approved.Store(true)
			time.Sleep(2500 * time.Millisecond) // two intervals and more
			if rt := storedRefreshTokenOf(t, env, "a/x"); rt != "" {
				t.Fatalf("the deleted connection came back with refresh token %q", rt)
			}
		})
	}
}

// A finished device flow can be read for a day after its codes expire;
// then the tick deletes it, instead of listing and reading it forever.
func TestFinishedDeviceFlowsAreDeleted(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	defer env.b.clean(context.Background())
	clk := env.useClock()
	v := newDeviceVendor(t)
	v.app(t, env, "a")
	v.approved.Store(true)
	env.startDevice(t, "a/x")
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := env.request(t, logical.ReadOperation, "device/a/x", nil)
		if err != nil || resp == nil {
			t.Fatal(err, resp)
		}
		if resp.Data["status"] == "approved" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("device flow: %v", resp.Data)
		}
		time.Sleep(50 * time.Millisecond)
	}
	clk.add(10*time.Minute + 23*time.Hour) // expired less than a day ago
	_ = env.b.creds.Tick(context.Background(), env.storage, true)
	if resp, _ := env.request(t, logical.ReadOperation, "device/a/x", nil); resp == nil || resp.Data["status"] != "approved" {
		t.Fatalf("a flow that expired less than a day ago: %v", resp)
	}
	clk.add(2 * time.Hour)
	if resp, _ := env.request(t, logical.ReadOperation, "device/a/x", nil); resp != nil {
		t.Errorf("a flow that expired over a day ago still reads: %v", resp.Data)
	}
	_ = env.b.creds.Tick(context.Background(), env.storage, true)
	if raw, _ := env.storage.InmemStorage.Get(context.Background(), "device/a/x"); raw != nil {
		t.Error("the tick left a flow that expired over a day ago")
	}
}
