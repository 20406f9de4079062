package tokenclient

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
)

// answer is an HTTP response read in full.
type answer struct {
	status     int
	statusText string
	header     http.Header
	body       []byte
	// certNotRequested: a client certificate was configured, and this
	// request's own handshake finished without the server asking for it.
	certNotRequested bool
}

// roundTrip sends a built request through the transport for t and reads
// at most maxBody+1 bytes of the answer (one over tells an oversize body
// from one that fits). A failure to get an answer is a *TransportError
// whose message names the endpoint by noun; a TLS config that cannot be
// used is a plain error.
func (c *Client) roundTrip(ctx context.Context, b *built, noun string, t *TLSConfig, secrets []string, maxBody int64) (*answer, error) {
	hc, err := c.httpClientFor(t)
	if err != nil {
		return nil, err
	}
	endpoint := displayEndpoint(b.u)

	// WroteRequest is the line between "the server never saw it" and "the
	// server may have acted on it": a refresh token may be rotated even
	// though the answer is lost.
	var wrote atomic.Bool
	pctx, probe := withProbe(b.req.Context())
	trace := &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
		TLSHandshakeDone: func(cs tls.ConnectionState, err error) {
			if err == nil {
				probe.resumed.Store(cs.DidResume)
				probe.handshake.Store(true)
			}
		},
	}
	req := b.req.WithContext(httptrace.WithClientTrace(pctx, trace))
	limit := c.limit(ctx)

	resp, err := hc.Do(req)
	if err != nil {
		return nil, newTransportErrorAt(noun, err, endpoint, wrote.Load(), false, limit, secrets, classifyTLS(err, t.hasCert(), probe))
	}
	// The answer is read (up to its limit) before the close; a failed
	// close of a read-only body changes nothing about it.
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, newTransportErrorAt(noun, err, endpoint, true, true, limit, secrets, classifyTLS(err, t.hasCert(), probe))
	}
	return &answer{
		status:           resp.StatusCode,
		statusText:       resp.Status,
		header:           resp.Header,
		body:             body,
		certNotRequested: t.hasCert() && probe.certNotRequested(),
	}, nil
}

// annotate adds to a refusal what the handshake showed: a server that
// refuses the client and never asked for its certificate is not the
// mutual-TLS endpoint.
func (a *answer) annotate(err error) error {
	var ve *Error
	if a.certNotRequested && errors.As(err, &ve) &&
		(ve.Code == "invalid_client" || ve.Code == "unauthorized_client" ||
			ve.StatusCode == http.StatusUnauthorized || ve.StatusCode == http.StatusForbidden) {
		ve.ClientCertificateNotRequested = true
	}
	return err
}
