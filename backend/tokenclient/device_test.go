package tokenclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const testDeviceCode = "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS"

func TestStartDeviceAuthorization(t *testing.T) {
	t.Parallel()
	full := `{"device_code":"` + testDeviceCode + `","user_code":"WDJB-MJHT","verification_uri":"https://example.com/device",` +
		`"verification_uri_complete":"https://example.com/device?user_code=WDJB-MJHT","expires_in":1800,"interval":5}`
	tests := []struct {
		name      string
		reply     http.HandlerFunc
		auth      Request
		want      *DeviceAuthorization
		wantBody  map[string]string
		wantErr   string
		wantClass Failure
	}{
		{
			name: "RFC 8628's example, public client", reply: replyJSON(200, full),
			auth: Request{ClientID: "cid", AuthStyle: AuthNone, Scopes: []string{"openid", "offline_access"}, ExtraParams: map[string]string{"audience": "api"}},
			want: &DeviceAuthorization{DeviceCode: testDeviceCode, UserCode: "WDJB-MJHT", VerificationURI: "https://example.com/device",
				VerificationURIComplete: "https://example.com/device?user_code=WDJB-MJHT", ExpiresIn: 30 * time.Minute, Interval: 5 * time.Second},
			wantBody: map[string]string{"client_id": "cid", "scope": "openid offline_access", "audience": "api"},
		},
		{
			name: "Google's verification_url, no interval, string expires_in", reply: replyJSON(200, `{"device_code":"dev-code-google","user_code":"U","verification_url":"https://www.google.com/device","expires_in":"1800"}`),
			auth:     Request{ClientID: "cid", ClientSecret: testClientSecret, AuthStyle: AuthBody},
			want:     &DeviceAuthorization{DeviceCode: "dev-code-google", UserCode: "U", VerificationURI: "https://www.google.com/device", ExpiresIn: 30 * time.Minute, Interval: DefaultDeviceInterval},
			wantBody: map[string]string{"client_id": "cid", "client_secret": testClientSecret},
		},
		{
			name: "interval 0 is the default", reply: replyJSON(200, `{"device_code":"dev-code-zero","user_code":"U","verification_uri":"http://127.0.0.1/device","expires_in":60,"interval":0}`),
			auth: Request{ClientID: "cid", AuthStyle: AuthNone},
			want: &DeviceAuthorization{DeviceCode: "dev-code-zero", UserCode: "U", VerificationURI: "http://127.0.0.1/device", ExpiresIn: time.Minute, Interval: DefaultDeviceInterval},
		},
		{name: "missing device_code", reply: replyJSON(200, `{"user_code":"U","verification_uri":"https://x/d","expires_in":60}`), wantErr: "device authorization endpoint answered with an unusable response: missing device_code", wantClass: FailureResponse},
		{name: "missing user_code", reply: replyJSON(200, `{"device_code":"d","verification_uri":"https://x/d","expires_in":60}`), wantErr: "missing user_code"},
		{name: "user_code with a control character", reply: replyJSON(200, `{"device_code":"d","user_code":"U\u001b[2J","verification_uri":"https://x/d","expires_in":60}`), wantErr: "control or invisible"},
		{name: "numeric user_code", reply: replyJSON(200, `{"device_code":"d","user_code":12,"verification_uri":"https://x/d","expires_in":60}`), wantErr: "user_code is a JSON number"},
		{name: "missing verification_uri", reply: replyJSON(200, `{"device_code":"d","user_code":"U","expires_in":60}`), wantErr: "missing verification_uri"},
		{name: "http verification_uri", reply: replyJSON(200, `{"device_code":"d","user_code":"U","verification_uri":"http://idp.example/d","expires_in":60}`), wantErr: "verification_uri must use https"},
		{name: "javascript verification_uri_complete", reply: replyJSON(200, `{"device_code":"d","user_code":"U","verification_uri":"https://x/d","verification_uri_complete":"javascript:alert(1)","expires_in":60}`), wantErr: "verification_uri_complete"},
		{name: "missing expires_in", reply: replyJSON(200, `{"device_code":"d","user_code":"U","verification_uri":"https://x/d"}`), wantErr: "missing expires_in"},
		{name: "expires_in over a day", reply: replyJSON(200, `{"device_code":"d","user_code":"U","verification_uri":"https://x/d","expires_in":90000}`), wantErr: "longer than 24h0m0s"},
		{name: "interval over the maximum", reply: replyJSON(200, `{"device_code":"d","user_code":"U","verification_uri":"https://x/d","expires_in":60,"interval":3600}`), wantErr: "interval is longer"},
		{name: "negative interval", reply: replyJSON(200, `{"device_code":"d","user_code":"U","verification_uri":"https://x/d","expires_in":60,"interval":-1}`), wantErr: "interval -1 is not positive"},
		{name: "device code too long", reply: replyJSON(200, `{"device_code":"`+strings.Repeat("d", 5000)+`","user_code":"U","verification_uri":"https://x/d","expires_in":60}`), wantErr: "longer than 4096"},
		{name: "HTML", reply: replyWith(200, map[string]string{"Content-Type": "text/html"}, "<html>"), wantErr: "check the device authorization endpoint URL"},
		{name: "unauthorized_client", reply: replyJSON(400, `{"error":"unauthorized_client","error_description":"device flow not enabled"}`), wantErr: "vendor error unauthorized_client: device flow not enabled (HTTP 400 Bad Request)", wantClass: FailureClient},
		{name: "404", reply: replyWith(404, nil, "not found"), wantErr: "device authorization endpoint answered HTTP 404 Not Found", wantClass: FailureRefused},
		{
			name: "an error beside a device code does not show it", reply: replyJSON(200, `{"device_code":"`+testDeviceCode+`","error":"server_error","error_description":"issued `+testDeviceCode+` then failed"}`),
			wantErr: "vendor error server_error: issued [redacted] then failed", wantClass: FailureUnavailable,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := newFakeVendor(t, tc.reply)
			auth := tc.auth
			if auth.ClientID == "" {
				auth = Request{ClientID: "cid", AuthStyle: AuthNone}
			}
			d, err := New().StartDeviceAuthorization(context.Background(), auth, v.URL+"/device")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				if tc.wantClass != "" && Classify(err) != tc.wantClass {
					t.Errorf("Classify = %q, want %q", Classify(err), tc.wantClass)
				}
				if strings.Contains(err.Error(), testDeviceCode) {
					t.Errorf("error shows the device code: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("StartDeviceAuthorization: %v", err)
			}
			if *d != *tc.want {
				t.Errorf("got  %+v\nwant %+v", d, tc.want)
			}
			if tc.wantBody != nil {
				form, _ := url.ParseQuery(string(v.requests()[0].Body))
				if len(form) != len(tc.wantBody) {
					t.Errorf("body = %v, want %v", form, tc.wantBody)
				}
				for k, want := range tc.wantBody {
					if form.Get(k) != want {
						t.Errorf("%s = %q, want %q", k, form.Get(k), want)
					}
				}
			}
			for _, verb := range []string{"%v", "%+v", "%#v"} {
				if s := fmt.Sprintf(verb, d); strings.Contains(s, d.DeviceCode) {
					t.Errorf("%s shows the device code: %s", verb, s)
				}
			}
		})
	}
}

func TestPollDeviceToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		reply        http.HandlerFunc
		interval     time.Duration
		want         DeviceStatus
		wantInterval time.Duration
		wantErr      string
	}{
		{name: "pending", reply: replyJSON(400, `{"error":"authorization_pending"}`), interval: 5 * time.Second, want: DevicePending, wantInterval: 5 * time.Second},
		{name: "slow_down adds 5 s", reply: replyJSON(400, `{"error":"slow_down"}`), interval: 5 * time.Second, want: DeviceSlowDown, wantInterval: 10 * time.Second},
		{name: "slow_down from the default", reply: replyJSON(400, `{"error":"slow_down"}`), want: DeviceSlowDown, wantInterval: 10 * time.Second},
		{name: "slow_down is capped", reply: replyJSON(400, `{"error":"slow_down"}`), interval: MaxDeviceInterval, want: DeviceSlowDown, wantInterval: MaxDeviceInterval},
		{name: "denied", reply: replyJSON(400, `{"error":"access_denied","error_description":"the user said no"}`), interval: time.Second, want: DeviceDenied, wantInterval: time.Second},
		{name: "expired", reply: replyJSON(400, `{"error":"expired_token"}`), interval: time.Second, want: DeviceExpired, wantInterval: time.Second},
		{name: "GitHub's 200 with an error", reply: replyWith(200, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, "error=authorization_pending"), interval: time.Second, want: DevicePending, wantInterval: time.Second},
		{name: "approved", reply: replyJSON(200, `{"access_token":"at","refresh_token":"rt","expires_in":60,"instance_url":"https://na1.example"}`), interval: time.Second, want: DeviceApproved, wantInterval: time.Second},
		{name: "another error is an error", reply: replyJSON(400, `{"error":"invalid_grant","error_description":"code `+testDeviceCode+` used"}`), interval: time.Second, wantErr: "vendor error invalid_grant: code [redacted] used"},
		{name: "a 500 is an error", reply: replyWith(500, nil, ""), interval: time.Second, wantErr: "token endpoint answered HTTP 500"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := newFakeVendor(t, tc.reply)
			auth := Request{TokenURL: v.URL + "/token", GrantType: "refresh_token", ClientID: "cid", AuthStyle: AuthNone,
				Params: map[string]string{"refresh_token": "x"}, ResponseFields: []string{"instance_url"}}
			p, err := New().PollDeviceToken(context.Background(), auth, testDeviceCode, tc.interval)
			form, _ := url.ParseQuery(string(v.requests()[0].Body))
			if form.Get("grant_type") != GrantTypeDeviceCode || form.Get("device_code") != testDeviceCode || form.Has("refresh_token") || form.Get("client_id") != "cid" {
				t.Errorf("body = %v", form)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("PollDeviceToken: %v", err)
			}
			if p.Status != tc.want || p.Interval != tc.wantInterval {
				t.Errorf("Status, Interval = %s, %s; want %s, %s", p.Status, p.Interval, tc.want, tc.wantInterval)
			}
			if p.Status.Done() != (tc.want == DeviceApproved || tc.want == DeviceDenied || tc.want == DeviceExpired) {
				t.Errorf("Done = %v", p.Status.Done())
			}
			switch {
			case p.Status == DeviceApproved:
				if p.Token == nil || p.Token.RefreshToken != "rt" || p.Answer != nil {
					t.Errorf("approved poll = %+v", p)
				}
				if u, _ := p.Token.Extra.Get("instance_url"); string(u) != `"https://na1.example"` {
					t.Errorf("instance_url = %q", u)
				}
			case p.Answer == nil || p.Token != nil:
				t.Errorf("poll = %+v, want the answer and no token", p)
			}
		})
	}
	if _, err := New().PollDeviceToken(context.Background(), Request{TokenURL: "https://x/t", ClientID: "c"}, "", 0); err == nil {
		t.Error("no device code: no error")
	}
}

// TestDeviceTransportError checks that a network failure is an error, not
// a status, so the caller backs off (RFC 8628 section 3.5).
func TestDeviceTransportError(t *testing.T) {
	t.Parallel()
	_, err := New().PollDeviceToken(context.Background(), Request{TokenURL: "http://" + refusedAddr(t) + "/token", ClientID: "c", AuthStyle: AuthNone}, testDeviceCode, 0)
	var te *TransportError
	if !errors.As(err, &te) || Classify(err) != FailureTransport {
		t.Errorf("error = %v", err)
	}
}
