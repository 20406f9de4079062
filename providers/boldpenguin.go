package providers

// Bold Penguin: HTTP Basic with the raw id:secret, an x-api-key header, and
// grant_type in the query string. Refresh tokens are not enabled, so the
// refresh token in its response is dropped (only refresh-token credentials
// keep one) and a new client-credentials grant is made instead.
func init() {
	Register(Preset{
		Name:        "boldpenguin",
		DisplayName: "Bold Penguin",
		TokenURLs: map[string]string{
			"production": "https://api.ii.boldpenguin.com/auth/token",
			"staging":    "https://api-smartdata.di-beta.boldpenguin.com/auth/token",
		},
		DefaultEnvironment: "production",
		GrantTypes:         []string{GrantClientCredentials},
		AuthStyle:          AuthBasic,
		BasicEncoding:      EncodingRaw,
		BodyFormat:         FormatForm,
		GrantTypeInQuery:   true,
		Required:           []string{FieldClientSecret, FieldAPIKey},
		APIKeyHeader:       "x-api-key",
		ErrorHints: map[string]string{
			"http_403":       "Bold Penguin's gateway refused the x-api-key: set api_key to the key Bold Penguin issued for this environment",
			"invalid_client": "check client_id and client_secret for this Bold Penguin environment (each environment has its own)",
		},
		Example: "provider=boldpenguin environment=staging client_id=... client_secret=... api_key=...",
	})
}
