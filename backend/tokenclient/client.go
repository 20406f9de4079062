package tokenclient

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/hashicorp/go-cleanhttp"
)

// DefaultTimeout bounds one token request, from dialling to the last byte
// of the answer, when no WithTimeout is given.
const DefaultTimeout = 30 * time.Second

// defaultUserAgent names the plugin to vendors when the caller gives no
// WithUserAgent; Go's own default says nothing useful to their support.
const defaultUserAgent = "vault-plugin-secrets-vendoroauth"

// Client requests tokens. It is safe for concurrent use, and holds no
// per-credential state, so one Client serves every mount and credential.
type Client struct {
	http      *http.Client
	timeout   time.Duration
	userAgent string

	// base is WithHTTPClient's client, kept until New has seen every
	// Option, so that their order does not matter.
	base *http.Client

	// transport is the transport TLS configs are cloned from: the given
	// client's, or nil for a fresh pooled one.
	transport http.RoundTripper
	// tls caches an http.Client per distinct TLSConfig.
	tls     *transportCache
	maxTLS  int
	nowFunc func() time.Time
}

// Option configures a Client made by New.
type Option func(*Client)

// WithTimeout bounds each request, from dialling to the last byte of the
// answer. Zero or less means DefaultTimeout: a token request without a
// bound could hold a credential's lock forever.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) { c.timeout = d }
}

// WithUserAgent sets the User-Agent header; empty keeps the default.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// WithHTTPClient makes requests through hc, for tests (an httptest TLS
// client) and unusual networks. hc is copied, not changed: redirects are
// still refused, and the timeout is WithTimeout's, else hc's own, else
// DefaultTimeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.base = hc }
}

// WithMaxTLSConfigs bounds how many distinct TLS configurations keep a
// cached transport (and its idle connections); the least recently used is
// dropped first. Zero or less means DefaultMaxTLSConfigs.
func WithMaxTLSConfigs(n int) Option {
	return func(c *Client) { c.maxTLS = n }
}

// New makes a Client on a pooled go-cleanhttp client: its own transport,
// never http.DefaultTransport, which anything in the process could change.
func New(opts ...Option) *Client {
	c := &Client{}
	for _, opt := range opts {
		if opt != nil {
			opt(c)
		}
	}
	base := c.base
	if base == nil {
		base = cleanhttp.DefaultPooledClient()
	}
	hc := *base
	// A redirect is answered as an *Error instead of followed: following
	// would re-send the client credentials to a host the operator never
	// configured (and turn the POST into a GET on 301/302).
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	switch {
	case c.timeout > 0:
		hc.Timeout = c.timeout
	case c.base == nil || hc.Timeout <= 0:
		hc.Timeout = DefaultTimeout
	}
	if c.userAgent == "" {
		c.userAgent = defaultUserAgent
	}
	c.transport = hc.Transport
	c.tls = newTransportCache(c.maxTLS)
	c.http, c.timeout, c.base = &hc, hc.Timeout, nil
	return c
}

// now is the Client's clock, for assertions' iat and exp.
func (c *Client) now() time.Time {
	if c.nowFunc != nil {
		return c.nowFunc()
	}
	return time.Now()
}

// Exchange posts the request to its token endpoint and parses the answer.
//
// Its errors are an *Error (the endpoint refused), a *ResponseError (it
// answered 2xx with no usable token), a *TransportError (no answer), or a
// plain error for a Request that cannot be sent, such as an unparsable
// TokenURL. No message ever holds the client secret, a Params or Headers
// value, or a token from the response.
func (c *Client) Exchange(ctx context.Context, r Request) (*Token, error) {
	if c == nil || c.http == nil {
		return nil, errors.New("tokenclient: the Client was not made with New")
	}
	b, err := r.buildCall(ctx, c.userAgent, r.tokenCall(), c.now())
	if err != nil {
		return nil, err
	}
	// The Basic credentials and the assertion are what a vendor's
	// "malformed header" or "bad assertion" error would echo.
	secrets := b.secrets(r, nil)
	a, err := c.roundTrip(ctx, b, "token endpoint", r.TLS, secrets, MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	tok, err := parseResponseKeep(a.status, a.statusText, a.header, a.body, b.u, secrets, r.ResponseFields)
	return tok, a.annotate(err)
}

// limit is the time a request made now has: the client's timeout or the
// context's deadline, whichever comes first.
func (c *Client) limit(ctx context.Context) time.Duration {
	limit := c.timeout
	if deadline, ok := ctx.Deadline(); ok {
		if left := time.Until(deadline); limit <= 0 || left < limit {
			limit = left
		}
	}
	return limit
}

// CloseIdleConnections closes the idle connections of every transport the
// client holds, for a backend that is closing: they would otherwise stay
// open, with their goroutines, until the idle timeout.
func (c *Client) CloseIdleConnections() {
	c.http.CloseIdleConnections()
	if c.tls != nil {
		c.tls.closeIdle()
	}
}
