package standin

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// Device authorization states.
const (
	devicePending  = "pending"
	deviceApproved = "approved"
	deviceDenied   = "denied"
)

type deviceRecord struct {
	clientID, scope, userCode string
	expiry                    time.Time
	interval                  time.Duration
	lastPoll                  time.Time
	state                     string
	used                      bool
}

// userCodeAlphabet is RFC 8628 section 6.1's: consonants only, so codes
// spell no words and survive being read aloud.
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

func newUserCode() string {
	b := randBytes(8)
	var s strings.Builder
	for i, c := range b {
		if i == 4 {
			s.WriteByte('-')
		}
		s.WriteByte(userCodeAlphabet[int(c)%len(userCodeAlphabet)])
	}
	return s.String()
}

// handleDeviceAuthorization is RFC 8628 section 3.1's endpoint.
func (a *AuthServer) handleDeviceAuthorization(req *endpointRequest) (map[string]any, *oauthError) {
	c, e := a.authenticate(req)
	if e != nil {
		return nil, e
	}
	if !c.allowsGrant(grantDeviceCode) {
		return nil, &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", desc: "the client may not use the device authorization grant"}
	}
	scope, e := grantScopes(&clientRecord{Client: Client{Scopes: c.Scopes}}, req.param("scope"))
	if e != nil {
		return nil, e
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for code, d := range a.devices {
		if now.After(d.expiry.Add(time.Hour)) {
			delete(a.userCodes, d.userCode)
			delete(a.devices, code)
		}
	}
	code := "as-dc-" + randString(32)
	user := newUserCode()
	for a.userCodes[user] != "" {
		user = newUserCode()
	}
	a.devices[code] = &deviceRecord{clientID: c.ID, scope: scope, userCode: user, expiry: now.Add(a.opts.DeviceLifetime),
		interval: a.opts.DeviceInterval, state: devicePending}
	a.userCodes[user] = code
	verify := a.Endpoints(req.listener).Verification
	return map[string]any{
		"device_code":               code,
		"user_code":                 user,
		"verification_uri":          verify,
		"verification_uri_complete": verify + "?user_code=" + user,
		"expires_in":                seconds(a.opts.DeviceLifetime),
		"interval":                  seconds(a.opts.DeviceInterval),
	}, nil
}

// pollDeviceLocked answers a device code grant (RFC 8628 section 3.5).
func (a *AuthServer) pollDeviceLocked(req *endpointRequest, c *authClientRecord) (*deviceRecord, *oauthError) {
	code := req.param("device_code")
	if code == "" {
		return nil, errMissing("device_code")
	}
	a.stats.DevicePolls++
	d, ok := a.devices[code]
	switch {
	case !ok || d.clientID != c.ID:
		return nil, errGrant("the device code is invalid or was issued to another client")
	case d.used:
		return nil, errGrant("the device code was already used")
	}
	now := a.now()
	if !now.Before(d.expiry) {
		return nil, &oauthError{status: http.StatusBadRequest, code: "expired_token", desc: "the device code expired: start again"}
	}
	if !d.lastPoll.IsZero() && now.Sub(d.lastPoll) < d.interval {
		// Too fast: the interval grows by 5 s for this and every later
		// request.
		d.interval += deviceSlowDownStep
		d.lastPoll = now
		a.stats.SlowDowns++
		return nil, &oauthError{status: http.StatusBadRequest, code: "slow_down",
			desc: fmt.Sprintf("polled too often: wait at least %d seconds between requests", seconds(d.interval))}
	}
	d.lastPoll = now
	switch d.state {
	case deviceDenied:
		return nil, &oauthError{status: http.StatusBadRequest, code: "access_denied", desc: "the user denied the authorization"}
	case deviceApproved:
		d.used = true
		return d, nil
	}
	return nil, &oauthError{status: http.StatusBadRequest, code: "authorization_pending", desc: "the user has not answered yet"}
}

// ApproveDevice approves the authorization with this user code, as the
// user would at the verification page.
func (a *AuthServer) ApproveDevice(userCode string) error {
	return a.answerDevice(userCode, deviceApproved)
}

// DenyDevice denies the authorization with this user code.
func (a *AuthServer) DenyDevice(userCode string) error { return a.answerDevice(userCode, deviceDenied) }

func (a *AuthServer) answerDevice(userCode, state string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := a.devices[a.userCodes[normalizeUserCode(userCode)]]
	switch {
	case d == nil:
		return errors.New("standin: no device authorization has that user code")
	case !a.now().Before(d.expiry):
		return errors.New("standin: that device authorization expired")
	case d.state != devicePending:
		return fmt.Errorf("standin: that device authorization is already %s", d.state)
	}
	d.state = state
	return nil
}

// normalizeUserCode takes a user code as a person types it: any case,
// with or without the dash.
func normalizeUserCode(s string) string {
	s = strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(s))
	if len(s) == 8 {
		s = s[:4] + "-" + s[4:]
	}
	return s
}

var verificationPage = template.Must(template.New("device").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Stand-in device authorization</title></head>
<body><h1>Connect a device</h1>
{{if .Message}}<p>{{.Message}}</p>{{end}}
<form method="post">
<label>Code <input name="user_code" value="{{.UserCode}}" autocomplete="off"></label>
<button name="action" value="approve">Approve</button>
<button name="action" value="deny">Deny</button>
</form></body></html>
`))

// serveVerification is the verification page a person would visit: GET
// shows a form (prefilled from ?user_code=), POST approves or denies.
func (a *AuthServer) serveVerification(w http.ResponseWriter, r *http.Request) {
	data := struct{ UserCode, Message string }{UserCode: r.URL.Query().Get("user_code")}
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 4096)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		data.UserCode = r.PostForm.Get("user_code")
		var err error
		switch r.PostForm.Get("action") {
		case "approve":
			err = a.ApproveDevice(data.UserCode)
			data.Message = "Approved: the device is connected."
		case "deny":
			err = a.DenyDevice(data.UserCode)
			data.Message = "Denied."
		default:
			err = errors.New("choose approve or deny")
		}
		if err != nil {
			data.Message = strings.TrimPrefix(err.Error(), "standin: ")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusBadRequest)
			_ = verificationPage.Execute(w, data)
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = verificationPage.Execute(w, data)
}
