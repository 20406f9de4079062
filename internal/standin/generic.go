package standin

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Expect is how the generic vendor wants clients to talk to it, so the
// plugin's generic settings can be checked strictly. Zero values are the
// defaults.
type Expect struct {
	// AuthStyle is "basic" (default) or "body".
	AuthStyle string
	// BasicEncoding is "rfc6749" (default: id and secret are form-decoded
	// after taking them from the Basic header, RFC 6749 section 2.3.1) or
	// "raw" (taken as they are).
	BasicEncoding string
	// BodyFormat is "form" (default) or "json".
	BodyFormat string
	// GrantTypeInQuery wants grant_type in the query string, not the body.
	GrantTypeInQuery bool
	// Headers must be present once, with exactly these values.
	Headers map[string]string
	// Params are extra body parameters that must be present with exactly
	// these values.
	Params map[string]string
}

// newGeneric plays a plain RFC 6749 token endpoint whose client
// authentication and request shape are set by SetExpect. It takes
// client_credentials and refresh_token grants.
func newGeneric(s *Server) *Vendor {
	v := newVendor(s, VendorGeneric, "/token", 3600*time.Second)
	v.handleToken = (*Vendor).genericToken
	v.expect = normalizeExpect(Expect{})
	return v
}

func normalizeExpect(e Expect) Expect {
	if e.AuthStyle == "" {
		e.AuthStyle = "basic"
	}
	if e.BasicEncoding == "" {
		e.BasicEncoding = "rfc6749"
	}
	if e.BodyFormat == "" {
		e.BodyFormat = formatForm
	}
	h := make(map[string]string, len(e.Headers))
	for k, x := range e.Headers {
		h[k] = x
	}
	p := make(map[string]string, len(e.Params))
	for k, x := range e.Params {
		p[k] = x
	}
	e.Headers, e.Params = h, p
	return e
}

// SetExpect sets what the generic vendor checks requests against. It panics
// on another vendor or a value it does not know.
func (v *Vendor) SetExpect(e Expect) {
	if v.name != VendorGeneric {
		panic("standin: SetExpect is for the generic vendor")
	}
	e = normalizeExpect(e)
	if e.AuthStyle != "basic" && e.AuthStyle != "body" {
		panic(fmt.Sprintf("standin: unknown AuthStyle %q (want basic or body)", e.AuthStyle))
	}
	if e.BasicEncoding != "rfc6749" && e.BasicEncoding != "raw" {
		panic(fmt.Sprintf("standin: unknown BasicEncoding %q (want rfc6749 or raw)", e.BasicEncoding))
	}
	if e.BodyFormat != formatForm && e.BodyFormat != formatJSON {
		panic(fmt.Sprintf("standin: unknown BodyFormat %q (want form or json)", e.BodyFormat))
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.expect = e
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (v *Vendor) genericToken(req *tokenRequest) (*grantResult, *oauthError) {
	ex := v.expect
	if e := checkExpected(req, ex); e != nil {
		return nil, e
	}
	var (
		c *clientRecord
		e *oauthError
	)
	if ex.AuthStyle == "body" {
		c, e = v.authBodyLocked(req)
	} else {
		c, e = v.authBasicLocked(req, ex.BasicEncoding == "rfc6749")
	}
	if e != nil {
		return nil, e
	}
	gt, e := req.grantType(ex.GrantTypeInQuery)
	if e != nil {
		return nil, e
	}
	var res *grantResult
	switch gt {
	case "client_credentials":
		scope, e := grantScopes(c, req.param("scope"))
		if e != nil {
			return nil, e
		}
		at, life := v.issueAccessLocked(c.ID, nil)
		res = &grantResult{grantType: gt, fields: map[string]any{
			"access_token": at,
			"token_type":   "Bearer",
			"expires_in":   seconds(life),
		}}
		if scope != "" {
			res.fields["scope"] = scope
		}
	case "refresh_token":
		if res, e = v.refreshGrantLocked(req, c, "Bearer"); e != nil {
			return nil, e
		}
	default:
		return nil, errUnsupportedGrant(gt)
	}
	v.formatExpiresIn(res.fields)
	return res, nil
}

// checkExpected checks the request's shape against ex: body format,
// query, headers and fixed parameters.
func checkExpected(req *tokenRequest, ex Expect) *oauthError {
	if e := req.checkBody(ex.BodyFormat); e != nil {
		return e
	}
	var e *oauthError
	if ex.GrantTypeInQuery {
		e = req.checkQuery("grant_type")
	} else {
		e = req.checkQuery()
	}
	if e != nil {
		return e
	}
	for _, k := range sortedKeys(ex.Headers) {
		if got := req.r.Header.Values(k); len(got) != 1 || got[0] != ex.Headers[k] {
			// The value is never echoed: such headers often hold keys.
			return errRequest("header %s is missing or has the wrong value", k)
		}
	}
	for _, k := range sortedKeys(ex.Params) {
		if !req.has(k) {
			return errMissing(k)
		}
		if req.param(k) != ex.Params[k] {
			return errRequest("parameter %s has the wrong value", k)
		}
	}
	return nil
}

// formatExpiresIn rewrites the expires_in of an answer (an int64) as
// Behavior.ExpiresInFormat says.
func (v *Vendor) formatExpiresIn(fields map[string]any) {
	n := fields["expires_in"].(int64)
	switch v.behavior.ExpiresInFormat {
	case "float":
		fields["expires_in"] = json.Number(strconv.FormatInt(n, 10) + ".0")
	case "string":
		fields["expires_in"] = strconv.FormatInt(n, 10)
	case "missing":
		delete(fields, "expires_in")
	case "duration":
		// Not a number: a broken vendor's answer, sent after rotating.
		fields["expires_in"] = strconv.FormatInt(n, 10) + "s"
	}
}
