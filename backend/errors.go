package backend

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
)

// ErrNotFound means no credential has the name asked for.
var ErrNotFound = errors.New("no such credential")

// Sentinel phrases for our own failures, wrapped the same way everywhere.
const (
	errReadEntry    = "reading credential from storage"
	errPersistEntry = "storing credential"
	errDecodeEntry  = "decoding stored credential"
)

// GrantError is a failed grant or refresh, with the credential and vendor it
// concerns and what the operator can do about it. Its message never holds a
// secret: the token client redacts vendor text.
type GrantError struct {
	Name   string
	Vendor string
	Err    error
	Hint   string
}

func (e *GrantError) Error() string {
	msg := fmt.Sprintf("credential %q: getting a token from %s failed: %v", e.Name, e.Vendor, e.Err)
	if e.Hint != "" {
		msg += "; to fix: " + e.Hint
	}
	return msg
}

func (e *GrantError) Unwrap() error { return e.Err }

// IsClientError reports whether the vendor refused the request itself (a
// 4xx other than 429): the config is wrong, not the vendor down.
func (e *GrantError) IsClientError() bool {
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

// hintFor says what to fix for a failed grant: the preset's own advice
// first, then advice that holds for any OAuth2 server.
func hintFor(p *providers.Preset, name, grant string, err error) string {
	var ve *tokenclient.Error
	if !errors.As(err, &ve) {
		var re *tokenclient.ResponseError
		if errors.As(err, &re) {
			return "check that token_url points at the vendor's token endpoint"
		}
		var te *tokenclient.TransportError
		if errors.As(err, &te) {
			return "check that token_url is reachable from the Vault server; the plugin will try again on the next read"
		}
		return ""
	}
	if h := p.Hint(ve.Code, ve.StatusCode); h != "" {
		return h
	}
	cfg := "vendoroauth config/" + name
	switch ve.Code {
	case "invalid_client":
		return "check client_id and client_secret in " + cfg + "; if they are right, try auth_style=body or basic_encoding=raw"
	case "invalid_grant":
		if grant == providers.GrantRefreshToken {
			return "the refresh token was refused (expired, revoked or already used): write a new refresh_token to " + cfg
		}
		return "the server refused the grant: check client_id, client_secret and scopes in " + cfg
	case "invalid_scope":
		return "remove the scopes the client is not allowed from " + cfg + ", or grant them at the vendor"
	case "unauthorized_client":
		return "the client is not allowed grant_type=" + grant + " at the vendor: check grant_type in " + cfg
	case "unsupported_grant_type":
		return "the server does not take grant_type=" + grant + " as sent: check grant_type and grant_type_in_query in " + cfg
	case "invalid_request":
		return "check auth_style, body_format, grant_type_in_query, extra_params and extra_headers in " + cfg + " against the vendor's docs"
	case "":
	default:
		return ""
	}
	switch {
	case ve.StatusCode == http.StatusUnauthorized || ve.StatusCode == http.StatusForbidden:
		return "the token endpoint refused the client's credentials or headers: check client_secret, api_key and extra_headers in " + cfg
	case ve.StatusCode == http.StatusNotFound || ve.StatusCode == http.StatusMethodNotAllowed:
		return "check token_url in " + cfg
	case ve.StatusCode == http.StatusTooManyRequests:
		return "the vendor is rate-limiting token requests; reads will succeed again after it allows"
	case ve.StatusCode >= 500:
		return "the vendor's token endpoint is failing; reads will try again"
	case ve.StatusCode >= 300 && ve.StatusCode < 400:
		return "set token_url to the endpoint the vendor redirects to, if you trust it"
	}
	return ""
}

// InputError is a caller's mistake found by the backend; it becomes a 400.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

// ReauthError means the credential's refresh token is dead (or missing):
// calling the vendor cannot help, a human must act.
type ReauthError struct {
	Name, Vendor, Reason, Hint string
}

func (e *ReauthError) Error() string {
	msg := fmt.Sprintf("credential %q needs reauthorization: %s refused its refresh token", e.Name, e.Vendor)
	if e.Reason != "" {
		msg = fmt.Sprintf("credential %q needs reauthorization: %s", e.Name, e.Reason)
	}
	return msg + "; the plugin will not call the vendor for it until then; to fix: " + e.Hint
}

// StaticExpiredError means a user-minted token has run out.
type StaticExpiredError struct {
	Name      string
	ExpiredAt time.Time
	Hint      string
}

func (e *StaticExpiredError) Error() string {
	return fmt.Sprintf("the static token of credential %q expired at %s; to mint a new one: %s (vault write vendoroauth/config/%s access_token=... ttl=...)",
		e.Name, e.ExpiredAt.UTC().Format(time.RFC3339), e.Hint, e.Name)
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
// refresh tokens and no answer came back: retrying with the stored token
// could present a token the vendor already replaced, which some vendors
// punish by revoking the whole chain.
type UnknownOutcomeError struct{ Name, Vendor string }

func (e *UnknownOutcomeError) Error() string {
	return fmt.Sprintf("credential %q: a refresh was sent to %s but no answer came back, and %s rotates refresh tokens, so the stored one may already be replaced; "+
		"the plugin does not retry on its own: run vault write -f vendoroauth/refresh/%s to try once, or write a new refresh_token", e.Name, e.Vendor, e.Vendor, e.Name)
}
