package vendoroauth

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// Each piece of advice a user was given and could not follow (issue 20),
// with the mount the request came through in the commands: the advice
// must name what to run, and running it must work.
func TestAdviceCanBeFollowed(t *testing.T) {
	t.Parallel()
	const mount = "oauth/prod/"
	notFound := newHTTPServer(t, http.NotFoundHandler())
	type adviceCase struct {
		name  string
		setup func(t *testing.T, env *testEnv)
		op    logical.Operation
		path  string
		data  map[string]interface{}
		want  []string
		avoid []string
		// follow is the advice's command, run after it: it must succeed.
		follow func(t *testing.T, env *testEnv)
	}
	tests := []adviceCase{
		{
			name: "authorize on an app without authorize_url names the app",
			setup: func(t *testing.T, env *testEnv) {
				env.genericApp(t, "cc")
			},
			op: logical.UpdateOperation, path: "authorize/cc/acct", data: map[string]interface{}{"redirect_uri": partnerCallback},
			want:  []string{"has no authorize_url", "vault write " + mount + "apps/cc authorize_url=<the vendor's authorization endpoint> client_secret=..."},
			avoid: []string{"config/cc/acct"},
			follow: func(t *testing.T, env *testEnv) {
				ok(t, env, logical.UpdateOperation, "apps/cc", map[string]interface{}{"authorize_url": env.url + "/penbox/authorize", "client_secret": "g-secret"})
				ok(t, env, logical.UpdateOperation, "authorize/cc/acct", map[string]interface{}{"redirect_uri": partnerCallback})
			},
		},
		{
			name: "authorize on a credential without authorize_url names its config",
			setup: func(t *testing.T, env *testEnv) {
				env.officernd(t, "o", nil)
			},
			op: logical.UpdateOperation, path: "authorize/o", data: map[string]interface{}{"redirect_uri": partnerCallback},
			want: []string{"vault write " + mount + "config/o authorize_url="},
		},
		{
			name: "a device endpoint that answers 404 is the device endpoint's fault",
			setup: func(t *testing.T, env *testEnv) {
				env.write(t, "dev", map[string]interface{}{"token_url": env.url + "/x/token", "device_authorization_url": notFound + "/device",
					"grant_type": "refresh_token", "client_id": "a", "client_secret": "b"})
			},
			op: logical.UpdateOperation, path: "device/dev",
			want:  []string{"starting a device authorization failed", "check device_authorization_url in " + mount + "config/dev"},
			avoid: []string{"token_url", "getting a token"},
		},
		{
			name: "a failed discovery names the config path and the URLs it tried",
			op:   logical.CreateOperation, path: "config/disc", data: map[string]interface{}{"issuer": notFound + "/tenant", "client_id": "a", "client_secret": "b"},
			want: []string{mount + "config/disc was not changed", notFound + "/.well-known/oauth-authorization-server/tenant: ", notFound + "/tenant/.well-known/openid-configuration: "},
		},
		{
			name: "a token of a missing app says to create the app first",
			op:   logical.ReadOperation, path: "token/missing/x",
			want:  []string{"there is no app \"missing\"", "vault write " + mount + "apps/missing ", "vault write " + mount + "authorize/missing/x "},
			avoid: []string{"config/missing/x"},
		},
		{
			name:  "a token of a missing connection says to connect it",
			setup: func(t *testing.T, env *testEnv) { env.penboxApp(t, "partner", nil) },
			op:    logical.ReadOperation, path: "token/partner/nobody",
			want: []string{"app \"partner\" has no connection", "vault write " + mount + "authorize/partner/nobody redirect_uri=", mount + "config/partner/nobody refresh_token="},
			follow: func(t *testing.T, env *testEnv) {
				ok(t, env, logical.UpdateOperation, "authorize/partner/nobody", map[string]interface{}{"redirect_uri": partnerCallback})
			},
		},
		{
			name: "an exchange on a missing app says to create the app first",
			op:   logical.UpdateOperation, path: "exchange/missing/x", data: map[string]interface{}{"code": "c", "state": "s"},
			want:  []string{"there is no app \"missing\"", "vault write " + mount + "apps/missing "},
			avoid: []string{"start again"},
		},
		{
			name:  "an exchange with an unknown state on an app says to start again",
			setup: func(t *testing.T, env *testEnv) { env.penboxApp(t, "partner", nil) },
			op:    logical.UpdateOperation, path: "exchange/partner/x", data: map[string]interface{}{"code": "c", "state": "s"},
			want: []string{"start again with vault write " + mount + "authorize/partner/x"},
		},
		{
			name: "an exchange on a missing credential says it is missing",
			op:   logical.UpdateOperation, path: "exchange/nothing", data: map[string]interface{}{"code": "c", "state": "s"},
			want:  []string{"no credential named \"nothing\""},
			avoid: []string{"start again"},
		},
		{
			name:  "authorize without redirect_uri says it is required",
			setup: func(t *testing.T, env *testEnv) { env.penboxApp(t, "partner", nil) },
			op:    logical.UpdateOperation, path: "authorize/partner/acct",
			want:  []string{"redirect_uri is required", partnerCallback},
			avoid: []string{`""`},
		},
		{
			name: "authorize on an app that allows no redirect URI says how to add one",
			setup: func(t *testing.T, env *testEnv) {
				env.penboxApp(t, "partner", map[string]interface{}{"allowed_redirect_uris": ""})
			},
			op: logical.UpdateOperation, path: "authorize/partner/acct", data: map[string]interface{}{"redirect_uri": partnerCallback},
			want: []string{"allows none yet", "vault write " + mount + "apps/partner allowed_redirect_uris="},
		},
	}
	for _, p := range []string{"token/bad name!", "config/a:b", "authorize/a/b/c", "apps/bad app", "apps/bad app/rotate-key", "status/x y", "refresh/é"} {
		tests = append(tests, adviceCase{name: "a bad name in " + p + " says what a name is", op: logical.ReadOperation, path: p, want: []string{"is not a name"}})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t)
			env.mount = mount
			if tc.setup != nil {
				tc.setup(t, env)
			}
			resp, err := env.request(t, tc.op, tc.path, tc.data)
			msg := mustErr(t, resp, err, tc.want...)
			for _, a := range tc.avoid {
				if strings.Contains(msg, a) {
					t.Errorf("error %q mentions %q", msg, a)
				}
			}
			if tc.follow != nil {
				tc.follow(t, env)
			}
		})
	}
}

// genericApp writes an app for a vendor whose authorization endpoint the
// plugin does not know.
func (e *testEnv) genericApp(t *testing.T, app string) {
	t.Helper()
	ok(t, e, logical.CreateOperation, "apps/"+app, map[string]interface{}{"client_id": "g-id", "client_secret": "g-secret",
		"grant_type": "refresh_token", "token_url": e.url + "/generic/token", "allowed_redirect_uris": partnerCallback})
}

func ok(t *testing.T, env *testEnv, op logical.Operation, path string, data map[string]interface{}) *logical.Response {
	t.Helper()
	resp, err := env.request(t, op, path, data)
	if err != nil || resp.IsError() {
		t.Fatalf("%s %s: %v %v", op, path, err, resp)
	}
	return resp
}

// A read shows the settings in effect: the refresh limits that apply when
// an app sets none, and an environment only where it picked the token URL.
func TestReadsShowWhatIsInEffect(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.penboxApp(t, "partner", nil)
	app := ok(t, env, logical.ReadOperation, "apps/partner", nil).Data
	if app["refresh_concurrency"] != 4 || app["refresh_rate"] != float64(10) {
		t.Errorf("refresh limits in effect: %v %v, want 4 and 10", app["refresh_concurrency"], app["refresh_rate"])
	}
	ok(t, env, logical.UpdateOperation, "apps/partner", map[string]interface{}{"refresh_concurrency": 2, "refresh_rate": 0.5})
	app = ok(t, env, logical.ReadOperation, "apps/partner", nil).Data
	if app["refresh_concurrency"] != 2 || app["refresh_rate"] != 0.5 {
		t.Errorf("refresh limits set: %v %v", app["refresh_concurrency"], app["refresh_rate"])
	}
	for _, tc := range []struct {
		data map[string]interface{}
		want string
	}{
		{map[string]interface{}{"provider": "penbox", "client_id": "i", "client_secret": "s", "refresh_token": "r"}, ""},
		{map[string]interface{}{"provider": "penbox", "client_id": "i", "client_secret": "s", "refresh_token": "r", "environment": "production"}, "production"},
		{map[string]interface{}{"provider": "boldpenguin", "client_id": "i", "client_secret": "s", "api_key": "k"}, "production"},
		{map[string]interface{}{"provider": "boldpenguin", "client_id": "i", "client_secret": "s", "api_key": "k", "environment": "staging"}, "staging"},
		{map[string]interface{}{"provider": "boldpenguin", "client_id": "i", "client_secret": "s", "api_key": "k", "token_url": env.url + "/boldpenguin/auth/token"}, ""},
		// What was written reads back as written, so that a declarative
		// tool (bootstrap) sees no change on an identical re-run.
		{map[string]interface{}{"provider": "boldpenguin", "client_id": "i", "client_secret": "s", "api_key": "k", "environment": "staging", "token_url": env.url + "/boldpenguin/auth/token"}, "staging"},
	} {
		name := fmt.Sprintf("c%d", len(tc.data)+len(tc.want))
		ok(t, env, logical.CreateOperation, "config/"+name, tc.data)
		got := ok(t, env, logical.ReadOperation, "config/"+name, nil).Data
		if got["environment"] != tc.want {
			t.Errorf("%v: environment %q, want %q", tc.data, got["environment"], tc.want)
		}
		for _, f := range []string{"default_ttl", "max_ttl", "expiry_skew", "keepalive_interval"} {
			if _, isSeconds := got[f].(int64); !isSeconds {
				t.Errorf("%s reads as %T %v, want whole seconds like the other durations", f, got[f], got[f])
			}
		}
		ok(t, env, logical.DeleteOperation, "config/"+name, nil)
	}
}
