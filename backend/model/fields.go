package model

import (
	"fmt"
	"strings"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
)

// Scopes in the rows below.
const (
	client     = OnCredential | OnApp                // the OAuth client's
	account    = OnCredential | OnConnection         // one account's
	everywhere = OnCredential | OnApp | OnConnection // an app's default, a connection's override
)

// fields is the model's table: one row per field.
var fields = []*Field{
	{
		Name: "provider", Kind: String, Scope: client, Sent: true, Role: Endpoint,
		Default: "generic",
		Display: "Provider",
		Help:    "Vendor preset: " + strings.Join(providers.Names(), ", ") + ". Presets fill in the token URL, grant type and request style; every other field overrides them.",
	},
	{
		Name: "environment", Kind: String, Scope: client, Sent: true, Role: Endpoint,
		FromPreset: func(p *providers.Preset) any { return p.DefaultEnvironment },
		Display:    "Environment",
		Help:       "Vendor environment whose token URL to use (for example production or staging); defaults to the preset's.",
	},
	{
		Name: "grant_type", Kind: String, Scope: client, Sent: true,
		FromPreset: func(p *providers.Preset) any { return p.DefaultGrantType() },
		Allowed:    ConfigurableGrants,
		Display:    "Grant type",
		Help:       "OAuth2 grant: client_credentials, refresh_token, or static (serve a user-minted access_token until it expires). Defaults to the preset's.",
	},
	{
		Name: "token_url", Kind: String, Scope: client, Sent: true, Role: Endpoint,
		Display: "Token URL",
		Help:    "Token endpoint URL. Must be https, except on a loopback host. Defaults to the preset's for the environment.",
	},
	{
		Name: "client_id", Kind: String, Scope: client, Sent: true,
		Display: "Client ID",
		Help:    "OAuth2 client ID.",
	},
	{
		Name: "client_secret", Kind: String, Scope: client, Secret: true, Sent: true,
		Display: "Client secret",
		Help:    "OAuth2 client secret. Write-only: reads show client_secret_set.",
	},
	{
		Name: "refresh_token", Kind: String, Scope: account, Secret: true, Sent: true,
		Display: "Refresh token",
		Help:    "Refresh token for grant_type=refresh_token. Write-only; replaced automatically when the vendor rotates it.",
	},
	{
		Name: "api_key", Kind: String, Scope: client, Secret: true, Sent: true,
		Display: "API key",
		Help:    "API key for vendors whose preset sends one as a header (boldpenguin: x-api-key). Write-only.",
	},
	{
		Name: "scopes", Kind: Words, Scope: everywhere, Sent: true,
		Display: "Scopes",
		Help:    "Scopes to request, as a list or comma-separated; sent space-separated.",
	},
	{
		Name: "auth_style", Kind: String, Scope: client, Sent: true,
		FromPreset: func(p *providers.Preset) any { return p.AuthStyle },
		Allowed:    AuthStyles,
		Display:    "Client authentication",
		Help:       "How the client authenticates: basic (HTTP Basic header), body (client_id and client_secret as parameters), none (a public client), private_key_jwt (an assertion signed by a key held in Vault: born there with rotate-key, or imported with import-key), client_secret_jwt (an assertion signed with the client secret), tls_client_auth or self_signed_tls_client_auth (a client certificate, RFC 8705). Defaults to the preset's.",
	},
	{
		Name: "basic_encoding", Kind: String, Scope: client, Sent: true,
		FromPreset: func(p *providers.Preset) any { return p.BasicEncoding },
		Allowed:    func() []string { return []string{providers.EncodingRFC6749, providers.EncodingRaw} },
		Display:    "Basic encoding",
		Help:       "With auth_style=basic: rfc6749 form-encodes the id and secret first (RFC 6749 2.3.1); raw does not, which many servers require.",
	},
	{
		Name: "body_format", Kind: String, Scope: client, Sent: true,
		FromPreset: func(p *providers.Preset) any { return p.BodyFormat },
		Allowed:    func() []string { return []string{providers.FormatForm, providers.FormatJSON} },
		Display:    "Body format",
		Help:       "Request body format: form (application/x-www-form-urlencoded) or json.",
	},
	{
		Name: "grant_type_in_query", Kind: Bool, Scope: client, Sent: true,
		FromPreset: func(p *providers.Preset) any { return p.GrantTypeInQuery },
		Display:    "Grant type in query",
		Help:       "Send grant_type in the URL query string instead of the body.",
	},
	{
		Name: "extra_params", Kind: Pairs, Scope: everywhere, Sent: true,
		Display: "Extra parameters",
		Help:    "Extra request parameters as key=value pairs (for example audience=...). They cannot replace grant_type, client_id, client_secret or scope.",
	},
	{
		Name: "extra_headers", Kind: Pairs, Scope: client, Secret: true, Sent: true, Role: Routing,
		Display: "Extra headers",
		Help:    "Extra request headers as name=value pairs. Values are write-only: reads list the header names only. Headers that route a request (Host, Forwarded and their X- variants) are refused, and a change of extra_headers must give the secrets again, as a change of token_url does.",
	},
	{
		Name: "default_ttl", Kind: Seconds, Scope: everywhere,
		Default: DefaultTTL,
		Display: "Default TTL",
		Help:    fmt.Sprintf("Lifetime to assume when the vendor sends no expires_in. Default %s.", DefaultTTL),
	},
	{
		Name: "max_ttl", Kind: Seconds, Scope: everywhere,
		Display: "Max TTL",
		Help:    "Cap on the lease of a token read; 0 means the token's remaining life (and the mount's max).",
	},
	{
		Name: "expiry_skew", Kind: Seconds, Scope: everywhere,
		Default: DefaultExpirySkew,
		Display: "Expiry skew",
		Help:    fmt.Sprintf("How long before the vendor's expiry a token stops being handed out; leases end this much early. Default %s; at most a tenth of the token's life is used.", DefaultExpirySkew),
	},
	{
		Name: "authorize_url", Kind: String, Scope: client, Role: Endpoint,
		Display: "Authorize URL",
		Help:    "Authorization endpoint for authorize/<name>; defaults to the preset's (penbox: https://connect.penbox.io/authorize).",
	},
	{
		Name: "use_pkce", Kind: Bool, Scope: client,
		Default: true,
		Display: "Use PKCE",
		Help:    "Send a PKCE S256 code challenge with authorize/<name> and its verifier with the exchange.",
	},
	{
		Name: "access_token", Kind: String, Holder: Input, Scope: OnCredential, Secret: true,
		Display: "Access token",
		Help:    "For grant_type=static: a token minted at the vendor by hand. Write-only; give expires_at or ttl with it.",
	},
	{
		Name: "expires_at", Kind: String, Holder: Input, Scope: OnCredential,
		Display: "Expires at",
		Help:    "For grant_type=static: when access_token expires (RFC 3339).",
	},
	{
		Name: "ttl", Kind: Seconds, Holder: Input, Scope: OnCredential,
		Display: "TTL",
		Help:    "For grant_type=static: how long access_token stays valid from now (instead of expires_at).",
	},
	{
		Name: "keepalive_interval", Kind: Seconds, Scope: everywhere,
		Default: DefaultKeepAlive,
		Display: "Keep-alive interval",
		Help:    fmt.Sprintf("For grant_type=refresh_token: refresh this often even when nobody reads the token, because vendors expire refresh tokens that go unused. Default %s; 0 turns it off; \"\" returns to the default.", DefaultKeepAlive),
	},
	{
		Name: "app", Kind: String, Scope: account,
		Display: "App",
		Help:    "Make this credential a connection of the app apps/<app>: the client's settings and secrets come from the app; the config keeps one account's refresh_token, scopes, extra_params and metadata. A name <app>/<account> implies it. Converting a self-contained credential drops its own client secret and client settings.",
	},
	{
		Name: "metadata", Kind: Pairs, Scope: account,
		Display: "Metadata",
		Help:    fmt.Sprintf("Non-secret key=value pairs about the account (for example your own customer id); shown on reads. At most %d pairs and %d KiB.", MaxMetadataPairs, MaxMetadataBytes>>10),
		Check:   func(v any) error { return CheckMetadata(v.(map[string]string)) },
	},
	{
		Name: "retry_lost_refresh", Kind: Bool, Scope: everywhere,
		Default: true,
		Display: "Retry a lost refresh",
		Help: "Retry a refresh once, at once, when it was sent and no answer came back, for a vendor seen to rotate refresh tokens. Default true: a vendor with rotation leeway still accepts the old refresh token for a while, so only a prompt retry saves the chain. " +
			"Set false for a vendor that revokes live tokens when a rotated-away refresh token is presented. \"\" returns to the default.",
	},
	{
		Name: "assertion_audience", Kind: String, Scope: client, Sent: true, Role: Audience,
		Display: "Assertion audience",
		Help:    "The aud of private_key_jwt and client_secret_jwt assertions; defaults to the token endpoint.",
	},
	{
		Name: "tls_client_certificate", Kind: String, Scope: client, Sent: true,
		Display: "TLS client certificate",
		Help:    "For tls_client_auth and self_signed_tls_client_auth: the client certificate (PEM, leaf first).",
	},
	{
		Name: "tls_client_key", Kind: String, Scope: client, Secret: true, Sent: true,
		Display: "TLS client key",
		Help:    "The client certificate's private key (PEM). Write-only.",
	},
	{
		Name: "ca_bundle", Kind: String, Scope: client, Sent: true, Role: Trust,
		Display: "CA bundle",
		Help:    "CA certificates (PEM) trusted for the token, authorization, revocation and device endpoints instead of the system's: for endpoints a public CA did not sign.",
	},
	{
		Name: "issuer", Kind: String, Scope: client, Sent: true, Role: Endpoint,
		Display: "Issuer",
		Help:    "An authorization server's issuer URL: its metadata (RFC 8414, then OpenID Discovery) fills token_url, authorize_url, revocation_url and device_authorization_url; explicit fields win. Fetched when the config or app is written, never on a read. An app's is fetched again daily by the active node: new auth and PKCE methods are taken, moved endpoints are not (discovery_changed at apps/<app> says what moved) until the app is written again with issuer= and its secrets.",
	},
	{
		Name: "revocation_url", Kind: String, Scope: client, Role: Endpoint,
		Display: "Revocation URL",
		Help:    "RFC 7009 revocation endpoint (defaults to the discovered one): deleting the credential revokes its refresh token there.",
	},
	{
		Name: "revoke_on_delete", Kind: Bool, Scope: client,
		Default: true,
		Display: "Revoke on delete",
		Help:    "Revoke the refresh token at the vendor when the credential is deleted, where a revocation endpoint is known. Default true; \"\" returns to it.",
	},
	{
		Name: "device_authorization_url", Kind: String, Scope: client, Role: Endpoint,
		Display: "Device authorization URL",
		Help:    "RFC 8628 device authorization endpoint for device/<name> (defaults to the discovered one).",
	},
	{
		Name: "response_fields", Kind: List, Scope: client, Sent: true,
		Display: "Response fields",
		Help:    "Fields of the token response to keep and return beside access_token at token/<name> (for example instance_url,uid).",
	},
	{
		Name: "secret_response_fields", Kind: List, Scope: client, Sent: true,
		Display: "Secret response fields",
		Help:    "Like response_fields, for values that are secrets (id_token, say): returned at token/<name>, never logged or shown elsewhere.",
	},
	{
		Name: "allowed_redirect_uris", Kind: Set, Holder: InApp, Scope: OnApp,
		Display: "Allowed redirect URIs",
		Help:    "The only redirect URIs an authorization of the app's connections may use, compared exactly: https, or http on a loopback host.",
	},
	{
		Name: "client_secret_overlap", Kind: Seconds, Holder: InApp, Scope: OnApp,
		Default: DefaultSecretOverlap,
		Display: "Client secret overlap",
		Help:    fmt.Sprintf("How long the previous client_secret is kept after a new one is written, tried once when the vendor refuses the new one with invalid_client. Default %s; 0 keeps none.", DefaultSecretOverlap),
	},
	{
		Name: "refresh_concurrency", Kind: Int, Holder: InApp, Scope: OnApp,
		Default: DefaultRefreshConcurrency,
		Display: "Refresh concurrency",
		Help:    fmt.Sprintf("At most this many background refreshes of the app's connections at a time (default %d).", DefaultRefreshConcurrency),
	},
	{
		Name: "notify_url", Kind: String, Holder: InApp, Scope: OnApp, Role: Endpoint,
		Display: "Notify URL",
		Help:    "Where the active node delivers every event of the app's feed (events/<app>) as a signed webhook (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature): https, or http on a loopback host; redirects are not followed. A change of notify_url must give notify_secret again. \"\" stops the deliveries.",
	},
	{
		Name: "notify_secret", Kind: String, Holder: InApp, Scope: OnApp, Secret: true,
		Display: "Notify secret",
		Help:    "The Standard Webhooks signing secret the receiver verifies with: whsec_ followed by 24 to 64 random bytes in base64 (for example whsec_$(openssl rand -base64 32)). Write-only: reads show notify_secret_set. It signs only deliveries to the notify_url it was written with.",
	},
	{
		Name: "refresh_rate", Kind: Float, Holder: InApp, Scope: OnApp,
		Default: DefaultRefreshRate,
		Display: "Refresh rate",
		Help:    fmt.Sprintf("At most this many background refreshes of the app's connections a second (default 10, at least %g): a refresh whose turn is later waits on the schedule, not in a worker, so a low rate slows only this app.", MinRefreshRate),
	},
	{
		Name: "max_open_authorizations", Kind: Int, Holder: InApp, Scope: OnApp,
		Display: "Open authorizations",
		Help: fmt.Sprintf("At most this many authorizations of the app's connections open at a time, started with authorize/<app>/<account> and not yet exchanged or expired (default %d, at most %d); one more is refused until one is exchanged or expires. It bounds what anyone who can make your backend start an authorization (a public connect button) can store.",
			DefaultMaxOpenAuthorizations, MaxOpenAuthorizationsLimit),
	},
}

// Bounds of the fields above that the API documents.
const (
	// MaxMetadataPairs and MaxMetadataBytes bound a connection's metadata,
	// and what an authorization or a device flow adds to it: each is
	// stored (and an open authorization can be started by whoever can
	// make a partner's backend call authorize/).
	MaxMetadataPairs = 32
	MaxMetadataBytes = 4 << 10
	// MinRefreshRate is the least refresh_rate an app takes: one
	// background refresh every 10 seconds.
	MinRefreshRate = 0.1
	// DefaultMaxOpenAuthorizations is max_open_authorizations' default,
	// MaxOpenAuthorizationsLimit its bound.
	DefaultMaxOpenAuthorizations = 1000
	MaxOpenAuthorizationsLimit   = 100000
)

// CheckMetadata refuses metadata over its bounds.
func CheckMetadata(m map[string]string) error {
	if len(m) > MaxMetadataPairs {
		return fmt.Errorf("at most %d key=value pairs, not %d", MaxMetadataPairs, len(m))
	}
	n := 0
	for k, v := range m {
		n += len(k) + len(v)
	}
	if n > MaxMetadataBytes {
		return fmt.Errorf("at most %d KiB of keys and values, not %d bytes", MaxMetadataBytes>>10, n)
	}
	return nil
}

// How many background refreshes go to one vendor (an app, or a token
// endpoint's host) at a time and a second, unless an app says otherwise.
const (
	DefaultRefreshConcurrency int     = 4
	DefaultRefreshRate        float64 = 10
)

// Durations that are defaults of fields above.
const (
	DefaultTTL           = 10 * time.Minute
	DefaultExpirySkew    = 30 * time.Second
	DefaultKeepAlive     = 72 * time.Hour
	DefaultSecretOverlap = 24 * time.Hour
)
