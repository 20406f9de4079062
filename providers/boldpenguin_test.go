package providers

import "testing"

func TestBoldPenguin(t *testing.T) {
	t.Parallel()
	for env, u := range map[string]string{
		"":           "https://api.ii.boldpenguin.com/auth/token",
		"production": "https://api.ii.boldpenguin.com/auth/token",
		"staging":    "https://api-smartdata.di-beta.boldpenguin.com/auth/token",
	} {
		checkVendor(t, vendorCase{
			name: "boldpenguin", env: env, tokenURL: u,
			grant: GrantClientCredentials, auth: AuthBasic, encoding: EncodingRaw, format: FormatForm, inQuery: true,
			required: []string{FieldClientSecret, FieldAPIKey}, apiKeyHeader: "x-api-key",
		})
	}
	if p, _ := Get("boldpenguin"); p.SupportsGrant(GrantRefreshToken) {
		t.Errorf("Bold Penguin has refresh tokens disabled: the preset must not use them")
	}
}
