package tokenclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// MaxMetadataBytes bounds a metadata document. Real ones are a few
// kilobytes; Microsoft's and Google's are under 3.
const MaxMetadataBytes = 256 << 10

// Bounds on metadata values, so that a hostile document cannot make a
// stored config large.
const (
	maxMetadataURLLen    = 2048
	maxMetadataList      = 256
	maxMetadataListEntry = 256
)

// Well-known suffixes of RFC 8414 section 3 and OpenID Connect Discovery
// section 4.
const (
	WellKnownOAuth  = "/.well-known/oauth-authorization-server"
	WellKnownOpenID = "/.well-known/openid-configuration"
)

// Metadata is an authorization server's metadata (RFC 8414 section 2,
// OpenID Connect Discovery section 3): the parts this plugin uses.
type Metadata struct {
	Issuer                      string `json:"issuer"`
	AuthorizationEndpoint       string `json:"authorization_endpoint,omitempty"`
	TokenEndpoint               string `json:"token_endpoint"`
	RevocationEndpoint          string `json:"revocation_endpoint,omitempty"`
	DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint,omitempty"`
	JWKSURI                     string `json:"jwks_uri,omitempty"`

	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	TokenEndpointAuthSigningAlgValuesSupported []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	RevocationEndpointAuthMethodsSupported     []string `json:"revocation_endpoint_auth_methods_supported,omitempty"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported,omitempty"`
	GrantTypesSupported                        []string `json:"grant_types_supported,omitempty"`
	ScopesSupported                            []string `json:"scopes_supported,omitempty"`

	// MTLSEndpointAliases are the endpoints to use with mutual TLS (RFC
	// 8705 section 5), by metadata name: "token_endpoint" and so on.
	MTLSEndpointAliases map[string]string `json:"mtls_endpoint_aliases,omitempty"`
	// TLSClientCertificateBoundAccessTokens is RFC 8705 section 3.3's flag.
	TLSClientCertificateBoundAccessTokens bool `json:"tls_client_certificate_bound_access_tokens,omitempty"`

	// Source is the URL the document came from (not part of it).
	Source string `json:"-"`
}

// SupportsAuthMethod reports whether the server takes a token endpoint
// client authentication method, with RFC 8414's default of
// client_secret_basic when the list is absent.
func (m *Metadata) SupportsAuthMethod(method string) bool {
	list := m.TokenEndpointAuthMethodsSupported
	if len(list) == 0 {
		list = []string{"client_secret_basic"}
	}
	return contains(list, method)
}

// SupportsPKCE reports whether the server lists a code challenge method.
func (m *Metadata) SupportsPKCE(method string) bool {
	return contains(m.CodeChallengeMethodsSupported, method)
}

// Endpoint returns the endpoint to use for name ("token_endpoint", ...):
// its mutual-TLS alias when mtls is set and the server has one.
func (m *Metadata) Endpoint(name string, mtls bool) string {
	if mtls {
		if u := m.MTLSEndpointAliases[name]; u != "" {
			return u
		}
	}
	switch name {
	case "token_endpoint":
		return m.TokenEndpoint
	case "authorization_endpoint":
		return m.AuthorizationEndpoint
	case "revocation_endpoint":
		return m.RevocationEndpoint
	case "device_authorization_endpoint":
		return m.DeviceAuthorizationEndpoint
	case "jwks_uri":
		return m.JWKSURI
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// MetadataError is a metadata document that cannot be used. It is the
// vendor's document or the operator's issuer that is wrong: discovery
// does not try another URL after one.
type MetadataError struct {
	// URL is where the document came from.
	URL string
	// Reason says what is wrong, without quoting values beyond URLs and
	// the issuer, which are public.
	Reason string
	// IssuerMismatch is set when the document's issuer is not the one
	// asked for (RFC 8414 section 3.3): Got is what it said.
	IssuerMismatch bool
	Got            string
	// notJSON marks a body that is no metadata document at all (an HTML
	// page a catch-all route serves), after which the next URL is tried.
	notJSON bool
}

func (e *MetadataError) Error() string {
	where := ""
	if e.URL != "" {
		where = " at " + e.URL
	}
	return "the authorization server metadata" + where + " is not usable: " + e.Reason
}

// DiscoveryError is a discovery that found no usable document: each
// attempt's error, in order. errors.As reaches each of them.
type DiscoveryError struct {
	Issuer   string
	Attempts []error
	// URLs are where each attempt asked.
	URLs []string
}

func (e *DiscoveryError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "no authorization server metadata for issuer %s", displayURL(e.Issuer))
	for i, err := range e.Attempts {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; then ")
		}
		if i < len(e.URLs) {
			fmt.Fprintf(&b, "%s: ", displayURL(e.URLs[i]))
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

// Unwrap returns the attempts' errors.
func (e *DiscoveryError) Unwrap() []error { return e.Attempts }

// ValidateEndpointURL accepts an absolute https URL, or http on a
// loopback host (tests, local demos), without user info or a fragment:
// the rule the plugin applies to token_url. field names the URL in the
// message.
func ValidateEndpointURL(field, raw string) error {
	if len(raw) > maxMetadataURLLen {
		return fmt.Errorf("%s is longer than %d bytes", field, maxMetadataURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%s %s is not an absolute URL", field, quoteURL(raw))
	}
	if u.User != nil {
		return fmt.Errorf("%s must not carry user info", field)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("%s must not have a #fragment", field)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%s must use https (http is only allowed on a loopback host): %s", field, displayEndpoint(u))
	default:
		return fmt.Errorf("%s must use https, not %s", field, quoteURL(u.Scheme))
	}
}

// quoteURL shows vendor-supplied text safely in a message.
func quoteURL(s string) string {
	return fmt.Sprintf("%q", sanitize(s, maxLocationLen, nil))
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validateIssuer applies RFC 8414 section 2's rule: an https URL (http on
// loopback) with no query or fragment.
func validateIssuer(issuer string) error {
	if err := ValidateEndpointURL("issuer", issuer); err != nil {
		return err
	}
	if strings.Contains(issuer, "?") {
		return errors.New("issuer must not have a query")
	}
	return nil
}

// WellKnownURLs lists where an issuer's metadata may be, in the order
// Discover tries them: RFC 8414 section 3.1's, with the well-known suffix
// inserted between the host and the issuer's path, then OpenID Connect
// Discovery's, with the suffix appended to the issuer. For an issuer with
// no path the two differ only in the suffix.
func WellKnownURLs(issuer string) ([]string, error) {
	if err := validateIssuer(issuer); err != nil {
		return nil, err
	}
	u, _ := url.Parse(issuer)
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	base := u.Scheme + "://" + u.Host
	return []string{
		base + WellKnownOAuth + path,
		base + path + WellKnownOpenID,
	}, nil
}

// Discover fetches the issuer's metadata: RFC 8414's document, and if the
// server has none (a 4xx, or a body that is not JSON), OpenID Connect's.
// The document's issuer must equal issuer exactly and every URL in it
// must pass ValidateEndpointURL. t is the TLS config for a private CA
// (nil for none). Redirects are not followed.
//
// Its errors are a *DiscoveryError holding each attempt's *Error,
// *TransportError or *MetadataError, or a plain error for an issuer that
// is not a valid URL.
func (c *Client) Discover(ctx context.Context, issuer string, t *TLSConfig) (*Metadata, error) {
	if c == nil || c.http == nil {
		return nil, errors.New("tokenclient: the Client was not made with New")
	}
	urls, err := WellKnownURLs(issuer)
	if err != nil {
		return nil, err
	}
	de := &DiscoveryError{Issuer: issuer}
	for _, u := range urls {
		md, err := c.fetchMetadata(ctx, u, issuer, t)
		if err == nil {
			return md, nil
		}
		de.Attempts = append(de.Attempts, err)
		de.URLs = append(de.URLs, u)
		if !tryNext(err) {
			break
		}
	}
	return nil, de
}

// tryNext reports whether a failed attempt leaves room for the next URL:
// the server has no document there. A server error, a network failure or
// a document that is wrong (a mismatched issuer above all) ends
// discovery: trying elsewhere could only find a second opinion.
func tryNext(err error) bool {
	var (
		ve *Error
		me *MetadataError
	)
	switch {
	case errors.As(err, &ve):
		return ve.StatusCode >= 400 && ve.StatusCode < 500 && ve.StatusCode != http.StatusTooManyRequests
	case errors.As(err, &me):
		return me.notJSON
	}
	return false
}

func (c *Client) fetchMetadata(ctx context.Context, rawURL, issuer string, t *TLSConfig) (*Metadata, error) {
	u, err := parseEndpointURL("metadata URL", rawURL)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("building the request to %s failed", displayEndpoint(u))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	const noun = "metadata endpoint"
	a, err := c.roundTrip(ctx, &built{req: req, u: u}, noun, t, nil, MaxMetadataBytes)
	if err != nil {
		return nil, err
	}
	where := displayEndpoint(u)
	switch {
	case a.status >= 300 && a.status < 400, a.status >= 400:
		e := endpointError(newError(a.status, a.statusText, a.header, u, nil), noun)
		if fields, _ := decodeBody(a.header, a.body, nil); fields != nil {
			e.Code, e.Description, e.ErrorURI, _ = errorFields(fields, nil)
		}
		return nil, e
	case a.status < 200 || a.status >= 300:
		return nil, endpointError(newError(a.status, a.statusText, a.header, u, nil), noun)
	}
	md, err := ParseMetadata(a.body, issuer)
	if err != nil {
		var me *MetadataError
		if errors.As(err, &me) {
			me.URL = where
		}
		return nil, err
	}
	md.Source = where
	return md, nil
}

// ParseMetadata reads a metadata document and checks it: a JSON object no
// larger than MaxMetadataBytes whose issuer equals issuer (when issuer is
// not empty) and is itself valid, with a token_endpoint, every URL valid
// by ValidateEndpointURL, and every list a list of strings. Members it
// does not know are ignored. Its errors are *MetadataErrors. It is
// exported for fuzzing and for callers that fetch the document
// themselves.
func ParseMetadata(body []byte, issuer string) (*Metadata, error) {
	raw, err := decodeMetadata(body)
	if err != nil {
		return nil, err
	}
	md := &Metadata{}
	if err := readMetadataIssuer(raw, md, issuer); err != nil {
		return nil, err
	}
	if err := readMetadataURLs(raw, md); err != nil {
		return nil, err
	}
	if err := readMetadataLists(raw, md); err != nil {
		return nil, err
	}
	if err := readMTLSEndpointAliases(raw, md); err != nil {
		return nil, err
	}
	if v, ok := raw["tls_client_certificate_bound_access_tokens"]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &md.TLSClientCertificateBoundAccessTokens); err != nil {
			return nil, metadataFail("tls_client_certificate_bound_access_tokens is not a boolean")
		}
	}
	return md, nil
}

// metadataFail is a *MetadataError with a formatted reason.
func metadataFail(format string, args ...any) error {
	return &MetadataError{Reason: fmt.Sprintf(format, args...)}
}

// decodeMetadata reads the document's members: it must be one JSON
// object of at most MaxMetadataBytes.
func decodeMetadata(body []byte) (map[string]json.RawMessage, error) {
	if len(body) > MaxMetadataBytes {
		return nil, metadataFail("the document is larger than %d KiB", MaxMetadataBytes>>10)
	}
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(bytes.TrimSpace(body), bom))
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, &MetadataError{Reason: "the document is not a JSON object", notJSON: true}
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return nil, &MetadataError{Reason: "the document is not a JSON object", notJSON: true}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, metadataFail("more data after the JSON object")
	}
	return raw, nil
}

// metadataString reads member name into dst if it is present and not
// null; it must be a string.
func metadataString(raw map[string]json.RawMessage, name string, dst *string) error {
	v, ok := raw[name]
	if !ok || string(v) == "null" {
		return nil
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return fmt.Errorf("%s is not a string", name)
	}
	return nil
}

// readMetadataIssuer reads the issuer, which must be issuer when that is
// not empty, and valid.
func readMetadataIssuer(raw map[string]json.RawMessage, md *Metadata, issuer string) error {
	if err := metadataString(raw, "issuer", &md.Issuer); err != nil {
		return metadataFail("%s", err)
	}
	switch {
	case md.Issuer == "":
		return metadataFail("it has no issuer")
	case issuer != "" && md.Issuer != issuer:
		// RFC 8414 section 3.3: the issuer must be identical to the one
		// the URL was made from, or the document is not to be used.
		return &MetadataError{
			Reason:         fmt.Sprintf("its issuer %s is not %s, the issuer asked for", quoteURL(md.Issuer), quoteURL(issuer)),
			IssuerMismatch: true,
			Got:            sanitize(md.Issuer, maxLocationLen, nil),
		}
	}
	if err := validateIssuer(md.Issuer); err != nil {
		return metadataFail("%s", err)
	}
	return nil
}

// readMetadataURLs reads the endpoint URLs; token_endpoint is required.
func readMetadataURLs(raw map[string]json.RawMessage, md *Metadata) error {
	urls := []struct {
		name     string
		dst      *string
		required bool
	}{
		{"authorization_endpoint", &md.AuthorizationEndpoint, false},
		{"token_endpoint", &md.TokenEndpoint, true},
		{"revocation_endpoint", &md.RevocationEndpoint, false},
		{"device_authorization_endpoint", &md.DeviceAuthorizationEndpoint, false},
		{"jwks_uri", &md.JWKSURI, false},
	}
	for _, f := range urls {
		if err := metadataString(raw, f.name, f.dst); err != nil {
			return metadataFail("%s", err)
		}
		switch {
		case *f.dst == "" && f.required:
			return metadataFail("it has no %s", f.name)
		case *f.dst == "":
			continue
		}
		if err := ValidateEndpointURL(f.name, *f.dst); err != nil {
			return metadataFail("%s", err)
		}
	}
	return nil
}

// readMetadataLists reads the lists of strings it knows.
func readMetadataLists(raw map[string]json.RawMessage, md *Metadata) error {
	lists := []struct {
		name string
		dst  *[]string
	}{
		{"token_endpoint_auth_methods_supported", &md.TokenEndpointAuthMethodsSupported},
		{"token_endpoint_auth_signing_alg_values_supported", &md.TokenEndpointAuthSigningAlgValuesSupported},
		{"revocation_endpoint_auth_methods_supported", &md.RevocationEndpointAuthMethodsSupported},
		{"code_challenge_methods_supported", &md.CodeChallengeMethodsSupported},
		{"grant_types_supported", &md.GrantTypesSupported},
		{"scopes_supported", &md.ScopesSupported},
	}
	for _, f := range lists {
		v, ok := raw[f.name]
		if !ok || string(v) == "null" {
			continue
		}
		var list []string
		if err := json.Unmarshal(v, &list); err != nil {
			return metadataFail("%s is not a list of strings", f.name)
		}
		if len(list) > maxMetadataList {
			return metadataFail("%s has more than %d entries", f.name, maxMetadataList)
		}
		for _, s := range list {
			if s == "" || len(s) > maxMetadataListEntry || sanitize(s, maxMetadataListEntry, nil) != s {
				return metadataFail("%s has an empty, overlong or unprintable entry", f.name)
			}
		}
		if len(list) > 0 {
			*f.dst = list
		}
	}
	return nil
}

// readMTLSEndpointAliases reads mtls_endpoint_aliases (RFC 8705 section
// 5): the aliases of the endpoints it uses, each a valid URL.
func readMTLSEndpointAliases(raw map[string]json.RawMessage, md *Metadata) error {
	v, ok := raw["mtls_endpoint_aliases"]
	if !ok || string(v) == "null" {
		return nil
	}
	var aliases map[string]json.RawMessage
	if err := json.Unmarshal(v, &aliases); err != nil {
		return metadataFail("mtls_endpoint_aliases is not an object")
	}
	for _, name := range []string{"token_endpoint", "revocation_endpoint", "device_authorization_endpoint", "authorization_endpoint"} {
		a, ok := aliases[name]
		if !ok || string(a) == "null" {
			continue
		}
		var s string
		if err := json.Unmarshal(a, &s); err != nil {
			return metadataFail("mtls_endpoint_aliases.%s is not a string", name)
		}
		if err := ValidateEndpointURL("mtls_endpoint_aliases."+name, s); err != nil {
			return metadataFail("%s", err)
		}
		if md.MTLSEndpointAliases == nil {
			md.MTLSEndpointAliases = map[string]string{}
		}
		md.MTLSEndpointAliases[name] = s
	}
	return nil
}
