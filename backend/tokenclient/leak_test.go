package tokenclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestNoSecretInErrors sends a request carrying every kind of secret to
// vendors that echo them back in every way we could think of, and checks
// that no secret, and no token the vendor issued, appears in any error,
// however it is printed.
func TestNoSecretInErrors(t *testing.T) {
	t.Parallel()
	const rotated = "rt-rotated-7c6a180b36896a0a"
	basic := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(testClientID) + ":" + url.QueryEscape(testClientSecret)))
	secrets := []string{
		testClientSecret, testRefreshToken, testAPIKey, testAccessToken, rotated, basic,
		url.QueryEscape(testClientSecret), url.PathEscape(testClientSecret),
	}
	// describe answers status with a JSON error whose description is made
	// from the request.
	describe := func(status int, desc func(r *http.Request, body string) string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			out, _ := json.Marshal(map[string]string{"error": "invalid_request", "error_description": desc(r, string(body))})
			replyJSON(status, string(out))(w, r)
		}
	}
	tests := []struct {
		name   string
		reply  http.HandlerFunc
		client *Client
		// redacts says the message must show "[redacted]", proving the echo
		// was seen and hidden rather than dropped.
		redacts bool
		// absent must not appear in the message either.
		absent []string
	}{
		{
			name:    "description echoes the client secret and refresh token",
			reply:   replyJSON(400, `{"error":"invalid_grant","error_description":"refresh token `+testRefreshToken+` does not belong to client secret `+testClientSecret+`"}`),
			redacts: true,
		},
		{
			name:    "description echoes the form-encoded body",
			reply:   describe(400, func(_ *http.Request, body string) string { return "could not parse " + body }),
			redacts: true,
		},
		{
			name: "description echoes every request header",
			reply: describe(400, func(r *http.Request, _ string) string {
				return fmt.Sprintf("headers: %v", r.Header)
			}),
			redacts: true,
		},
		{
			name:    "description echoes the Basic credential",
			reply:   describe(401, func(r *http.Request, _ string) string { return "bad header " + r.Header.Get("Authorization") }),
			redacts: true,
		},
		{
			name:    "message echoes the API key",
			reply:   replyJSON(403, `{"message":"API key `+testAPIKey+` is not allowed"}`),
			redacts: true,
		},
		{
			name:    "error code is the secret",
			reply:   replyJSON(400, `{"error":"`+testClientSecret+`"}`),
			redacts: true,
		},
		{
			name:  "error_uri holds the secret",
			reply: replyJSON(400, `{"error":"invalid_client","error_uri":"https://vendor.example/help?secret=`+url.QueryEscape(testClientSecret)+`"}`),
		},
		{
			name:    "JSON-escaped secret in the description",
			reply:   replyJSON(400, `{"error":"invalid_client","error_description":"secret s3cr+t\/\u00e9 is wrong"}`),
			redacts: true,
		},
		{
			name:    "secret split by a control character",
			reply:   replyJSON(400, `{"error":"invalid_client","error_description":"secret s3cr+t\u0000/é is wrong"}`),
			redacts: true,
		},
		{
			name:   "secret across the description cap",
			reply:  replyJSON(400, `{"error":"invalid_client","error_description":"`+strings.Repeat("x", maxDescriptionLen-4)+testRefreshToken+`"}`),
			absent: []string{testRefreshToken[:3]},
		},
		{
			name:    "nested error message echoes the secret",
			reply:   replyJSON(400, `{"error":{"code":"bad","message":"client_secret=`+url.QueryEscape(testClientSecret)+`"}}`),
			redacts: true,
		},
		{
			name:    "form-encoded error echoes the refresh token",
			reply:   replyWith(200, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, "error=bad_refresh_token&error_description="+url.QueryEscape("token "+testRefreshToken)),
			redacts: true,
		},
		{
			name:    "issued access token in expires_in",
			reply:   replyJSON(200, `{"access_token":"`+testAccessToken+`","expires_in":"`+testAccessToken+`"}`),
			redacts: true,
		},
		{
			name:    "client secret in expires_in",
			reply:   replyJSON(200, `{"access_token":"`+testAccessToken+`","expires_in":"`+testClientSecret+`"}`),
			redacts: true,
		},
		{
			name:    "error beside issued tokens echoes them",
			reply:   replyJSON(200, `{"access_token":"`+testAccessToken+`","refresh_token":"`+rotated+`","error":"server_error","error_description":"issued `+testAccessToken+` and `+rotated+` then failed"}`),
			redacts: true,
		},
		{
			name:  "issued token but missing fields",
			reply: replyJSON(200, `{"access_token":12,"refresh_token":"`+rotated+`"}`),
		},
		{
			name:  "HTML page holding the secret",
			reply: replyWith(200, map[string]string{"Content-Type": "text/html"}, "<p>"+testClientSecret+" "+testAccessToken+"</p>"),
		},
		{
			name:  "malformed JSON holding the secret",
			reply: replyJSON(200, `{"access_token":"`+testAccessToken+`" "`+testClientSecret+`"`),
		},
		{
			name:  "Content-Type holding the secret",
			reply: replyWith(200, map[string]string{"Content-Type": "text/" + testAPIKey}, "access_token "+testAccessToken),
		},
		{
			name: "redirect to a path and query holding secrets",
			reply: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Location", "https://evil.example/"+url.PathEscape(testClientSecret)+"/"+testAPIKey+"?rt="+testRefreshToken)
				w.WriteHeader(http.StatusFound)
			},
			redacts: true,
		},
		{
			name: "status text holding the secret",
			reply: func(w http.ResponseWriter, _ *http.Request) {
				c, buf, err := w.(http.Hijacker).Hijack()
				if err != nil {
					return
				}
				defer c.Close()
				writeRaw(buf, "HTTP/1.1 400 Bad "+testAPIKey+"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			},
			redacts: true,
		},
		{
			name:   "timeout",
			reply:  stall,
			client: New(WithTimeout(50 * time.Millisecond)),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := newFakeVendor(t, tc.reply)
			c := tc.client
			if c == nil {
				c = New()
			}
			tok, err := c.Exchange(context.Background(), Request{
				TokenURL: v.URL + "/token", GrantType: "refresh_token",
				ClientID: testClientID, ClientSecret: testClientSecret,
				Params:  map[string]string{"refresh_token": testRefreshToken},
				Headers: map[string]string{"X-Api-Key": testAPIKey},
			})
			if err == nil {
				t.Fatalf("Exchange succeeded with %v, want an error", tok)
			}
			for _, verb := range []string{"%v", "%+v", "%#v"} {
				msg := fmt.Sprintf(verb, err)
				for _, s := range secrets {
					if strings.Contains(msg, s) {
						t.Errorf("%s of the error holds secret %q: %s", verb, s, msg)
					}
				}
			}
			for _, s := range tc.absent {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q holds %q", err, s)
				}
			}
			if tc.redacts && !strings.Contains(err.Error(), redacted) {
				t.Errorf("error %q does not show %s: was the echo dropped rather than hidden?", err, redacted)
			}
		})
	}
}
