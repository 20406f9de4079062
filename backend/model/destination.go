package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// SystemTrust is the Trust of endpoints verified against the system's
// certificate authorities.
const SystemTrust = "system"

// Destination is where a secret may be sent: the endpoints it was written
// or born for, who may answer there (the CA bundle, or the system's CAs),
// and, for what signs client assertions, the audience those assertions
// name. A secret is only ever sent to one of its endpoints, to a server
// the same CAs vouch for, in an assertion for the same audience.
type Destination struct {
	Endpoints []string `json:"endpoints"`
	Trust     string   `json:"trust"`
	Audience  string   `json:"audience,omitempty"`
	// Routing is the hash of the extra headers that go with every request
	// (RoutingOf): a front end that several tenants share may route on
	// any of them, so a secret goes only with the headers it was written
	// with.
	Routing string `json:"routing,omitempty"`
}

// Bindings records, per secret field (client_secret, refresh_token,
// api_key, extra_headers, tls_client_key), the destination it was written
// or issued for.
type Bindings map[string]Destination

// TrustOf is the Trust of a CA bundle: SystemTrust for none, else the
// SHA-256 of its certificates (DER, in order), so that re-wrapping the
// same PEM does not count as a change.
func TrustOf(caBundle string) string {
	if strings.TrimSpace(caBundle) == "" {
		return SystemTrust
	}
	h := sha256.New()
	rest := []byte(caBundle)
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			h.Write(b.Bytes)
			n++
		}
	}
	if n == 0 {
		// Not PEM (refused elsewhere): the text itself.
		h.Write([]byte(caBundle))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// RoutingOf is the Routing of a request with these extra headers: the
// SHA-256 of their canonical names and values, "" for none.
func RoutingOf(headers map[string]string) string {
	if len(headers) == 0 {
		return ""
	}
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	slices.Sort(names)
	h := sha256.New()
	for _, k := range names {
		_, _ = fmt.Fprintf(h, "%s\x00%s\x00", http.CanonicalHeaderKey(k), headers[k]) // a hash takes every write
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Allows reports whether a request to endpoint, whose server the CAs of
// trust must vouch for, sent with the extra headers of routing, may carry
// a secret bound to d.
func (d Destination) Allows(endpoint, trust, routing string) bool {
	return d.Trust == trust && d.Routing == routing && slices.Contains(d.Endpoints, endpoint)
}

// Covers reports whether everything bound to d may go wherever o's
// secrets go: the same trust and audience, and every endpoint of o.
func (d Destination) Covers(o Destination) bool {
	if d.Trust != o.Trust || d.Audience != o.Audience || d.Routing != o.Routing {
		return false
	}
	for _, e := range o.Endpoints {
		if !slices.Contains(d.Endpoints, e) {
			return false
		}
	}
	return true
}

// Equal reports whether d and o are the same destination.
func (d Destination) Equal(o Destination) bool {
	return d.Trust == o.Trust && d.Audience == o.Audience && d.Routing == o.Routing && slices.Equal(d.Endpoints, o.Endpoints)
}

// String shows the destination in a message: its endpoints, and who may
// answer there.
func (d Destination) String() string {
	who := "the system's CAs"
	if d.Trust != SystemTrust {
		who = "the CA bundle " + shortHash(d.Trust)
	}
	shown := make([]string, len(d.Endpoints))
	for i, e := range d.Endpoints {
		shown[i] = DisplayURL(e)
	}
	s := strings.Join(shown, ", ") + " (trusting " + who
	if d.Audience != "" {
		s += ", audience " + DisplayURL(d.Audience)
	}
	if d.Routing != "" {
		s += ", with the extra headers " + shortHash(d.Routing)
	}
	return s + ")"
}

func shortHash(trust string) string {
	h := strings.TrimPrefix(trust, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return "sha256:" + h
}

// Clone returns a deep copy.
func (d Destination) Clone() Destination {
	d.Endpoints = slices.Clone(d.Endpoints)
	return d
}

// Clone returns a deep copy.
func (b Bindings) Clone() Bindings {
	if b == nil {
		return nil
	}
	out := make(Bindings, len(b))
	for k, d := range b {
		out[k] = d.Clone()
	}
	return out
}

// MisdirectedError is a request that would have sent a secret somewhere
// it was not written for; nothing was sent.
type MisdirectedError struct {
	// Secret names what would have gone: a field (client_secret,
	// refresh_token, ...) or what the plugin holds (the signing key, a
	// device code, a code verifier).
	Secret   tokenclient.SecretRef
	Endpoint string
	Trust    string
	Audience string
	Routing  string
	// Bound is where it may go; nil when it was never bound.
	Bound *Destination
}

func (e *MisdirectedError) Error() string {
	to := DisplayURL(e.Endpoint)
	if e.Trust != SystemTrust && e.Trust != "" {
		to += " (trusting the CA bundle " + shortHash(e.Trust) + ")"
	}
	if e.Audience != "" {
		to += " in an assertion for " + DisplayURL(e.Audience)
	}
	if e.Routing != "" {
		to += " with the extra headers " + shortHash(e.Routing)
	}
	if e.Bound == nil {
		return fmt.Sprintf("not sending the %s to %s: it is not bound to any destination", e.Secret, to)
	}
	return fmt.Sprintf("not sending the %s to %s: it was written for %s, and goes nowhere else", e.Secret, to, *e.Bound)
}

// DisplayURL shows a URL in a message as scheme://host/path: its query,
// user info and fragment may hold keys an operator put there.
func DisplayURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(a URL)"
	}
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}
