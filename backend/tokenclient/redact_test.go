package tokenclient

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		s       string
		secrets []string
		want    string
	}{
		{"no secrets", "nothing to hide", nil, "nothing to hide"},
		{"empty secret ignored", "nothing to hide", []string{""}, "nothing to hide"},
		{"every occurrence", "a s3cr3t-1 b s3cr3t-1 c", []string{"s3cr3t-1"}, "a [redacted] b [redacted] c"},
		{"longest first", "token abcdefgh-ijkl here", []string{"abcdefgh", "abcdefgh-ijkl"}, "token [redacted] here"},
		{"shorter inside longer elsewhere", "abcdefgh and abcdefghijkl", []string{"abcdefgh", "abcdefghijkl"}, "[redacted] and [redacted]"},
		{"overlapping secrets hide both", "xabcdefghijx", []string{"abcdefgh", "defghij0", "cdefghij"}, "x[redacted]x"},
		{"adjacent secrets become one marker", "abcdefghijklmnop", []string{"abcdefgh", "ijklmnop"}, "[redacted]"},
		{"periodic secret", "aaaaaaaaaaaaa!", []string{"aaaaaaaa"}, "[redacted]!"},
		{"secret longer than the text", "ab", []string{"abc"}, "ab"},
		{"unicode", "clé s3cr+t/é fin", []string{"s3cr+t/é"}, "clé [redacted] fin"},
		{"redacting twice changes nothing", "x [redacted] y", []string{"act", "red", "[redacted"}, "x [redacted] y"},
		{"secret spanning a marker is still hidden", "a[redacted]b", []string{"a[redacte"}, "[redacted]d]b"},
		{"long secret inside a word", "xxs3cr3t-99yy", []string{"s3cr3t-99"}, "xx[redacted]yy"},
		// Short values (a test's one-letter secret) do not mangle words
		// that happen to contain them, and are still hidden wherever they
		// stand on their own, as a vendor echoes them.
		{"short secret inside words left alone", "x509: certificate signed by unknown authority", []string{"b"}, "x509: certificate signed by unknown authority"},
		{"short secret as a word", "signed b unknown", []string{"b"}, "signed [redacted] unknown"},
		{"short secret at the edges", "b is b", []string{"b"}, "[redacted] is [redacted]"},
		{"short secret in a form echo", "client_id=c&client_secret=ab&grant_type=x", []string{"ab"}, "client_id=c&client_secret=[redacted]&grant_type=x"},
		{"short secret in a JSON echo", `{"client_secret":"ab"}`, []string{"ab"}, `{"client_secret":"[redacted]"}`},
		{"short secret glued to a word", "grab abc ab.", []string{"ab"}, "grab abc [redacted]."},
		{"short secret of punctuation", "a-b ... c", []string{"..."}, "a-b [redacted] c"},
		{"short secret ending in punctuation", "x=ab! ab!c", []string{"ab!"}, "x=[redacted] [redacted]c"},
		{"seven bytes is short", "pre-1234567-post x1234567", []string{"1234567"}, "pre-[redacted]-post x1234567"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Redact(tc.s, tc.secrets...); got != tc.want {
				t.Errorf("Redact(%q, %q) = %q, want %q", tc.s, tc.secrets, got, tc.want)
			}
		})
	}
}

func TestSanitize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		s       string
		limit   int
		secrets []string
		want    string
	}{
		{"plain", "Refresh token expired", 300, nil, "Refresh token expired"},
		{"newlines and tabs become one space", " a\r\n\tb  c ", 300, nil, "a b c"},
		{"control characters removed", "a\x00b\x1bc\x7fd", 300, nil, "abcd"},
		{"bidi override and zero-width removed", "abc\u202edef\u200b", 300, nil, "abcdef"},
		{"invalid UTF-8 replaced", "a\xffb", 300, nil, "a\uFFFDb"},
		{"capped with an ellipsis", "abcdefghij", 5, nil, "abcd…"},
		{"cap counts characters, not bytes", "ééééééé", 5, nil, "éééé…"},
		{"redacted before capping", "0123456789" + "SECRETXY", 12, []string{"SECRETXY"}, "0123456789[…"},
		{"secret split by a control character", "x SEC\x00RET y", 300, []string{"SECRET"}, "x [redacted] y"},
		{"secret with a newline in it", "x SEC\nRET y", 300, []string{"SEC\nRET"}, "x [redacted] y"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := sanitize(tc.s, tc.limit, tc.secrets); got != tc.want {
				t.Errorf("sanitize(%q) = %q, want %q", tc.s, got, tc.want)
			}
		})
	}
}

func TestExpandSecrets(t *testing.T) {
	t.Parallel()
	got := expandSecrets([]string{"s3cr+t/é", "", `q"uote`, "<a&b>"})
	for _, want := range []string{
		"s3cr+t/é", "s3cr%2Bt%2F%C3%A9", "s3cr+t%2F%C3%A9", "s3cr+t/%C3%A9",
		`q"uote`, `q\"uote`, "q%22uote",
		"<a&b>", `\u003ca\u0026b\u003e`, "%3Ca%26b%3E",
	} {
		found := false
		for _, g := range got {
			found = found || g == want
		}
		if !found {
			t.Errorf("expandSecrets lacks %q: %q", want, got)
		}
	}
	for _, g := range got {
		if g == "" {
			t.Error("expandSecrets kept an empty secret")
		}
	}
}

// TestErrorMessages checks the exact wording of each error type, which
// operators read in Vault's responses and logs.
func TestErrorMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"code and description", &Error{StatusCode: 400, Status: "400 Bad Request", Code: "invalid_grant", Description: "expired"}, "vendor error invalid_grant: expired (HTTP 400 Bad Request)"},
		{"code only", &Error{StatusCode: 401, Status: "401 Unauthorized", Code: "invalid_client"}, "vendor error invalid_client (HTTP 401 Unauthorized)"},
		{"no code", &Error{StatusCode: 503, Status: "503 Service Unavailable"}, "token endpoint answered HTTP 503 Service Unavailable"},
		{"no code, a message", &Error{StatusCode: 401, Status: "401 Unauthorized", Description: "Forbidden"}, "token endpoint answered HTTP 401 Unauthorized: Forbidden"},
		{"no status text", &Error{StatusCode: 502}, "token endpoint answered HTTP 502 Bad Gateway"},
		{"2xx without a code", &Error{StatusCode: 200, Status: "200 OK", Description: "revoked"}, "token endpoint answered HTTP 200 OK with an error: revoked"},
		{
			"redirect", &Error{StatusCode: 302, Status: "302 Found", Location: "https://other.example/path"},
			"token endpoint redirected (HTTP 302 Found) to https://other.example/path; redirects are not followed: set token_url to the endpoint itself",
		},
		{"response", &ResponseError{Reason: "missing access_token"}, "token endpoint answered with an unusable token response: missing access_token"},
		{"transport made elsewhere, timeout", &TransportError{Sent: true, Timeout: true}, "no answer from the token endpoint (timeout)"},
		{"transport made elsewhere, error", &TransportError{Err: errors.New("dial tcp: refused")}, "cannot reach the token endpoint: dial tcp: refused"},
		{"transport made elsewhere, sent", &TransportError{Sent: true, Err: errors.New("EOF")}, "lost the connection to the token endpoint after sending the request (outcome unknown): EOF"},
		{
			"transport made here",
			newTransportError(errors.New("dial tcp 10.0.0.1:443: connect: refused"), "https://host/path", false, false, 30*time.Second, nil),
			"cannot reach token endpoint https://host/path: dial tcp 10.0.0.1:443: connect: refused",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q\nwant      %q", got, tc.want)
			}
			if strings.ContainsAny(tc.err.Error(), "\n\r") {
				t.Error("message spans lines")
			}
		})
	}
}
