package providers

import "testing"

func TestEshopbox(t *testing.T) {
	t.Parallel()
	checkVendor(t, vendorCase{
		name: "eshopbox", tokenURL: "https://auth.myeshopbox.com/api/v1/generateToken",
		grant: GrantRefreshToken, auth: AuthBody, encoding: EncodingRFC6749, format: FormatJSON,
		required: []string{FieldClientSecret, FieldRefreshToken},
	})
}
