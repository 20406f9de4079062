package providers

// Penbox CONNECT: a partner holds each user's refresh token from an
// authorization-code consent. Penbox may or may not rotate refresh tokens;
// the plugin keeps whichever comes back.
func init() {
	Register(Preset{
		Name:               "penbox",
		DisplayName:        "Penbox",
		TokenURLs:          map[string]string{"production": "https://connect.penbox.io/token"},
		DefaultEnvironment: "production",
		GrantTypes:         []string{GrantRefreshToken},
		AuthStyle:          AuthBody,
		BasicEncoding:      EncodingRFC6749,
		BodyFormat:         FormatForm,
		Required:           []string{FieldClientSecret, FieldRefreshToken},
		ErrorHints: map[string]string{
			"invalid_grant":  "Penbox refused the refresh token (revoked, expired or already used): the user must connect their Penbox workspace again",
			"invalid_client": "check the client_id and client_secret Penbox gave you for CONNECT",
		},
		Example: "provider=penbox client_id=... client_secret=... refresh_token=...",
	})
}
