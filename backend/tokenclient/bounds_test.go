package tokenclient

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// A token endpoint could answer fields up to the body limit (1 MiB), each
// then cached and stored; token_type and scope went out with control and
// formatting characters. Each field now has a bound, a token with a
// control character is refused, token_type and scope are cleaned, and a
// refresh token in a refused answer is still kept when it is one.
func TestTokenResponseBounds(t *testing.T) {
	t.Parallel()
	big := func(n int) string { return strings.Repeat("a", n) }
	json := func(kv string) []byte { return []byte(`{` + kv + `}`) }
	for _, tc := range []struct {
		name string
		body []byte
		// wantErr is part of the reason; "" for a token.
		wantErr string
		// keptRT is the refresh token a refused answer keeps.
		keptRT    string
		tokenType string
		scope     string
	}{
		{name: "at every bound", body: json(`"access_token":"` + big(MaxTokenBytes) + `","refresh_token":"` + big(MaxTokenBytes) + `","id_token":"` + big(MaxTokenBytes) + `","token_type":"` + big(MaxTokenTypeBytes) + `","scope":"` + big(MaxScopeBytes) + `"`),
			tokenType: big(MaxTokenTypeBytes), scope: big(MaxScopeBytes)},
		{name: "access_token over its bound", body: json(`"access_token":"` + big(MaxTokenBytes+1) + `","refresh_token":"rt-new"`), wantErr: "access_token is longer than 32 KiB", keptRT: "rt-new"},
		{name: "refresh_token over its bound", body: json(`"access_token":"a","refresh_token":"` + big(MaxTokenBytes+1) + `"`), wantErr: "refresh_token is longer than 32 KiB"},
		{name: "id_token over its bound", body: json(`"access_token":"a","id_token":"` + big(MaxTokenBytes+1) + `","refresh_token":"rt-new"`), wantErr: "id_token is longer than 32 KiB", keptRT: "rt-new"},
		{name: "token_type over its bound", body: json(`"access_token":"a","token_type":"` + big(MaxTokenTypeBytes+1) + `"`), wantErr: "token_type is longer than 128 bytes"},
		{name: "scope over its bound", body: json(`"access_token":"a","scope":"` + big(MaxScopeBytes+1) + `"`), wantErr: "scope is longer than 8 KiB"},
		{name: "scope list over its bound", body: json(`"access_token":"a","scope":["` + big(MaxScopeBytes/2) + `","` + big(MaxScopeBytes/2) + `"]`), wantErr: "scope is longer than 8 KiB"},
		{name: "a line break in the access token", body: json(`"access_token":"a\r\nX-Injected: 1","refresh_token":"rt-new"`), wantErr: "access_token holds control characters", keptRT: "rt-new"},
		{name: "a NUL in the refresh token", body: json(`"access_token":"a","refresh_token":"rt\u0000x"`), wantErr: "refresh_token holds control characters"},
		{name: "token_type and scope cleaned", body: json(`"access_token":"a","token_type":"Bearer\r\nX: y","scope":"read\u202ewrite\u0007 admin\n\tx"`),
			tokenType: "Bearer X: y", scope: "readwrite admin x"},
		{name: "a token_type of controls alone is Bearer", body: json(`"access_token":"a","token_type":"\u0000\u200b"`), tokenType: "Bearer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tok, err := ParseResponse(http.StatusOK, "200 OK", http.Header{"Content-Type": {"application/json"}}, tc.body)
			if tc.wantErr != "" {
				var re *ResponseError
				if !errors.As(err, &re) || !strings.Contains(re.Reason, tc.wantErr) {
					t.Fatalf("want a ResponseError with %q, got %v", tc.wantErr, err)
				}
				if re.IssuedRefreshToken != tc.keptRT {
					t.Errorf("kept refresh token %q, want %q", re.IssuedRefreshToken, tc.keptRT)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok.TokenType != tc.tokenType || tok.Scope != tc.scope {
				t.Errorf("token_type %q scope %q, want %q %q", tok.TokenType, tok.Scope, tc.tokenType, tc.scope)
			}
		})
	}
}
