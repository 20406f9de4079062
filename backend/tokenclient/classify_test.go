package tokenclient

import (
	"errors"
	"fmt"
	"testing"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want Failure
	}{
		{"nil", nil, FailureNone},
		{"a plain error", errors.New("bad PEM"), FailureRequest},
		{"invalid_client", &Error{StatusCode: 401, Code: "invalid_client"}, FailureClient},
		{"unauthorized_client in a 400", &Error{StatusCode: 400, Code: "unauthorized_client"}, FailureClient},
		{"a bare 403", &Error{StatusCode: 403}, FailureClient},
		{"invalid_grant", &Error{StatusCode: 400, Code: "invalid_grant"}, FailureRefused},
		{"unsupported_token_type", &Error{StatusCode: 400, Code: "unsupported_token_type"}, FailureRefused},
		{"a bare 404", &Error{StatusCode: 404}, FailureRefused},
		{"429", &Error{StatusCode: 429}, FailureRateLimited},
		{"slow_down", &Error{StatusCode: 400, Code: "slow_down"}, FailureRateLimited},
		{"temporarily_unavailable in a 400", &Error{StatusCode: 400, Code: "temporarily_unavailable"}, FailureUnavailable},
		{"503", &Error{StatusCode: 503}, FailureUnavailable},
		{"a redirect", &Error{StatusCode: 302}, FailureUnavailable},
		{"an unusable 200", &ResponseError{Reason: "x"}, FailureResponse},
		{"no answer", &TransportError{Sent: true}, FailureTransport},
		{"a TLS failure", &TransportError{TLSFailure: TLSUntrustedServer}, FailureTLS},
		{"wrapped", fmt.Errorf("credential x: %w", &Error{StatusCode: 401}), FailureClient},
		{"a metadata error", &MetadataError{Reason: "x", IssuerMismatch: true}, FailureMetadata},
		{"discovery with a mismatch", &DiscoveryError{Attempts: []error{&MetadataError{IssuerMismatch: true}}}, FailureMetadata},
		{"discovery that could not connect", &DiscoveryError{Attempts: []error{&TransportError{}}}, FailureTransport},
		{"discovery that found two 404s", &DiscoveryError{Attempts: []error{&Error{StatusCode: 404}, &Error{StatusCode: 404}}}, FailureRefused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Classify(tc.err); got != tc.want {
				t.Errorf("Classify = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestEndpointErrorMessages checks the wording of errors from the new
// endpoints; the token endpoint's stays as TestErrorMessages has it.
func TestEndpointErrorMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want string
	}{
		{&Error{StatusCode: 503, Endpoint: "revocation endpoint"}, "revocation endpoint answered HTTP 503 Service Unavailable"},
		{&Error{StatusCode: 200, Endpoint: "device authorization endpoint", Description: "x"}, "device authorization endpoint answered HTTP 200 OK with an error: x"},
		{&Error{StatusCode: 401, Code: "invalid_client", ClientCertificateNotRequested: true}, "vendor error invalid_client (HTTP 401 Unauthorized); the server did not ask for the client certificate during the TLS handshake: use the vendor's mutual-TLS endpoint (its mtls_endpoint_aliases)"},
		{&ResponseError{Endpoint: "device authorization endpoint", Reason: "missing user_code"}, "device authorization endpoint answered with an unusable response: missing user_code"},
		{&MetadataError{URL: "https://x/.well-known/y", Reason: "it has no issuer"}, "the authorization server metadata at https://x/.well-known/y is not usable: it has no issuer"},
		{&DiscoveryError{Issuer: "https://x?q=secret", Attempts: []error{errors.New("a"), errors.New("b")}}, "no authorization server metadata for issuer https://x: a; then b"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q\nwant      %q", got, tc.want)
		}
	}
}
