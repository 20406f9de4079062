package providers

import "testing"

func TestPenbox(t *testing.T) {
	t.Parallel()
	checkVendor(t, vendorCase{
		name: "penbox", tokenURL: "https://connect.penbox.io/token",
		grant: GrantRefreshToken, auth: AuthBody, encoding: EncodingRFC6749, format: FormatForm,
		required: []string{FieldClientSecret, FieldRefreshToken},
	})
}
