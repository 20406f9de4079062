package vendoroauth

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func fieldData(name string) *framework.FieldData {
	return &framework.FieldData{Raw: map[string]interface{}{fieldName: name}, Schema: configFields()}
}

func TestConfigWriteValidation(t *testing.T) {
	t.Parallel()
	base := map[string]interface{}{
		"token_url":     "https://auth.example.com/token",
		"client_id":     "id",
		"client_secret": "s3cret-value",
	}
	cases := []struct {
		name    string
		change  map[string]interface{}
		wantErr string
	}{
		{"valid generic", nil, ""},
		{"loopback http allowed", map[string]interface{}{"token_url": "http://127.0.0.1:9/token"}, ""},
		{"localhost http allowed", map[string]interface{}{"token_url": "http://localhost:9/token"}, ""},
		{"ipv6 loopback http allowed", map[string]interface{}{"token_url": "http://[::1]:9/token"}, ""},
		{"remote http refused", map[string]interface{}{"token_url": "http://10.0.0.1/token"}, "https"},
		{"credentials in url refused", map[string]interface{}{"token_url": "https://u:p@auth.example.com/token"}, "credentials"},
		{"relative url refused", map[string]interface{}{"token_url": "/token"}, "absolute"},
		{"ftp refused", map[string]interface{}{"token_url": "ftp://auth.example.com/token"}, "https"},
		{"unknown provider", map[string]interface{}{"provider": "nope"}, "unknown provider"},
		{"unknown grant", map[string]interface{}{"grant_type": "password"}, "grant_type"},
		{"unknown auth style", map[string]interface{}{"auth_style": "mtls"}, "auth_style"},
		{"unknown encoding", map[string]interface{}{"basic_encoding": "base32"}, "basic_encoding"},
		{"unknown body format", map[string]interface{}{"body_format": "xml"}, "body_format"},
		{"negative max_ttl", map[string]interface{}{"max_ttl": -5}, "negative"},
		{"negative skew", map[string]interface{}{"expiry_skew": "-1s"}, "negative"},
		{"missing client id", map[string]interface{}{"client_id": ""}, "client_id is required"},
		{"missing secret for client credentials", map[string]interface{}{"client_secret": ""}, "client_secret is required"},
		{"refresh without token", map[string]interface{}{"grant_type": "refresh_token"}, "refresh_token is required"},
		{"refresh public client ok", map[string]interface{}{"grant_type": "refresh_token", "client_secret": "", "refresh_token": "rt"}, ""},
		{"extra param overriding grant", map[string]interface{}{"extra_params": "grant_type=password"}, "extra_params cannot set"},
		{"extra header authorization with basic", map[string]interface{}{"extra_headers": "Authorization=x"}, "Authorization"},
		{"extra header content type", map[string]interface{}{"extra_headers": "content-type=text/plain"}, "Content-Type"},
		{"bad header name", map[string]interface{}{"extra_headers": map[string]interface{}{"a b": "x"}}, "invalid header name"},
		{"unknown field", map[string]interface{}{"clientid": "x"}, "unknown field"},
		{"api key on generic", map[string]interface{}{"api_key": "k"}, "takes no api_key"},
		{"environment on generic", map[string]interface{}{"environment": "staging"}, "no environments"},
		{"officernd needs scopes", map[string]interface{}{"provider": "officernd", "token_url": ""}, "scopes are required"},
		{"boldpenguin needs api key", map[string]interface{}{"provider": "boldpenguin", "token_url": ""}, "api_key is required"},
		{"boldpenguin bad environment", map[string]interface{}{"provider": "boldpenguin", "token_url": "", "api_key": "k", "environment": "dev"}, "production, staging"},
		{"eshopbox needs refresh token", map[string]interface{}{"provider": "eshopbox", "token_url": ""}, "refresh_token is required"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t)
			data := map[string]interface{}{}
			for k, v := range base {
				data[k] = v
			}
			for k, v := range c.change {
				data[k] = v
			}
			name := fmt.Sprintf("c%d", i)
			resp, err := env.request(t, logical.CreateOperation, "config/"+name, data)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if c.wantErr == "" {
				if resp.IsError() {
					t.Fatalf("unexpected error response: %v", resp.Error())
				}
				return
			}
			if !resp.IsError() {
				t.Fatalf("want an error mentioning %q, got success", c.wantErr)
			}
			if msg := resp.Error().Error(); !strings.Contains(msg, c.wantErr) {
				t.Errorf("error %q does not mention %q", msg, c.wantErr)
			}
			assertNoSecrets(t, "error", resp.Error().Error(), "s3cret-value")
			if e, _ := env.b.creds.Get(context.Background(), env.storage, name); e != nil {
				t.Errorf("a refused write stored the config")
			}
		})
	}
}

func TestConfigReadAndPartialUpdate(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t)
	env.write(t, "x", map[string]interface{}{
		"provider":      "boldpenguin",
		"environment":   "staging",
		"client_id":     "bp-id",
		"client_secret": "bp-secret",
		"api_key":       "bp-api-key",
		"extra_headers": "X-Trace=trace-secret",
	})
	resp, err := env.request(t, logical.ReadOperation, "config/x", nil)
	if err != nil || resp.IsError() {
		t.Fatal(err, resp)
	}
	d := resp.Data
	if d["token_url"] != "https://api-smartdata.di-beta.boldpenguin.com/auth/token" {
		t.Errorf("token_url = %v, want the staging preset", d["token_url"])
	}
	if d["auth_style"] != "basic" || d["basic_encoding"] != "raw" || d["grant_type_in_query"] != true {
		t.Errorf("preset defaults not shown: %v", d)
	}
	if d["client_secret_set"] != true || d["api_key_set"] != true || d["refresh_token_set"] != false {
		t.Errorf("secret flags wrong: %v", d)
	}
	for k, v := range d {
		assertNoSecrets(t, "config read field "+k, toString(v), "bp-secret", "bp-api-key", "trace-secret")
	}

	// A new environment is a new host for the secrets: they must come again.
	resp, err = env.request(t, logical.UpdateOperation, "config/x", map[string]interface{}{"environment": "production"})
	mustErr(t, resp, err, "vendoroauth/config/x was not changed", "client_secret, api_key, extra_headers again")
	env.write(t, "x", map[string]interface{}{"environment": "production", "client_secret": "bp-secret", "api_key": "bp-api-key", "extra_headers": "X-Trace=trace-secret"})
	resp, _ = env.request(t, logical.ReadOperation, "config/x", nil)
	if resp.Data["token_url"] != "https://api.ii.boldpenguin.com/auth/token" || resp.Data["client_id"] != "bp-id" || resp.Data["api_key_set"] != true {
		t.Errorf("partial update lost fields or did not switch environment: %v", resp.Data)
	}
}

func toString(v interface{}) string {
	switch x := v.(type) {
	case string:
		return x
	case []string:
		return strings.Join(x, ",")
	}
	return ""
}
