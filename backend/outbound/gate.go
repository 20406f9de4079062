// Package outbound is the one way a request leaves the plugin for a
// vendor. A caller hands the gate the request and, for each secret it
// carries and each value derived from one (a client assertion, a code
// verifier, a device code), the destination it was written or born for;
// the gate works out where the request would go (the endpoint, who may
// answer there, the assertion's audience) and sends nothing unless every
// one of them may go there. A secret the caller did not bind is not sent
// either, so a new kind of request or a new path cannot send a secret
// anywhere by forgetting to check.
package outbound

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
)

// Gate sends vendor requests through a token client it alone holds, and
// webhook deliveries through a client of its own (webhook.go).
type Gate struct {
	client   *tokenclient.Client
	webhooks webhookClient
	// observe, if set, is told of every vendor request sent (observe.go).
	observe Observer
}

// New is a gate in front of client.
func New(client *tokenclient.Client) *Gate { return &Gate{client: client} }

// Call is one request: the client's authentication and, for a grant, its
// parameters, with where each secret may go.
type Call struct {
	// Name is the credential the call is for, for the observer.
	Name  string
	Req   tokenclient.Request
	Bound map[tokenclient.SecretRef]model.Destination
	// Routing is the hash of the extra headers in Req (model.RoutingOf),
	// which every secret's binding must have.
	Routing string
}

// With is c with ref bound to d (its other bindings shared).
func (c Call) With(ref tokenclient.SecretRef, d model.Destination) Call {
	bound := make(map[tokenclient.SecretRef]model.Destination, len(c.Bound)+1)
	for k, v := range c.Bound {
		bound[k] = v
	}
	bound[ref] = d
	c.Bound = bound
	return c
}

// Refused reports whether err is the gate's: the request was not sent.
func Refused(err error) bool {
	var me *model.MisdirectedError
	var re *RoutingError
	return errors.As(err, &me) || errors.As(err, &re)
}

// Token sends a grant to the token endpoint.
func (g *Gate) Token(ctx context.Context, c Call) (_ *tokenclient.Token, err error) {
	if err := check(c.Req.TokenURL, c); err != nil {
		return nil, err
	}
	defer g.record(c.Name, c.Req.TokenURL, c.Req.GrantType, time.Now())(&err)
	return g.client.Exchange(ctx, c.Req)
}

// Revoke asks the revocation endpoint to revoke rv.Token, which is bound
// as tokenclient.RevokedTokenRef.
func (g *Gate) Revoke(ctx context.Context, c Call, rv tokenclient.Revocation) (err error) {
	c.Req.Params = nil // a revocation sends the token, not the grant's parameters
	if err := check(rv.Endpoint, c, tokenclient.RevokedTokenRef); err != nil {
		return err
	}
	defer g.record(c.Name, rv.Endpoint, KindRevocation, time.Now())(&err)
	return g.client.Revoke(ctx, c.Req, rv)
}

// StartDevice asks the device authorization endpoint for a user code.
func (g *Gate) StartDevice(ctx context.Context, c Call, endpoint string) (_ *tokenclient.DeviceAuthorization, err error) {
	c.Req.Params = nil // the start sends no grant parameters
	if err := check(endpoint, c); err != nil {
		return nil, err
	}
	defer g.record(c.Name, endpoint, KindDeviceAuthorization, time.Now())(&err)
	return g.client.StartDeviceAuthorization(ctx, c.Req, endpoint)
}

// PollDevice asks the token endpoint whether the user approved the device
// flow of deviceCode, which is bound as tokenclient.ParamRef("device_code").
func (g *Gate) PollDevice(ctx context.Context, c Call, deviceCode string, interval time.Duration) (_ *tokenclient.DevicePoll, err error) {
	c.Req.Params = map[string]string{"device_code": deviceCode}
	if err := check(c.Req.TokenURL, c); err != nil {
		return nil, err
	}
	defer g.record(c.Name, c.Req.TokenURL, KindDevicePoll, time.Now())(&err)
	return g.client.PollDeviceToken(ctx, c.Req, deviceCode, interval)
}

// Discover fetches an issuer's metadata. It carries no secret: the
// metadata is public, so no client certificate is presented; caBundle
// decides who may answer.
func (g *Gate) Discover(ctx context.Context, issuer, caBundle string) (*tokenclient.Metadata, error) {
	var t *tokenclient.TLSConfig
	if caBundle != "" {
		t = &tokenclient.TLSConfig{CABundlePEM: caBundle}
	}
	return g.client.Discover(ctx, issuer, t)
}

// CloseIdleConnections closes the idle connections to vendors and to
// webhook receivers.
func (g *Gate) CloseIdleConnections() {
	g.client.CloseIdleConnections()
	g.webhooks.closeIdle()
}

// check refuses a request to endpoint that would carry a secret somewhere
// it was not written for, or a header that could route it elsewhere.
func check(endpoint string, c Call, extra ...tokenclient.SecretRef) error {
	headers := make([]string, 0, len(c.Req.Headers))
	for h := range c.Req.Headers {
		headers = append(headers, h)
	}
	sort.Strings(headers)
	for _, h := range headers {
		if model.Routes(h) {
			return &RoutingError{Header: http.CanonicalHeaderKey(h)}
		}
	}
	trust := model.SystemTrust
	if c.Req.TLS != nil {
		trust = model.TrustOf(c.Req.TLS.CABundlePEM)
	}
	for _, ref := range append(c.Req.SecretRefs(), extra...) {
		d, ok := c.Bound[ref]
		aud := ""
		if c.Req.SignsWith(ref) {
			aud = c.Req.AssertionAudience(endpoint)
		}
		if !ok {
			return &model.MisdirectedError{Secret: ref, Endpoint: endpoint, Trust: trust, Audience: aud, Routing: c.Routing}
		}
		if !d.Allows(endpoint, trust, c.Routing) || (aud != "" && d.Audience != aud) {
			return &model.MisdirectedError{Secret: ref, Endpoint: endpoint, Trust: trust, Audience: aud, Routing: c.Routing, Bound: &d}
		}
	}
	return nil
}

// RoutingError is a request with a header that could route it to another
// host than its endpoint's.
type RoutingError struct{ Header string }

func (e *RoutingError) Error() string {
	return fmt.Sprintf("not sending a request with the %s header: it could route the request, and its secrets, to another host than the endpoint's", e.Header)
}
