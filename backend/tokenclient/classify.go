package tokenclient

import (
	"errors"
	"net/http"
)

// Failure sorts an error of this package by who must act, for mapping to
// Vault's answers.
type Failure string

const (
	// FailureNone is no error.
	FailureNone Failure = ""
	// FailureRequest: the Request could not be sent as configured (a bad
	// URL, PEM or key, a missing signer). The operator fixes the config:
	// a 400.
	FailureRequest Failure = "request"
	// FailureClient: the server refused the client's authentication
	// (invalid_client, unauthorized_client, 401, 403). A 400.
	FailureClient Failure = "client"
	// FailureRefused: the server refused the request itself
	// (invalid_grant, invalid_request, invalid_scope,
	// unsupported_token_type, access_denied, other 4xx). A 400.
	FailureRefused Failure = "refused"
	// FailureRateLimited: 429, or slow_down outside a device flow.
	// logical.ErrUpstreamRateLimited.
	FailureRateLimited Failure = "rate_limited"
	// FailureUnavailable: 5xx, temporarily_unavailable, server_error, a
	// redirect. A 502.
	FailureUnavailable Failure = "unavailable"
	// FailureResponse: a 2xx that is not a usable answer. A 502.
	FailureResponse Failure = "response"
	// FailureTLS: a TLS handshake that failed over certificates (see
	// TransportError.TLSFailure). Usually the operator's CA bundle or
	// client certificate: a 400 with the advice.
	FailureTLS Failure = "tls"
	// FailureTransport: no answer at all. A 502.
	FailureTransport Failure = "transport"
	// FailureMetadata: discovery found no usable metadata or a
	// mismatched issuer. A 400: the issuer given is not the vendor's.
	FailureMetadata Failure = "metadata"
)

// Classify sorts err. Errors it does not know are FailureRequest, since
// every other error this package returns is one of its types.
func Classify(err error) Failure {
	if err == nil {
		return FailureNone
	}
	var (
		ve *Error
		re *ResponseError
		te *TransportError
		me *MetadataError
		de *DiscoveryError
	)
	switch {
	case errors.As(err, &me):
		return FailureMetadata
	case errors.As(err, &de):
		// Every attempt failed without a MetadataError: take the first's.
		if len(de.Attempts) > 0 {
			if f := Classify(de.Attempts[0]); f != FailureRequest {
				return f
			}
		}
		return FailureMetadata
	case errors.As(err, &ve):
		return classifyRefusal(ve)
	case errors.As(err, &re):
		return FailureResponse
	case errors.As(err, &te):
		if te.TLSFailure != "" {
			return FailureTLS
		}
		return FailureTransport
	}
	return FailureRequest
}

func classifyRefusal(e *Error) Failure {
	switch e.Code {
	case "invalid_client", "unauthorized_client":
		return FailureClient
	case "slow_down", "rate_limited":
		return FailureRateLimited
	case "temporarily_unavailable", "server_error":
		return FailureUnavailable
	}
	switch s := e.StatusCode; {
	case s == http.StatusTooManyRequests:
		return FailureRateLimited
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return FailureClient
	case s >= 300 && s < 400, s >= 500:
		return FailureUnavailable
	}
	return FailureRefused
}
