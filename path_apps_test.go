package vendoroauth

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

const partnerCallback = "https://partner.example/penbox/callback"

// penboxApp writes a Penbox app for the stand-in's client pb-id.
func (e *testEnv) penboxApp(t *testing.T, app string, extra map[string]interface{}) *standin.Vendor {
	t.Helper()
	v := e.vendors.Vendor("penbox")
	v.AddClient(standin.Client{ID: "pb-id", Secret: "pb-secret"})
	data := map[string]interface{}{
		"provider": "penbox", "token_url": e.url + v.TokenPath(), "authorize_url": e.url + "/penbox/authorize",
		"client_id": "pb-id", "client_secret": "pb-secret", "allowed_redirect_uris": partnerCallback,
	}
	for k, val := range extra {
		data[k] = val
	}
	resp, err := e.request(t, logical.CreateOperation, "apps/"+app, data)
	if err != nil || resp.IsError() {
		t.Fatalf("write apps/%s: %v %v", app, err, resp)
	}
	return v
}

// connect runs authorize, the user's consent at the stand-in, and exchange
// for a connection.
func (e *testEnv) connect(t *testing.T, name string, extra map[string]interface{}) {
	t.Helper()
	data := map[string]interface{}{"redirect_uri": partnerCallback}
	for k, v := range extra {
		data[k] = v
	}
	resp, err := e.request(t, logical.UpdateOperation, "authorize/"+name, data)
	if err != nil || resp.IsError() {
		t.Fatalf("authorize/%s: %v %v", name, err, resp)
	}
	if !strings.Contains(resp.Data["url"].(string), "code_challenge=") {
		t.Errorf("PKCE is not on by default: %s", resp.Data["url"])
	}
	code, state := follow(t, resp.Data["url"].(string))
	resp, err = e.request(t, logical.UpdateOperation, "exchange/"+name, map[string]interface{}{"code": code, "state": state})
	if err != nil || resp.IsError() {
		t.Fatalf("exchange/%s: %v %v", name, err, resp)
	}
}

func TestAppConnectionsNeedNoConfigAndHoldNoClientSecret(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	v := env.penboxApp(t, "partner", nil)
	for i := range 3 {
		env.connect(t, fmt.Sprintf("partner/acct%d", i), map[string]interface{}{"metadata": fmt.Sprintf("customer=c%d", i)})
	}
	for i := range 3 {
		name := fmt.Sprintf("partner/acct%d", i)
		if tok := env.readToken(t, name).Data["access_token"].(string); !v.Valid(tok) {
			t.Fatalf("%s: not a vendor token", name)
		}
		raw, err := env.storage.InmemStorage.Get(context.Background(), store.EntryPrefix+name)
		if err != nil || raw == nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw.Value), "pb-secret") {
			t.Errorf("%s's storage holds the client secret", name)
		}
		resp, err := env.request(t, logical.ReadOperation, "config/"+name, nil)
		if err != nil || resp.IsError() {
			t.Fatal(err, resp)
		}
		if resp.Data["app"] != "partner" || resp.Data["metadata"].(map[string]string)["customer"] != fmt.Sprintf("c%d", i) || resp.Data["client_secret_set"] != true {
			t.Errorf("%s read: %v", name, resp.Data)
		}
		for k, val := range resp.Data {
			assertNoSecrets(t, "config read "+k, fmt.Sprint(val), "pb-secret")
		}
	}
	// LIST pages and status.
	resp, err := env.request(t, logical.ListOperation, "config/partner/", map[string]interface{}{"limit": 2})
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	if keys := resp.Data["keys"].([]string); len(keys) != 2 || keys[0] != "acct0" || resp.Data["next"] != "acct1" {
		t.Errorf("first page: %v next %v", keys, resp.Data["next"])
	}
	resp, _ = env.request(t, logical.ListOperation, "config/partner/", map[string]interface{}{"after": "acct1"})
	if keys := resp.Data["keys"].([]string); len(keys) != 1 || keys[0] != "acct2" {
		t.Errorf("second page: %v", keys)
	}
	resp, _ = env.request(t, logical.ListOperation, "apps/", nil)
	if keys := resp.Data["keys"].([]string); len(keys) != 1 || keys[0] != "partner" {
		t.Errorf("apps: %v", keys)
	}
}

func TestConnectionMistakesAreClear400s(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.penboxApp(t, "partner", nil)
	env.penboxApp(t, "other", map[string]interface{}{"allowed_redirect_uris": "https://other.example/cb"})
	env.penbox(t, "solo", nil)
	env.write(t, "solo", map[string]interface{}{"app": "partner"})
	cases := []struct {
		name, path string
		data       map[string]interface{}
		want       string
	}{
		{"redirect outside the allow-list", "authorize/partner/a", map[string]interface{}{"redirect_uri": "https://evil.example/cb"}, "not in the allowed_redirect_uris of app \"partner\""},
		{"unknown app", "authorize/nope/a", map[string]interface{}{"redirect_uri": partnerCallback}, "there is no app \"nope\""},
		{"app field against the name", "authorize/partner/a", map[string]interface{}{"redirect_uri": partnerCallback, "app": "other"}, "does not match"},
		{"client secret on a connection", "config/partner/a", map[string]interface{}{"client_secret": "x"}, "belong to the app"},
		{"refresh token on an app", "apps/partner", map[string]interface{}{"refresh_token": "x"}, "unknown field"},
		{"http redirect on a public host", "apps/partner", map[string]interface{}{"allowed_redirect_uris": "http://partner.example/cb"}, "must use https"},
		{"connection moved to another app", "config/solo", map[string]interface{}{"app": "other"}, "cannot move to another app"},
	}
	for _, c := range cases {
		resp, err := env.request(t, logical.UpdateOperation, c.path, c.data)
		mustErr(t, resp, err, c.want)
	}
	if read, _ := env.request(t, logical.ReadOperation, "config/solo", nil); read.Data["app"] != "partner" {
		t.Errorf("a refused move changed the connection's app: %v", read.Data["app"])
	}
	// A state issued for one connection does not finish another.
	resp, err := env.request(t, logical.UpdateOperation, "authorize/partner/a", map[string]interface{}{"redirect_uri": partnerCallback})
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	code, state := follow(t, resp.Data["url"].(string))
	resp, err = env.request(t, logical.UpdateOperation, "exchange/partner/b", map[string]interface{}{"code": code, "state": state})
	mustErr(t, resp, err, "does not match an open authorization")
	if e, _ := env.b.creds.Get(context.Background(), env.storage, "partner/b"); e != nil {
		t.Errorf("a refused exchange created a connection")
	}
	// A connection whose app is deleted says so.
	env.connect(t, "partner/a", nil)
	if resp, err := env.request(t, logical.DeleteOperation, "apps/partner", nil); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	resp, err = env.request(t, logical.ReadOperation, "token/partner/a", nil)
	mustErr(t, resp, err, "app \"partner\", which does not exist", "vault write vendoroauth/apps/partner")
}

// One write rotates the client secret of every connection, without a
// vendor call until a token is due; the previous secret is tried once when
// the vendor does not know the new one yet.
func TestAppSecretRotation(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	v := env.penboxApp(t, "partner", nil)
	env.connect(t, "partner/a", nil)
	env.connect(t, "partner/b", nil)
	n := v.Stats().Requests
	// The vendor has the new secret first (the usual order).
	v.AddClient(standin.Client{ID: "pb-id", Secret: "pb-secret-2"})
	if resp, err := env.request(t, logical.UpdateOperation, "apps/partner", map[string]interface{}{"client_secret": "pb-secret-2"}); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	env.readToken(t, "partner/a")
	if v.Stats().Requests != n {
		t.Errorf("rotating the secret called the vendor before a token was due")
	}
	clk.add(time.Hour)
	resp := env.readToken(t, "partner/a")
	if last, _ := v.LastRequest(); last.Form["client_secret"] != "pb-secret-2" || len(resp.Warnings) != 0 {
		t.Errorf("the refresh after the rotation did not use the new secret (warnings %v)", resp.Warnings)
	}
	// Overlap: Vault has a newer secret the vendor does not know yet.
	if resp, err := env.request(t, logical.UpdateOperation, "apps/partner", map[string]interface{}{"client_secret": "pb-secret-3"}); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	clk.add(time.Hour)
	resp = env.readToken(t, "partner/b")
	if !v.Valid(resp.Data["access_token"].(string)) || !strings.Contains(strings.Join(resp.Warnings, " "), "accepted its previous one") {
		t.Errorf("the previous secret was not tried, or the read does not say so: %v", resp.Warnings)
	}
	read, _ := env.request(t, logical.ReadOperation, "apps/partner", nil)
	if read.Data["previous_client_secret_until"] == "" || read.Data["client_secret_set"] != true {
		t.Errorf("app read: %v", read.Data)
	}
	for k, val := range read.Data {
		assertNoSecrets(t, "app read "+k, fmt.Sprint(val), "pb-secret", "pb-secret-2", "pb-secret-3")
	}
}

// A self-contained credential turned into a connection keeps its refresh
// token and its cached token when the app sends the same request.
func TestConvertingToAConnectionKeepsTokens(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	v := env.penbox(t, "pb", nil)
	env.write(t, "pb", map[string]interface{}{"refresh_token": v.IssueRefreshToken("pb-id")})
	tok := env.readToken(t, "pb").Data["access_token"]
	env.penboxApp(t, "partner", nil)
	n := v.Stats().Requests
	env.write(t, "pb", map[string]interface{}{"app": "partner"})
	if got := env.readToken(t, "pb").Data["access_token"]; got != tok || v.Stats().Requests != n {
		t.Errorf("the conversion dropped the cached token")
	}
	raw, _ := env.storage.InmemStorage.Get(context.Background(), store.EntryPrefix+"pb")
	if strings.Contains(string(raw.Value), "pb-secret") {
		t.Errorf("the converted credential still stores its own client secret")
	}
	if _, err := env.b.creds.Refresh(context.Background(), env.storage, "pb", true); err != nil {
		t.Errorf("refresh with the kept refresh token: %v", err)
	}
}

// A refresh token is only sent to the token endpoint it was issued for: an
// app pointed elsewhere (with its secrets given again) does not take its
// connections' refresh tokens along.
func TestRefreshTokensStayWithTheirEndpoint(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	clk := env.useClock()
	env.penboxApp(t, "partner", nil)
	env.connect(t, "partner/a", nil)
	thief := standin.New()
	thiefURL := newHTTPServer(t, thief)
	resp, err := env.request(t, logical.UpdateOperation, "apps/partner", map[string]interface{}{"token_url": thiefURL + "/penbox/token"})
	mustErr(t, resp, err, "changes where the credential's secrets are sent", "client_secret")
	if resp, err := env.request(t, logical.UpdateOperation, "apps/partner", map[string]interface{}{"token_url": thiefURL + "/penbox/token", "client_secret": "mine"}); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	clk.add(time.Hour)
	resp, err = env.request(t, logical.ReadOperation, "token/partner/a", nil)
	mustErr(t, resp, err, "was issued for", "does not send it there")
	if n := thief.Vendor("penbox").Stats().Requests; n != 0 {
		t.Errorf("the new endpoint got %d requests", n)
	}
}

// An app's ca_bundle decides which host is trusted to be its endpoints:
// changing it is a change of where the client secret goes.
func TestAppCABundleChangeNeedsTheSecretsAgain(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.penboxApp(t, "partner", nil)
	otherCA := selfSignedCAPEM(t)
	resp, err := env.request(t, logical.UpdateOperation, "apps/partner", map[string]interface{}{"ca_bundle": otherCA})
	msg := mustErr(t, resp, err, "vendoroauth/apps/partner was not changed", "ca_bundle (changed)", "give client_secret again")
	assertNoSecrets(t, "the refusal", msg, "pb-secret")
	if read, _ := env.request(t, logical.ReadOperation, "apps/partner", nil); read.Data["ca_bundle"] != "" {
		t.Errorf("a refused write changed ca_bundle")
	}
	if resp, err := env.request(t, logical.UpdateOperation, "apps/partner", map[string]interface{}{"ca_bundle": otherCA, "client_secret": "pb-secret"}); err != nil || resp.IsError() {
		t.Fatalf("with the secret again: %v %v", err, resp)
	}
}

// Entries written by the previous release (schema 1: error and open
// authorizations inline) keep working and move to their own keys on the
// next write.
func TestSchemaOneEntriesKeepWorking(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	v := env.penbox(t, "pb", nil)
	v1 := map[string]interface{}{
		"version": 1,
		"config": map[string]interface{}{"provider": "penbox", "token_url": env.url + v.TokenPath(), "authorize_url": env.url + "/penbox/authorize",
			"client_id": "pb-id", "client_secret": "pb-secret"},
		"status": map[string]interface{}{"last_error": "vendor error temporarily_unavailable", "last_error_code": "temporarily_unavailable",
			"last_error_at": time.Now().Format(time.RFC3339)},
	}
	put := func() {
		raw, _ := json.Marshal(v1)
		if err := env.storage.InmemStorage.Put(context.Background(), &logical.StorageEntry{Key: store.EntryPrefix + "pb", Value: raw}); err != nil {
			t.Fatal(err)
		}
		env.b.invalidate(context.Background(), store.EntryPrefix+"pb")
	}
	put()
	// Schema 1 had PKCE off unless set, and keeps it so.
	resp, err := env.request(t, logical.UpdateOperation, "authorize/pb", map[string]interface{}{"redirect_uri": partnerCallback})
	if err != nil || resp.IsError() || strings.Contains(resp.Data["url"].(string), "code_challenge") {
		t.Fatal(err, resp)
	}
	code, state := follow(t, resp.Data["url"].(string))
	// As the old plugin stored the open authorization: inline.
	v1["authorizations"] = map[string]interface{}{state: map[string]interface{}{"redirect_uri": partnerCallback, "expires_at": time.Now().Add(5 * time.Minute).Format(time.RFC3339)}}
	if err := deleteAllAuthz(env, "pb"); err != nil {
		t.Fatal(err)
	}
	put()
	read, err := env.request(t, logical.ReadOperation, "config/pb", nil)
	if err != nil || read.IsError() || read.Data["last_error_code"] != "temporarily_unavailable" || read.Data["open_authorizations"] != 1 {
		t.Errorf("reading a schema 1 entry (its inline authorization is open): %v %v", err, read)
	}
	// An inline authorization did not record where its code may go: it
	// is not exchanged (they last ten minutes); one started now is.
	resp, err = env.request(t, logical.UpdateOperation, "exchange/pb", map[string]interface{}{"code": code, "state": state})
	mustErr(t, resp, err, "started by an earlier release", "start again with vault write vendoroauth/authorize/pb")
	resp, err = env.request(t, logical.UpdateOperation, "authorize/pb", map[string]interface{}{"redirect_uri": partnerCallback})
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	code, state = follow(t, resp.Data["url"].(string))
	resp, err = env.request(t, logical.UpdateOperation, "exchange/pb", map[string]interface{}{"code": code, "state": state})
	if err != nil || resp.IsError() {
		t.Fatalf("exchanging an authorization started after the upgrade: %v %v", err, resp)
	}
	env.readToken(t, "pb")
	stored, _ := env.storage.InmemStorage.Get(context.Background(), store.EntryPrefix+"pb")
	if strings.Contains(string(stored.Value), "authorizations") || strings.Contains(string(stored.Value), `"version":1`) {
		t.Errorf("the write did not move the entry to schema 2: %s", stored.Value)
	}
}

func deleteAllAuthz(env *testEnv, name string) error {
	keys, err := env.storage.InmemStorage.List(context.Background(), store.AuthzPrefix+name+"/")
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := env.storage.InmemStorage.Delete(context.Background(), store.AuthzPrefix+name+"/"+k); err != nil {
			return err
		}
	}
	return nil
}

// A schema 1 credential (PKCE off, as that schema had it) turned into a
// connection of an app that sends the vendor the same request keeps its
// cached token: how accounts are connected (use_pkce, authorize_url) is
// not how tokens are got.
func TestSchemaOneConversionKeepsTheCachedToken(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	v := env.penbox(t, "pb", nil)
	rt := v.IssueRefreshToken("pb-id")
	now := time.Now()
	v1 := map[string]interface{}{
		"version": 1,
		"config": map[string]interface{}{"provider": "penbox", "token_url": env.url + v.TokenPath(), "authorize_url": env.url + "/penbox/authorize",
			"client_id": "pb-id", "client_secret": "pb-secret", "refresh_token": rt},
		"token": map[string]interface{}{"access_token": "cached-before-the-upgrade", "token_type": "Bearer",
			"obtained_at": now.Format(time.RFC3339Nano), "expires_at": now.Add(time.Hour).Format(time.RFC3339Nano)},
	}
	raw, _ := json.Marshal(v1)
	if err := env.storage.InmemStorage.Put(context.Background(), &logical.StorageEntry{Key: store.EntryPrefix + "pb", Value: raw}); err != nil {
		t.Fatal(err)
	}
	env.b.invalidate(context.Background(), store.EntryPrefix+"pb")
	if resp, err := env.request(t, logical.CreateOperation, "apps/partner", map[string]interface{}{"provider": "penbox", "token_url": env.url + v.TokenPath(),
		"authorize_url": env.url + "/penbox/authorize", "client_id": "pb-id", "client_secret": "pb-secret"}); err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	before := v.Stats().Requests
	env.write(t, "pb", map[string]interface{}{"app": "partner"})
	if got := env.readToken(t, "pb").Data["access_token"]; got != "cached-before-the-upgrade" {
		t.Errorf("after the conversion token/pb = %v, want the token cached before it", got)
	}
	if d := v.Stats().Requests - before; d != 0 {
		t.Errorf("the conversion and the read after it cost %d vendor requests", d)
	}
}
