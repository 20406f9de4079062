package tokenclient

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode"
)

// FuzzParseMetadata checks that no document makes ParseMetadata panic,
// that an accepted one meets every rule (the issuer asked for, a token
// endpoint, every URL valid, bounded lists), that it survives a round
// trip through its own JSON, and that every error is one printable line.
func FuzzParseMetadata(f *testing.F) {
	const iss = "https://idp.example/t"
	for _, s := range []string{
		metadataFor(iss, nil),
		metadataFor(iss, map[string]any{
			"authorization_endpoint": iss + "/a", "revocation_endpoint": iss + "/r", "device_authorization_endpoint": iss + "/d",
			"jwks_uri": iss + "/k", "token_endpoint_auth_methods_supported": []string{"private_key_jwt"},
			"code_challenge_methods_supported": []string{"S256"}, "mtls_endpoint_aliases": map[string]string{"token_endpoint": "https://m/t"},
			"tls_client_certificate_bound_access_tokens": true,
		}),
		metadataFor("https://other.example", nil),
		metadataFor(iss, map[string]any{"token_endpoint": "http://x/t"}),
		`{"issuer":"http://127.0.0.1:1/t","token_endpoint":"http://[::1]:2/t"}`,
		`{"issuer":"` + iss + `","token_endpoint":"https://x/t","scopes_supported":["a\u0000"]}`,
		`[]`, `{`, `null`, "\xef\xbb\xbf{}", `{"issuer":null}`,
	} {
		f.Add([]byte(s), iss)
		f.Add([]byte(s), "")
	}
	f.Fuzz(func(t *testing.T, body []byte, issuer string) {
		md, err := ParseMetadata(body, issuer)
		if err != nil {
			if md != nil {
				t.Fatal("metadata and an error")
			}
			var me *MetadataError
			if !errors.As(err, &me) {
				t.Fatalf("error is %T", err)
			}
			msg := err.Error()
			if strings.IndexFunc(msg, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) >= 0 {
				t.Fatalf("error has control characters: %q", msg)
			}
			if len(msg) > 2000 {
				t.Fatalf("error is %d bytes long", len(msg))
			}
			return
		}
		if issuer != "" && md.Issuer != issuer {
			t.Fatalf("issuer %q accepted for %q", md.Issuer, issuer)
		}
		if validateIssuer(md.Issuer) != nil || md.TokenEndpoint == "" {
			t.Fatalf("accepted %+v", md)
		}
		for _, u := range []string{md.AuthorizationEndpoint, md.TokenEndpoint, md.RevocationEndpoint, md.DeviceAuthorizationEndpoint, md.JWKSURI} {
			if u != "" && ValidateEndpointURL("u", u) != nil {
				t.Fatalf("accepted URL %q", u)
			}
		}
		for _, u := range md.MTLSEndpointAliases {
			if ValidateEndpointURL("u", u) != nil {
				t.Fatalf("accepted alias %q", u)
			}
		}
		for _, l := range [][]string{md.TokenEndpointAuthMethodsSupported, md.CodeChallengeMethodsSupported, md.ScopesSupported, md.GrantTypesSupported} {
			if len(l) > maxMetadataList {
				t.Fatalf("list of %d", len(l))
			}
		}
		again, err := json.Marshal(md)
		if err != nil {
			t.Fatal(err)
		}
		md2, err := ParseMetadata(again, md.Issuer)
		if err != nil {
			t.Fatalf("our own JSON of accepted metadata is refused: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(md, md2) {
			t.Fatalf("round trip changed the metadata:\n%+v\n%+v", md, md2)
		}
	})
}
