package providers

func init() {
	Register(Preset{
		Name:          "generic",
		DisplayName:   "the token endpoint",
		GrantTypes:    []string{GrantClientCredentials, GrantRefreshToken, GrantStatic},
		StaticHint:    "mint a new token at the vendor and write it with access_token=... and expires_at= or ttl=",
		AuthStyle:     AuthBasic,
		BasicEncoding: EncodingRFC6749,
		BodyFormat:    FormatForm,
		Required:      []string{FieldTokenURL},
		Example:       "provider=generic token_url=https://auth.example.com/oauth/token client_id=... client_secret=...",
	})
}
