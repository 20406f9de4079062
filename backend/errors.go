package backend

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/store"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
)

// The errors here carry facts, never a path to run: what to do next names
// the mount the request came through, which only the path layer knows, so
// it composes the advice (hints.go in the root package).

// ErrNotFound means no credential has the name asked for.
var ErrNotFound = errors.New("no such credential")

// ErrClosed means the backend is shutting down (unmounted, sealed or no
// longer the active node): it starts no vendor call any more.
var ErrClosed = errors.New("the plugin backend is shutting down")

// ErrStorageWrite marks a failed storage write (see store.ErrWrite).
var ErrStorageWrite = store.ErrWrite

// GrantError is a failed grant, refresh or code exchange, with the
// credential and vendor it concerns. Its message never holds a secret: the
// token client redacts vendor text.
type GrantError struct {
	Name string
	// App is the app whose client settings the credential uses; empty
	// for a self-contained credential.
	App    string
	Vendor string
	// Preset and Grant say what was asked, and AuthStyle how the client
	// authenticated, for the advice: a client that signs assertions or
	// presents a certificate is not told to check a secret.
	Preset    *providers.Preset
	Grant     string
	AuthStyle string
	// Endpoint is the field naming the URL the request went to, for the
	// advice; "" is token_url.
	Endpoint string
	Err      error
}

func (e *GrantError) Error() string {
	if e.Endpoint == fieldDeviceAuthorizationURL {
		return fmt.Sprintf("credential %q: starting a device authorization failed: %v", e.Name, e.Err)
	}
	return fmt.Sprintf("credential %q: getting a token from %s failed: %v", e.Name, e.Vendor, e.Err)
}

// fieldDeviceAuthorizationURL names the device authorization endpoint.
const fieldDeviceAuthorizationURL = "device_authorization_url"

// URLField is the field naming the URL the failed request went to.
func (e *GrantError) URLField() string {
	if e.Endpoint == "" {
		return "token_url"
	}
	return e.Endpoint
}

func (e *GrantError) Unwrap() error { return e.Err }

// IsClientError reports whether the vendor refused the request itself (a
// 4xx other than 429): the config is wrong, not the vendor down.
func (e *GrantError) IsClientError() bool {
	var te *tokenclient.TransportError
	if errors.As(e.Err, &te) {
		// The TLS handshake reached the server and failed on what the
		// config holds (client certificate, CA bundle, host name); an
		// expired server certificate is the vendor's to fix.
		return te.TLSFailure != "" && te.TLSFailure != tokenclient.TLSServerCertificateInvalid
	}
	var ve *tokenclient.Error
	if !errors.As(e.Err, &ve) {
		return false
	}
	return ve.StatusCode >= 400 && ve.StatusCode < 500 && ve.StatusCode != http.StatusTooManyRequests ||
		(ve.StatusCode >= 200 && ve.StatusCode < 300 && ve.Code != "")
}

// IsRateLimited reports whether the vendor asked us to slow down.
func (e *GrantError) IsRateLimited() bool {
	var ve *tokenclient.Error
	return errors.As(e.Err, &ve) && (ve.StatusCode == http.StatusTooManyRequests || ve.Code == "slow_down")
}

// VendorCode is the vendor's error code, or "http_<status>" without one, or
// "" for failures that never got an answer.
func (e *GrantError) VendorCode() string {
	var ve *tokenclient.Error
	if !errors.As(e.Err, &ve) {
		return ""
	}
	if ve.Code != "" {
		return ve.Code
	}
	return fmt.Sprintf("http_%d", ve.StatusCode)
}

// lostAnswer reports whether the request reached the vendor and no answer
// came back, so the vendor may have acted on it.
func (e *GrantError) lostAnswer() bool {
	var te *tokenclient.TransportError
	return errors.As(e.Err, &te) && te.Sent
}

// ShortTokenError means the vendor issued a token that lives too briefly to
// hand out under the credential's expiry_skew.
type ShortTokenError struct {
	Name     string
	Lifetime time.Duration
}

func (e *ShortTokenError) Error() string {
	return fmt.Sprintf("credential %q: the new token lives %s, too short to hand out", e.Name, e.Lifetime)
}

// LeaseEndedError is a renewal of a lease whose token is no longer handed
// out (replaced, dropped by a config change, or at its hand-out end).
type LeaseEndedError struct{ Name string }

func (e *LeaseEndedError) Error() string {
	return fmt.Sprintf("the token this lease holds is no longer handed out for credential %q", e.Name)
}

// InputError is a caller's mistake found by the backend; it becomes a 400.
// A path in its message starts with MountPlaceholder, which the handler,
// knowing the request's mount, replaces.
type InputError struct{ Msg string }

// MountPlaceholder stands for the mount path in an InputError's message.
const MountPlaceholder = "<mount>/"

func (e *InputError) Error() string { return e.Msg }

// StateError is an exchange whose state matches no open authorization of
// the credential, or one that expired.
type StateError struct {
	Name string
	// ExpiredAt is set when the state was issued but is too old.
	ExpiredAt time.Time
}

func (e *StateError) Error() string {
	if !e.ExpiredAt.IsZero() {
		return fmt.Sprintf("the authorization for this state expired at %s (they last %s)", e.ExpiredAt.UTC().Format(time.RFC3339), StateTTL)
	}
	return fmt.Sprintf("state does not match an open authorization of credential %q (it was never issued, or was already used)", e.Name)
}

// ReauthError means the credential's refresh token is dead (or missing):
// calling the vendor cannot help, a human must act.
type ReauthError struct {
	Name, Vendor, Reason string
	// CanConnect says the credential has an authorization flow, and
	// CanDevice a device flow, so the account can be connected again.
	CanConnect, CanDevice bool
}

// reauthError is the ReauthError of credential name, resolved to s.
func reauthError(name string, s *model.Settings, reason string) *ReauthError {
	return &ReauthError{Name: name, Vendor: s.Preset.DisplayName, Reason: reason, CanConnect: s.AuthorizeURL != "", CanDevice: s.DeviceAuthorizationURL != ""}
}

func (e *ReauthError) Error() string {
	msg := fmt.Sprintf("credential %q needs reauthorization: %s refused its refresh token", e.Name, e.Vendor)
	if e.Reason != "" {
		msg = fmt.Sprintf("credential %q needs reauthorization: %s", e.Name, e.Reason)
	}
	return msg + "; the plugin will not call the vendor for it until then"
}

// StaticExpiredError means a user-minted token has run out, or was never
// given.
type StaticExpiredError struct {
	Name      string
	ExpiredAt time.Time // zero when the credential never had a token
	// Hint is the vendor's own way to mint a token, from the preset.
	Hint string
}

func (e *StaticExpiredError) Error() string {
	if e.ExpiredAt.IsZero() {
		return fmt.Sprintf("credential %q has grant_type=static but no access_token", e.Name)
	}
	return fmt.Sprintf("the static token of credential %q expired at %s", e.Name, e.ExpiredAt.UTC().Format(time.RFC3339))
}

// StaticRefreshError is a refresh asked of a static token.
type StaticRefreshError struct{ Name, Hint string }

func (e *StaticRefreshError) Error() string {
	return fmt.Sprintf("credential %q holds a static token, which cannot be refreshed: %s", e.Name, e.Hint)
}

// BackoffError means recent grants failed and the next is not due yet.
type BackoffError struct {
	Last    *GrantError
	RetryAt time.Time
}

func (e *BackoffError) Error() string {
	return fmt.Sprintf("%s (not calling the vendor again before %s)", e.Last.Error(), e.RetryAt.UTC().Format(time.RFC3339))
}

func (e *BackoffError) Unwrap() error { return e.Last }

// UnknownOutcomeError means a refresh was sent to a vendor that rotates
// refresh tokens and no answer came back, even after the one prompt retry
// (or with retries turned off): retrying with the stored token could present
// a token the vendor already replaced, which some vendors punish by
// revoking the whole chain.
type UnknownOutcomeError struct{ Name, Vendor string }

func (e *UnknownOutcomeError) Error() string {
	return fmt.Sprintf("credential %q: a refresh was sent to %s but no answer came back, and %s rotates refresh tokens, so the stored one may already be replaced; "+
		"the plugin does not retry on its own", e.Name, e.Vendor, e.Vendor)
}

// ConfigError is a stored config that does not resolve; the operator must
// fix it.
type ConfigError struct {
	Name string
	Err  error
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("credential %q is misconfigured: %v", e.Name, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// NotFoundError is a connection that does not exist: its app's name, and
// whether the app is missing too, say what to do first. It is ErrNotFound.
type NotFoundError struct {
	Name, App  string
	AppMissing bool
}

func (e *NotFoundError) Error() string { return ErrNotFound.Error() }

// Is makes a NotFoundError ErrNotFound.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// IsNotFound reports whether err means the credential does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// HeldError is a storage write that failed for an entry holding a refresh
// token the vendor just issued: the plugin holds it in memory and keeps
// trying to store it.
type HeldError struct {
	Name string
	Err  error
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("the vendor issued credential %q a new refresh token but storing it failed (%v); the plugin holds it in memory and retries the write on every periodic tick and the next operation on the credential", e.Name, e.Err)
}

func (e *HeldError) Unwrap() error { return e.Err }
