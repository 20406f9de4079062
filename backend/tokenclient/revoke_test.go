package tokenclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func TestRevoke(t *testing.T) {
	t.Parallel()
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tests := []struct {
		name  string
		reply http.HandlerFunc
		auth  Request
		rv    Revocation
		// wantBody is the exact form body expected (client_assertion only
		// checked for presence).
		wantBody  map[string]string
		wantBasic bool
		wantErr   string
		wantClass Failure
		check     func(t *testing.T, err error)
	}{
		{
			name: "200 revokes, Basic auth", reply: replyWith(200, nil, ""),
			auth:     Request{ClientID: "cid", ClientSecret: testClientSecret},
			rv:       Revocation{Token: testRefreshToken, TokenTypeHint: HintRefreshToken},
			wantBody: map[string]string{"token": testRefreshToken, "token_type_hint": "refresh_token"}, wantBasic: true,
		},
		{
			name: "204 is a success too, body auth, no hint", reply: replyWith(204, nil, ""),
			auth:     Request{ClientID: "cid", ClientSecret: testClientSecret, AuthStyle: AuthBody},
			rv:       Revocation{Token: testRefreshToken},
			wantBody: map[string]string{"token": testRefreshToken, "client_id": "cid", "client_secret": testClientSecret},
		},
		{
			name: "a 200 JSON body without an error is a success", reply: replyJSON(200, `{"revoked":true}`),
			auth: Request{ClientID: "cid", AuthStyle: AuthNone}, rv: Revocation{Token: testRefreshToken},
			wantBody: map[string]string{"token": testRefreshToken, "client_id": "cid"},
		},
		{
			name: "private_key_jwt: the assertion's audience is the token endpoint", reply: replyWith(200, nil, ""),
			auth:     Request{ClientID: "cid", AuthStyle: AuthPrivateKeyJWT, Signer: ek, KeyID: "k", TokenURL: "https://idp.example/oauth2/v1/token?x=1"},
			rv:       Revocation{Token: testRefreshToken, TokenTypeHint: HintRefreshToken},
			wantBody: map[string]string{"token": testRefreshToken, "token_type_hint": "refresh_token", "client_id": "cid", "client_assertion_type": ClientAssertionType, "client_assertion": "*"},
		},
		{
			name: "grant fields of the auth request are not sent", reply: replyWith(200, nil, ""),
			auth: Request{ClientID: "cid", ClientSecret: testClientSecret, GrantType: "refresh_token", Scopes: []string{"a"},
				Params: map[string]string{"refresh_token": "other"}, ExtraParams: map[string]string{"audience": "x"}},
			rv:       Revocation{Token: testRefreshToken},
			wantBody: map[string]string{"token": testRefreshToken}, wantBasic: true,
		},
		{
			name: "unsupported_token_type", reply: replyJSON(400, `{"error":"unsupported_token_type","error_description":"refresh tokens cannot be revoked here"}`),
			auth: Request{ClientID: "cid", ClientSecret: testClientSecret}, rv: Revocation{Token: testRefreshToken, TokenTypeHint: HintRefreshToken},
			wantErr:   "vendor error unsupported_token_type: refresh tokens cannot be revoked here (HTTP 400 Bad Request)",
			wantClass: FailureRefused,
		},
		{
			name: "invalid_client", reply: replyJSON(401, `{"error":"invalid_client"}`),
			auth: Request{ClientID: "cid", ClientSecret: testClientSecret}, rv: Revocation{Token: testRefreshToken},
			wantErr: "vendor error invalid_client (HTTP 401 Unauthorized)", wantClass: FailureClient,
		},
		{
			name: "503 with Retry-After", reply: replyWith(503, map[string]string{"Retry-After": "30"}, ""),
			auth: Request{ClientID: "cid", ClientSecret: testClientSecret}, rv: Revocation{Token: testRefreshToken},
			wantErr: "revocation endpoint answered HTTP 503 Service Unavailable", wantClass: FailureUnavailable,
			check: func(t *testing.T, err error) {
				var ve *Error
				if !errors.As(err, &ve) || ve.RetryAfter != 30*time.Second || ve.Endpoint != "revocation endpoint" {
					t.Errorf("error = %#v", ve)
				}
			},
		},
		{
			name: "a 200 with an error object", reply: replyJSON(200, `{"error":"invalid_request"}`),
			auth: Request{ClientID: "cid", ClientSecret: testClientSecret}, rv: Revocation{Token: testRefreshToken},
			wantErr: "vendor error invalid_request (HTTP 200 OK)", wantClass: FailureRefused,
		},
		{
			name: "a redirect is not followed", reply: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "https://elsewhere.example/revoke?k=1", http.StatusFound)
			},
			auth: Request{ClientID: "cid", ClientSecret: testClientSecret}, rv: Revocation{Token: testRefreshToken},
			wantErr:   "revocation endpoint redirected (HTTP 302 Found) to https://elsewhere.example/revoke; redirects are not followed: set the revocation endpoint URL to the endpoint itself",
			wantClass: FailureUnavailable,
		},
		{
			name: "the vendor echoes the token", reply: replyJSON(400, `{"error":"invalid_request","error_description":"bad token `+testRefreshToken+`"}`),
			auth: Request{ClientID: "cid", ClientSecret: testClientSecret}, rv: Revocation{Token: testRefreshToken},
			wantErr: "vendor error invalid_request: bad token [redacted] (HTTP 400 Bad Request)", wantClass: FailureRefused,
		},
		{
			name: "no token", rv: Revocation{}, auth: Request{ClientID: "cid"},
			wantErr: "has no token", wantClass: FailureRequest,
		},
		{
			name: "no endpoint", rv: Revocation{Token: "x", Endpoint: "-"}, auth: Request{ClientID: "cid"},
			wantErr: "the request has no revocation endpoint URL", wantClass: FailureRequest,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := newFakeVendor(t, tc.reply)
			rv := tc.rv
			switch rv.Endpoint {
			case "":
				rv.Endpoint = v.URL + "/revoke"
			case "-":
				rv.Endpoint = ""
			}
			err := New().Revoke(context.Background(), tc.auth, rv)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Revoke: %v", err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				if Classify(err) != tc.wantClass {
					t.Errorf("Classify = %q, want %q", Classify(err), tc.wantClass)
				}
				if strings.Contains(err.Error(), testRefreshToken) || strings.Contains(err.Error(), testClientSecret) {
					t.Errorf("error holds a secret: %v", err)
				}
				if tc.check != nil {
					tc.check(t, err)
				}
			}
			if tc.wantBody == nil {
				return
			}
			got := v.requests()[0]
			if got.Method != http.MethodPost || got.Path != "/revoke" {
				t.Errorf("%s %s", got.Method, got.Path)
			}
			form, _ := url.ParseQuery(string(got.Body))
			if len(form) != len(tc.wantBody) {
				t.Errorf("body = %v, want %v", form, tc.wantBody)
			}
			for k, want := range tc.wantBody {
				if g := form.Get(k); (want == "*" && g == "") || (want != "*" && g != want) {
					t.Errorf("%s = %q, want %q", k, g, want)
				}
			}
			if a := form.Get("client_assertion"); a != "" {
				_, claims, _ := decodeAssertion(t, a, jose.ES256, &ek.PublicKey)
				if claims.Audience[0] != "https://idp.example/oauth2/v1/token" {
					t.Errorf("aud = %v", claims.Audience)
				}
			}
			if hasBasic := got.Header.Get("Authorization") != ""; hasBasic != tc.wantBasic {
				t.Errorf("Authorization = %q", got.Header.Get("Authorization"))
			}
		})
	}
}

func TestRevocationString(t *testing.T) {
	t.Parallel()
	rv := Revocation{Endpoint: "https://x.example/revoke?k=" + testAPIKey, Token: testRefreshToken, TokenTypeHint: HintRefreshToken}
	for _, verb := range []string{"%v", "%+v", "%#v"} {
		if got := fmt.Sprintf(verb, rv); strings.Contains(got, testRefreshToken) || strings.Contains(got, testAPIKey) {
			t.Errorf("%s = %q", verb, got)
		}
	}
}
