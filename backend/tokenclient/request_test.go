package tokenclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// TestExchangeRequest checks every request shape as a strict vendor would:
// the exact query, headers, Basic credentials and body parameters, and
// nothing else.
func TestExchangeRequest(t *testing.T) {
	t.Parallel()
	refresh := map[string]string{"refresh_token": testRefreshToken}
	tests := []struct {
		name string
		// path is appended to the fake vendor's URL to make TokenURL.
		path string
		req  Request
		// wantQuery is the exact raw query string.
		wantQuery string
		// wantBasic is the decoded Basic credential; "" means no
		// Authorization header at all.
		wantBasic       string
		wantContentType string
		wantBody        map[string]string
		// wantHeaders must be present with these exact values.
		wantHeaders map[string]string
		// wantHost is the Host the vendor saw; "" means the URL's.
		wantHost string
	}{
		{
			name: "basic rfc6749 form-encodes id and secret before base64",
			path: "/token",
			req: Request{
				GrantType: "refresh_token", ClientID: testClientID, ClientSecret: testClientSecret,
				AuthStyle: AuthBasic, BasicEncoding: EncodingRFC6749, BodyFormat: FormatForm, Params: refresh,
			},
			wantBasic:       "id%3Awith+space:s3cr%2Bt%2F%C3%A9",
			wantContentType: "application/x-www-form-urlencoded",
			wantBody:        map[string]string{"grant_type": "refresh_token", "refresh_token": testRefreshToken},
		},
		{
			name: "basic raw sends id and secret as they are",
			path: "/token",
			req: Request{
				GrantType: "refresh_token", ClientID: testClientID, ClientSecret: testClientSecret,
				AuthStyle: AuthBasic, BasicEncoding: EncodingRaw, Params: refresh,
			},
			wantBasic:       "id:with space:s3cr+t/é",
			wantContentType: "application/x-www-form-urlencoded",
			wantBody:        map[string]string{"grant_type": "refresh_token", "refresh_token": testRefreshToken},
		},
		{
			name: "empty style, encoding and format mean basic, rfc6749 and form",
			path: "/token",
			req: Request{
				GrantType: "client_credentials", ClientID: testClientID, ClientSecret: testClientSecret,
			},
			wantBasic:       "id%3Awith+space:s3cr%2Bt%2F%C3%A9",
			wantContentType: "application/x-www-form-urlencoded",
			wantBody:        map[string]string{"grant_type": "client_credentials"},
		},
		{
			name: "basic public client sends an empty secret",
			path: "/token",
			req: Request{
				GrantType: "refresh_token", ClientID: "cid", AuthStyle: AuthBasic, Params: refresh,
			},
			wantBasic:       "cid:",
			wantContentType: "application/x-www-form-urlencoded",
			wantBody:        map[string]string{"grant_type": "refresh_token", "refresh_token": testRefreshToken},
		},
		{
			name: "body form puts client_id and client_secret in the body",
			path: "/oauth/token",
			req: Request{
				GrantType: "refresh_token", ClientID: testClientID, ClientSecret: testClientSecret,
				AuthStyle: AuthBody, BodyFormat: FormatForm, Params: refresh,
			},
			wantContentType: "application/x-www-form-urlencoded",
			wantBody: map[string]string{
				"grant_type": "refresh_token", "refresh_token": testRefreshToken,
				"client_id": testClientID, "client_secret": testClientSecret,
			},
		},
		{
			name: "body json sends an object of strings",
			path: "/token",
			req: Request{
				GrantType: "refresh_token", ClientID: testClientID, ClientSecret: testClientSecret,
				AuthStyle: AuthBody, BodyFormat: FormatJSON, Params: refresh, Scopes: []string{"a", "b<c>"},
			},
			wantContentType: "application/json",
			wantBody: map[string]string{
				"grant_type": "refresh_token", "refresh_token": testRefreshToken, "scope": "a b<c>",
				"client_id": testClientID, "client_secret": testClientSecret,
			},
		},
		{
			name: "body public client sends no client_secret",
			path: "/token",
			req: Request{
				GrantType: "refresh_token", ClientID: "cid", AuthStyle: AuthBody, Params: refresh,
			},
			wantContentType: "application/x-www-form-urlencoded",
			wantBody:        map[string]string{"grant_type": "refresh_token", "refresh_token": testRefreshToken, "client_id": "cid"},
		},
		{
			name: "json public client with no params",
			path: "/token",
			req: Request{
				GrantType: "client_credentials", ClientID: "cid", AuthStyle: AuthBody, BodyFormat: FormatJSON,
			},
			wantContentType: "application/json",
			wantBody:        map[string]string{"grant_type": "client_credentials", "client_id": "cid"},
		},
		{
			name: "grant type in query and not in body",
			path: "/token",
			req: Request{
				GrantType: "client_credentials", ClientID: "cid", ClientSecret: "cs", GrantTypeInQuery: true,
			},
			wantQuery:       "grant_type=client_credentials",
			wantBasic:       "cid:cs",
			wantContentType: "application/x-www-form-urlencoded",
			wantBody:        map[string]string{},
		},
		{
			name: "grant type in query keeps the URL's own query as it is",
			path: "/token?tenant=a%20b&x=1",
			req: Request{
				GrantType: "refresh_token", ClientID: "cid", ClientSecret: "cs", GrantTypeInQuery: true,
				AuthStyle: AuthBody, BodyFormat: FormatJSON, Params: refresh,
			},
			wantQuery:       "tenant=a%20b&x=1&grant_type=refresh_token",
			wantContentType: "application/json",
			wantBody:        map[string]string{"refresh_token": testRefreshToken, "client_id": "cid", "client_secret": "cs"},
		},
		{
			name: "grant type already in the URL is not repeated",
			path: "/token?grant_type=client_credentials",
			req: Request{
				GrantType: "client_credentials", ClientID: "cid", ClientSecret: "cs", GrantTypeInQuery: true,
			},
			wantQuery:       "grant_type=client_credentials",
			wantBasic:       "cid:cs",
			wantContentType: "application/x-www-form-urlencoded",
			wantBody:        map[string]string{},
		},
		{
			name: "a URL query stays in the URL when grant type is in the body",
			path: "/token?api-version=2",
			req: Request{
				GrantType: "client_credentials", ClientID: "cid", ClientSecret: "cs",
			},
			wantQuery:       "api-version=2",
			wantBasic:       "cid:cs",
			wantContentType: "application/x-www-form-urlencoded",
			wantBody:        map[string]string{"grant_type": "client_credentials"},
		},
		{
			name: "scopes are joined with single spaces",
			path: "/token",
			req: Request{
				GrantType: "client_credentials", ClientID: "cid", ClientSecret: "cs",
				Scopes: []string{"read:user", "", "  ", "repo"},
			},
			wantBasic:       "cid:cs",
			wantContentType: "application/x-www-form-urlencoded",
			wantBody:        map[string]string{"grant_type": "client_credentials", "scope": "read:user repo"},
		},
		{
			name: "extra params are sent but cannot override the request's own",
			path: "/token",
			req: Request{
				GrantType: "refresh_token", ClientID: "cid", ClientSecret: "cs", Scopes: []string{"s"},
				Params: refresh,
				ExtraParams: map[string]string{
					"audience": "https://api.example", "resource": "r",
					"grant_type": "password", "client_id": "evil", "client_secret": "evil",
					"scope": "admin", "refresh_token": "evil", "": "empty",
				},
			},
			wantBasic:       "cid:cs",
			wantContentType: "application/x-www-form-urlencoded",
			wantBody: map[string]string{
				"grant_type": "refresh_token", "refresh_token": testRefreshToken, "scope": "s",
				"audience": "https://api.example", "resource": "r",
			},
		},
		{
			name: "extra params cannot put grant_type in the body when it is in the query",
			path: "/token",
			req: Request{
				GrantType: "client_credentials", ClientID: "cid", ClientSecret: "cs", GrantTypeInQuery: true,
				AuthStyle: AuthBody, ExtraParams: map[string]string{"grant_type": "password", "client_id": "evil"},
			},
			wantQuery:       "grant_type=client_credentials",
			wantContentType: "application/x-www-form-urlencoded",
			wantBody:        map[string]string{"client_id": "cid", "client_secret": "cs"},
		},
		{
			name: "extra headers are sent",
			path: "/token",
			req: Request{
				GrantType: "client_credentials", ClientID: "cid", ClientSecret: "cs",
				Headers: map[string]string{"x-api-key": testAPIKey, "X-Tenant": "t1"},
			},
			wantBasic:       "cid:cs",
			wantContentType: "application/x-www-form-urlencoded",
			wantBody:        map[string]string{"grant_type": "client_credentials"},
			wantHeaders:     map[string]string{"X-Api-Key": testAPIKey, "X-Tenant": "t1"},
		},
		{
			name: "extra Host header replaces the URL's host",
			path: "/token",
			req: Request{
				GrantType: "client_credentials", ClientID: "cid", ClientSecret: "cs",
				Headers: map[string]string{"host": "login.vendor.example"},
			},
			wantBasic:       "cid:cs",
			wantContentType: "application/x-www-form-urlencoded",
			wantBody:        map[string]string{"grant_type": "client_credentials"},
			wantHost:        "login.vendor.example",
		},
		{
			name: "extra Authorization header with body auth",
			path: "/token",
			req: Request{
				GrantType: "client_credentials", ClientID: "cid", ClientSecret: "cs", AuthStyle: AuthBody,
				Headers: map[string]string{"Authorization": "Bearer " + testAPIKey},
			},
			wantContentType: "application/x-www-form-urlencoded",
			wantBody:        map[string]string{"grant_type": "client_credentials", "client_id": "cid", "client_secret": "cs"},
			wantHeaders:     map[string]string{"Authorization": "Bearer " + testAPIKey},
		},
		{
			name: "authorization code with PKCE",
			path: "/token",
			req: Request{
				GrantType: "authorization_code", ClientID: "cid", AuthStyle: AuthBody,
				Params: map[string]string{"code": "c0de", "redirect_uri": "https://app.example/cb?x=1&y=2", "code_verifier": "v3r"},
			},
			wantContentType: "application/x-www-form-urlencoded",
			wantBody: map[string]string{
				"grant_type": "authorization_code", "client_id": "cid",
				"code": "c0de", "redirect_uri": "https://app.example/cb?x=1&y=2", "code_verifier": "v3r",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := newFakeVendor(t, replyJSON(http.StatusOK, okBody))
			r := tc.req
			r.TokenURL = v.URL + tc.path
			c := New(WithUserAgent("vendoroauth-test/1.0"))
			tok, err := c.Exchange(context.Background(), r)
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if tok.AccessToken != testAccessToken {
				t.Errorf("AccessToken = %q, want %q", tok.AccessToken, testAccessToken)
			}
			reqs := v.requests()
			if len(reqs) != 1 {
				t.Fatalf("vendor got %d requests, want 1", len(reqs))
			}
			got := reqs[0]
			wantPath := strings.SplitN(tc.path, "?", 2)[0]
			if got.Method != http.MethodPost || got.Path != wantPath {
				t.Errorf("request line = %s %s, want POST %s", got.Method, got.Path, wantPath)
			}
			if got.RawQuery != tc.wantQuery {
				t.Errorf("query = %q, want %q", got.RawQuery, tc.wantQuery)
			}
			if ct := got.Header.Get("Content-Type"); ct != tc.wantContentType {
				t.Errorf("Content-Type = %q, want %q", ct, tc.wantContentType)
			}
			if a := got.Header.Get("Accept"); a != "application/json" {
				t.Errorf("Accept = %q, want application/json", a)
			}
			if ua := got.Header.Get("User-Agent"); ua != "vendoroauth-test/1.0" {
				t.Errorf("User-Agent = %q", ua)
			}
			wantHost := tc.wantHost
			if wantHost == "" {
				wantHost = strings.TrimPrefix(v.URL, "http://")
			}
			if got.Host != wantHost {
				t.Errorf("Host = %q, want %q", got.Host, wantHost)
			}
			checkBasic(t, got.Header, tc.wantBasic, tc.wantHeaders["Authorization"])
			for k, want := range tc.wantHeaders {
				if g := got.Header.Values(k); len(g) != 1 || g[0] != want {
					t.Errorf("header %s = %q, want [%q]", k, g, want)
				}
			}
			body := decodeRequestBody(t, tc.wantContentType, got.Body)
			if !reflect.DeepEqual(body, tc.wantBody) {
				t.Errorf("body params = %v, want %v", body, tc.wantBody)
			}
		})
	}
}

// checkBasic checks the Authorization header: the decoded Basic credential
// wantBasic, or exactly other (possibly none) when wantBasic is "".
func checkBasic(t *testing.T, h http.Header, wantBasic, other string) {
	t.Helper()
	auth := h.Values("Authorization")
	if wantBasic == "" {
		if other == "" && len(auth) != 0 {
			t.Errorf("Authorization header sent with body auth: %d values", len(auth))
		}
		return
	}
	if len(auth) != 1 || !strings.HasPrefix(auth[0], "Basic ") {
		t.Fatalf("Authorization header is not one Basic credential (%d values)", len(auth))
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(auth[0], "Basic "))
	if err != nil {
		t.Fatalf("Basic credential is not base64: %v", err)
	}
	if string(raw) != wantBasic {
		t.Errorf("Basic credential = %q, want %q", raw, wantBasic)
	}
}

// decodeRequestBody reads the body as the vendor would, strictly: a JSON
// body must be an object of strings, a form body must not repeat a key.
func decodeRequestBody(t *testing.T, contentType string, body []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch contentType {
	case "application/json":
		var fields map[string]any
		if err := json.Unmarshal(body, &fields); err != nil {
			t.Fatalf("JSON body does not decode: %v", err)
		}
		for k, v := range fields {
			s, ok := v.(string)
			if !ok {
				t.Errorf("JSON body field %s is %T, want string", k, v)
			}
			out[k] = s
		}
	default:
		values, err := url.ParseQuery(string(body))
		if err != nil {
			t.Fatalf("form body does not parse: %v", err)
		}
		for k, v := range values {
			if len(v) != 1 {
				t.Errorf("form body repeats %s %d times", k, len(v))
			}
			out[k] = v[0]
		}
	}
	return out
}

// TestExchangeDefaultUserAgent checks that a client without WithUserAgent
// still names itself.
func TestExchangeDefaultUserAgent(t *testing.T) {
	t.Parallel()
	v := newFakeVendor(t, replyJSON(http.StatusOK, okBody))
	_, err := New().Exchange(context.Background(), Request{TokenURL: v.URL, GrantType: "client_credentials", ClientID: "cid"})
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if ua := v.requests()[0].Header.Get("User-Agent"); ua != defaultUserAgent {
		t.Errorf("User-Agent = %q, want %q", ua, defaultUserAgent)
	}
}

// TestExchangeBadRequest checks that a Request that cannot be sent fails
// before anything is sent, with a plain error that names what to fix and
// holds no secret.
func TestExchangeBadRequest(t *testing.T) {
	t.Parallel()
	v := newFakeVendor(t, replyJSON(http.StatusOK, okBody))
	good := Request{
		TokenURL: v.URL + "/token", GrantType: "refresh_token", ClientID: "cid", ClientSecret: testClientSecret,
		Params: map[string]string{"refresh_token": testRefreshToken},
	}
	tests := []struct {
		name   string
		change func(*Request)
		want   string
	}{
		{"empty token URL", func(r *Request) { r.TokenURL = "" }, "no token URL"},
		{"unparsable token URL", func(r *Request) { r.TokenURL = "https://host:bad/?key=" + testAPIKey }, "not a valid URL"},
		{"relative token URL", func(r *Request) { r.TokenURL = "/token" }, "not an absolute http or https URL"},
		{"ftp token URL", func(r *Request) { r.TokenURL = "ftp://host/token" }, "not an absolute http or https URL"},
		{"user info in token URL", func(r *Request) { r.TokenURL = "https://cid:" + testAPIKey + "@host/token" }, "carries user info"},
		{"unknown auth style", func(r *Request) { r.AuthStyle = "header" }, `unknown auth style "header"`},
		{"unknown basic encoding", func(r *Request) { r.BasicEncoding = "utf8" }, `unknown basic encoding "utf8"`},
		{"unknown body format", func(r *Request) { r.BodyFormat = "xml" }, `unknown body format "xml"`},
		{"no grant type", func(r *Request) { r.GrantType = "" }, "no grant type"},
		{"params set grant_type", func(r *Request) { r.Params = map[string]string{"grant_type": "password"} }, `cannot set "grant_type"`},
		{"params set client_secret", func(r *Request) { r.Params = map[string]string{"client_secret": testAPIKey} }, `cannot set "client_secret"`},
		{"params with empty name", func(r *Request) { r.Params = map[string]string{"": testAPIKey} }, "empty name"},
		{"invalid header name", func(r *Request) { r.Headers = map[string]string{"x api key": testAPIKey} }, "not a valid HTTP header name"},
		{"header value with newline", func(r *Request) { r.Headers = map[string]string{"X-Api-Key": testAPIKey + "\r\nX-Evil: 1"} }, `"X-Api-Key" has a value with control characters`},
		{"authorization header with basic auth", func(r *Request) { r.Headers = map[string]string{"authorization": "Bearer " + testAPIKey} }, "would replace the Basic client authentication"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := good
			r.Params = maps.Clone(good.Params)
			tc.change(&r)
			_, err := New().Exchange(context.Background(), r)
			if err == nil {
				t.Fatal("Exchange succeeded, want an error")
			}
			var (
				ve *Error
				re *ResponseError
				te *TransportError
			)
			if errors.As(err, &ve) || errors.As(err, &re) || errors.As(err, &te) {
				t.Errorf("error is %T, want a plain error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			for _, s := range []string{testClientSecret, testRefreshToken, testAPIKey} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q holds a secret", err)
				}
			}
		})
	}
	// Parallel subtests run after this function returns; Cleanup runs
	// after they all finish.
	t.Cleanup(func() {
		if n := len(v.requests()); n != 0 {
			t.Errorf("vendor got %d requests from bad Requests, want 0", n)
		}
	})
}

// TestRequestSecrets checks that Secrets lists every secret once, in a
// stable order, and nothing that is not secret.
func TestRequestSecrets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  Request
		want []string
	}{
		{"none", Request{ClientID: "cid", ExtraParams: map[string]string{"audience": "a"}}, nil},
		{
			"all kinds, sorted by key, deduplicated",
			Request{
				ClientID: "cid", ClientSecret: "cs",
				Params:      map[string]string{"refresh_token": "rt", "code": "c", "empty": ""},
				Headers:     map[string]string{"X-B": "hb", "X-A": "ha", "X-Dup": "cs"},
				ExtraParams: map[string]string{"audience": "not secret"},
			},
			[]string{"cs", "c", "rt", "ha", "hb"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.req.Secrets(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Secrets() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRequestString checks that printing a Request, by any verb, shows no
// secret.
func TestRequestString(t *testing.T) {
	t.Parallel()
	r := Request{
		TokenURL: "https://vendor.example/token?key=" + testAPIKey, GrantType: "refresh_token", ClientID: "cid",
		ClientSecret: testClientSecret, Params: map[string]string{"refresh_token": testRefreshToken},
		Headers: map[string]string{"X-Api-Key": testAPIKey},
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		t.Run(verb, func(t *testing.T) {
			t.Parallel()
			got := fmt.Sprintf(verb, r)
			for _, s := range []string{testClientSecret, testRefreshToken, testAPIKey} {
				if strings.Contains(got, s) {
					t.Errorf("%s of a Request = %q holds a secret", verb, got)
				}
			}
			if !strings.Contains(got, "https://vendor.example/token") || !strings.Contains(got, "refresh_token") {
				t.Errorf("%s of a Request = %q lacks the endpoint or param names", verb, got)
			}
		})
	}
}
