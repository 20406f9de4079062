package vendoroauth

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// FuzzConfigWrite writes arbitrary field values: the backend must never
// panic, never store a refused config, and never echo the secret.
func FuzzConfigWrite(f *testing.F) {
	f.Add("generic", "https://a.example/t", "id", "client_credentials", "basic", "raw", "form", "a,b", "k=v", "30s")
	f.Add("boldpenguin", "", "id", "", "", "", "", "", "", "")
	f.Add("eshopbox", "http://127.0.0.1:1/x", "", "refresh_token", "body", "rfc6749", "json", " ", "=", "-1")
	f.Add("penbox", "::", "\x00", "password", "mtls", "b64", "xml", ",,,", "a=b=c", "1e9")
	env := newTestEnv(f)
	const secret = "fuzz-secret-value-7c1"
	f.Fuzz(func(t *testing.T, provider, tokenURL, clientID, grant, auth, enc, format, scopes, params, skew string) {
		data := map[string]interface{}{
			"provider": provider, "token_url": tokenURL, "client_id": clientID,
			"client_secret": secret, "grant_type": grant, "auth_style": auth,
			"basic_encoding": enc, "body_format": format, "scopes": scopes,
			"extra_params": params, "expiry_skew": skew, "refresh_token": secret + "-rt",
		}
		ctx := context.Background()
		_ = env.storage.Delete(ctx, "creds/fuzz")
		env.b.creds.Invalidate("creds/fuzz")
		resp, err := env.b.HandleRequest(ctx, &logical.Request{
			Operation: logical.CreateOperation, Path: "config/fuzz", Data: data, Storage: env.storage,
		})
		stored, _ := env.storage.Get(ctx, "creds/fuzz")
		refused := err != nil || (resp != nil && resp.IsError())
		if refused && stored != nil {
			t.Fatalf("a refused write stored a config")
		}
		if refused {
			msg := ""
			if err != nil {
				msg = err.Error()
			} else {
				msg = resp.Error().Error()
			}
			if strings.Contains(msg, secret) {
				t.Fatalf("error shows the secret: %s", msg)
			}
			return
		}
		read, err := env.b.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "config/fuzz", Storage: env.storage})
		if err != nil || read == nil {
			t.Fatalf("reading back an accepted config: %v", err)
		}
		for k, v := range read.Data {
			if s, ok := v.(string); ok && strings.Contains(s, secret) {
				t.Fatalf("config read field %s shows the secret", k)
			}
		}
	})
}
