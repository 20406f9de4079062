package providers

import (
	"net/url"
	"strings"
	"testing"
)

// TestEveryPresetIsConsistent holds every registered preset, including ones
// added later, to the rules the backend relies on.
func TestEveryPresetIsConsistent(t *testing.T) {
	t.Parallel()
	for _, name := range Names() {
		p, _ := Get(name)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if p.DisplayName == "" || p.Example == "" {
				t.Errorf("needs a display name and an example")
			}
			for _, g := range p.GrantTypes {
				if g != GrantClientCredentials && g != GrantRefreshToken && g != GrantStatic {
					t.Errorf("unknown grant type %q", g)
				}
			}
			if !in(p.AuthStyle, AuthBasic, AuthBody) || !in(p.BasicEncoding, EncodingRFC6749, EncodingRaw) || !in(p.BodyFormat, FormatForm, FormatJSON) {
				t.Errorf("invalid request style %q/%q/%q", p.AuthStyle, p.BasicEncoding, p.BodyFormat)
			}
			if len(p.TokenURLs) > 0 {
				if _, ok := p.TokenURLs[p.DefaultEnvironment]; !ok {
					t.Errorf("default environment %q has no token URL", p.DefaultEnvironment)
				}
			} else if !p.Requires(FieldTokenURL) {
				t.Errorf("a preset without token URLs must require token_url")
			}
			for env, raw := range p.TokenURLs {
				u, err := url.Parse(raw)
				if err != nil || u.Scheme != "https" || u.RawQuery != "" {
					t.Errorf("%s token URL %q must be https without a query (grant_type_in_query adds it)", env, raw)
				}
			}
			if p.SupportsGrant(GrantStatic) && p.StaticHint == "" {
				t.Errorf("a preset with static tokens must say how to mint one")
			}
			if p.AuthorizeURL != "" {
				if u, err := url.Parse(p.AuthorizeURL); err != nil || u.Scheme != "https" {
					t.Errorf("authorize URL %q must be https", p.AuthorizeURL)
				}
			}
			if p.Requires(FieldAPIKey) != (p.APIKeyHeader != "") {
				t.Errorf("api_key is required exactly when there is an API key header")
			}
			if got, ok := Get(name); !ok || got.Name != name {
				t.Errorf("Get(%q) does not return it", name)
			}
		})
	}
}

func TestRegisterRefusesDuplicates(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Errorf("registering generic twice did not panic")
		}
	}()
	Register(Preset{Name: "generic", GrantTypes: []string{GrantClientCredentials}})
}

func TestTokenURLUnknownEnvironment(t *testing.T) {
	t.Parallel()
	p, _ := Get("boldpenguin")
	_, err := p.TokenURL("dev")
	if err == nil || !strings.Contains(err.Error(), "production, staging") {
		t.Errorf("err = %v, want the list of environments", err)
	}
}

func in(v string, allowed ...string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

// vendorCase is what each vendor's test asserts of its preset.
type vendorCase struct {
	name, env, tokenURL, grant, auth, encoding, format string
	inQuery                                            bool
	required                                           []string
	apiKeyHeader                                       string
}

func checkVendor(t *testing.T, c vendorCase) {
	t.Helper()
	p, ok := Get(c.name)
	if !ok {
		t.Fatalf("preset %s is not registered", c.name)
	}
	u, err := p.TokenURL(c.env)
	if err != nil || u != c.tokenURL {
		t.Errorf("TokenURL(%q) = %q, %v; want %q", c.env, u, err, c.tokenURL)
	}
	if p.DefaultGrantType() != c.grant || p.AuthStyle != c.auth || p.BasicEncoding != c.encoding || p.BodyFormat != c.format || p.GrantTypeInQuery != c.inQuery {
		t.Errorf("request style = %s %s/%s/%s query=%v", p.DefaultGrantType(), p.AuthStyle, p.BasicEncoding, p.BodyFormat, p.GrantTypeInQuery)
	}
	for _, f := range c.required {
		if !p.Requires(f) {
			t.Errorf("%s is not required", f)
		}
	}
	if p.APIKeyHeader != c.apiKeyHeader {
		t.Errorf("APIKeyHeader = %q, want %q", p.APIKeyHeader, c.apiKeyHeader)
	}
}
