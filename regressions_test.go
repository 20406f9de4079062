package vendoroauth

// Regression tests from the adversarial review of the bindings: each is a
// way a secret, or something made from one, still went where it was not
// written for, or another defect the review found. Each failed before its
// fix.

import (
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// R1. A connection stored by the release before bindings
// (refresh_token_for = the real token endpoint) whose app now sends
// elsewhere: the gate refuses its refresh token there (BindUpgrade uses
// refresh_token_for), but any write to the connection that gives no
// secret (metadata, scopes, extra_params) binds the refresh token to
// where the app sends NOW: Manager.Update hands configWrite.update the raw
// stored entry, and Config.Bind binds "a secret that holds no binding
// yet" to the current settings, ignoring Entry.Upgrade.RefreshTokenFor
// (which the write then drops: it is json:"-").
func TestLegacyConnectionWriteKeepsWhereItWasBound(t *testing.T) {
	env := newTestEnv(t)
	clk := env.useClock()
	legit, evil := newRecordingAS(t), newThief(t, nil)
	writeApp(t, env, logical.CreateOperation, map[string]interface{}{"token_url": legit.URL + "/token", "revocation_url": legit.URL + "/revoke",
		"client_id": "id", "client_secret": "REAL-SECRET", "grant_type": "refresh_token"})
	env.write(t, "a/victim", map[string]interface{}{"refresh_token": "VICTIM-RT"})
	// As the release before bindings stored it (what the upgrade finds).
	storeAsReleaseBeforeBindings(t, env, "a/victim", true)
	// An app writer moves the app, giving a client secret of their own
	// (allowed: connections' refresh tokens stay bound).
	writeApp(t, env, logical.UpdateOperation, map[string]interface{}{"token_url": evil.URL + "/token", "revocation_url": evil.URL + "/revoke",
		"client_secret": "WRITERS-SECRET"})
	// A config/* writer touches the connection without giving any secret.
	resp, err := env.request(t, logical.UpdateOperation, "config/a/victim", map[string]interface{}{"metadata": "note=hello"})
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	runPaths(t, env, clk, "a/victim")
	if got := evil.got(0, "VICTIM-RT"); got != "" {
		t.Errorf("a legacy connection's refresh token went to the app's new host after a metadata write: %s", got)
	}
}

// R2. A private_key_jwt key stored by the release before bindings is
// bound lazily, at its first use (Manager.signingKey -> BindUnbound), to
// where the client sends AT THAT MOMENT; the loader binds entries and apps
// but not keys. A client_credentials private_key_jwt credential holds no
// secret field, so checkDestination asks for nothing: a config/* writer
// moves token_url to their host and keeps assertion_audience = the real
// token endpoint (break 1 of issue 18, reopened for every key of the
// previous release until its first grant).
func TestLegacyKeyIsBoundBeforeAMove(t *testing.T) {
	env := newTestEnv(t)
	clk := env.useClock()
	a, name := pkjwtClient(t, env, "config/svc", false)
	stripKeyBindings(t, env, "cred/svc")
	evil := newThief(t, nil)
	resp, err := env.request(t, logical.UpdateOperation, "config/svc", map[string]interface{}{
		"token_url": evil.URL + "/token", "assertion_audience": a.Endpoints(standin.Plain).Token})
	if err != nil || resp.IsError() {
		t.Fatalf("the move was refused (good): %v %v", err, resp)
	}
	runPaths(t, env, clk, name)
	if got := evil.got(0, "client_assertion"); got != "" {
		t.Errorf("the new host got an assertion signed by the previous release's key, for the real audience: %s", got)
	}
}

// stripKeyBindings makes owner's stored keys look as the release before
// bindings stored them.
func stripKeyBindings(t *testing.T, env *testEnv, owner string) {
	t.Helper()
	ctx := context.Background()
	raw, err := env.storage.InmemStorage.Get(ctx, store.KeysPrefix+owner)
	if err != nil || raw == nil {
		t.Fatalf("no keys stored for %s: %v", owner, err)
	}
	var stored map[string]any
	if err := json.Unmarshal(raw.Value, &stored); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"current", "next"} {
		if m, ok := stored[k].(map[string]any); ok {
			delete(m, "bound")
		}
	}
	raw.Value, _ = json.Marshal(stored)
	if err := env.storage.InmemStorage.Put(ctx, raw); err != nil {
		t.Fatal(err)
	}
}

// R1b. The loader does not close R1's window: a legacy connection whose
// app does not resolve when the active node first loads (deleted, or
// broken) is not bound (bindUpgrade needs settings), yet the load counts
// as done and never looks at it again. The app written anew at the
// writer's host plus one secret-less write to the connection send its
// refresh token there.
func TestLegacyConnectionsAreBoundBeforeTheirAppGoes(t *testing.T) {
	env := newTestEnv(t)
	clk := env.useClock()
	legit, evil := newRecordingAS(t), newThief(t, nil)
	writeApp(t, env, logical.CreateOperation, map[string]interface{}{"token_url": legit.URL + "/token", "revocation_url": legit.URL + "/revoke",
		"client_id": "id", "client_secret": "REAL-SECRET", "grant_type": "refresh_token"})
	env.write(t, "a/victim", map[string]interface{}{"refresh_token": "VICTIM-RT"})
	storeAsReleaseBeforeBindings(t, env, "a/victim", true)
	if resp, err := env.request(t, logical.DeleteOperation, "apps/a", nil); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	// The active node's first load after the upgrade.
	ctx := context.Background()
	if err := env.b.creds.Tick(ctx, env.storage, true); err != nil {
		t.Fatal(err)
	}
	waitLoaded(t, env)
	writeApp(t, env, logical.CreateOperation, map[string]interface{}{"token_url": evil.URL + "/token", "revocation_url": evil.URL + "/revoke",
		"client_id": "id", "client_secret": "WRITERS-SECRET", "grant_type": "refresh_token"})
	if resp, err := env.request(t, logical.UpdateOperation, "config/a/victim", map[string]interface{}{"scopes": "read"}); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	runPaths(t, env, clk, "a/victim")
	if got := evil.got(0, "VICTIM-RT"); got != "" {
		t.Errorf("the refresh token went to the re-created app's host: %s", got)
	}
}

func waitLoaded(t *testing.T, env *testEnv) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if loaded, loading := env.b.creds.ScheduleState(); loaded && !loading {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the schedule never loaded")
}

// R3. A flow under way records only its token endpoint (FlowDestination);
// the refresh token it yields is bound, when it completes, to the
// revocation endpoint in effect THEN (connectedEntry ->
// AccountDestination(current settings)). Deleting an app and writing it
// anew cancels no flow of its connections (only a "moved" update does),
// and a public client's app needs no secret to be created. So: a device
// flow of a public app's connection is pending; an apps/* writer deletes
// the app and creates it again with the same token endpoint, client id
// and trust but revocation_url at their host; the user approves; the
// poll (to the real token endpoint: allowed) stores the user's refresh
// token bound to the writer's revocation endpoint; a config/* delete of
// the connection sends the refresh token there. For a public client the
// refresh token alone is enough at the real vendor.
func TestFlowsEndWithTheirApp(t *testing.T) {
	env := newTestEnv(t)
	a := authServer(t)
	if err := a.AddClient(standin.AuthClient{ID: "pub", Method: standin.MethodNone}); err != nil {
		t.Fatal(err)
	}
	ep := a.Endpoints(standin.Plain)
	evil := newThief(t, nil)
	app := map[string]interface{}{"token_url": ep.Token, "client_id": "pub", "auth_style": "none", "grant_type": "refresh_token",
		"device_authorization_url": ep.DeviceAuthorization, "revocation_url": ep.Revocation}
	writeAt(t, env, "apps/pub", app)
	resp, err := env.request(t, logical.UpdateOperation, "device/pub/acct", nil)
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	userCode := resp.Data["user_code"].(string)
	// The writer: delete and create the app again, revocation at their host.
	if resp, err := env.request(t, logical.DeleteOperation, "apps/pub", nil); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	app["revocation_url"] = evil.URL + "/revoke"
	writeAt(t, env, "apps/pub", app)
	// The app's delete ended the flow: the user's approval is not
	// polled, and nothing reaches the writer's host.
	if err := a.ApproveDevice(userCode); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_ = env.b.creds.PollDeviceNow(ctx, env.storage, "pub/acct")
	if d, _ := env.request(t, logical.ReadOperation, "device/pub/acct", nil); d == nil || d.Data["status"] != "failed" {
		t.Errorf("the flow of a connection of a deleted app is not ended: %v", d)
	}
	if e, _ := env.b.creds.Get(ctx, env.storage, "pub/acct"); e != nil && e.Config.RefreshToken != "" {
		rt := e.Config.RefreshToken
		_, _ = env.request(t, logical.DeleteOperation, "config/pub/acct", nil)
		if got := evil.got(0, rt); got != "" {
			t.Errorf("the user's refresh token was revoked at the writer's host: %s", got)
		}
	}
}

// R4. model.Routes splits a header name on "-" only. X_Forwarded_Host
// (a valid HTTP token) passes the write-time check and the gate; servers
// and frameworks that fold "_" into "-" (CGI/WSGI-style HTTP_X_FORWARDED_HOST,
// Envoy and others that allow underscores) route on it. A change of
// extra_headers needs the app's secrets again, but the connections'
// refresh tokens are bound to endpoint and trust only, so an apps/* writer
// who gives a client secret of their own routes every connection's
// refresh token to another tenant behind the same front end.
func TestUnderscoreRoutingHeadersGoNowhere(t *testing.T) {
	for _, h := range []string{"X_Forwarded_Host", "X-Forwarded_Host", "X_Original_URL", "X_HTTP_Host_Override"} {
		t.Run(h, func(t *testing.T) {
			env := newTestEnv(t)
			clk := env.useClock()
			srv := newThief(t, nil)
			writeAt(t, env, "apps/a", map[string]interface{}{"token_url": srv.URL + "/token", "client_id": "id", "client_secret": "APP-SECRET", "grant_type": "refresh_token"})
			env.write(t, "a/victim", map[string]interface{}{"refresh_token": "VICTIM-RT"})
			resp, err := env.request(t, logical.UpdateOperation, "apps/a", map[string]interface{}{"extra_headers": h + "=other-tenant.example", "client_secret": "WRITERS-SECRET"})
			if err != nil {
				t.Fatal(err)
			}
			if resp.IsError() {
				return // refused: good
			}
			since := srv.requests()
			clk.add(2 * time.Hour)
			_, _ = env.request(t, logical.ReadOperation, "token/a/victim", nil)
			if got := srv.got(since, "other-tenant.example"); got != "" && srv.got(since, "VICTIM-RT") != "" {
				t.Errorf("a connection's refresh token left with a routing header: %s", got)
			}
		})
	}
}

// R3b. The same through an app update: the write that moves
// revocation_url is stored under the app's lock, and its flows are
// cancelled afterwards, outside any lock (afterWrite -> cancelFlows). When
// the cancel fails (a storage error, a crash, a step-down between the two)
// the write stays, the answer is a 500, and the pending flow completes at
// the unchanged token endpoint with its refresh token bound to the new
// revocation endpoint. A poll racing the write gets the same.
func TestUncancelledFlowKeepsWhereItStarted(t *testing.T) {
	env := newTestEnv(t)
	a := authServer(t)
	if err := a.AddClient(standin.AuthClient{ID: "pub", Method: standin.MethodNone}); err != nil {
		t.Fatal(err)
	}
	ep := a.Endpoints(standin.Plain)
	evil := newThief(t, nil)
	writeAt(t, env, "apps/pub", map[string]interface{}{"token_url": ep.Token, "client_id": "pub", "auth_style": "none", "grant_type": "refresh_token",
		"device_authorization_url": ep.DeviceAuthorization, "revocation_url": ep.Revocation})
	resp, err := env.request(t, logical.UpdateOperation, "device/pub/acct", nil)
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	userCode := resp.Data["user_code"].(string)
	env.storage.setFailGet(func(key string) bool { return key == store.DevicePrefix+"pub/acct" })
	resp, err = env.request(t, logical.UpdateOperation, "apps/pub", map[string]interface{}{"revocation_url": evil.URL + "/revoke"})
	env.storage.setFailGet(nil)
	t.Logf("the move's answer: %v %v", resp, err)
	if err := a.ApproveDevice(userCode); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 20 && !env.b.creds.PollDeviceNow(ctx, env.storage, "pub/acct"); i++ {
		time.Sleep(1100 * time.Millisecond)
	}
	e, _ := env.b.creds.Get(ctx, env.storage, "pub/acct")
	if e == nil || e.Config.RefreshToken == "" {
		t.Skip("the flow did not complete (cancelled): good")
	}
	rt := e.Config.RefreshToken
	_, _ = env.request(t, logical.DeleteOperation, "config/pub/acct", nil)
	if got := evil.got(0, rt); got != "" {
		t.Errorf("a flow the move did not cancel bound its refresh token to the new revocation endpoint: %s", got)
	}
}

// R5. rotate-key and import-key bind the new key to wherever the config
// points when they run (keyClientOf -> ClientDestination of the current
// config), and, because the current key "cannot sign at the current
// destination", skip the staging and sign at once. A config/* writer moves
// a private_key_jwt client (no secret to give: client_credentials with a
// key) to their host with assertion_audience = the real token endpoint;
// the write succeeds with a warning to the writer. The key holder's next
// routine rotation (nothing in its answer says where the key is bound)
// makes a key that signs, at once, assertions for the real vendor and
// sends them to the writer.
func TestRotationAfterAMoveAsksWhereTo(t *testing.T) {
	env := newTestEnv(t)
	clk := env.useClock()
	a, name := pkjwtClient(t, env, "config/svc", false)
	evil := newThief(t, nil)
	resp, err := env.request(t, logical.UpdateOperation, "config/svc", map[string]interface{}{
		"token_url": evil.URL + "/token", "assertion_audience": a.Endpoints(standin.Plain).Token})
	if err != nil || resp.IsError() {
		t.Fatalf("the move was refused: %v %v", err, resp)
	}
	// The key holder's scheduled rotation does not adopt the move unseen:
	// it says where the client sends now, and asks.
	rot, err := env.request(t, logical.UpdateOperation, "rotate-key/svc", nil)
	mustErr(t, rot, err, "a config write moved it", "destination="+evil.URL+"/token")
	imp, err := env.request(t, logical.UpdateOperation, "import-key/svc", map[string]interface{}{"signing_key": writersKey(t)})
	mustErr(t, imp, err, "a config write moved it")
	runPaths(t, env, clk, name)
	if got := evil.got(0, "client_assertion"); got != "" {
		t.Errorf("a routine rotation after a config writer's move signs assertions for the real audience and sends them to the writer: %s", got)
	}
}

// R4b. More generally the Routing role is not part of a Destination: a
// connection's refresh token is bound to endpoint and trust only, so an
// app write that changes extra_headers (giving only the app's own secret,
// which the writer makes up) sends every connection's refresh token with
// the new headers. The test's own tenant header (X-Tenant, the example in
// TestRoutingHeadersGoNowhere) is enough for a front end that routes on it.
func TestConnectionsKeepTheirAppsHeaders(t *testing.T) {
	env := newTestEnv(t)
	clk := env.useClock()
	srv := newThief(t, nil)
	writeAt(t, env, "apps/a", map[string]interface{}{"token_url": srv.URL + "/token", "client_id": "id", "client_secret": "APP-SECRET",
		"grant_type": "refresh_token", "extra_headers": "X-Tenant=acme"})
	env.write(t, "a/victim", map[string]interface{}{"refresh_token": "VICTIM-RT"})
	writeAt(t, env, "apps/a", map[string]interface{}{"extra_headers": "X-Tenant=other-tenant", "client_secret": "WRITERS-SECRET"})
	since := srv.requests()
	clk.add(2 * time.Hour)
	_, _ = env.request(t, logical.ReadOperation, "token/a/victim", nil)
	if got := srv.got(since, "X-Tenant=other-tenant"); got != "" && srv.got(since, "VICTIM-RT") != "" {
		t.Errorf("a connection's refresh token left with headers it was not written with: %s", got)
	}
}

// R1c. Break 4 of issue 18 reopened for connections of the previous
// release until the loader has stored their bindings (and for good for
// those it skips, R1b): BindUpgrade binds a legacy refresh token to the
// endpoint recorded for it but to the trust in effect NOW. An apps/*
// writer changes the app's ca_bundle to their own CA, giving a client
// secret of their own (the app's secrets only); no write to the
// connection is needed.
func TestLegacyConnectionKeepsTheTrustOfBefore(t *testing.T) {
	env := newTestEnv(t)
	clk := env.useClock()
	vendorCA, writersCA := mustCA(t, "vendor"), mustCA(t, "writer")
	srv := newThief(t, vendorCA)
	writeAt(t, env, "apps/a", map[string]interface{}{"token_url": srv.URL + "/token", "client_id": "id", "client_secret": "APP-SECRET",
		"grant_type": "refresh_token", "ca_bundle": vendorCA.CertPEM(), "revocation_url": srv.URL + "/revoke"})
	env.write(t, "a/victim", map[string]interface{}{"refresh_token": "VICTIM-RT"})
	storeAsReleaseBeforeBindings(t, env, "a/victim", true)
	srv.present(t, writersCA)
	since := srv.requests()
	writeAt(t, env, "apps/a", map[string]interface{}{"ca_bundle": writersCA.CertPEM(), "client_secret": "WRITERS-SECRET"})
	runPaths(t, env, clk, "a/victim")
	if got := srv.got(since, "VICTIM-RT"); got != "" {
		t.Errorf("a server the writer's CA vouches for got a legacy connection's refresh token: %s", got)
	}
}

// R8 (drift). apps/<app>'s help restates by hand which fields move an
// app and which secrets must come with such a write; it already drifted:
// extra_headers (Routing) is missing from the first list and
// tls_client_key from the second. Derived from the table, it cannot.
func TestAppsHelpListsEveryDestinationRowAndSecret(t *testing.T) {
	moves := between(t, pathAppsHelpDesc, "A write that changes where the app's secrets go (", ")")
	give := between(t, pathAppsHelpDesc, "must give ", " again")
	for _, f := range model.Fields() {
		if f.Holder != model.InConfig || !f.In(model.OnApp) {
			continue
		}
		if f.Decides() && !strings.Contains(moves, f.Name) {
			t.Errorf("the apps help does not say that a change of %s moves the app", f.Name)
		}
		if f.Secret && !strings.Contains(give, f.Name) {
			t.Errorf("the apps help does not say that %s must be given again", f.Name)
		}
	}
}

func between(t *testing.T, s, from, to string) string {
	t.Helper()
	_, after, ok := strings.Cut(strings.Join(strings.Fields(s), " "), from)
	if !ok {
		t.Fatalf("no %q in the help", from)
	}
	out, _, _ := strings.Cut(after, to)
	return out
}

// R9 (dead code, restated lists). The grant table declares Params and
// ConnectsAccount but no code reads them: the parameters are written out
// again where they are sent ("refresh_token" in model/wire.go, "code",
// "redirect_uri", "code_verifier" in backend/authorize.go, "device_code"
// in backend/device.go and backend/outbound/gate.go) and ConnectedGrant
// picks "the first row that holds a refresh token". The root package's
// fields.go restates every field name as a constant, most of them unused.
func TestNoDeadModelFacts(t *testing.T) {
	read := map[string]bool{}
	used := map[string]int{}
	for _, f := range sources(t) {
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.SelectorExpr:
				read[x.Sel.Name] = true
			case *ast.Ident:
				used[x.Name]++
			}
			return true
		})
	}
	for _, ty := range []reflect.Type{reflect.TypeFor[model.Grant](), reflect.TypeFor[model.Field]()} {
		for i := range ty.NumField() {
			if name := ty.Field(i).Name; !read[name] {
				t.Errorf("%s.%s is declared and read nowhere", ty.Name(), name)
			}
		}
	}
	var unused []string
	for name, n := range used {
		if strings.HasPrefix(name, "field") && n == 1 {
			unused = append(unused, name)
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		t.Errorf("%d field-name constants restate the table and are used nowhere: %s", len(unused), strings.Join(unused, " "))
	}
}

// R3c. A moving app write cancels the flows of its connections found by
// store.FlowNames(app), which lists authz/<app>/ and device/<app>/ only: a
// credential converted into a connection (config/solo app=pub) keeps its
// own name and its flows are never cancelled. With a public app, moving
// revocation_url needs no secret; the converted connection's device flow
// then completes with its refresh token bound to the new revocation
// endpoint, where a delete sends it.
func TestConvertedConnectionsFlowKeepsWhereItStarted(t *testing.T) {
	env := newTestEnv(t)
	a := authServer(t)
	if err := a.AddClient(standin.AuthClient{ID: "pub", Method: standin.MethodNone}); err != nil {
		t.Fatal(err)
	}
	ep := a.Endpoints(standin.Plain)
	evil := newThief(t, nil)
	client := map[string]interface{}{"token_url": ep.Token, "client_id": "pub", "auth_style": "none", "grant_type": "refresh_token",
		"device_authorization_url": ep.DeviceAuthorization, "revocation_url": ep.Revocation}
	writeAt(t, env, "apps/pub", client)
	env.write(t, "solo", client)
	env.write(t, "solo", map[string]interface{}{"app": "pub"})
	resp, err := env.request(t, logical.UpdateOperation, "device/solo", nil)
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	userCode := resp.Data["user_code"].(string)
	resp, err = env.request(t, logical.UpdateOperation, "apps/pub", map[string]interface{}{"revocation_url": evil.URL + "/revoke"})
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	t.Logf("the move's warnings: %v", resp)
	if err := a.ApproveDevice(userCode); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 20 && !env.b.creds.PollDeviceNow(ctx, env.storage, "solo"); i++ {
		time.Sleep(1100 * time.Millisecond)
	}
	e, _ := env.b.creds.Get(ctx, env.storage, "solo")
	if e == nil || e.Config.RefreshToken == "" {
		t.Skip("the flow was cancelled: good")
	}
	rt := e.Config.RefreshToken
	_, _ = env.request(t, logical.DeleteOperation, "config/solo", nil)
	if got := evil.got(0, rt); got != "" {
		t.Errorf("a converted connection's flow survived the app's move and its refresh token went to the new revocation endpoint: %s", got)
	}
}

// R10 (low). The gate's messages quote endpoints whole, query included,
// where tokenclient shows only scheme://host/path because "an operator may
// have put a key in its query string": the refusal (MisdirectedError, and
// the reauthorization message built from the binding) goes into the
// answer of a token read, to a caller who may hold only token/<name>.
func TestGateMessagesDoNotQuoteQueryStrings(t *testing.T) {
	env := newTestEnv(t)
	clk := env.useClock()
	legit, evil := newRecordingAS(t), newThief(t, nil)
	writeApp(t, env, logical.CreateOperation, map[string]interface{}{"token_url": legit.URL + "/token?key=URL-KEY-VALUE",
		"client_id": "id", "client_secret": "REAL-SECRET", "grant_type": "refresh_token"})
	env.write(t, "a/victim", map[string]interface{}{"refresh_token": "VICTIM-RT"})
	writeApp(t, env, logical.UpdateOperation, map[string]interface{}{"token_url": evil.URL + "/token", "client_secret": "WRITERS-SECRET"})
	clk.add(2 * time.Hour)
	resp, err := env.request(t, logical.ReadOperation, "token/a/victim", nil)
	st, _ := env.request(t, logical.ReadOperation, "config/a/victim", nil)
	for where, s := range map[string]string{"answer": fmt.Sprint(resp, err), "log": env.logs.String(), "status": fmt.Sprint(st.Data["last_error"])} {
		if strings.Contains(s, "URL-KEY-VALUE") {
			t.Errorf("the %s quotes the token URL's query: %s", where, s)
		}
	}
}
