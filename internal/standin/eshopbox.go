package standin

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// newEshopbox plays Eshopbox's /api/v1/generateToken: the app's long-lived
// refresh token, issued when the app is created, is exchanged for day-long
// access tokens. Everything (client_id, client_secret, grant_type,
// refresh_token) goes in the body; Eshopbox's docs do not say JSON or form,
// so both are taken unless SetAcceptBody narrows it. No new refresh token
// comes back unless Behavior.Rotate.
func newEshopbox(s *Server) *Vendor {
	v := newVendor(s, VendorEshopbox, "/api/v1/generateToken", 86400*time.Second)
	v.handleToken = (*Vendor).eshopboxToken
	v.acceptBody = []string{formatJSON, formatForm}
	return v
}

// SetAcceptBody restricts the body formats ("json", "form") the vendor takes;
// no argument restores the default, both. Only Eshopbox takes several
// formats; on other vendors it panics.
func (v *Vendor) SetAcceptBody(formats ...string) {
	if v.name != VendorEshopbox {
		panic("standin: SetAcceptBody is for eshopbox; use SetExpect for generic")
	}
	if len(formats) == 0 {
		formats = []string{formatJSON, formatForm}
	}
	for _, f := range formats {
		if f != formatJSON && f != formatForm {
			panic(fmt.Sprintf("standin: unknown body format %q (want json or form)", f))
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.acceptBody = append([]string(nil), formats...)
}

func (v *Vendor) eshopboxToken(req *tokenRequest) (*grantResult, *oauthError) {
	c, gt, e := v.bodyClientGrantLocked(req, v.acceptBody...)
	if e != nil {
		return nil, e
	}
	if gt != "refresh_token" {
		return nil, errUnsupportedGrant(gt)
	}
	presented := req.param("refresh_token")
	if presented == "" {
		return nil, errMissing("refresh_token")
	}
	rt, next, e := v.redeemRefreshLocked(c.ID, presented)
	if e != nil {
		return nil, e
	}
	at, life := v.issueAccessLocked(c.ID, rt.chain)
	fields := map[string]any{
		"access_token": at,
		"id_token":     v.idToken(c.ID, life),
		"scope":        "openid,profile",
		"expires_in":   seconds(life),
		"token_type":   "Bearer",
	}
	if next != "" {
		fields["refresh_token"] = next
	}
	return &grantResult{grantType: gt, fields: fields}, nil
}

// idToken returns a JWT shaped like the one Eshopbox's identity provider
// returns, signed with a throwaway key: nobody is meant to verify it.
func (v *Vendor) idToken(clientID string, life time.Duration) string {
	now := v.srv.now()
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	claims, _ := json.Marshal(map[string]any{
		"iss": "https://auth.myeshopbox.com/",
		"sub": "app|" + clientID,
		"aud": clientID,
		"iat": now.Unix(),
		"exp": now.Add(life).Unix(),
	})
	signing := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha256.New, []byte(randString(32)))
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}
