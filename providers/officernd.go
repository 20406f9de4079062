package providers

// OfficeRnD: client credentials in a form body, scopes required and limited
// to the application's permissions. Tokens last 3599 seconds.
func init() {
	Register(Preset{
		Name:               "officernd",
		DisplayName:        "OfficeRnD",
		TokenURLs:          map[string]string{"production": "https://identity.officernd.com/oauth/token"},
		DefaultEnvironment: "production",
		GrantTypes:         []string{GrantClientCredentials},
		AuthStyle:          AuthBody,
		BasicEncoding:      EncodingRFC6749,
		BodyFormat:         FormatForm,
		Required:           []string{FieldClientSecret, FieldScopes},
		ErrorHints: map[string]string{
			"invalid_scope":  "the OfficeRnD application lacks a requested scope: drop it from scopes or grant the permission under Settings > Data & Extensibility > Developer Tools > Applications",
			"invalid_client": "check client_id and client_secret against the application's View button in OfficeRnD",
		},
		Example: "provider=officernd client_id=... client_secret=... scopes=officernd.api.read,officernd.api.write",
	})
}
