package vendoroauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
)

// The matrix: for every kind of secret the plugin holds, every field the
// model's table says decides where secrets go or who may answer there,
// each of credential, app and connection, and both kinds of writer (one
// who writes the change through the API without giving the secrets again,
// and any other path that stores the same change), the secret does not
// reach the new destination by any outbound path: a token read, refresh/,
// the background refresher and keep-alive, a device flow start and poll,
// an exchange, the previous client secret's retry after invalid_client,
// and the delete with its revocation. Nor does anything made from it: an
// assertion its key or secret signed, a client certificate its key
// presents, a code verifier and the code it unlocks, a device code.

// secretKind is one kind of secret, and how a victim comes to hold it.
type secretKind struct {
	name string
	// holders says where the secret is held: the client's (a
	// credential's or an app's, which its connections use) or an
	// account's (a credential's or a connection's).
	holders []string
	// client and account are the fields of the victim's client and of
	// the account (merged for a self-contained credential).
	client, account map[string]interface{}
	// setup does what the kind needs after the victim is written, and
	// returns the secret values to look for.
	setup func(t *testing.T, m *matrixCase) []string
}

// matrixCase is one victim: its legit server and the thief's.
type matrixCase struct {
	env          *testEnv
	clk          *clock
	legit, thief *thief
	vendorCA     *standin.TestCA
	writerCA     *standin.TestCA
	preset       string
	// base is where the client is written (config/v or apps/v); name the
	// credential whose token is read (v or v/acct).
	base, name string
	holder     string
	// state is an open authorization's state, for the exchange.
	state string
}

var matrixPresets atomic.Int64

// registerPresets registers two presets for a case: one whose
// environments are the legit and the thief's token endpoints (for a
// change of environment), and one whose only one is the thief's (for a
// change of provider).
func registerPresets(legit, evil string) (string, string) {
	n := matrixPresets.Add(1)
	base := providers.Preset{
		GrantTypes:    []string{providers.GrantClientCredentials, providers.GrantRefreshToken},
		AuthStyle:     providers.AuthBasic,
		BasicEncoding: providers.EncodingRFC6749,
		BodyFormat:    providers.FormatForm,
		APIKeyHeader:  "x-api-key",
	}
	p := base
	p.Name, p.DisplayName = fmt.Sprintf("matrix%d", n), "Matrix"
	p.TokenURLs, p.DefaultEnvironment = map[string]string{"legit": legit + "/token", "thief": evil + "/token"}, "legit"
	providers.Register(p)
	o := base
	o.Name, o.DisplayName = fmt.Sprintf("matrix%dthief", n), "Thief"
	o.TokenURLs, o.DefaultEnvironment = map[string]string{"legit": evil + "/token"}, "legit"
	providers.Register(o)
	return p.Name, o.Name
}

func secretKinds() []secretKind {
	clientRows := []string{"client", "app"}
	accountRows := []string{"client", "connection"}
	return []secretKind{
		{name: "client_secret", holders: clientRows,
			client: map[string]interface{}{"client_secret": "CLIENT-SECRET-VALUE", "grant_type": "client_credentials"},
			setup:  func(*testing.T, *matrixCase) []string { return []string{"CLIENT-SECRET-VALUE"} }},
		{name: "client_secret_jwt", holders: clientRows,
			client: map[string]interface{}{"client_secret": "JWT-SECRET-VALUE-0123456789abcdefghijkl", "auth_style": "client_secret_jwt", "grant_type": "client_credentials"},
			setup:  func(*testing.T, *matrixCase) []string { return []string{"JWT-SECRET-VALUE", "client_assertion"} }},
		{name: "api_key and extra_headers", holders: clientRows,
			client: map[string]interface{}{"client_secret": "S", "api_key": "API-KEY-VALUE", "extra_headers": "X-Secret-Header=HEADER-SECRET-VALUE", "grant_type": "client_credentials"},
			setup:  func(*testing.T, *matrixCase) []string { return []string{"API-KEY-VALUE", "HEADER-SECRET-VALUE"} }},
		{name: "tls_client_key", holders: clientRows,
			client: map[string]interface{}{"auth_style": "tls_client_auth", "grant_type": "client_credentials"},
			setup:  func(*testing.T, *matrixCase) []string { return []string{"CLIENT-CERTIFICATE"} }},
		{name: "signing key", holders: clientRows,
			client: map[string]interface{}{"auth_style": "private_key_jwt", "grant_type": "client_credentials"},
			setup: func(t *testing.T, m *matrixCase) []string {
				rotate := "rotate-key/v"
				if m.base == "apps/v" {
					rotate = "apps/v/rotate-key"
				}
				writeAt(t, m.env, rotate, nil)
				return []string{"client_assertion"}
			}},
		{name: "previous client secret", holders: []string{"app"},
			client: map[string]interface{}{"client_secret": "OLD-SECRET-VALUE", "grant_type": "client_credentials"},
			setup: func(t *testing.T, m *matrixCase) []string {
				writeAt(t, m.env, "apps/v", map[string]interface{}{"client_secret": "NEW-SECRET-VALUE"})
				// Both servers refuse the client: the retry with the
				// previous secret runs.
				m.legit.invalidClient.Store(true)
				m.thief.invalidClient.Store(true)
				return []string{"OLD-SECRET-VALUE"}
			}},
		{name: "refresh_token", holders: accountRows,
			client:  map[string]interface{}{"client_secret": "S", "grant_type": "refresh_token"},
			account: map[string]interface{}{"refresh_token": "REFRESH-TOKEN-VALUE"},
			setup:   func(*testing.T, *matrixCase) []string { return []string{"REFRESH-TOKEN-VALUE"} }},
		{name: "device code", holders: accountRows,
			client: map[string]interface{}{"auth_style": "none", "grant_type": "refresh_token"},
			setup: func(t *testing.T, m *matrixCase) []string {
				writeAt(t, m.env, "device/"+m.name, nil)
				// The flow under way's device code; one a flow started
				// after the change gets is another.
				return flowSecrets(t, m.env, m.name)
			}},
		{name: "code verifier", holders: accountRows,
			client: map[string]interface{}{"auth_style": "none", "grant_type": "refresh_token", "use_pkce": true},
			setup: func(t *testing.T, m *matrixCase) []string {
				resp, err := m.env.request(t, logical.UpdateOperation, "authorize/"+m.name, map[string]interface{}{"redirect_uri": partnerCallback})
				if err != nil || resp.IsError() {
					t.Fatal(err, resp)
				}
				m.state = resp.Data["state"].(string)
				return append(flowSecrets(t, m.env, m.name), "THE-USERS-CODE")
			}},
	}
}

// destinationChange is how a row that decides where secrets go is moved
// to the thief, by its role; a row with a role this test does not know
// fails the test, so a new field of that kind comes with its case.
func (m *matrixCase) destinationChange(t *testing.T, f *model.Field, other string) (map[string]interface{}, func()) {
	t.Helper()
	switch f.Name {
	case "provider":
		return map[string]interface{}{"provider": other}, nil
	case "environment":
		return map[string]interface{}{"environment": "thief"}, nil
	case "issuer":
		// Its metadata names the thief's endpoints.
		return map[string]interface{}{"issuer": m.thief.URL}, nil
	}
	switch f.Role {
	case model.Endpoint:
		path := strings.TrimSuffix(strings.TrimSuffix(f.Name, "_url"), "_authorization")
		return map[string]interface{}{f.Name: m.thief.URL + "/" + path}, nil
	case model.Trust:
		// Someone on the path to the legit endpoints answers with a
		// certificate from the writer's CA.
		return map[string]interface{}{f.Name: m.writerCA.CertPEM()}, func() { m.legit.present(t, m.writerCA) }
	case model.Audience:
		return map[string]interface{}{f.Name: m.thief.URL + "/token"}, nil
	case model.Routing:
		return map[string]interface{}{f.Name: "X-Forwarded-Host=" + m.thief.Host}, nil
	}
	t.Fatalf("row %s has role %d, which the matrix does not know: teach destinationChange", f.Name, f.Role)
	return nil, nil
}

func TestNoSecretGoesWhereItWasNotWritten(t *testing.T) {
	t.Parallel()
	var rows []*model.Field
	for _, f := range model.Fields() {
		if f.Decides() && f.Holder == model.InConfig {
			rows = append(rows, f)
		}
	}
	if len(rows) < 8 {
		t.Fatalf("only %d rows decide a destination: %v", len(rows), rows)
	}
	cases := 0
	for _, kind := range secretKinds() {
		for _, holder := range kind.holders {
			for _, f := range rows {
				for _, writer := range []string{"api", "store"} {
					cases++
					t.Run(kind.name+"/"+holder+"/"+f.Name+"/"+writer, func(t *testing.T) {
						t.Parallel()
						runMatrixCase(t, kind, holder, f, writer)
					})
				}
			}
		}
	}
	t.Logf("%d cases", cases)
}

func runMatrixCase(t *testing.T, kind secretKind, holder string, f *model.Field, writer string) {
	m := &matrixCase{env: newTestEnv(t), vendorCA: mustCA(t, "vendor"), writerCA: mustCA(t, "writer"), holder: holder}
	m.clk = m.env.useClock()
	m.legit, m.thief = newThief(t, m.vendorCA), newThief(t, m.vendorCA)
	m.legit.deviceCode, m.thief.deviceCode = "DC-legit", "DC-thief"
	var other string
	m.preset, other = registerPresets(m.legit.URL, m.thief.URL)
	client := map[string]interface{}{"provider": m.preset, "client_id": "victim", "ca_bundle": m.vendorCA.CertPEM(),
		"revocation_url": m.legit.URL + "/revoke", "device_authorization_url": m.legit.URL + "/device",
		"authorize_url": m.legit.URL + "/authorize"}
	for k, v := range kind.client {
		client[k] = v
	}
	if client["auth_style"] == "tls_client_auth" {
		issued, err := m.vendorCA.IssueClient("victim")
		if err != nil {
			t.Fatal(err)
		}
		client["tls_client_certificate"], client["tls_client_key"] = issued.CertPEM, issued.KeyPEM
	}
	switch holder {
	case "client":
		m.base, m.name = "config/v", "v"
		for k, v := range kind.account {
			client[k] = v
		}
		writeAt(t, m.env, m.base, client)
	default:
		m.base, m.name = "apps/v", "v/acct"
		client["allowed_redirect_uris"] = partnerCallback
		writeAt(t, m.env, m.base, client)
		m.env.write(t, m.name, kind.account)
	}
	secrets := kind.setup(t, m)
	change, swap := m.destinationChange(t, f, other)
	switch writer {
	case "api":
		_, _ = m.env.request(t, logical.UpdateOperation, m.base, change)
	default:
		storeChange(t, m, f, change)
	}
	if swap != nil {
		swap()
	}
	sinceLegit, sinceThief := m.legit.requests(), m.thief.requests()
	m.runAllPaths(t)
	if got := m.thief.got(sinceThief, secrets...); got != "" {
		t.Errorf("the new destination got a secret: %s", got)
	}
	if swap != nil {
		// The legit address now answers for the writer's CA.
		if got := m.legit.got(sinceLegit, secrets...); got != "" {
			t.Errorf("a server only the writer's CA vouches for got a secret: %s", got)
		}
	}
	if f.Role == model.Audience {
		for _, srv := range []*thief{m.legit, m.thief} {
			if got := srv.assertionFor(m.thief.URL + "/token"); got != "" {
				t.Errorf("an assertion for the new audience was sent: %s", got)
			}
		}
	}
	if f.Role == model.Routing {
		for _, srv := range []*thief{m.legit, m.thief} {
			if got := srv.got(0, "X-Forwarded-Host"); got != "" {
				t.Errorf("a routing header was sent: %s", got)
			}
		}
	}
	assertNoSecrets(t, "the log", m.env.logs.String(), "CLIENT-SECRET-VALUE", "JWT-SECRET-VALUE", "API-KEY-VALUE", "HEADER-SECRET-VALUE", "OLD-SECRET-VALUE", "REFRESH-TOKEN-VALUE", "DC-legit-")
}

// storeChange stores the change in the client's stored config by another
// way than the write (as a path that forgot the write's checks would),
// with what the write would have derived from it (an issuer's metadata).
func storeChange(t *testing.T, m *matrixCase, f *model.Field, change map[string]interface{}) {
	t.Helper()
	ctx := context.Background()
	key := store.EntryPrefix + m.name
	if m.base == "apps/v" {
		key = store.AppPrefix + "v"
	}
	raw, err := m.env.storage.InmemStorage.Get(ctx, key)
	if err != nil || raw == nil {
		t.Fatal(err)
	}
	var stored map[string]any
	if err := json.Unmarshal(raw.Value, &stored); err != nil {
		t.Fatal(err)
	}
	cfg := stored["config"].(map[string]any)
	for k, v := range change {
		if f.Kind == model.Pairs {
			name, value, _ := strings.Cut(v.(string), "=")
			cfg[k] = map[string]any{name: value}
			continue
		}
		cfg[k] = v
	}
	if f.Name == "issuer" {
		cfg["discovered"] = map[string]any{"token_url": m.thief.URL + "/token", "revocation_url": m.thief.URL + "/revoke",
			"device_authorization_url": m.thief.URL + "/device", "authorize_url": m.thief.URL + "/authorize", "fetched_at": time.Now()}
		delete(cfg, "revocation_url")
		delete(cfg, "device_authorization_url")
		delete(cfg, "authorize_url")
	}
	raw.Value, _ = json.Marshal(stored)
	if err := m.env.storage.InmemStorage.Put(ctx, raw); err != nil {
		t.Fatal(err)
	}
	m.env.b.invalidate(ctx, key)
}

// runAllPaths runs every outbound path of the victim.
func (m *matrixCase) runAllPaths(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	env, name := m.env, m.name
	m.clk.add(2 * time.Hour)
	_, _ = env.request(t, logical.ReadOperation, "token/"+name, nil)
	_, _ = env.request(t, logical.UpdateOperation, "refresh/"+name, nil)
	m.clk.add(100 * time.Hour) // past every keep-alive and backoff
	_ = env.b.creds.RefreshDue(ctx, env.storage)
	_ = env.b.creds.PollDeviceNow(ctx, env.storage, name)
	if m.state != "" {
		_, _ = env.request(t, logical.UpdateOperation, "exchange/"+name, map[string]interface{}{"code": "THE-USERS-CODE", "state": m.state})
	}
	_, _ = env.request(t, logical.UpdateOperation, "device/"+name, nil)
	_ = env.b.creds.PollDeviceNow(ctx, env.storage, name)
	_, _ = env.request(t, logical.DeleteOperation, "config/"+name, nil)
}

// assertionFor is the first request that carried a client assertion for
// audience aud, or "".
func (f *thief) assertionFor(aud string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, rec := range f.seen {
		_, rest, ok := strings.Cut(rec, "client_assertion=")
		if !ok {
			continue
		}
		jwt, _, _ := strings.Cut(rest, "&")
		jwt, _ = url.QueryUnescape(jwt)
		parts := strings.Split(jwt, ".")
		if len(parts) != 3 {
			continue
		}
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			continue
		}
		var claims struct {
			Aud any `json:"aud"`
		}
		if json.Unmarshal(payload, &claims) == nil && strings.Contains(fmt.Sprint(claims.Aud), aud) {
			return rec
		}
	}
	return ""
}
