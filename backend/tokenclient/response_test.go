package tokenclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestExchangeResponse runs each kind of answer a vendor gives through a
// real HTTP round trip and checks what Exchange makes of it.
func TestExchangeResponse(t *testing.T) {
	t.Parallel()
	const form = "application/x-www-form-urlencoded; charset=utf-8"
	html := "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>" +
		strings.Repeat("<p>upstream</p>", 80) + "</body></html>"
	tests := []struct {
		name   string
		status int
		header map[string]string
		body   string
		// want is the token expected on success.
		want *Token
		// wantErr is the exact error message expected on failure, or,
		// ending in "*", its prefix.
		wantErr string
		// check inspects the error further.
		check func(t *testing.T, err error)
	}{
		{
			name: "full response, bearer in lower case", status: 200, body: okBody,
			want: &Token{AccessToken: testAccessToken, TokenType: "Bearer", RefreshToken: "rt-new", Scope: "read write", ExpiresIn: time.Hour},
		},
		{
			name: "id token and other token type kept as sent", status: 200,
			body: `{"access_token":"tok1","token_type":"N_A","id_token":"eyJ.x.y","expires_in":60}`,
			want: &Token{AccessToken: "tok1", TokenType: "N_A", IDToken: "eyJ.x.y", ExpiresIn: time.Minute},
		},
		{
			name: "missing token type is Bearer", status: 200, body: `{"access_token":"tok1"}`,
			want: &Token{AccessToken: "tok1", TokenType: "Bearer"},
		},
		{
			name: "BEARER is Bearer", status: 200, body: `{"access_token":"tok1","token_type":"BEARER"}`,
			want: &Token{AccessToken: "tok1", TokenType: "Bearer"},
		},
		{
			name: "201 Created is a success", status: 201, body: `{"access_token":"tok1","expires_in":5}`,
			want: &Token{AccessToken: "tok1", TokenType: "Bearer", ExpiresIn: 5 * time.Second},
		},
		{
			name: "scope as a JSON array", status: 200, body: `{"access_token":"tok1","scope":["read","write"]}`,
			want: &Token{AccessToken: "tok1", TokenType: "Bearer", Scope: "read write"},
		},
		{
			name: "error null beside a token is a success", status: 200, body: `{"access_token":"tok1","error":null,"error_description":""}`,
			want: &Token{AccessToken: "tok1", TokenType: "Bearer"},
		},
		{
			name: "byte order mark before JSON", status: 200, body: "\xef\xbb\xbf" + `{"access_token":"tok1"}`,
			want: &Token{AccessToken: "tok1", TokenType: "Bearer"},
		},
		{
			name: "JSON sent as text/plain", status: 200, header: map[string]string{"Content-Type": "text/plain"}, body: `{"access_token":"tok1"}`,
			want: &Token{AccessToken: "tok1", TokenType: "Bearer"},
		},

		// expires_in in every shape vendors send.
		{name: "expires_in integer", status: 200, body: `{"access_token":"tok1","expires_in":3599}`, want: &Token{AccessToken: "tok1", TokenType: "Bearer", ExpiresIn: 3599 * time.Second}},
		{name: "expires_in float 3599.0", status: 200, body: `{"access_token":"tok1","expires_in":3599.0}`, want: &Token{AccessToken: "tok1", TokenType: "Bearer", ExpiresIn: 3599 * time.Second}},
		{name: "expires_in float 3599.5 is floored", status: 200, body: `{"access_token":"tok1","expires_in":3599.5}`, want: &Token{AccessToken: "tok1", TokenType: "Bearer", ExpiresIn: 3599 * time.Second}},
		{name: "expires_in exponent", status: 200, body: `{"access_token":"tok1","expires_in":3.6e3}`, want: &Token{AccessToken: "tok1", TokenType: "Bearer", ExpiresIn: time.Hour}},
		{name: "expires_in string", status: 200, body: `{"access_token":"tok1","expires_in":"3599"}`, want: &Token{AccessToken: "tok1", TokenType: "Bearer", ExpiresIn: 3599 * time.Second}},
		{name: "expires_in string with spaces", status: 200, body: `{"access_token":"tok1","expires_in":" 3599 "}`, want: &Token{AccessToken: "tok1", TokenType: "Bearer", ExpiresIn: 3599 * time.Second}},
		{name: "expires_in string float", status: 200, body: `{"access_token":"tok1","expires_in":"3599.0"}`, want: &Token{AccessToken: "tok1", TokenType: "Bearer", ExpiresIn: 3599 * time.Second}},
		{name: "expires_in missing", status: 200, body: `{"access_token":"tok1"}`, want: &Token{AccessToken: "tok1", TokenType: "Bearer"}},
		{name: "expires_in null", status: 200, body: `{"access_token":"tok1","expires_in":null}`, want: &Token{AccessToken: "tok1", TokenType: "Bearer"}},
		{name: "expires_in exactly 10 years", status: 200, body: `{"access_token":"tok1","expires_in":315360000}`, want: &Token{AccessToken: "tok1", TokenType: "Bearer", ExpiresIn: maxExpiresIn}},
		{name: "expires_in negative", status: 200, body: `{"access_token":"tok1","expires_in":-5}`, wantErr: "token endpoint answered with an unusable token response: expires_in -5 is not positive"},
		{name: "expires_in zero", status: 200, body: `{"access_token":"tok1","expires_in":0}`, wantErr: "token endpoint answered with an unusable token response: expires_in 0 is not positive"},
		{name: "expires_in below a second", status: 200, body: `{"access_token":"tok1","expires_in":0.5}`, wantErr: "token endpoint answered with an unusable token response: expires_in 0.5 is less than one second"},
		{name: "expires_in huge", status: 200, body: `{"access_token":"tok1","expires_in":100000000000000000000}`, wantErr: "token endpoint answered with an unusable token response: expires_in 1e+20 is larger than 10 years"},
		{name: "expires_in beyond float64", status: 200, body: `{"access_token":"tok1","expires_in":1e400}`, wantErr: "token endpoint answered with an unusable token response: expires_in 1e400 is larger than 10 years"},
		{name: "expires_in just over 10 years", status: 200, body: `{"access_token":"tok1","expires_in":"315360001"}`, wantErr: "token endpoint answered with an unusable token response: expires_in 315360001 is larger than 10 years"},
		{name: "expires_in abc", status: 200, body: `{"access_token":"tok1","expires_in":"abc"}`, wantErr: `token endpoint answered with an unusable token response: expires_in "abc" is not a number`},
		{name: "expires_in NaN", status: 200, body: `{"access_token":"tok1","expires_in":"NaN"}`, wantErr: `token endpoint answered with an unusable token response: expires_in "NaN" is not a number`},
		{name: "expires_in Inf", status: 200, body: `{"access_token":"tok1","expires_in":"+Inf"}`, wantErr: `token endpoint answered with an unusable token response: expires_in "+Inf" is not a number`},
		{name: "expires_in hex", status: 200, body: `{"access_token":"tok1","expires_in":"0x10p0"}`, wantErr: `token endpoint answered with an unusable token response: expires_in "0x10p0" is not a number`},
		{name: "expires_in empty string", status: 200, body: `{"access_token":"tok1","expires_in":""}`, wantErr: `token endpoint answered with an unusable token response: expires_in "" is not a number`},
		{name: "expires_in boolean", status: 200, body: `{"access_token":"tok1","expires_in":true}`, wantErr: "token endpoint answered with an unusable token response: expires_in is a JSON boolean, not a number"},

		// access_token problems.
		{name: "missing access_token", status: 200, body: `{"token_type":"bearer"}`, wantErr: "token endpoint answered with an unusable token response: missing access_token"},
		{name: "empty access_token", status: 200, body: `{"access_token":""}`, wantErr: "token endpoint answered with an unusable token response: access_token is empty"},
		{name: "null access_token", status: 200, body: `{"access_token":null}`, wantErr: "token endpoint answered with an unusable token response: access_token is null"},
		{name: "numeric access_token", status: 200, body: `{"access_token":12345}`, wantErr: "token endpoint answered with an unusable token response: access_token is a JSON number, not a string"},
		{name: "object access_token", status: 200, body: `{"access_token":{"value":"tok1"}}`, wantErr: "token endpoint answered with an unusable token response: access_token is a JSON object, not a string"},

		// Form-encoded answers, GitHub style.
		{
			name: "form-encoded token", status: 200, header: map[string]string{"Content-Type": form},
			body: "access_token=gho_16C7e42F292c6912E7710c838347Ae178B4a&scope=repo%2Cgist&token_type=bearer&expires_in=28800&refresh_token=ghr_1B4a",
			want: &Token{AccessToken: "gho_16C7e42F292c6912E7710c838347Ae178B4a", TokenType: "Bearer", Scope: "repo,gist", RefreshToken: "ghr_1B4a", ExpiresIn: 8 * time.Hour},
		},
		{
			name: "form-encoded error with 200", status: 200, header: map[string]string{"Content-Type": form},
			body:    "error=bad_verification_code&error_description=The+code+passed+is+incorrect+or+expired.&error_uri=https%3A%2F%2Fdocs.github.com%2Fapps",
			wantErr: "vendor error bad_verification_code: The code passed is incorrect or expired. (HTTP 200 OK)",
			check: func(t *testing.T, err error) {
				var ve *Error
				if !errors.As(err, &ve) || ve.StatusCode != 200 || ve.Code != "bad_verification_code" || ve.ErrorURI != "https://docs.github.com/apps" {
					t.Errorf("error = %#v, want a 200 *Error with code and URI", err)
				}
			},
		},
		{
			name: "text/plain that is not form-encoded", status: 200, header: map[string]string{"Content-Type": "text/plain; charset=utf-8"},
			body: "OK", wantErr: "token endpoint answered with an unusable token response: a 2-byte text/plain body is neither JSON nor form-encoded: check token_url",
		},

		// Errors in a 2xx answer.
		{
			name: "200 with an RFC 6749 error", status: 200, body: `{"error":"invalid_grant","error_description":"Bad refresh token"}`,
			wantErr: "vendor error invalid_grant: Bad refresh token (HTTP 200 OK)",
		},
		{
			name: "200 with error true and a message", status: 200, body: `{"error":true,"message":"Token revoked"}`,
			wantErr: "token endpoint answered HTTP 200 OK with an error: Token revoked",
		},

		// Refusals.
		{
			name: "400 RFC 6749 error", status: 400, body: `{"error":"invalid_grant","error_description":"Refresh token expired"}`,
			wantErr: "vendor error invalid_grant: Refresh token expired (HTTP 400 Bad Request)",
			check: func(t *testing.T, err error) {
				var ve *Error
				if !errors.As(err, &ve) || ve.StatusCode != 400 || ve.Status != "400 Bad Request" || ve.Code != "invalid_grant" || ve.Description != "Refresh token expired" {
					t.Errorf("error = %#v", err)
				}
			},
		},
		{
			name: "401 code without description", status: 401, body: `{"error":"invalid_client"}`,
			wantErr: "vendor error invalid_client (HTTP 401 Unauthorized)",
		},
		{
			name: "401 with only a message", status: 401, body: `{"message":"Forbidden"}`,
			wantErr: "token endpoint answered HTTP 401 Unauthorized: Forbidden",
			check: func(t *testing.T, err error) {
				var ve *Error
				if !errors.As(err, &ve) || ve.Code != "" || ve.Description != "Forbidden" {
					t.Errorf("error = %#v, want no code and the message as description", err)
				}
			},
		},
		{
			name: "400 with error as an object", status: 400, body: `{"error":{"code":"BAD_REQUEST","message":"grant_type missing"}}`,
			wantErr: "vendor error BAD_REQUEST: grant_type missing (HTTP 400 Bad Request)",
		},
		{
			name: "400 with error object and a numeric code", status: 400, body: `{"error":{"code":400,"message":"Invalid JWT","status":"INVALID_ARGUMENT"}}`,
			wantErr: "vendor error INVALID_ARGUMENT: Invalid JWT (HTTP 400 Bad Request)",
		},
		{
			name: "403 form-encoded error", status: 403, header: map[string]string{"Content-Type": form},
			body: "error=unauthorized_client", wantErr: "vendor error unauthorized_client (HTTP 403 Forbidden)",
		},
		{
			name: "description with control characters and newlines", status: 400,
			body:    `{"error":"invalid_request","error_description":"line one\r\nline\u0007 two\u202e\t\tend"}`,
			wantErr: "vendor error invalid_request: line one line two end (HTTP 400 Bad Request)",
		},
		{
			name: "long description is capped", status: 400,
			body: `{"error":"invalid_request","error_description":"` + strings.Repeat("x", 1000) + `"}`,
			check: func(t *testing.T, err error) {
				var ve *Error
				if !errors.As(err, &ve) || len([]rune(ve.Description)) != maxDescriptionLen || !strings.HasSuffix(ve.Description, "…") {
					t.Errorf("description has %d characters, want %d ending in …", len([]rune(ve.Description)), maxDescriptionLen)
				}
			},
		},
		{
			name: "HTML 502 page", status: 502, header: map[string]string{"Content-Type": "text/html"}, body: html,
			wantErr: "token endpoint answered HTTP 502 Bad Gateway",
		},
		{
			name: "HTML 200 page", status: 200, header: map[string]string{"Content-Type": "text/html; charset=utf-8"}, body: html,
			wantErr: "token endpoint answered with an unusable token response: a " + strconv.Itoa(len(html)) + "-byte text/html body is neither JSON nor form-encoded: check token_url",
		},
		{
			name: "body without a content type", status: 200, header: map[string]string{"Content-Type": ""}, body: "\x00\x01binary",
			wantErr: "token endpoint answered with an unusable token response: a 8-byte body without a Content-Type is neither JSON nor form-encoded: check token_url",
		},
		{name: "500 empty body", status: 500, wantErr: "token endpoint answered HTTP 500 Internal Server Error"},
		{name: "200 empty body", status: 200, wantErr: "token endpoint answered with an unusable token response: empty body"},
		{name: "200 blank body", status: 200, body: " \r\n\t", wantErr: "token endpoint answered with an unusable token response: empty body"},
		{name: "malformed JSON", status: 200, body: `{"access_token": "tok1",`, wantErr: "token endpoint answered with an unusable token response: malformed JSON: unexpected end of input"},
		{name: "malformed JSON syntax", status: 200, body: `{"access_token" "tok1"}`, wantErr: "token endpoint answered with an unusable token response: malformed JSON: syntax error at byte 17"},
		{name: "JSON with trailing data", status: 200, body: `{"access_token":"tok1"} {"access_token":"b"}`, wantErr: "token endpoint answered with an unusable token response: malformed JSON: more data after the object"},
		{name: "JSON array", status: 200, body: `[{"access_token":"tok1"}]`, wantErr: "token endpoint answered with an unusable token response: the body is a JSON array, not an object"},
		{name: "JSON string", status: 200, body: `"tok1"`, wantErr: "token endpoint answered with an unusable token response: the body is a JSON string, not an object"},
		{name: "malformed JSON in a 400", status: 400, body: `{"error":`, wantErr: "token endpoint answered HTTP 400 Bad Request"},
		{
			name: "oversize 200", status: 200, body: `{"access_token":"tok1","pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`,
			wantErr: "token endpoint answered with an unusable token response: response is larger than 1 MiB",
		},
		{
			name: "oversize by ten bytes", status: 200, body: `{"access_token":"tok1"}` + strings.Repeat(" ", MaxBodyBytes+10-len(`{"access_token":"tok1"}`)),
			wantErr: "token endpoint answered with an unusable token response: response is larger than 1 MiB",
		},
		{
			name: "exactly MaxBodyBytes is read", status: 200, body: `{"access_token":"tok1"}` + strings.Repeat(" ", MaxBodyBytes-len(`{"access_token":"tok1"}`)),
			want: &Token{AccessToken: "tok1", TokenType: "Bearer"},
		},
		{
			name: "oversize 400 reports the status only", status: 400, body: `{"error":"invalid_grant","pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`,
			wantErr: "token endpoint answered HTTP 400 Bad Request",
		},

		// Retry-After.
		{
			name: "429 with Retry-After seconds", status: 429, header: map[string]string{"Retry-After": "120"}, body: `{"error":"slow_down"}`,
			wantErr: "vendor error slow_down (HTTP 429 Too Many Requests)",
			check:   wantRetryAfter(120*time.Second, 0),
		},
		{
			name: "503 with Retry-After date", status: 503, header: map[string]string{"Retry-After": time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)},
			wantErr: "token endpoint answered HTTP 503 Service Unavailable",
			// The date has whole seconds, and time passes during the test:
			// a loaded machine may take a while to get here.
			check: wantRetryAfter(90*time.Second, 30*time.Second),
		},
		{
			name: "503 with Retry-After date in the past", status: 503, header: map[string]string{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
			check: wantRetryAfter(0, 0),
		},
		{name: "429 with garbage Retry-After", status: 429, header: map[string]string{"Retry-After": "soon"}, check: wantRetryAfter(0, 0)},
		{name: "429 with huge Retry-After", status: 429, header: map[string]string{"Retry-After": "99999999999999999"}, check: wantRetryAfter(maxRetryAfter, 0)},
		{name: "429 with negative Retry-After", status: 429, header: map[string]string{"Retry-After": "-5"}, check: wantRetryAfter(0, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			header := map[string]string{"Content-Type": "application/json"}
			for k, v := range tc.header {
				header[k] = v
			}
			v := newFakeVendor(t, replyWith(tc.status, header, tc.body))
			tok, err := New().Exchange(context.Background(), Request{
				TokenURL: v.URL + "/token", GrantType: "client_credentials", ClientID: "cid", ClientSecret: testClientSecret,
			})
			if tc.want != nil {
				if err != nil {
					t.Fatalf("Exchange: %v", err)
				}
				if *tok != *tc.want {
					t.Errorf("token = %#v\nwant    %#v", tokenFields(tok), tokenFields(tc.want))
				}
				return
			}
			if err == nil {
				t.Fatalf("Exchange succeeded with %v, want an error", tok)
			}
			if tok != nil {
				t.Errorf("Exchange returned a token with an error")
			}
			checkMessage(t, err, tc.wantErr)
			if tc.check != nil {
				tc.check(t, err)
			}
		})
	}
}

// checkMessage compares an error message with want: exact, or a prefix
// when want ends in "*", or anything when want is "".
func checkMessage(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "":
	case strings.HasSuffix(want, "*"):
		if !strings.HasPrefix(err.Error(), strings.TrimSuffix(want, "*")) {
			t.Errorf("error = %q\nwant prefix %q", err, strings.TrimSuffix(want, "*"))
		}
	case err.Error() != want:
		t.Errorf("error = %q\nwant    %q", err, want)
	}
}

// wantRetryAfter checks an *Error's RetryAfter, within slack below want.
func wantRetryAfter(want, slack time.Duration) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var ve *Error
		if !errors.As(err, &ve) {
			t.Fatalf("error is %T, want *Error", err)
		}
		if ve.RetryAfter > want || ve.RetryAfter < want-slack {
			t.Errorf("RetryAfter = %s, want %s (slack %s)", ve.RetryAfter, want, slack)
		}
	}
}

// tokenFields shows a token's fields, which Token's String hides.
func tokenFields(t *Token) map[string]any {
	return map[string]any{
		"AccessToken": t.AccessToken, "TokenType": t.TokenType, "RefreshToken": t.RefreshToken,
		"Scope": t.Scope, "IDToken": t.IDToken, "ExpiresIn": t.ExpiresIn,
	}
}

// TestParseResponseDirect covers what only a direct call can: status
// lines that are missing or strange, and relative redirects without a
// request URL.
func TestParseResponseDirect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		status  int
		text    string
		header  http.Header
		body    string
		secrets []string
		wantErr string
	}{
		{name: "standard status line is not redacted", status: 400, text: "400 Bad Request", secrets: []string{"0", "Bad"}, wantErr: "token endpoint answered HTTP 400 Bad Request"},
		{name: "other status line is", status: 400, text: "400 Bad Key k3y", secrets: []string{"k3y"}, wantErr: "token endpoint answered HTTP 400 Bad Key [redacted]"},
		{name: "missing status text", status: 400, body: `{"error":"invalid_scope"}`, wantErr: "vendor error invalid_scope (HTTP 400 Bad Request)"},
		{name: "unknown status code", status: 599, body: `{"error":"x"}`, wantErr: "vendor error x (HTTP 599)"},
		{name: "status text with a control character", status: 400, text: "400 Bad\nRequest", wantErr: "token endpoint answered HTTP 400 Bad Request"},
		{name: "nil header", status: 503, wantErr: "token endpoint answered HTTP 503 Service Unavailable"},
		{
			name: "relative redirect stays a path", status: 307, header: http.Header{"Location": {"/v2/token?key=k"}},
			wantErr: "token endpoint redirected (HTTP 307 Temporary Redirect) to /v2/token; redirects are not followed: set token_url to the endpoint itself",
		},
		{
			name: "redirect without Location", status: 302,
			wantErr: "token endpoint redirected (HTTP 302 Found) without a Location; redirects are not followed: set token_url to the endpoint itself",
		},
		{name: "1xx is not a success", status: 100, body: okBody, wantErr: "token endpoint answered HTTP 100 Continue"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok, err := ParseResponse(tc.status, tc.text, tc.header, []byte(tc.body), tc.secrets...)
			if err == nil {
				t.Fatalf("ParseResponse succeeded with %v, want an error", tok)
			}
			checkMessage(t, err, tc.wantErr)
		})
	}
}

// TestTokenString checks that printing a Token, by any verb, shows no
// token.
func TestTokenString(t *testing.T) {
	t.Parallel()
	tok := &Token{AccessToken: testAccessToken, RefreshToken: testRefreshToken, IDToken: "eyJ.id.token", TokenType: "Bearer", ExpiresIn: time.Hour}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		t.Run(verb, func(t *testing.T) {
			t.Parallel()
			for _, v := range []any{tok, *tok} {
				got := fmt.Sprintf(verb, v)
				for _, s := range []string{testAccessToken, testRefreshToken, "eyJ.id.token"} {
					if strings.Contains(got, s) {
						t.Errorf("%s of %T = %q holds a token", verb, v, got)
					}
				}
			}
		})
	}
}
