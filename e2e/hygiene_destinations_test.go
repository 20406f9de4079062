//go:build e2e

package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// recorder is a host no secret was written for: it answers as a token
// endpoint would and keeps every request, to find secrets in.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newRecorder() *recorder {
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.seen = append(r.seen, req.URL.String()+" "+req.Header.Get("Authorization")+" "+string(body))
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"recorder-at","token_type":"Bearer","expires_in":3600}`)
	}))
	return r
}

// holds reports the first request that carried one of values, or "".
func (r *recorder) holds(values ...string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.seen {
		for _, v := range values {
			if strings.Contains(rec, v) {
				return rec
			}
		}
	}
	return ""
}

// destinations is the writer who may write config/* and apps/* but not
// read secrets, trying to send a credential's, an app's connections' and
// a public client's secrets to a host of their choosing through the real
// Vault: every write that would is refused, or stores a change the secrets
// do not follow, and the host gets none of them, nor a device code.
func (h *hygiene) destinations(base string, gen *standin.Vendor, headerName, header string) {
	t := h.t
	thief := newRecorder()
	defer thief.Close()

	// A credential with a client secret, a refresh token and a header.
	// The vendor wants the header (headerName=header) from every client.
	secret, rt := h.secret("destination client secret"), h.secret("destination refresh token")
	gen.AddClient(standin.Client{ID: "hy-dest", Secret: secret})
	gen.AddRefreshToken("hy-dest", rt)
	h.expect(204, "POST", "config/hy-dest", map[string]interface{}{
		"token_url": base + gen.TokenPath(), "grant_type": "refresh_token", "client_id": "hy-dest", "client_secret": secret,
		"refresh_token": rt, "extra_headers": map[string]interface{}{headerName: header},
	})
	for _, move := range []map[string]interface{}{
		{"token_url": thief.URL + "/token"},
		{"token_url": thief.URL + "/token", "client_secret": h.secret("writer's client secret")},
		{"revocation_url": thief.URL + "/revoke"},
		{"extra_headers": map[string]interface{}{headerName: "other"}},
		{"extra_headers": map[string]interface{}{"X-Forwarded-Host": strings.TrimPrefix(thief.URL, "http://")}},
		{"signing_key": "-----BEGIN PRIVATE KEY-----"},
	} {
		h.expect(400, "POST", "config/hy-dest", move)
	}
	h.expect(200, "POST", "refresh/hy-dest", nil)

	// An app with a connection: the writer may move the app giving the
	// app's secret again, and the connection's refresh token stays with
	// the endpoint it was issued for.
	appSecret, connRT := h.secret("destination app secret"), h.secret("destination connection refresh token")
	gen.AddClient(standin.Client{ID: "hy-dest-app", Secret: appSecret})
	gen.AddRefreshToken("hy-dest-app", connRT)
	h.expect(204, "POST", "apps/hy-dest-app", map[string]interface{}{
		"token_url": base + gen.TokenPath(), "grant_type": "refresh_token", "client_id": "hy-dest-app", "client_secret": appSecret,
		"extra_headers": map[string]interface{}{headerName: header},
	})
	h.expect(204, "POST", "config/hy-dest-app/acct", map[string]interface{}{"refresh_token": connRT})
	h.expect(200, "GET", "token/hy-dest-app/acct", nil)
	h.expect(400, "POST", "apps/hy-dest-app", map[string]interface{}{"token_url": thief.URL + "/token"})
	// Accepted, saying the previous client secret is not kept for it.
	h.expect(200, "POST", "apps/hy-dest-app", map[string]interface{}{"token_url": thief.URL + "/token", "client_secret": h.secret("writer's app secret"),
		"extra_headers": map[string]interface{}{headerName: h.secret("writer's header value")}})
	h.expect(400, "POST", "refresh/hy-dest-app/acct", nil) // needs reauthorization: not sent there
	h.expect(204, "DELETE", "config/hy-dest-app/acct", nil)

	// A public client with a device flow under way: the writer needs no
	// secret to move it, and the flow is cancelled, its device code
	// polled nowhere else.
	as, err := standin.NewAuthServer(standin.AuthServerOptions{DeviceInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = as.Close() }()
	if err := as.AddClient(standin.AuthClient{ID: "hy-dest-pub", Method: standin.MethodNone}); err != nil {
		t.Fatal(err)
	}
	ep := as.Endpoints(standin.Plain)
	h.expect(204, "POST", "config/hy-dest-pub", map[string]interface{}{
		"token_url": ep.Token, "device_authorization_url": ep.DeviceAuthorization, "client_id": "hy-dest-pub", "auth_style": "none", "grant_type": "refresh_token",
	})
	h.expect(200, "POST", "device/hy-dest-pub", map[string]interface{}{})
	moved := h.expect(200, "POST", "config/hy-dest-pub", map[string]interface{}{"token_url": thief.URL + "/token"})
	if !strings.Contains(strings.Join(moved.Warnings, " "), "cancelled") {
		t.Errorf("moving a public client with a device flow under way does not say the flow was cancelled: %v", moved.Warnings)
	}
	if st := str(h.expect(200, "GET", "device/hy-dest-pub", nil).Data["status"]); st != "failed" {
		t.Errorf("the device flow after the move is %q, want failed", st)
	}
	time.Sleep(2 * time.Second) // a poller would have polled by now

	if got := thief.holds(secret, rt, header, appSecret, connRT, "as-dc-"); got != "" {
		t.Errorf("the writer's host got a secret: %s", got)
	}
}
