package providers

func init() {
	Register(Preset{
		Name:          "generic",
		DisplayName:   "the token endpoint",
		GrantTypes:    []string{GrantClientCredentials, GrantRefreshToken},
		AuthStyle:     AuthBasic,
		BasicEncoding: EncodingRFC6749,
		BodyFormat:    FormatForm,
		Required:      []string{FieldTokenURL},
		Example:       "provider=generic token_url=https://auth.example.com/oauth/token client_id=... client_secret=...",
	})
}
