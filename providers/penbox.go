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
		GrantTypes:         []string{GrantRefreshToken, GrantStatic},
		AuthorizeURL:       "https://connect.penbox.io/authorize",
		AuthorizeScopes:    []string{"offline_access"},
		StaticHint:         "visit https://connect.penbox.io/authorize, select the workspace and a token longevity of 1 day or less, choose Get a token, then write it with access_token=... ttl=24h",
		AuthStyle:          AuthBody,
		BasicEncoding:      EncodingRFC6749,
		BodyFormat:         FormatForm,
		Required:           []string{FieldClientSecret, FieldRefreshToken},
		ErrorHints: map[string]string{
			"invalid_grant":  "Penbox refused the refresh token (revoked, expired or already used): the user must connect their Penbox workspace again with authorize/<name> and exchange/<name>",
			"invalid_client": "check the client_id and client_secret Penbox gave you for CONNECT",
		},
		Example: "provider=penbox client_id=... client_secret=... refresh_token=...",
	})
}
