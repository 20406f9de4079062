package model

import (
	"maps"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// SchemaVersion is written into every stored entry and app so later
// versions can upgrade old ones. Version 2 moved the last vendor error to
// status/<name> and open authorizations to authz/<name>/, so recording an
// error or starting an authorization no longer rewrites the secrets.
const SchemaVersion = 2

// Token is a cached access token.
type Token struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	Scope       string    `json:"scope,omitempty"`
	ExpiresAt   time.Time `json:"expires_at"`
	ObtainedAt  time.Time `json:"obtained_at"`
	// Replaces is when the token this one replaced by a refresh was
	// obtained (zero when it replaced none: the first token, or one after
	// the previous was dropped). Leases of that token keep renewing to
	// their own end; those of any other earlier token do not.
	Replaces time.Time `json:"replaces,omitzero"`
	// Fields and SecretFields are the response fields the config asked to
	// keep (response_fields, secret_response_fields).
	Fields       map[string]string `json:"fields,omitempty"`
	SecretFields map[string]string `json:"secret_fields,omitempty"`
}

// Status is the part of a credential's health that decides what the
// plugin may do, stored with the tokens it is about.
type Status struct {
	LastRefreshedAt time.Time `json:"last_refreshed_at,omitempty"`
	// NeedsReauthorization is set when the vendor refused the refresh
	// token with invalid_grant: it is dead, calling again cannot help, and
	// a human must connect the account again or write a new one.
	NeedsReauthorization bool `json:"needs_reauthorization,omitempty"`
	// ReauthReason is the vendor's refusal, for the message.
	ReauthReason string `json:"reauth_reason,omitempty"`
	// RotationSeen records that the vendor has rotated this credential's
	// refresh token, so a refresh whose outcome is unknown may have killed
	// the stored one.
	RotationSeen bool `json:"rotation_seen,omitempty"`
	// OutcomeUnknownAt is when a refresh of a rotating credential was sent
	// and no answer came back (after the one prompt retry, if any): the
	// stored refresh token may be dead, and the plugin does not call the
	// vendor on its own until an operator acts or an answer clears it.
	OutcomeUnknownAt time.Time `json:"outcome_unknown_at,omitempty"`
}

// Problem is the last failed vendor call of a credential, stored on its own
// (status/<name>, not seal-wrapped: it holds no secret) so recording it
// does not rewrite the secrets.
type Problem struct {
	LastError     string    `json:"last_error,omitempty"`
	LastErrorCode string    `json:"last_error_code,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitempty"`
}

// Authorization is an authorization-code flow started with authorize/<name>
// and not yet exchanged, stored at authz/<name>/<hash of its state>.
type Authorization struct {
	RedirectURI  string    `json:"redirect_uri"`
	Scopes       []string  `json:"scopes,omitempty"`
	CodeVerifier string    `json:"code_verifier,omitempty"`
	ExpiresAt    time.Time `json:"expires_at"`
	// App and Metadata shape a connection the exchange creates or
	// reconnects.
	App      string            `json:"app,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Entry is one credential as stored: config, cached token and the status
// that goes with them in a single storage entry, so a rotated refresh
// token and the access token it came with are written together or not at
// all.
type Entry struct {
	Version int    `json:"version"`
	Config  Config `json:"config"`
	Token   *Token `json:"token,omitempty"`
	Status  Status `json:"status"`

	// Upgrade holds what an entry written by an older release keeps
	// differently, until its next write (backend/store reads and moves
	// it).
	Upgrade *Upgrade `json:"-"`
}

// Upgrade is what an entry of an older schema keeps that the current one
// keeps elsewhere: schema 1's inline last error and open authorizations.
type Upgrade struct {
	Problem        Problem
	Authorizations map[string]*Authorization
}

// Clone returns a deep copy, so cached entries can be shared read-only.
func (e *Entry) Clone() *Entry {
	out := *e
	out.Config = e.Config.Clone()
	if e.Token != nil {
		t := *e.Token
		t.Fields, t.SecretFields = maps.Clone(t.Fields), maps.Clone(t.SecretFields)
		out.Token = &t
	}
	return &out
}

// ApplyToken puts a vendor's token response into the entry and reports
// whether it rotated the refresh token. sentAt is when the request was
// sent: the vendor's expires_in counts from about then, so an expiry
// counted from the answer's arrival would be late by the round trip.
func (e *Entry) ApplyToken(tok *tokenclient.Token, s *Settings, sentAt time.Time) bool {
	lifetime := tok.ExpiresIn
	if lifetime <= 0 {
		lifetime = s.DefaultTTL
	}
	var replaces time.Time
	if e.Token != nil {
		replaces = e.Token.ObtainedAt
	}
	e.Token = &Token{
		AccessToken: tok.AccessToken,
		TokenType:   tok.TokenType,
		Scope:       tok.Scope,
		ObtainedAt:  sentAt,
		ExpiresAt:   sentAt.Add(lifetime),
		Replaces:    replaces,
	}
	rotated := false
	// Only a refresh-token credential keeps a refresh token: Bold Penguin,
	// for one, sends one with client credentials that it will not accept.
	if s.Grant.HoldsRefreshToken && tok.RefreshToken != "" && tok.RefreshToken != e.Config.RefreshToken {
		e.Config.RefreshToken = tok.RefreshToken
		e.Status.RotationSeen = true
		rotated = true
	}
	if rotated {
		// RevokeURLFor stays: a rotated refresh token continues the one
		// stored, and is revoked where that one would have been.
		e.Config.RefreshTokenFor = s.TokenURL
	}
	e.Status.LastRefreshedAt = sentAt
	e.Status.NeedsReauthorization, e.Status.ReauthReason = false, ""
	e.Status.OutcomeUnknownAt = time.Time{}
	return rotated
}
