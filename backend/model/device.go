package model

import "time"

// Device flow states, as device/<name> shows them.
const (
	DevicePending  = "pending"
	DeviceApproved = "approved"
	DeviceDenied   = "denied"
	DeviceExpired  = "expired"
	DeviceFailed   = "failed"
)

// DeviceFlow is one device authorization (RFC 8628) of a credential,
// stored at device/<name> while the user decides and for a day after.
type DeviceFlow struct {
	UserCode                string            `json:"user_code"`
	VerificationURI         string            `json:"verification_uri"`
	VerificationURIComplete string            `json:"verification_uri_complete,omitempty"`
	ExpiresAt               time.Time         `json:"expires_at"`
	Interval                time.Duration     `json:"interval"`
	State                   string            `json:"state"`
	Detail                  string            `json:"detail,omitempty"`
	StartedAt               time.Time         `json:"started_at"`
	App                     string            `json:"app,omitempty"`
	Metadata                map[string]string `json:"metadata,omitempty"`
	Scopes                  []string          `json:"scopes,omitempty"`
	// Existing: the flow connects a credential that existed when it
	// started, so it must not create it again once it is deleted.
	Existing bool `json:"existing,omitempty"`
	// DeviceCode is the secret the plugin polls with; it is stored, never
	// shown.
	DeviceCode string `json:"device_code,omitempty"`
	// Bound is where the device code may go: the token endpoint when the
	// flow started. A flow stored without it is not polled.
	Bound *Destination `json:"bound,omitempty"`
}
