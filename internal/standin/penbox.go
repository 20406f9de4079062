package standin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// codeLifetime is how long an authorization code stays redeemable (RFC 6749
// section 4.1.2 recommends at most 10 minutes).
const codeLifetime = 10 * time.Minute

// newPenbox plays Penbox CONNECT (connect.penbox.io): a standard
// authorization-code flow at /authorize, then /token for
// authorization_code and refresh_token grants, client credentials in a form
// body. There is no user to ask, so /authorize consents at once and
// redirects with a code.
func newPenbox(s *Server) *Vendor {
	v := newVendor(s, VendorPenbox, "/token", 3600*time.Second)
	v.handleToken = (*Vendor).penboxToken
	v.routes["/authorize"] = v.penboxAuthorize
	return v
}

// IssueCode returns a fresh authorization code for the client and
// redirectURI, as /authorize would, without PKCE. Only Penbox has codes; it
// panics on another vendor, an unknown client, or a redirect URI the
// client has not registered.
func (v *Vendor) IssueCode(clientID, redirectURI, scope string) string {
	if v.name != VendorPenbox {
		panic("standin: only penbox issues authorization codes")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.clients[clientID]
	if !ok {
		panic(fmt.Sprintf("standin: %s has no client %q", v.name, clientID))
	}
	if !c.redirectRegistered(redirectURI) {
		panic(fmt.Sprintf("standin: %s client %q has no registered redirect URI %q", v.name, clientID, redirectURI))
	}
	return v.issueCodeLocked(clientID, redirectURI, scope, "")
}

// issueCodeLocked makes a code. It is built from standard base64, so it
// holds characters ('/', '=', often '+') that must be URL-encoded in the
// redirect: Penbox tells partners to URL-decode the code, and a client that
// forgets fails here as it would there.
func (v *Vendor) issueCodeLocked(clientID, redirectURI, scope, challenge string) string {
	code := "penbox-code/" + base64.StdEncoding.EncodeToString(randBytes(25))
	v.codes[code] = &codeRecord{
		clientID:    clientID,
		redirectURI: redirectURI,
		scope:       scope,
		challenge:   challenge,
		expiry:      v.srv.now().Add(codeLifetime),
	}
	return code
}

// pkceChallenge is RFC 7636's S256 code challenge syntax: base64url of a
// SHA-256, 43 characters.
var pkceChallenge = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// pkceVerifier is RFC 7636's code_verifier syntax.
var pkceVerifier = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// penboxAuthorize answers GET /penbox/authorize. Until client_id and
// redirect_uri are known good (the client exists, and the redirect_uri is
// one it registered), errors are shown to the "user" (400 plain text);
// after, they go back to the client in the redirect (RFC 6749 section
// 4.1.2.1). Parameters it does not know are ignored (RFC 6749 section
// 3.1).
func (v *Vendor) penboxAuthorize(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed: /authorize takes GET", http.StatusMethodNotAllowed)
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		http.Error(w, "malformed query string", http.StatusBadRequest)
		return
	}
	if len(q["client_id"]) > 1 || len(q["redirect_uri"]) > 1 {
		http.Error(w, "client_id and redirect_uri must not be repeated", http.StatusBadRequest)
		return
	}
	client, target, msg := v.penboxAuthorizeClient(q)
	if msg != "" {
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	clientID, redirectURI := q.Get("client_id"), q.Get("redirect_uri")

	state := q.Get("state")
	redirect := func(params url.Values) {
		tq := target.Query()
		for k, vals := range params {
			tq[k] = vals
		}
		if state != "" {
			tq.Set("state", state)
		}
		u := *target
		u.RawQuery = tq.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
	challenge, scope, e := penboxAuthorizeRequest(q, client)
	if e != nil {
		redirect(url.Values{"error": {e.code}, "error_description": {e.desc}})
		return
	}

	v.mu.Lock()
	code := v.issueCodeLocked(clientID, redirectURI, scope, challenge)
	v.mu.Unlock()
	redirect(url.Values{"code": {code}})
}

// penboxAuthorizeClient checks an authorization request's client_id and
// redirect_uri, and returns the client and the parsed redirect_uri, or
// what to tell the user instead.
func (v *Vendor) penboxAuthorizeClient(q url.Values) (*clientRecord, *url.URL, string) {
	clientID := q.Get("client_id")
	if clientID == "" {
		return nil, nil, "missing required parameter: client_id"
	}
	v.mu.Lock()
	client, ok := v.clients[clientID]
	v.mu.Unlock()
	if !ok {
		return nil, nil, fmt.Sprintf("unknown client_id %q", clientID)
	}
	redirectURI := q.Get("redirect_uri")
	if redirectURI == "" {
		return nil, nil, "missing required parameter: redirect_uri"
	}
	target, err := url.Parse(redirectURI)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return nil, nil, "redirect_uri must be an absolute http or https URL"
	}
	if target.Fragment != "" || strings.Contains(redirectURI, "#") {
		return nil, nil, "redirect_uri must not have a fragment"
	}
	// An unregistered redirect_uri is not told to the client through it:
	// that would send the user, and the error, to an address nobody
	// vouched for (RFC 6749 section 4.1.2.1).
	if !client.redirectRegistered(redirectURI) {
		return nil, nil, fmt.Sprintf("redirect_uri %q is not registered for client %q", redirectURI, clientID)
	}
	return client, target, ""
}

// penboxAuthorizeRequest checks the rest of an authorization request
// from client, and returns its PKCE challenge and the scope to grant, or
// the error to send back to the client in the redirect.
func penboxAuthorizeRequest(q url.Values, client *clientRecord) (challenge, scope string, e *oauthError) {
	fail := func(code, desc string) (string, string, *oauthError) {
		return "", "", &oauthError{status: http.StatusFound, code: code, desc: desc}
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if len(q[k]) > 1 {
			return fail("invalid_request", fmt.Sprintf("parameter %s must not be repeated", k))
		}
	}
	switch rt := q.Get("response_type"); rt {
	case "code":
	case "":
		return fail("invalid_request", "missing required parameter: response_type")
	default:
		return fail("unsupported_response_type", fmt.Sprintf("response_type %q is not supported; use code", rt))
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case challenge == "" && method != "":
		return fail("invalid_request", "code_challenge_method without code_challenge")
	case challenge != "" && method != "S256":
		return fail("invalid_request", "code_challenge_method must be S256")
	case challenge != "" && !pkceChallenge.MatchString(challenge):
		return fail("invalid_request", "code_challenge must be the base64url (unpadded) SHA-256 of the code_verifier")
	}
	scope, e = grantScopes(client, q.Get("scope"))
	if e != nil {
		return fail(e.code, e.desc)
	}
	return challenge, scope, nil
}

// redirectRegistered reports whether the client registered uri: the exact
// string (RFC 6749 section 3.1.2.3: a registered full URI is compared by
// simple string comparison), or any when the client registered none (nil).
func (c *clientRecord) redirectRegistered(uri string) bool {
	return c.RedirectURIs == nil || slices.Contains(c.RedirectURIs, uri)
}

func (v *Vendor) penboxToken(req *tokenRequest) (*grantResult, *oauthError) {
	c, gt, e := v.bodyClientGrantLocked(req, formatForm)
	if e != nil {
		return nil, e
	}
	switch gt {
	case "authorization_code":
		return v.penboxCodeLocked(req, c)
	case "refresh_token":
		return v.refreshGrantLocked(req, c, "Bearer")
	default:
		return nil, errUnsupportedGrant(gt)
	}
}

func (v *Vendor) penboxCodeLocked(req *tokenRequest, c *clientRecord) (*grantResult, *oauthError) {
	code := req.param("code")
	if code == "" {
		return nil, errMissing("code")
	}
	redirectURI := req.param("redirect_uri")
	if redirectURI == "" {
		return nil, errMissing("redirect_uri")
	}
	cr, ok := v.codes[code]
	if !ok || cr.clientID != c.ID {
		return nil, errGrant("the authorization code is invalid or was issued to another client")
	}
	if cr.used {
		// RFC 6749 section 4.1.2: a code used twice may have been
		// stolen, so what was issued from it goes too.
		if cr.chain != nil {
			v.revokeChainLocked(cr.chain)
		}
		return nil, errGrant("the authorization code was already used; the tokens issued from it are revoked")
	}
	if !v.srv.now().Before(cr.expiry) {
		return nil, errGrant("the authorization code expired")
	}
	if redirectURI != cr.redirectURI {
		return nil, errGrant("redirect_uri does not match the one in the authorization request")
	}
	verifier := req.param("code_verifier")
	switch {
	case cr.challenge == "" && verifier != "":
		return nil, errGrant("code_verifier sent, but the authorization request had no code_challenge")
	case cr.challenge != "" && verifier == "":
		return nil, errGrant("code_verifier is required: the authorization request had a code_challenge")
	case cr.challenge != "":
		if !pkceVerifier.MatchString(verifier) {
			return nil, errRequest("malformed code_verifier: 43 to 128 characters of [A-Za-z0-9._~-]")
		}
		sum := sha256.Sum256([]byte(verifier))
		if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(cr.challenge)) != 1 {
			return nil, errGrant("code_verifier does not match the code_challenge")
		}
	}
	cr.used = true
	cr.chain = &chain{}
	at, life := v.issueAccessLocked(c.ID, cr.chain)
	rt := v.newToken("rt")
	v.addRefreshLocked(c.ID, rt, cr.scope, cr.chain)
	fields := map[string]any{
		"access_token":  at,
		"refresh_token": rt,
		"token_type":    "Bearer",
		"expires_in":    seconds(life),
	}
	if cr.scope != "" {
		fields["scope"] = cr.scope
	}
	return &grantResult{grantType: "authorization_code", fields: fields}, nil
}

// refreshScope returns the scope a refresh grants: what was asked,
// provided it is no more than the refresh token carries (RFC 6749 section
// 6). Tokens made by IssueRefreshToken carry no recorded scope; for them
// the client's allowed scopes are the limit.
func refreshScope(c *clientRecord, rt *refreshRecord, requested string) (string, *oauthError) {
	if rt.scope == "" {
		return grantScopes(c, requested)
	}
	return subsetScopes(rt.scope, requested)
}

// refreshGrantLocked is the refresh_token grant shared by penbox and
// generic: scope checked before the token is spent, rotation and reuse
// detection per Behavior, a new refresh token only when rotating.
func (v *Vendor) refreshGrantLocked(req *tokenRequest, c *clientRecord, tokenType string) (*grantResult, *oauthError) {
	presented := req.param("refresh_token")
	if presented == "" {
		return nil, errMissing("refresh_token")
	}
	requested := req.param("scope")
	if rec, ok := v.refresh[presented]; ok && rec.clientID == c.ID && requested != "" {
		if _, e := refreshScope(c, rec, requested); e != nil {
			return nil, e
		}
	}
	rt, next, e := v.redeemRefreshLocked(c.ID, presented)
	if e != nil {
		return nil, e
	}
	scope, e := refreshScope(c, rt, requested)
	if e != nil {
		return nil, e
	}
	at, life := v.issueAccessLocked(c.ID, rt.chain)
	fields := map[string]any{
		"access_token": at,
		"token_type":   tokenType,
		"expires_in":   seconds(life),
	}
	if next != "" {
		fields["refresh_token"] = next
	}
	if scope != "" {
		fields["scope"] = scope
	}
	return &grantResult{grantType: "refresh_token", fields: fields}, nil
}
