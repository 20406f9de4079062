package tokenclient

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// fuzzSecret is passed to ParseResponse as a secret. It holds characters
// that URL and JSON escaping change, and none (such as a space) that our
// own message templates could supply, so that finding it in a message can
// only mean a leak.
const fuzzSecret = "Zq9-s3cr+t/é\"x7"

// placeSecret replaces placeholders in a fuzzed input by the secret, so
// that the fuzzer can place it anywhere without having to guess it: $S as
// it is, $J JSON-escaped (to sit inside a JSON string), $U URL-escaped.
var placeSecret = strings.NewReplacer(
	"$S", fuzzSecret,
	"$J", `Zq9-s3cr+t\/\u00e9\"x7`,
	"$U", url.QueryEscape(fuzzSecret),
).Replace

// FuzzParseResponse checks that no answer makes ParseResponse panic, that
// a success is always a usable token, and that no error message holds the
// secret it was given.
func FuzzParseResponse(f *testing.F) {
	seeds := []struct {
		status      int
		statusText  string
		contentType string
		retryAfter  string
		location    string
		body        string
	}{
		{200, "200 OK", "application/json", "", "", okBody},
		{200, "200 OK", "application/json", "", "", `{"access_token":"a","expires_in":3599.0}`},
		{200, "200 OK", "application/json", "", "", `{"access_token":"a","expires_in":3599.5,"token_type":"BEARER"}`},
		{200, "200 OK", "application/json", "", "", `{"access_token":"a","expires_in":" 3599 "}`},
		{200, "200 OK", "application/json", "", "", `{"access_token":"a","expires_in":"1e20"}`},
		{200, "200 OK", "application/json", "", "", `{"access_token":"a","expires_in":"$J"}`},
		{200, "200 OK", "application/json", "", "", `{"access_token":"a","expires_in":null,"scope":["a","b"]}`},
		{200, "200 OK", "application/x-www-form-urlencoded", "", "", "access_token=gho_x&scope=repo%2Cgist&token_type=bearer"},
		{200, "200 OK", "text/plain", "", "", "error=bad_verification_code&error_description=echo+$U"},
		{200, "200 OK", "application/json", "", "", `{"error":"invalid_grant","error_description":"$J"}`},
		{400, "400 Bad Request", "application/json", "", "", `{"error":"invalid_grant","error_description":"token $J expired","error_uri":"https://x/$J"}`},
		{401, "401 Unauthorized", "application/json", "", "", `{"message":"$J"}`},
		{400, "400 Bad Request", "application/json", "", "", `{"error":{"code":"$J","message":"$J"}}`},
		{429, "429 Too Many Requests", "application/json", "120", "", `{"error":"slow_down"}`},
		{503, "503 Service Unavailable", "text/html", "Wed, 21 Oct 2015 07:28:00 GMT", "", "<html>$S</html>"},
		{302, "302 Found", "text/html", "", "https://other.example/$S?k=$S", ""},
		{200, "200 $S", "text/$S", "", "", "$S"},
		{200, "200 OK", "application/json", "", "", `["$J"]`},
		{200, "200 OK", "application/json", "", "", `{"access_token":"$J" "x"}`},
		{200, "200 OK", "application/json", "", "", "\xef\xbb\xbf{\"access_token\":\"a\"}"},
		{200, "200 OK", "application/json", "", "", `{"access_token":"$J"}`},
		{400, "400 Bad Request", "application/x-www-form-urlencoded", "", "", "error=$U&error_description=$U"},
	}
	for _, s := range seeds {
		f.Add(s.status, s.statusText, s.contentType, s.retryAfter, s.location, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, statusText, contentType, retryAfter, location string, body []byte) {
		put := placeSecret
		header := http.Header{}
		header.Set("Content-Type", put(contentType))
		header.Set("Retry-After", put(retryAfter))
		header.Set("Location", put(location))
		body = []byte(put(string(body)))

		tok, err := ParseResponse(status, put(statusText), header, body, fuzzSecret)
		if err != nil {
			if tok != nil {
				t.Errorf("ParseResponse returned a token and an error")
			}
			var (
				ve *Error
				re *ResponseError
			)
			if !errors.As(err, &ve) && !errors.As(err, &re) {
				t.Errorf("error is %T, want *Error or *ResponseError", err)
			}
			if strings.Contains(err.Error(), fuzzSecret) {
				t.Errorf("error message holds the secret: %q", err)
			}
			if ve != nil && (ve.RetryAfter < 0 || ve.RetryAfter > maxRetryAfter) {
				t.Errorf("RetryAfter = %s", ve.RetryAfter)
			}
			return
		}
		if status < 200 || status > 299 {
			t.Errorf("status %d gave a token", status)
		}
		if tok.AccessToken == "" {
			t.Error("token with an empty AccessToken")
		}
		if tok.ExpiresIn < 0 || tok.ExpiresIn > maxExpiresIn {
			t.Errorf("ExpiresIn = %s", tok.ExpiresIn)
		}
		if tok.TokenType == "" {
			t.Error("token with an empty TokenType")
		}
	})
}
