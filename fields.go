package vendoroauth

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Field names, shared by the schemas, the handlers and the tests.
const (
	fieldName             = "name"
	fieldProvider         = "provider"
	fieldEnvironment      = "environment"
	fieldGrantType        = "grant_type"
	fieldTokenURL         = "token_url"
	fieldClientID         = "client_id"
	fieldClientSecret     = "client_secret"
	fieldRefreshToken     = "refresh_token"
	fieldAPIKey           = "api_key"
	fieldScopes           = "scopes"
	fieldAuthStyle        = "auth_style"
	fieldBasicEncoding    = "basic_encoding"
	fieldBodyFormat       = "body_format"
	fieldGrantTypeInQuery = "grant_type_in_query"
	fieldExtraParams      = "extra_params"
	fieldExtraHeaders     = "extra_headers"
	fieldDefaultTTL       = "default_ttl"
	fieldMaxTTL           = "max_ttl"
	fieldExpirySkew       = "expiry_skew"
	fieldRetryLostRefresh = "retry_lost_refresh"
	fieldKeepAlive        = "keepalive_interval"
	fieldApp              = "app"
	fieldMetadata         = "metadata"
	fieldAfter            = "after"
	fieldLimit            = "limit"
	fieldRedirectURIs     = "allowed_redirect_uris"
	fieldSecretOverlap    = "client_secret_overlap"
	fieldRefreshConc      = "refresh_concurrency"
	fieldRefreshRate      = "refresh_rate"
	fieldStateFilter      = "state"
	// fieldDiscoveryChanged is only in answers: an app's issuer now names
	// endpoints the app does not use.
	fieldDiscoveryChanged = "discovery_changed"

	fieldAssertionAudience = "assertion_audience"
	fieldTLSCert           = "tls_client_certificate"
	fieldTLSKey            = "tls_client_key"
	fieldCABundle          = "ca_bundle"
	fieldIssuer            = "issuer"
	fieldRevocationURL     = "revocation_url"
	fieldRevokeOnDelete    = "revoke_on_delete"
	fieldDeviceURL         = "device_authorization_url"
	fieldResponseFields    = "response_fields"
	fieldSecretFields      = "secret_response_fields"
	fieldSigningKey        = "signing_key"
	fieldSigningAlg        = "signing_algorithm"
	fieldAlgorithm         = "algorithm"
	fieldOverlap           = "overlap"

	fieldAuthorizeURL = "authorize_url"
	fieldUsePKCE      = "use_pkce"
	fieldTTL          = "ttl"
	fieldRedirectURI  = "redirect_uri"
	fieldState        = "state"
	fieldCode         = "code"

	fieldAccessToken = "access_token"
	fieldTokenType   = "token_type"
	fieldExpiresAt   = "expires_at"
	fieldScope       = "scope"
)

// nameSegment is one segment of a credential or app name, as Vault's own
// generic names: word characters, with - . @ inside.
const nameSegment = `\w(?:[\w\-.@]*\w)?`

// credentialName matches a credential's name: one segment for a
// self-contained credential (or a connection converted from one), or
// "<app>/<account>" for a connection of an app, so that a policy on
// token/<app>/* confines a caller to one app's connections.
var credentialName = `(?P<` + fieldName + `>` + nameSegment + `(?:/` + nameSegment + `)?)`

// appName matches an app's name.
var appName = `(?P<` + fieldApp + `>` + nameSegment + `)`

// rejectUnknownFields refuses a request that carries a field the path does
// not know: Vault would only warn, and a mistyped field name silently
// ignored is a config that does not do what its author thinks.
func rejectUnknownFields(req *logical.Request, d *framework.FieldData) *logical.Response {
	var unknown []string
	for k := range req.Data {
		if _, ok := d.Schema[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	known := make([]string, 0, len(d.Schema))
	for k := range d.Schema {
		if k != fieldName {
			known = append(known, k)
		}
	}
	sort.Strings(known)
	return logical.ErrorResponse(fmt.Sprintf("unknown field(s) %s; this path takes: %s",
		strings.Join(unknown, ", "), strings.Join(known, ", ")))
}

func sortStrings(s []string) { sort.Strings(s) }
