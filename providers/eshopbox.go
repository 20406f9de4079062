package providers

// Eshopbox: the app's long-lived refresh token is exchanged for access
// tokens; no new refresh token comes back. Its docs disagree on JSON or form
// bodies, so JSON is the default and body_format=form switches.
func init() {
	Register(Preset{
		Name:               "eshopbox",
		DisplayName:        "Eshopbox",
		TokenURLs:          map[string]string{"production": "https://auth.myeshopbox.com/api/v1/generateToken"},
		DefaultEnvironment: "production",
		GrantTypes:         []string{GrantRefreshToken},
		AuthStyle:          AuthBody,
		BasicEncoding:      EncodingRFC6749,
		BodyFormat:         FormatJSON,
		Required:           []string{FieldClientSecret, FieldRefreshToken},
		ErrorHints: map[string]string{
			"invalid_grant":  "Eshopbox refused the refresh token: copy the app's refresh_token again from Apps in the Eshopbox workspace and write it to this config",
			"invalid_client": "check client_id and client_secret against the custom app in the Eshopbox workspace",
			"http_429":       "Eshopbox rate-limits its token endpoint; the plugin retries after the time it asks",
		},
		Example: "provider=eshopbox client_id=... client_secret=... refresh_token=...",
	})
}
