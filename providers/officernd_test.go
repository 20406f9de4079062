package providers

import "testing"

func TestOfficeRnD(t *testing.T) {
	t.Parallel()
	checkVendor(t, vendorCase{
		name: "officernd", tokenURL: "https://identity.officernd.com/oauth/token",
		grant: GrantClientCredentials, auth: AuthBody, encoding: EncodingRFC6749, format: FormatForm,
		required: []string{FieldClientSecret, FieldScopes},
	})
}
