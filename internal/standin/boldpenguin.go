package standin

import (
	"crypto/subtle"
	"net/http"
	"time"
)

// newBoldPenguin plays Bold Penguin's /auth/token: behind an AWS API Gateway
// that wants an x-api-key, HTTP Basic over the raw "client_id:client_secret"
// (the docs: combine them with a colon, then apply Base64; no form-encoding),
// grant_type=client_credentials in the query string, 12-hour tokens, and a
// Doorkeeper/OmniAuth-style response. The response carries a refresh token,
// but refresh tokens are not enabled for these clients: a refresh_token
// grant is refused.
func newBoldPenguin(s *Server) *Vendor {
	v := newVendor(s, VendorBoldPenguin, "/auth/token", 43200*time.Second)
	v.handleToken = (*Vendor).boldpenguinToken
	return v
}

// errForbidden is API Gateway's answer to a missing or wrong API key.
func errForbidden() *oauthError {
	return &oauthError{status: http.StatusForbidden,
		header: http.Header{"X-Amzn-Errortype": {"ForbiddenException"}},
		raw:    []byte(`{"message":"Forbidden"}`), rawCT: "application/json"}
}

func (v *Vendor) boldpenguinToken(req *tokenRequest) (*grantResult, *oauthError) {
	// The gateway: it knows every issued key, not which client uses it.
	keys := req.r.Header.Values("X-Api-Key")
	if len(keys) != 1 || !v.knownAPIKeyLocked(keys[0]) {
		return nil, errForbidden()
	}
	if e := req.checkAnyBody(); e != nil {
		return nil, e
	}
	if e := req.checkQuery("grant_type"); e != nil {
		return nil, e
	}
	gt, e := req.grantType(true)
	if e != nil {
		return nil, e
	}
	c, e := v.authBasicLocked(req, false)
	if e != nil {
		return nil, e
	}
	// Keys are issued per client: another client's key is a
	// misconfiguration the real service would also refuse.
	if subtle.ConstantTimeCompare([]byte(c.APIKey), []byte(keys[0])) != 1 {
		return nil, errForbidden()
	}
	if gt != "client_credentials" {
		return nil, errUnsupportedGrant(gt)
	}
	// A scope is still checked against the client, though Bold Penguin
	// always answers "scope": "".
	if _, e := grantScopes(c, req.param("scope")); e != nil {
		return nil, e
	}
	at, life := v.issueAccessLocked(c.ID, nil)
	return &grantResult{grantType: gt, fields: map[string]any{
		"access_token":  at,
		"token_type":    "bearer",
		"expires_in":    seconds(life),
		"refresh_token": v.newToken("rt"), // never accepted back
		"scope":         "",
		"uid":           c.uid,
		"info": map[string]any{
			"name":       "SmartData Integrations Service Client",
			"email":      nil,
			"first_name": "SmartData Integrations",
			"last_name":  "Service Client",
		},
		"extra": map[string]any{"raw_info": map[string]any{
			"user_id":               c.uid,
			"tenant_id":             c.uid,
			"tenant_name":           "kowalski",
			"tenant_subdomain":      "kowalski",
			"tenant_theme":          "default",
			"tenant_type":           nil,
			"primary_user_group_id": c.uid,
			"user_group_ids":        []string{c.uid},
			"name":                  "SmartData Integrations Service Client",
			"email":                 nil,
			"first_name":            "SmartData Integrations",
			"last_name":             "Service Client",
			"phone":                 nil,
			"permissions": []string{
				"::data/v2:get",
				"::universal/v3/universal-submit:get",
				"::universal/v3/universal-submit:post",
				"::audit/v1/report:get",
				"::location/v1/location_submit:post",
				"::company/v1/quick_submit:post",
				"::company/v1/company_submit:post",
			},
			"auth_uid":            nil,
			"created_at":          "2021-05-06T15:24:53.870Z",
			"tenant_created_at":   "2021-05-06T15:24:18.941Z",
			"completed_steps":     []string{},
			"accepted_agreements": []string{},
			"plan_sku":            nil,
			"sub_status":          nil,
		}},
	}}, nil
}

func (v *Vendor) knownAPIKeyLocked(key string) bool {
	if key == "" {
		return false
	}
	for _, c := range v.clients {
		if c.APIKey != "" && subtle.ConstantTimeCompare([]byte(c.APIKey), []byte(key)) == 1 {
			return true
		}
	}
	return false
}
