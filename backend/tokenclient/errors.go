package tokenclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Error is a token endpoint's refusal: a non-2xx answer, or a 2xx answer
// whose body has an "error" field. Every string in it has been sanitised:
// it is safe to log.
type Error struct {
	// StatusCode is the HTTP status code, such as 400.
	StatusCode int
	// Status is the HTTP status line's code and text, such as
	// "400 Bad Request".
	Status string
	// Code is the RFC 6749 5.2 error code (invalid_grant, ...), or "" when
	// the body had none.
	Code string
	// Description is the vendor's error_description (or its "message"),
	// with control characters removed, capped at 300 characters, and every
	// secret of the Request replaced by "[redacted]".
	Description string
	// ErrorURI is the vendor's error_uri, sanitised like Description. It is
	// not part of Error(): it is for callers that want to link to it.
	ErrorURI string
	// RetryAfter is how long the vendor asked us to wait (a Retry-After
	// header, capped at a day), or 0 when it did not say.
	RetryAfter time.Duration
	// Location is, for a 3xx answer, the redirect target as
	// scheme://host/path: the query is left out because it may hold keys.
	Location string
	// Endpoint names the endpoint that refused ("revocation endpoint"),
	// "" for the token endpoint.
	Endpoint string
	// ClientCertificateNotRequested is set when a client certificate was
	// configured, the server refused the client, and its TLS handshake had
	// not asked for the certificate: the URL is probably not the vendor's
	// mutual-TLS endpoint (RFC 8705 section 5, mtls_endpoint_aliases).
	ClientCertificateNotRequested bool
}

// noun is the endpoint's name in messages.
func (e *Error) noun() string {
	if e.Endpoint == "" {
		return "token endpoint"
	}
	return e.Endpoint
}

// Error describes the refusal in one line, for example
// "vendor error invalid_grant: refresh token expired (HTTP 400 Bad Request)".
func (e *Error) Error() string {
	msg := e.message()
	if e.ClientCertificateNotRequested {
		msg += "; the server did not ask for the client certificate during the TLS handshake: use the vendor's mutual-TLS endpoint (its mtls_endpoint_aliases)"
	}
	return msg
}

func (e *Error) message() string {
	status := e.Status
	if status == "" {
		status = statusLine(e.StatusCode)
	}
	switch {
	case e.StatusCode >= 300 && e.StatusCode < 400:
		to := " without a Location"
		if e.Location != "" {
			to = " to " + e.Location
		}
		fix := "set token_url to the endpoint itself"
		if e.Endpoint != "" {
			fix = "set the " + e.Endpoint + " URL to the endpoint itself"
		}
		return e.noun() + " redirected (HTTP " + status + ")" + to +
			"; redirects are not followed: " + fix
	case e.Code != "":
		msg := "vendor error " + e.Code
		if e.Description != "" {
			msg += ": " + e.Description
		}
		return msg + " (HTTP " + status + ")"
	default:
		msg := e.noun() + " answered HTTP " + status
		if e.StatusCode >= 200 && e.StatusCode < 300 {
			// Without this a 200 would read like a success.
			msg += " with an error"
		}
		if e.Description != "" {
			msg += ": " + e.Description
		}
		return msg
	}
}

// ResponseError is a 2xx answer that is not a usable token response.
type ResponseError struct {
	// Reason says what was wrong with the response, without echoing it.
	Reason string
	// Endpoint names the endpoint ("device authorization endpoint"), ""
	// for the token endpoint.
	Endpoint string
	// IssuedRefreshToken is a refresh token found in an otherwise unusable
	// successful answer: the vendor may have rotated, so the caller must
	// keep it. It is a secret: never part of Error or GoString.
	IssuedRefreshToken string
}

// GoString keeps IssuedRefreshToken out of %#v.
func (e *ResponseError) GoString() string {
	return fmt.Sprintf("&tokenclient.ResponseError{Reason:%q, Endpoint:%q, IssuedRefreshToken:%t}", e.Reason, e.Endpoint, e.IssuedRefreshToken != "")
}

// Error describes what was wrong with the response.
func (e *ResponseError) Error() string {
	if e.Endpoint != "" {
		return e.Endpoint + " answered with an unusable response: " + e.Reason
	}
	return "token endpoint answered with an unusable token response: " + e.Reason
}

// TransportError is a failure to get any answer from the token endpoint.
type TransportError struct {
	// Sent reports whether the request may have reached the server: it is
	// true once the request was written, even if the answer was then lost.
	// A refresh whose outcome is unknown must not be blindly retried: the
	// server may have rotated the refresh token.
	Sent bool
	// Timeout reports whether the failure was a time limit (the client's
	// timeout or the context's deadline).
	Timeout bool
	// Err is the underlying network error.
	Err error
	// TLSFailure says which TLS handshake failure it was, "" for none or
	// one this package does not recognise. A client-certificate failure
	// is reported as not Sent: the server refused the connection before
	// it read the request.
	TLSFailure TLSFailure

	// msg is built, and redacted, where the error is made: that is where
	// the endpoint and the secrets are known. Keeping the secrets in the
	// error instead would show them to %#v.
	msg string
}

// Error says which endpoint failed and how.
func (e *TransportError) Error() string {
	if e.msg != "" {
		return e.msg
	}
	// A TransportError made outside this package (in a test) has no msg.
	var msg string
	switch {
	case e.Timeout && e.Sent:
		msg = "no answer from the token endpoint (timeout)"
	case e.Timeout:
		msg = "cannot reach the token endpoint (timeout)"
	case e.Sent:
		msg = "lost the connection to the token endpoint after sending the request (outcome unknown)"
	default:
		msg = "cannot reach the token endpoint"
	}
	if e.Err != nil && !e.Timeout {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying network error.
func (e *TransportError) Unwrap() error { return e.Err }

// newTransportError classifies a failure of http.Client.Do or of reading
// the body. limit is the time the request had, for the message.
func newTransportError(err error, endpoint string, sent, reading bool, limit time.Duration, secrets []string) *TransportError {
	return newTransportErrorAt("token endpoint", err, endpoint, sent, reading, limit, secrets, classifyTLS(err, false, nil))
}

// newTransportErrorAt is newTransportError for the endpoint named by noun,
// with the TLS failure already classified.
func newTransportErrorAt(noun string, err error, endpoint string, sent, reading bool, limit time.Duration, secrets []string, tlsFailure TLSFailure) *TransportError {
	switch tlsFailure {
	case TLSClientCertificateRequired, TLSClientCertificateRejected:
		// With TLS 1.3 the alert arrives after the request was written,
		// but the server refused the connection without reading it.
		sent, reading = false, false
	}
	endpoint = Redact(endpoint, secrets...)
	inner := err
	var ue *url.Error
	if errors.As(err, &ue) {
		// *url.Error's message repeats the method and the full URL,
		// query included: keep only what went wrong.
		inner = ue.Err
	}
	var te interface{ Timeout() bool }
	timeout := errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &te) && te.Timeout())
	e := &TransportError{Sent: sent, Timeout: timeout, Err: inner, TLSFailure: tlsFailure}

	within := ""
	if limit > 0 {
		// A context deadline leaves an odd remainder: 99.935304ms reads
		// worse than 100ms and says no more.
		if limit >= time.Second {
			limit = limit.Round(100 * time.Millisecond)
		} else {
			limit = limit.Round(time.Millisecond)
		}
		within = " within " + limit.String()
	}
	// Only the parts that come from outside are redacted: redacting the
	// whole message would also hit our own words when a secret is short.
	cause := Redact(fmt.Sprint(inner), secrets...)
	var msg string
	switch {
	case timeout && reading:
		msg = fmt.Sprintf("no complete answer from %s %s%s (timeout)", noun, endpoint, within)
	case timeout && sent:
		msg = fmt.Sprintf("no answer from %s %s%s (timeout)", noun, endpoint, within)
	case timeout:
		msg = fmt.Sprintf("cannot reach %s %s%s (timeout)", noun, endpoint, within)
	case errors.Is(err, context.Canceled) && sent:
		msg = fmt.Sprintf("request to %s %s was canceled after it was sent", noun, endpoint)
	case errors.Is(err, context.Canceled):
		msg = fmt.Sprintf("request to %s %s was canceled before it was sent", noun, endpoint)
	case reading:
		msg = fmt.Sprintf("reading the answer from %s %s failed: %s", noun, endpoint, cause)
	case sent:
		msg = fmt.Sprintf("lost the connection to %s %s after sending the request (outcome unknown): %s", noun, endpoint, cause)
	case tlsFailure != "":
		msg = fmt.Sprintf("the TLS handshake with %s %s failed: %s", noun, endpoint, cause)
	default:
		msg = fmt.Sprintf("cannot reach %s %s: %s", noun, endpoint, cause)
	}
	if advice := tlsFailure.advice(); advice != "" {
		msg += "; " + advice
	}
	e.msg = msg
	return e
}

// statusLine makes "400 Bad Request" from 400, for answers whose status
// text is missing.
func statusLine(code int) string {
	if text := http.StatusText(code); text != "" {
		return strconv.Itoa(code) + " " + text
	}
	return strconv.Itoa(code)
}
