package standin

import (
	"net/http"
)

// serveMetadata serves the RFC 8414 (oauth) or OpenID Connect document.
// The endpoints named are those of the issuer listener; the mutual-TLS
// listener's are the RFC 8705 aliases.
func (a *AuthServer) serveMetadata(w http.ResponseWriter, r *http.Request, oauth bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	a.mu.Lock()
	a.stats.MetadataRequests++
	issuer, off := a.metaIssuer, (oauth && a.noOAuthMeta) || (!oauth && a.noOpenIDMeta)
	a.mu.Unlock()
	if off {
		http.NotFound(w, r)
		return
	}
	if issuer == "" {
		issuer = a.Issuer()
	}
	ep := a.Endpoints(a.opts.IssuerListener)
	mt := a.Endpoints(MutualTLS)
	doc := map[string]any{
		"issuer":                                           issuer,
		"token_endpoint":                                   ep.Token,
		"revocation_endpoint":                              ep.Revocation,
		"device_authorization_endpoint":                    ep.DeviceAuthorization,
		"token_endpoint_auth_methods_supported":            Methods(),
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS256", "PS256", "ES256", "ES384", "EdDSA", "HS256"},
		"revocation_endpoint_auth_methods_supported":       Methods(),
		"grant_types_supported":                            []string{"client_credentials", "refresh_token", grantDeviceCode},
		"response_types_supported":                         []string{"code"},
		"code_challenge_methods_supported":                 []string{"S256"},
		"tls_client_certificate_bound_access_tokens":       false,
		"mtls_endpoint_aliases": map[string]string{
			"token_endpoint":                mt.Token,
			"revocation_endpoint":           mt.Revocation,
			"device_authorization_endpoint": mt.DeviceAuthorization,
		},
	}
	if !oauth {
		doc["subject_types_supported"] = []string{"public"}
	}
	w.Header().Set("Cache-Control", "max-age=60")
	writeFields(w, http.StatusOK, doc, false)
}
