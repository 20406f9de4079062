package tokenclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestWellKnownURLs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		issuer  string
		want    []string
		wantErr string
	}{
		{issuer: "https://idp.example", want: []string{"https://idp.example/.well-known/oauth-authorization-server", "https://idp.example/.well-known/openid-configuration"}},
		{issuer: "https://idp.example/", want: []string{"https://idp.example/.well-known/oauth-authorization-server", "https://idp.example/.well-known/openid-configuration"}},
		// RFC 8414 section 3.1's example: the suffix goes between host and path.
		{issuer: "https://example.com/issuer1", want: []string{"https://example.com/.well-known/oauth-authorization-server/issuer1", "https://example.com/issuer1/.well-known/openid-configuration"}},
		{issuer: "https://dev-1.okta.com/oauth2/default", want: []string{"https://dev-1.okta.com/.well-known/oauth-authorization-server/oauth2/default", "https://dev-1.okta.com/oauth2/default/.well-known/openid-configuration"}},
		{issuer: "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0", want: []string{
			"https://login.microsoftonline.com/.well-known/oauth-authorization-server/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
			"https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0/.well-known/openid-configuration"}},
		{issuer: "https://idp.example:8443/a%20b", want: []string{"https://idp.example:8443/.well-known/oauth-authorization-server/a%20b", "https://idp.example:8443/a%20b/.well-known/openid-configuration"}},
		{issuer: "http://127.0.0.1:8080/t", want: []string{"http://127.0.0.1:8080/.well-known/oauth-authorization-server/t", "http://127.0.0.1:8080/t/.well-known/openid-configuration"}},
		{issuer: "http://idp.example", wantErr: "must use https"},
		{issuer: "https://idp.example/?tenant=a", wantErr: "must not have a query"},
		{issuer: "https://idp.example/#x", wantErr: "#fragment"},
		{issuer: "https://user:pw@idp.example", wantErr: "user info"},
		{issuer: "idp.example", wantErr: "not an absolute URL"},
		{issuer: "", wantErr: "not an absolute URL"},
	}
	for _, tc := range tests {
		t.Run(tc.issuer, func(t *testing.T) {
			t.Parallel()
			got, err := WellKnownURLs(tc.issuer)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, %v\nwant %v", got, err, tc.want)
			}
		})
	}
}

// metadataFor is a minimal valid document for issuer.
func metadataFor(issuer string, extra map[string]any) string {
	m := map[string]any{"issuer": issuer, "token_endpoint": issuer + "/token"}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func TestParseMetadata(t *testing.T) {
	t.Parallel()
	const iss = "https://idp.example/tenant"
	full := metadataFor(iss, map[string]any{
		"authorization_endpoint":                           iss + "/authorize",
		"revocation_endpoint":                              iss + "/revoke",
		"device_authorization_endpoint":                    iss + "/device",
		"jwks_uri":                                         iss + "/jwks",
		"token_endpoint_auth_methods_supported":            []string{"private_key_jwt", "client_secret_basic"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS256", "ES256"},
		"code_challenge_methods_supported":                 []string{"S256"},
		"grant_types_supported":                            []string{"client_credentials", "urn:ietf:params:oauth:grant-type:device_code"},
		"mtls_endpoint_aliases":                            map[string]any{"token_endpoint": "https://mtls.idp.example/token", "unknown": 1},
		"tls_client_certificate_bound_access_tokens":       true,
		"userinfo_endpoint":                                "http://not-checked.example/",
		"some_extension":                                   map[string]any{"x": []int{1}},
	})
	tests := []struct {
		name      string
		body      string
		issuer    string
		check     func(t *testing.T, m *Metadata)
		wantErr   string
		mismatch  bool
		wantClass Failure
	}{
		{
			name: "everything", body: full, issuer: iss,
			check: func(t *testing.T, m *Metadata) {
				want := &Metadata{
					Issuer: iss, AuthorizationEndpoint: iss + "/authorize", TokenEndpoint: iss + "/token", RevocationEndpoint: iss + "/revoke",
					DeviceAuthorizationEndpoint: iss + "/device", JWKSURI: iss + "/jwks",
					TokenEndpointAuthMethodsSupported:          []string{"private_key_jwt", "client_secret_basic"},
					TokenEndpointAuthSigningAlgValuesSupported: []string{"RS256", "ES256"},
					CodeChallengeMethodsSupported:              []string{"S256"},
					GrantTypesSupported:                        []string{"client_credentials", "urn:ietf:params:oauth:grant-type:device_code"},
					MTLSEndpointAliases:                        map[string]string{"token_endpoint": "https://mtls.idp.example/token"},
					TLSClientCertificateBoundAccessTokens:      true,
				}
				if !reflect.DeepEqual(m, want) {
					t.Errorf("got  %+v\nwant %+v", m, want)
				}
				if !m.SupportsAuthMethod("private_key_jwt") || m.SupportsAuthMethod("client_secret_post") || !m.SupportsPKCE("S256") {
					t.Error("Supports*")
				}
				if m.Endpoint("token_endpoint", true) != "https://mtls.idp.example/token" || m.Endpoint("token_endpoint", false) != iss+"/token" ||
					m.Endpoint("revocation_endpoint", true) != iss+"/revoke" {
					t.Error("Endpoint")
				}
			},
		},
		{
			name: "minimal; the default auth method is client_secret_basic", body: metadataFor(iss, nil), issuer: iss,
			check: func(t *testing.T, m *Metadata) {
				if !m.SupportsAuthMethod("client_secret_basic") || m.SupportsAuthMethod("private_key_jwt") {
					t.Error("default auth method")
				}
			},
		},
		{name: "no issuer check when none is given", body: metadataFor(iss, nil), check: func(*testing.T, *Metadata) {}},
		{name: "null optional members", body: `{"issuer":"` + iss + `","token_endpoint":"` + iss + `/t","jwks_uri":null,"scopes_supported":null}`, issuer: iss, check: func(*testing.T, *Metadata) {}},
		{name: "a byte order mark", body: "\xef\xbb\xbf" + metadataFor(iss, nil), issuer: iss, check: func(*testing.T, *Metadata) {}},
		{name: "mismatched issuer", body: metadataFor("https://evil.example/tenant", nil), issuer: iss, mismatch: true, wantErr: `its issuer "https://evil.example/tenant" is not "https://idp.example/tenant"`, wantClass: FailureMetadata},
		{name: "issuer differing by a trailing slash", body: metadataFor(iss+"/", nil), issuer: iss, mismatch: true, wantErr: "is not"},
		{name: "issuer differing in case", body: metadataFor("https://IDP.example/tenant", nil), issuer: iss, mismatch: true, wantErr: "is not"},
		{name: "no issuer", body: `{"token_endpoint":"https://x/t"}`, issuer: iss, wantErr: "has no issuer"},
		{name: "numeric issuer", body: `{"issuer":1}`, issuer: iss, wantErr: "issuer is not a string"},
		{name: "an http issuer", body: metadataFor("http://idp.example", nil), wantErr: "must use https"},
		{name: "no token endpoint", body: `{"issuer":"` + iss + `"}`, issuer: iss, wantErr: "has no token_endpoint"},
		{name: "an http token endpoint", body: metadataFor(iss, map[string]any{"token_endpoint": "http://idp.example/token"}), issuer: iss, wantErr: "token_endpoint must use https"},
		{name: "an http jwks_uri", body: metadataFor(iss, map[string]any{"jwks_uri": "http://idp.example/jwks"}), issuer: iss, wantErr: "jwks_uri must use https"},
		{name: "a relative revocation endpoint", body: metadataFor(iss, map[string]any{"revocation_endpoint": "/revoke"}), issuer: iss, wantErr: "revocation_endpoint \"/revoke\" is not an absolute URL"},
		{name: "a javascript authorize URL", body: metadataFor(iss, map[string]any{"authorization_endpoint": "javascript:alert(1)"}), issuer: iss, wantErr: "authorization_endpoint"},
		{name: "user info in the device endpoint", body: metadataFor(iss, map[string]any{"device_authorization_endpoint": "https://u:p@idp.example/d"}), issuer: iss, wantErr: "must not carry user info"},
		{name: "a bad mTLS alias", body: metadataFor(iss, map[string]any{"mtls_endpoint_aliases": map[string]any{"token_endpoint": "http://mtls.example/t"}}), issuer: iss, wantErr: "mtls_endpoint_aliases.token_endpoint must use https"},
		{name: "mTLS aliases not an object", body: metadataFor(iss, map[string]any{"mtls_endpoint_aliases": []string{}}), issuer: iss, wantErr: "not an object"},
		{name: "a list that is a string", body: metadataFor(iss, map[string]any{"token_endpoint_auth_methods_supported": "private_key_jwt"}), issuer: iss, wantErr: "not a list of strings"},
		{name: "a list with a number", body: metadataFor(iss, map[string]any{"code_challenge_methods_supported": []any{"S256", 1}}), issuer: iss, wantErr: "not a list of strings"},
		{name: "a list with a control character", body: metadataFor(iss, map[string]any{"scopes_supported": []any{"a\u001b[31m"}}), issuer: iss, wantErr: "unprintable"},
		{name: "a list too long", body: metadataFor(iss, map[string]any{"scopes_supported": make([]string, maxMetadataList+1)}), issuer: iss, wantErr: "more than 256"},
		{name: "a URL too long", body: metadataFor(iss, map[string]any{"jwks_uri": "https://x/" + strings.Repeat("a", maxMetadataURLLen)}), issuer: iss, wantErr: "longer than 2048"},
		{name: "bound tokens not a boolean", body: metadataFor(iss, map[string]any{"tls_client_certificate_bound_access_tokens": "yes"}), issuer: iss, wantErr: "not a boolean"},
		{name: "HTML", body: "<html></html>", issuer: iss, wantErr: "not a JSON object"},
		{name: "an array", body: "[]", issuer: iss, wantErr: "not a JSON object"},
		{name: "trailing data", body: metadataFor(iss, nil) + "{}", issuer: iss, wantErr: "more data"},
		{name: "too large", body: `{"issuer":"` + iss + `","x":"` + strings.Repeat("a", MaxMetadataBytes) + `"}`, issuer: iss, wantErr: "larger than 256 KiB"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseMetadata([]byte(tc.body), tc.issuer)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				var me *MetadataError
				if !errors.As(err, &me) || me.IssuerMismatch != tc.mismatch {
					t.Errorf("error %#v, want a MetadataError with IssuerMismatch %v", err, tc.mismatch)
				}
				if tc.wantClass != "" && Classify(err) != tc.wantClass {
					t.Errorf("Classify = %q", Classify(err))
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMetadata: %v", err)
			}
			tc.check(t, m)
		})
	}
}

// metadataServer serves documents by path and counts hits.
type metadataServer struct {
	*fakeVendor
	mu   sync.Mutex
	docs map[string]func(w http.ResponseWriter)
}

func newMetadataServer(t *testing.T) *metadataServer {
	m := &metadataServer{docs: map[string]func(http.ResponseWriter){}}
	m.fakeVendor = newFakeVendor(t, func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		h := m.docs[r.URL.Path]
		m.mu.Unlock()
		if h == nil || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		h(w)
	})
	return m
}

func (m *metadataServer) serve(path string, status int, body string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.docs[path] = func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func (m *metadataServer) paths() []string {
	var out []string
	for _, r := range m.requests() {
		out = append(out, r.Path)
	}
	return out
}

func TestDiscover(t *testing.T) {
	t.Parallel()
	const oauthPath, oidcPath = "/.well-known/oauth-authorization-server/tenant", "/tenant/.well-known/openid-configuration"
	tests := []struct {
		name      string
		setup     func(m *metadataServer, iss string)
		wantFrom  string // path the metadata came from
		wantPaths []string
		wantErr   string
		wantClass Failure
	}{
		{
			name: "RFC 8414's document first",
			setup: func(m *metadataServer, iss string) {
				m.serve(oauthPath, 200, metadataFor(iss, nil))
				m.serve(oidcPath, 200, "{}")
			},
			wantFrom: oauthPath, wantPaths: []string{oauthPath},
		},
		{
			name:     "OpenID's after a 404",
			setup:    func(m *metadataServer, iss string) { m.serve(oidcPath, 200, metadataFor(iss, nil)) },
			wantFrom: oidcPath, wantPaths: []string{oauthPath, oidcPath},
		},
		{
			name: "OpenID's after an HTML catch-all page",
			setup: func(m *metadataServer, iss string) {
				m.serve(oauthPath, 200, "<!doctype html><html>app</html>")
				m.serve(oidcPath, 200, metadataFor(iss, nil))
			},
			wantFrom: oidcPath, wantPaths: []string{oauthPath, oidcPath},
		},
		{
			name: "a mismatched issuer stops discovery",
			setup: func(m *metadataServer, iss string) {
				m.serve(oauthPath, 200, metadataFor("https://attacker.example", nil))
				m.serve(oidcPath, 200, metadataFor(iss, nil))
			},
			wantPaths: []string{oauthPath}, wantErr: "is not", wantClass: FailureMetadata,
		},
		{
			name: "a 500 stops discovery",
			setup: func(m *metadataServer, iss string) {
				m.serve(oauthPath, 500, "")
				m.serve(oidcPath, 200, metadataFor(iss, nil))
			},
			wantPaths: []string{oauthPath}, wantErr: "metadata endpoint answered HTTP 500 Internal Server Error", wantClass: FailureUnavailable,
		},
		{
			name:      "neither document",
			setup:     func(*metadataServer, string) {},
			wantPaths: []string{oauthPath, oidcPath}, wantErr: oauthPath + ": metadata endpoint answered HTTP 404 Not Found; then http://", wantClass: FailureRefused,
		},
		{
			name: "an endpoint over http on another host",
			setup: func(m *metadataServer, iss string) {
				m.serve(oauthPath, 200, metadataFor(iss, map[string]any{"token_endpoint": "http://idp.example/t"}))
			},
			wantPaths: []string{oauthPath}, wantErr: "token_endpoint must use https", wantClass: FailureMetadata,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newMetadataServer(t)
			iss := m.URL + "/tenant"
			tc.setup(m, iss)
			md, err := New().Discover(context.Background(), iss, nil)
			if got := m.paths(); !reflect.DeepEqual(got, tc.wantPaths) {
				t.Errorf("fetched %v, want %v", got, tc.wantPaths)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "no authorization server metadata for issuer "+iss+": ") {
					t.Errorf("err = %q", err)
				}
				if Classify(err) != tc.wantClass {
					t.Errorf("Classify = %q, want %q", Classify(err), tc.wantClass)
				}
				return
			}
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			if md.Issuer != iss || md.TokenEndpoint != iss+"/token" || md.Source != m.URL+tc.wantFrom {
				t.Errorf("metadata = %+v", md)
			}
		})
	}
}

// TestDiscoverTLS checks discovery against a private CA, with and without
// the CA bundle.
func TestDiscoverTLS(t *testing.T) {
	t.Parallel()
	v := newTLSVendorWith(t, nil, func(base string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == WellKnownOAuth {
				replyJSON(200, metadataFor(base, nil))(w, r)
				return
			}
			http.NotFound(w, r)
		}
	})
	if _, err := New().Discover(context.Background(), v.URL, nil); Classify(err) != FailureTLS || !strings.Contains(err.Error(), "set the CA bundle") {
		t.Errorf("without the CA bundle: %v (%s)", err, Classify(err))
	}
	md, err := New().Discover(context.Background(), v.URL, &TLSConfig{CABundlePEM: serverCA.CertPEM()})
	if err != nil || md.TokenEndpoint != v.URL+"/token" {
		t.Errorf("with the CA bundle: %+v, %v", md, err)
	}
}

func TestDiscoverBadIssuer(t *testing.T) {
	t.Parallel()
	_, err := New().Discover(context.Background(), "http://idp.example", nil)
	if err == nil || Classify(err) != FailureRequest || !strings.Contains(err.Error(), "issuer must use https") {
		t.Errorf("err = %v", err)
	}
}
