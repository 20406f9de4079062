package tokenclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// GrantTypeDeviceCode is the grant_type of a device access token request
// (RFC 8628 section 3.4).
const GrantTypeDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"

// Device flow bounds. RFC 8628 suggests 5 s as the default interval and
// adds 5 s per slow_down; a device code lives minutes (Microsoft's 15,
// Google's 30). Longer values are misread fields, not vendor choices.
const (
	DefaultDeviceInterval = 5 * time.Second
	SlowDownIncrement     = 5 * time.Second
	MaxDeviceInterval     = 10 * time.Minute
	MaxDeviceExpiry       = 24 * time.Hour
	maxDeviceCodeLen      = 4096
	maxUserCodeLen        = 128
)

// DeviceAuthorization is a device authorization response (RFC 8628
// section 3.2).
type DeviceAuthorization struct {
	// DeviceCode is what the client polls with. It is secret.
	DeviceCode string
	// UserCode is what the user types at VerificationURI.
	UserCode string
	// VerificationURI is where the user goes (Google's verification_url
	// is read too).
	VerificationURI string
	// VerificationURIComplete also carries the user code; "" if not sent.
	VerificationURIComplete string
	// ExpiresIn is how long the codes live.
	ExpiresIn time.Duration
	// Interval is how long to wait between polls: the server's, else
	// DefaultDeviceInterval.
	Interval time.Duration
}

// String describes the authorization without its device code.
func (d DeviceAuthorization) String() string {
	return fmt.Sprintf("tokenclient.DeviceAuthorization{UserCode: %q, VerificationURI: %q, VerificationURIComplete: %q, ExpiresIn: %s, Interval: %s, DeviceCode: %s}",
		d.UserCode, d.VerificationURI, d.VerificationURIComplete, d.ExpiresIn, d.Interval, present(d.DeviceCode))
}

// GoString is String, so that %#v does not print the device code either.
func (d DeviceAuthorization) GoString() string { return d.String() }

// StartDeviceAuthorization posts a device authorization request (RFC 8628
// section 3.1) to endpoint, with auth's client authentication (its
// GrantType, Params and ResponseFields do not apply; Scopes and
// ExtraParams do, since some servers want an audience here). A public
// client uses AuthNone. A client assertion's audience is auth's TokenURL
// unless Audience says otherwise.
//
// Its errors are those of Revoke, naming the "device authorization
// endpoint".
func (c *Client) StartDeviceAuthorization(ctx context.Context, auth Request, endpoint string) (*DeviceAuthorization, error) {
	cl := call{
		noun: "device authorization endpoint", urlNoun: "device authorization endpoint URL",
		endpoint: endpoint, params: map[string]string{}, extra: true, scopes: true,
	}
	a, b, secrets, err := c.post(ctx, auth, cl)
	if err != nil {
		return nil, err
	}
	fields, err := parseFields(a, b.u, cl.noun, secrets, "device_code")
	if err != nil {
		return nil, err
	}
	if s, ok := fields["device_code"].(string); ok && s != "" {
		secrets = append(secrets, s)
	}
	d, reason := deviceAuthorizationFrom(fields, secrets)
	if reason != "" {
		return nil, &ResponseError{Endpoint: cl.noun, Reason: reason}
	}
	return d, nil
}

// deviceAuthorizationFrom reads the response fields, or says what is
// wrong without quoting a code.
func deviceAuthorizationFrom(fields map[string]any, secrets []string) (*DeviceAuthorization, string) {
	d := &DeviceAuthorization{}
	if reason := readDeviceCodes(d, fields); reason != "" {
		return nil, reason
	}
	if reason := readVerificationURIs(d, fields); reason != "" {
		return nil, reason
	}
	if reason := readDeviceTimes(d, fields, secrets); reason != "" {
		return nil, reason
	}
	return d, ""
}

// stringField is a response field that must be a string if present, or
// why it is not.
func stringField(fields map[string]any, name string) (string, string) {
	switch v := fields[name].(type) {
	case nil:
		return "", ""
	case string:
		return v, ""
	default:
		return "", name + " is a JSON " + typeName(v) + ", not a string"
	}
}

// readDeviceCodes reads device_code and user_code into d.
func readDeviceCodes(d *DeviceAuthorization, fields map[string]any) string {
	var reason string
	if d.DeviceCode, reason = stringField(fields, "device_code"); reason != "" {
		return reason
	}
	switch {
	case strings.TrimSpace(d.DeviceCode) == "":
		return "missing device_code"
	case len(d.DeviceCode) > maxDeviceCodeLen:
		return fmt.Sprintf("device_code is longer than %d bytes", maxDeviceCodeLen)
	}
	if d.UserCode, reason = stringField(fields, "user_code"); reason != "" {
		return reason
	}
	switch {
	case strings.TrimSpace(d.UserCode) == "":
		return "missing user_code"
	case len(d.UserCode) > maxUserCodeLen:
		return fmt.Sprintf("user_code is longer than %d bytes", maxUserCodeLen)
	case sanitize(d.UserCode, maxUserCodeLen, nil) != d.UserCode:
		// It is shown to a person: no control or invisible characters.
		return "user_code has control or invisible characters"
	}
	return ""
}

// readVerificationURIs reads verification_uri (or verification_url) and
// verification_uri_complete into d.
func readVerificationURIs(d *DeviceAuthorization, fields map[string]any) string {
	var reason string
	if d.VerificationURI, reason = stringField(fields, "verification_uri"); reason != "" {
		return reason
	}
	if d.VerificationURI == "" {
		if d.VerificationURI, reason = stringField(fields, "verification_url"); reason != "" {
			return reason
		}
	}
	if d.VerificationURI == "" {
		return "missing verification_uri"
	}
	if err := ValidateEndpointURL("verification_uri", d.VerificationURI); err != nil {
		return err.Error()
	}
	if d.VerificationURIComplete, reason = stringField(fields, "verification_uri_complete"); reason != "" {
		return reason
	}
	if d.VerificationURIComplete != "" {
		if err := ValidateEndpointURL("verification_uri_complete", d.VerificationURIComplete); err != nil {
			return err.Error()
		}
	}
	return ""
}

// readDeviceTimes reads expires_in and interval into d.
func readDeviceTimes(d *DeviceAuthorization, fields map[string]any, secrets []string) string {
	if _, ok := fields["expires_in"]; !ok || fields["expires_in"] == nil {
		return "missing expires_in"
	}
	exp, reason := expiresIn(fields["expires_in"], secrets)
	switch {
	case reason != "":
		return reason
	case exp > MaxDeviceExpiry:
		return fmt.Sprintf("expires_in is longer than %s", MaxDeviceExpiry)
	}
	d.ExpiresIn = exp
	iv := fields["interval"]
	if n, ok := iv.(json.Number); ok {
		if f, err := n.Float64(); err == nil && f == 0 {
			// Some servers send 0 for "no preference".
			iv = nil
		}
	}
	interval, reason := expiresIn(iv, secrets)
	switch {
	case reason != "":
		return strings.Replace(reason, "expires_in", "interval", 1)
	case interval > MaxDeviceInterval:
		return fmt.Sprintf("interval is longer than %s", MaxDeviceInterval)
	case interval == 0:
		interval = DefaultDeviceInterval
	}
	d.Interval = interval
	return ""
}

// DeviceStatus is where a device authorization stands after a poll.
type DeviceStatus string

const (
	// DevicePending: the user has not answered yet (authorization_pending).
	DevicePending DeviceStatus = "pending"
	// DeviceSlowDown: polled too often (slow_down); Interval grew by 5 s
	// and must stay grown for every later poll.
	DeviceSlowDown DeviceStatus = "slow_down"
	// DeviceApproved: the user approved; Token holds the tokens.
	DeviceApproved DeviceStatus = "approved"
	// DeviceDenied: the user refused (access_denied).
	DeviceDenied DeviceStatus = "denied"
	// DeviceExpired: the device code expired (expired_token); start again.
	DeviceExpired DeviceStatus = "expired"
)

// Done reports whether polling should stop.
func (s DeviceStatus) Done() bool {
	return s == DeviceApproved || s == DeviceDenied || s == DeviceExpired
}

// DevicePoll is the outcome of one device access token request.
type DevicePoll struct {
	Status DeviceStatus
	// Token is set when Status is DeviceApproved.
	Token *Token
	// Interval is the least wait before the next poll.
	Interval time.Duration
	// Answer is the server's answer for every status but DeviceApproved,
	// for its description.
	Answer *Error
}

// PollDeviceToken makes one device access token request (RFC 8628 section
// 3.4) for deviceCode, with auth's client authentication and
// ResponseFields (its GrantType and Params are replaced). interval is the
// current polling interval (zero means DefaultDeviceInterval).
//
// The four answers RFC 8628 section 3.5 defines come back as a
// DevicePoll, not an error; anything else is an error as from Exchange.
// The caller waits Interval before polling again and keeps the grown
// interval after DeviceSlowDown.
func (c *Client) PollDeviceToken(ctx context.Context, auth Request, deviceCode string, interval time.Duration) (*DevicePoll, error) {
	if deviceCode == "" {
		return nil, errors.New("the device token request has no device code")
	}
	if interval <= 0 {
		interval = DefaultDeviceInterval
	}
	auth.GrantType = GrantTypeDeviceCode
	auth.GrantTypeInQuery = false
	auth.Params = map[string]string{"device_code": deviceCode}
	tok, err := c.Exchange(ctx, auth)
	if err == nil {
		return &DevicePoll{Status: DeviceApproved, Token: tok, Interval: interval}, nil
	}
	var ve *Error
	if !errors.As(err, &ve) {
		return nil, err
	}
	poll := &DevicePoll{Interval: interval, Answer: ve}
	switch ve.Code {
	case "authorization_pending":
		poll.Status = DevicePending
	case "slow_down":
		poll.Status = DeviceSlowDown
		poll.Interval = min(interval+SlowDownIncrement, MaxDeviceInterval)
	case "access_denied":
		poll.Status = DeviceDenied
	case "expired_token":
		poll.Status = DeviceExpired
	default:
		return nil, err
	}
	return poll, nil
}
