package vendoroauth

import (
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// Reads show every field of the model's table, each with the value in
// effect: an app of a preset reads as its connections act (its grant,
// token endpoint, request style and lease settings), and a config that
// does not resolve still shows every setting.
func TestReadsShowEveryFieldInEffect(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	resp, err := env.request(t, logical.CreateOperation, "apps/shop", map[string]interface{}{"provider": "eshopbox", "client_id": "e-id", "client_secret": "e-secret"})
	if err != nil || resp.IsError() {
		t.Fatalf("write apps/shop: %v %v", err, resp)
	}
	resp, err = env.request(t, logical.ReadOperation, "apps/shop", nil)
	if err != nil || resp == nil {
		t.Fatalf("read apps/shop: %v %v", err, resp)
	}
	for field, want := range map[string]interface{}{
		"grant_type": "refresh_token", "token_url": "https://auth.myeshopbox.com/api/v1/generateToken", "body_format": "json",
		"expiry_skew": int64(30), "keepalive_interval": int64(259200), "default_ttl": int64(600),
	} {
		if got := resp.Data[field]; got != want {
			t.Errorf("apps/shop %s = %v (%T), want %v", field, got, got, want)
		}
	}
	for _, f := range model.Fields() {
		if f.Holder == model.Input || !f.In(model.OnApp) {
			continue
		}
		if !readShows(resp.Data, f) {
			t.Errorf("apps/shop does not show %s", f.Name)
		}
	}

	// A config whose app is gone does not resolve; its read still shows
	// every field a config has.
	env.write(t, "shop/acct", map[string]interface{}{"refresh_token": "rt"})
	if _, err := env.request(t, logical.DeleteOperation, "apps/shop", nil); err != nil {
		t.Fatal(err)
	}
	resp, err = env.request(t, logical.ReadOperation, "config/shop/acct", nil)
	if err != nil || resp == nil {
		t.Fatalf("read: %v %v", err, resp)
	}
	for _, f := range model.Fields() {
		if f.Holder != model.InConfig {
			continue
		}
		if !readShows(resp.Data, f) {
			t.Errorf("config/shop/acct does not show %s", f.Name)
		}
	}
	if resp.Data["expiry_skew"] != int64(30) || resp.Data["keepalive_interval"] != int64(259200) {
		t.Errorf("defaults not shown: expiry_skew=%v keepalive_interval=%v", resp.Data["expiry_skew"], resp.Data["keepalive_interval"])
	}
}

func readShows(data map[string]interface{}, f *model.Field) bool {
	for _, k := range []string{f.Name, f.Name + "_set", f.NamesKey()} {
		if _, ok := data[k]; ok {
			return true
		}
	}
	return false
}
