package vendoroauth

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// TestBadVendorResponses is the catalogue of broken token endpoints: each
// answer must become an error that names the credential and says what went
// wrong, never a panic, never a token handed out, and never a secret in
// the message or the plugin's log.
func TestBadVendorResponses(t *testing.T) {
	t.Parallel()
	jsonAnswer := func(status int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}
	}
	html := "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1><p>nginx</p></body></html>"
	cases := []struct {
		name    string
		handler func(secrets catalogueSecrets, stop <-chan struct{}) http.HandlerFunc
		// want are phrases the error must hold, besides the credential's
		// name: enough for an operator to know what to look at.
		want []string
		// status is the HTTP status Vault would answer with.
		status int
	}{
		{
			name: "malformed JSON",
			handler: func(catalogueSecrets, <-chan struct{}) http.HandlerFunc {
				return jsonAnswer(200, `{"access_token": "at-1", "expires_in": 3600`)
			},
			want:   []string{"unusable token response", "JSON"},
			status: http.StatusBadGateway,
		},
		{
			name: "HTML error page with 502",
			handler: func(catalogueSecrets, <-chan struct{}) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/html")
					w.WriteHeader(http.StatusBadGateway)
					_, _ = w.Write([]byte(html))
				}
			},
			want:   []string{"HTTP 502"},
			status: http.StatusBadGateway,
		},
		{
			name: "HTML page with 200",
			handler: func(catalogueSecrets, <-chan struct{}) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/html; charset=utf-8")
					_, _ = w.Write([]byte(html))
				}
			},
			want:   []string{"unusable token response"},
			status: http.StatusBadGateway,
		},
		{
			name:    "empty body",
			handler: func(catalogueSecrets, <-chan struct{}) http.HandlerFunc { return jsonAnswer(200, "") },
			want:    []string{"unusable token response"},
			status:  http.StatusBadGateway,
		},
		{
			name: "200 with error",
			handler: func(catalogueSecrets, <-chan struct{}) http.HandlerFunc {
				return jsonAnswer(200, `{"error":"invalid_client","error_description":"client authentication failed"}`)
			},
			want:   []string{"invalid_client", "client authentication failed"},
			status: http.StatusBadRequest,
		},
		{
			name: "error that echoes every secret",
			handler: func(s catalogueSecrets, _ <-chan struct{}) http.HandlerFunc {
				return jsonAnswer(400, fmt.Sprintf(`{"error":"invalid_grant","error_description":"refresh token %s of client with secret %s and key %s is unknown"}`,
					s.refreshToken, s.clientSecret, s.headerValue))
			},
			want:   []string{"invalid_grant", "[redacted]"},
			status: http.StatusBadRequest,
		},
		{
			name: "missing access_token",
			handler: func(catalogueSecrets, <-chan struct{}) http.HandlerFunc {
				return jsonAnswer(200, `{"token_type":"bearer","expires_in":3600}`)
			},
			want:   []string{"unusable token response", "access_token"},
			status: http.StatusBadGateway,
		},
		{
			name: "negative expires_in",
			handler: func(catalogueSecrets, <-chan struct{}) http.HandlerFunc {
				return jsonAnswer(200, `{"access_token":"at-1","expires_in":-3600}`)
			},
			want:   []string{"unusable token response", "expires_in"},
			status: http.StatusBadGateway,
		},
		{
			name: "zero expires_in",
			handler: func(catalogueSecrets, <-chan struct{}) http.HandlerFunc {
				return jsonAnswer(200, `{"access_token":"at-1","expires_in":0}`)
			},
			want:   []string{"unusable token response", "expires_in"},
			status: http.StatusBadGateway,
		},
		{
			name: "huge expires_in",
			handler: func(catalogueSecrets, <-chan struct{}) http.HandlerFunc {
				return jsonAnswer(200, `{"access_token":"at-1","expires_in":99999999999999999999999}`)
			},
			want:   []string{"unusable token response", "expires_in"},
			status: http.StatusBadGateway,
		},
		{
			name: "non-numeric expires_in",
			handler: func(catalogueSecrets, <-chan struct{}) http.HandlerFunc {
				return jsonAnswer(200, `{"access_token":"at-1","expires_in":"soon"}`)
			},
			want:   []string{"unusable token response", "expires_in"},
			status: http.StatusBadGateway,
		},
		{
			name: "10 MiB body",
			handler: func(catalogueSecrets, <-chan struct{}) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					_, _ = w.Write([]byte(`{"access_token":"at-1","expires_in":3600,"pad":"`))
					chunk := []byte(strings.Repeat("x", 1<<16))
					for i := 0; i < 160; i++ {
						if _, err := w.Write(chunk); err != nil {
							return // the client stopped reading, as it should
						}
					}
					_, _ = w.Write([]byte(`"}`))
				}
			},
			want:   []string{"unusable token response", "larger than"},
			status: http.StatusBadGateway,
		},
		{
			name: "never answers",
			handler: func(_ catalogueSecrets, stop <-chan struct{}) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					// The server notices a client that hung up only once
					// the body is read.
					_, _ = io.Copy(io.Discard, r.Body)
					select {
					case <-r.Context().Done():
					case <-stop:
					}
				}
			},
			want:   []string{"no answer from token endpoint", "timeout"},
			status: http.StatusBadGateway,
		},
		{
			name: "redirect to another host",
			handler: func(catalogueSecrets, <-chan struct{}) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, "https://collector.attacker.example/oauth/token?steal=1", http.StatusFound)
				}
			},
			want:   []string{"redirected", "collector.attacker.example", "not followed"},
			status: http.StatusBadGateway,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			secrets := newCatalogueSecrets()
			var hits atomic.Int32
			stop := make(chan struct{})
			handler := tc.handler(secrets, stop)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				handler(w, r)
			}))
			defer srv.Close()
			defer close(stop)

			e := newTestEnv(t)
			// Short enough for "never answers" to fail fast, long enough
			// for a loaded machine to read 1 MiB from loopback.
			e.b.creds.SetClient(tokenclient.New(tokenclient.WithTimeout(2 * time.Second)))
			name := "catalogue-" + strings.ReplaceAll(tc.name, " ", "-")
			e.write(t, name, map[string]interface{}{
				"token_url":     srv.URL + "/oauth/token",
				"grant_type":    "refresh_token",
				"client_id":     "catalogue-client",
				"client_secret": secrets.clientSecret,
				"refresh_token": secrets.refreshToken,
				"extra_headers": "X-Vendor-Key=" + secrets.headerValue,
			})

			var (
				resp *logical.Response
				err  error
			)
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("token/%s panicked: %v", name, p)
					}
				}()
				resp, err = e.request(t, logical.ReadOperation, "token/"+name, nil)
			}()
			if hits.Load() == 0 {
				t.Fatalf("the bad vendor was never called")
			}
			msg, status := catalogueOutcome(resp, err)
			t.Logf("HTTP %d: %s", status, msg)
			if resp != nil && resp.Data[fieldAccessToken] != nil {
				t.Fatalf("a token was handed out: %v", resp.Data)
			}
			if msg == "" {
				t.Fatalf("no error: resp=%v err=%v", resp, err)
			}
			if status != tc.status {
				t.Errorf("Vault would answer HTTP %d, want %d", status, tc.status)
			}
			if !strings.Contains(msg, fmt.Sprintf("credential %q", name)) {
				t.Errorf("the error does not name the credential %q", name)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("the error does not say %q", w)
				}
			}
			all := append(secrets.list(), "steal=1")
			assertNoSecrets(t, "the error", msg, all...)
			assertNoSecrets(t, "the plugin log", e.logs.String(), all...)

			// The failure is recorded where operators look, and says the
			// same without secrets.
			cfg, err := e.request(t, logical.ReadOperation, "config/"+name, nil)
			if err != nil || cfg.IsError() {
				t.Fatalf("reading config/%s: %v %v", name, err, cfg)
			}
			if last, _ := cfg.Data["last_error"].(string); last == "" {
				t.Errorf("config/%s has no last_error", name)
			} else {
				assertNoSecrets(t, "last_error", last, all...)
			}
		})
	}
}

// catalogueSecrets are random, so a hit anywhere is unambiguous.
type catalogueSecrets struct {
	clientSecret, refreshToken, headerValue string
}

func newCatalogueSecrets() catalogueSecrets {
	r := func(kind string) string {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		return kind + "-" + hex.EncodeToString(b)
	}
	return catalogueSecrets{clientSecret: r("cs"), refreshToken: r("rt"), headerValue: r("hv")}
}

func (s catalogueSecrets) list() []string {
	return []string{s.clientSecret, s.refreshToken, s.headerValue}
}

// catalogueOutcome is the message and HTTP status Vault would give a
// client for a handler's answer.
func catalogueOutcome(resp *logical.Response, err error) (string, int) {
	if err != nil {
		var coded logical.HTTPCodedError
		// As Vault does (logical.AdjustErrorStatusCode): a type assertion,
		// so a wrapped coded error is a 500 there and must be one here.
		if ce, ok := err.(logical.HTTPCodedError); ok { //nolint:errorlint // see above
			coded = ce
			return coded.Error(), coded.Code()
		}
		return err.Error(), http.StatusInternalServerError
	}
	if resp != nil && resp.IsError() {
		return resp.Error().Error(), http.StatusBadRequest
	}
	return "", http.StatusOK
}
