package model

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"maps"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Event types: each is one change of a connection's (or a self-contained
// credential's) state, written to its feed with the change.
const (
	// EventConnected: an account was connected, by a code exchange or an
	// approved device flow (a reconnection too).
	EventConnected = "connection.connected"
	// EventReauthNeeded: the vendor refused the refresh token
	// (invalid_grant); the account must be connected again.
	EventReauthNeeded = "connection.reauthorization_needed"
	// EventRecovered: a connection announced as needing reauthorization
	// got a token again (a new refresh token was written).
	EventRecovered = "connection.recovered"
	// EventDeleted: the connection was deleted.
	EventDeleted = "connection.deleted"
	// EventClientRejected: the vendor refused the client's own
	// authentication (invalid_client): every connection that uses it is
	// about to break.
	EventClientRejected = "app.client_rejected"
	// EventTokenHeld: a refresh token the vendor just issued could not be
	// stored and is held in memory until a write succeeds.
	EventTokenHeld = "refresh_token.held"
	// EventTokenStored: a held refresh token was stored.
	EventTokenStored = "refresh_token.stored"
)

// EventTypes lists every event type, for help and tests.
func EventTypes() []string {
	return []string{EventConnected, EventReauthNeeded, EventRecovered, EventDeleted, EventClientRejected, EventTokenHeld, EventTokenStored}
}

// Event is one entry of a feed. It holds no secret: names, the app, the
// connection's metadata (non-secret by definition), and for a refusal the
// vendor's error code and its description, redacted of the request's
// secrets.
type Event struct {
	// Seq is the event's place in its feed: the cursor a reader passes as
	// after. The store assigns it.
	Seq uint64 `json:"seq"`
	// ID is unique and the same in every delivery of the event: a
	// receiver deduplicates on it (the webhook-id header).
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      EventData `json:"data"`
}

// EventData is what an event is about.
type EventData struct {
	// App is the connection's app; "" for a self-contained credential.
	App string `json:"app,omitempty"`
	// Connection is the credential's full name (<app>/<account>, or the
	// self-contained credential's name).
	Connection string `json:"connection,omitempty"`
	// Account is the <account> part of a connection's name.
	Account  string            `json:"account,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// Via says how a connection was connected (authorization_code,
	// device_code) or recovered (refresh).
	Via              string `json:"via,omitempty"`
	ErrorCode        string `json:"error_code,omitempty"`
	ErrorDescription string `json:"error_description,omitempty"`
}

// maxDescription bounds an event's error description: a vendor's error
// page must not fill a feed.
const maxDescription = 300

// NewEvent is an event of type typ about credential name (with its app
// and metadata) at now, with a fresh ID. description must already be
// redacted of every secret; it is cut to a few hundred characters.
func NewEvent(typ, name, app string, metadata map[string]string, now time.Time) *Event {
	ev := &Event{ID: newEventID(), Type: typ, Timestamp: now.UTC(), Data: EventData{App: app, Connection: name, Metadata: maps.Clone(metadata)}}
	if app != "" {
		ev.Data.Account = strings.TrimPrefix(name, app+"/")
	}
	return ev
}

// WithError records a vendor's refusal in ev.
func (ev *Event) WithError(code, description string) *Event {
	ev.Data.ErrorCode = code
	ev.Data.ErrorDescription = cut(description, maxDescription)
	return ev
}

// Cursor is ev's place in its feed as the API shows it.
func (ev *Event) Cursor() string { return strconv.FormatUint(ev.Seq, 10) }

// Payload is the body of ev's webhook delivery, as the Standard Webhooks
// specification shapes it: type, timestamp and data, with the event's id
// and cursor beside them so a receiver can resync from the feed.
func (ev *Event) Payload() ([]byte, error) {
	return json.Marshal(struct {
		ID        string    `json:"id"`
		Cursor    string    `json:"cursor"`
		Type      string    `json:"type"`
		Timestamp time.Time `json:"timestamp"`
		Data      EventData `json:"data"`
	}{ev.ID, ev.Cursor(), ev.Type, ev.Timestamp, ev.Data})
}

// newEventID is "evt_" and 128 random bits in base32: unique without a
// counter, so IDs from two nodes (before and after a failover) never
// collide.
func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "evt_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// Delivery is how far the webhooks of a feed got: every event up to
// Delivered went to the receiver (or was given up after the retry
// window), so a restart, a kill or a failover resumes after it.
type Delivery struct {
	Delivered uint64 `json:"delivered"`
	// FailingSince is when the deliveries began to fail; zero while they
	// succeed.
	FailingSince time.Time `json:"failing_since,omitzero"`
	// LastError is the last failure, without the URL's query or user info
	// and without the receiver's answer body.
	LastError string `json:"last_error,omitempty"`
	// Dropped counts the events given up after the retry window.
	Dropped uint64 `json:"dropped,omitempty"`
}
