package standin

import (
	"strings"
	"time"
)

// newOfficeRnD plays identity.officernd.com/oauth/token: client credentials
// in a form body (the docs: "the content-type header must be set to
// application/x-www-form-urlencoded", "the body needs to contain" client_id,
// client_secret, grant_type and scope), scopes limited to the application's
// permissions, tokens of 3599 seconds.
func newOfficeRnD(s *Server) *Vendor {
	v := newVendor(s, VendorOfficeRnD, "/oauth/token", 3599*time.Second)
	v.handleToken = (*Vendor).officerndToken
	return v
}

func (v *Vendor) officerndToken(req *tokenRequest) (*grantResult, *oauthError) {
	c, gt, e := v.bodyClientGrantLocked(req, formatForm)
	if e != nil {
		return nil, e
	}
	if gt != "client_credentials" {
		return nil, errUnsupportedGrant(gt)
	}
	requested := req.param("scope")
	if len(strings.Fields(requested)) == 0 {
		return nil, errMissing("scope")
	}
	granted, e := grantScopes(c, requested)
	if e != nil {
		return nil, e
	}
	at, life := v.issueAccessLocked(c.ID, nil)
	return &grantResult{grantType: gt, fields: map[string]any{
		"access_token": at,
		"token_type":   "Bearer",
		"expires_in":   seconds(life),
		"scope":        granted,
	}}, nil
}
