package model

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"
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
	// keep (response_fields, secret_response_fields) whose values are
	// strings; FieldsJSON and SecretFieldsJSON those whose values are not
	// (numbers, objects, arrays, booleans, null), as the JSON they came
	// as. They are apart so that an older release, which reads the first
	// two as strings, still reads the entry.
	Fields           map[string]string          `json:"fields,omitempty"`
	SecretFields     map[string]string          `json:"secret_fields,omitempty"`
	FieldsJSON       map[string]json.RawMessage `json:"fields_json,omitempty"`
	SecretFieldsJSON map[string]json.RawMessage `json:"secret_fields_json,omitempty"`
	// OmittedFields names the response fields the config asked to keep
	// that came too large to keep (tokenclient.MaxResponseFieldBytes);
	// a read of the token says so.
	OmittedFields []string `json:"omitted_fields,omitempty"`
}

// KeepFields records, of the response fields extra holds, those named in
// plain and secret, each as it came; and those the response had too large
// to keep.
func (t *Token) KeepFields(extra *tokenclient.ExtraFields, plain, secret []string) {
	if extra == nil {
		return
	}
	keep := func(names []string, strs *map[string]string, raws *map[string]json.RawMessage) {
		for _, n := range names {
			raw, ok := extra.Get(n)
			if !ok {
				continue
			}
			var s string
			if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
				if *strs == nil {
					*strs = map[string]string{}
				}
				(*strs)[n] = s
				continue
			}
			if *raws == nil {
				*raws = map[string]json.RawMessage{}
			}
			(*raws)[n] = slices.Clone(raw)
		}
	}
	keep(plain, &t.Fields, &t.FieldsJSON)
	keep(secret, &t.SecretFields, &t.SecretFieldsJSON)
	t.OmittedFields = slices.Clone(extra.Omitted)
}

// HandedOutFields is every kept response field as a read hands it out:
// a string as a string, anything else as the JSON value it came as
// (numbers as json.Number, so they keep every digit).
func (t *Token) HandedOutFields() map[string]any {
	out := map[string]any{}
	for _, m := range []map[string]string{t.Fields, t.SecretFields} {
		for k, v := range m {
			out[k] = v
		}
	}
	for _, m := range []map[string]json.RawMessage{t.FieldsJSON, t.SecretFieldsJSON} {
		for k, raw := range m {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			var v any
			if dec.Decode(&v) == nil {
				out[k] = v
			}
		}
	}
	return out
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
	// Bound is where the code verifier, and the code the vendor sends
	// back for it, may go: the token endpoint when the flow started. An
	// authorization stored without it is not exchanged.
	Bound *Destination `json:"bound,omitempty"`
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
	// Announced is the state the credential's feed last announced that a
	// later event must end (EventReauthNeeded, until a token is got
	// again: EventRecovered). Kept outside Status, which a write of new
	// credentials clears.
	Announced string `json:"announced,omitempty"`

	// Upgrade holds what an entry written by an older release keeps
	// differently, until its next write (backend/store reads and moves
	// it).
	Upgrade *Upgrade `json:"-"`
}

// Upgrade is what an entry of an older release keeps that the current one
// keeps elsewhere or differently: schema 1's inline last error and open
// authorizations, and, from before bindings, the endpoints its refresh
// token was recorded for.
type Upgrade struct {
	Problem         Problem
	Authorizations  map[string]*Authorization
	RefreshTokenFor string
	RevokeURLFor    string
	// PreviousFor is the token endpoint an app's previous client secret
	// was recorded for.
	PreviousFor string
}

// NeedsBinding reports whether e holds a secret without a binding: one
// stored by an older release.
func (e *Entry) NeedsBinding() bool {
	for _, f := range fields {
		if f.Holder == InConfig && f.Secret && f.IsSet(&e.Config) {
			if _, ok := e.Config.Bound[f.Name]; !ok {
				return true
			}
		}
	}
	return false
}

// BindUpgrade binds each secret of an entry written by an older release
// that holds none, as it resolves to s: a refresh token to the endpoints
// the release recorded it for (or, if it recorded none, where it goes
// now), with who may answer there now; any other secret to where it goes
// now. It reports whether it bound any; the caller stores the entry so the
// binding holds from then on.
func (e *Entry) BindUpgrade(s *Settings) bool {
	bound := false
	for _, f := range fields {
		if f.Holder != InConfig || !f.Secret || !f.IsSet(&e.Config) {
			continue
		}
		if _, ok := e.Config.Bound[f.Name]; ok {
			continue
		}
		d := ClientDestination(&e.Config, s)
		if f.ConnectionOnly() {
			d = AccountDestination(s)
			if u := e.Upgrade; u != nil && u.RefreshTokenFor != "" {
				d.Endpoints = []string{u.RefreshTokenFor}
				revoke := u.RevokeURLFor
				if revoke == "" && sameHost(s.RevocationURL, u.RefreshTokenFor) {
					// Recorded before revocation endpoints were: the
					// release revoked it on its token endpoint's host.
					revoke = s.RevocationURL
				}
				if revoke != "" && revoke != u.RefreshTokenFor {
					d.Endpoints = append(d.Endpoints, revoke)
				}
			}
		}
		if e.Config.Bound == nil {
			e.Config.Bound = Bindings{}
		}
		e.Config.Bound[f.Name] = d
		bound = true
	}
	return bound
}

// Clone returns a deep copy, so cached entries can be shared read-only.
func (e *Entry) Clone() *Entry {
	out := *e
	out.Config = e.Config.Clone()
	if e.Token != nil {
		t := *e.Token
		t.Fields, t.SecretFields = maps.Clone(t.Fields), maps.Clone(t.SecretFields)
		t.FieldsJSON, t.SecretFieldsJSON = maps.Clone(t.FieldsJSON), maps.Clone(t.SecretFieldsJSON)
		t.OmittedFields = slices.Clone(t.OmittedFields)
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
	// A rotated refresh token keeps the binding of the one it continues:
	// it came from where that one was sent, and is revoked where that one
	// would have been.
	if s.Grant.HoldsRefreshToken && tok.RefreshToken != "" && tok.RefreshToken != e.Config.RefreshToken {
		e.Config.RefreshToken = tok.RefreshToken
		e.Status.RotationSeen = true
		rotated = true
	}
	e.Status.LastRefreshedAt = sentAt
	e.Status.NeedsReauthorization, e.Status.ReauthReason = false, ""
	e.Status.OutcomeUnknownAt = time.Time{}
	return rotated
}

func sameHost(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return a != "" && err1 == nil && err2 == nil && ua.Host != "" && strings.EqualFold(ua.Host, ub.Host)
}

// Size is about how many bytes e holds: its strings and byte slices, and
// a word for every other value. The entry cache is bounded by it, because
// a hostile token endpoint chooses the length of what it answers (within
// tokenclient's bounds) and a count alone does not bound memory.
func (e *Entry) Size() int {
	if e == nil {
		return 0
	}
	return approxSize(reflect.ValueOf(e).Elem())
}

var timeType = reflect.TypeFor[time.Time]()

// approxSize is the bytes v holds, following pointers, slices and maps.
func approxSize(v reflect.Value) int {
	const word = 8
	switch v.Kind() {
	case reflect.String:
		return 2*word + v.Len()
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return word
		}
		return word + approxSize(v.Elem())
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return 3*word + v.Len()
		}
		n := 3 * word
		for i := range v.Len() {
			n += approxSize(v.Index(i))
		}
		return n
	case reflect.Map:
		n := 6 * word
		for it := v.MapRange(); it.Next(); {
			n += approxSize(it.Key()) + approxSize(it.Value())
		}
		return n
	case reflect.Struct:
		if v.Type() == timeType {
			return 3 * word // its location is shared
		}
		n := 0
		for i := range v.NumField() {
			n += approxSize(v.Field(i))
		}
		return n
	}
	return word
}
