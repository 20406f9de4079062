package tokenclient

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-cleanhttp"
)

// DefaultMaxTLSConfigs bounds how many distinct TLS configurations a Client
// keeps a transport for, when WithMaxTLSConfigs does not say.
const DefaultMaxTLSConfigs = 64

// TLSConfig is what a request needs of TLS beyond the defaults: a client
// certificate for mutual TLS (RFC 8705) and the CAs trusted for a server
// that a public CA did not sign. Every connection is TLS 1.2 or later.
//
// Requests with equal TLSConfigs share one cached transport, and so its
// connection pool: nothing is parsed or dialled per request. Those
// transports speak HTTP/1.1 only: over HTTP/2, Go's transport can lose the
// TLS alert that says why a client certificate was refused, and a token
// endpoint gains nothing from HTTP/2.
type TLSConfig struct {
	// ClientCertificatePEM is the client certificate, leaf first, then any
	// intermediates, as PEM CERTIFICATE blocks.
	ClientCertificatePEM string
	// ClientKeyPEM is the certificate's private key: PEM "PRIVATE KEY"
	// (PKCS #8), "RSA PRIVATE KEY" (PKCS #1) or "EC PRIVATE KEY" (SEC 1),
	// unencrypted. It is a secret.
	ClientKeyPEM string
	// CABundlePEM holds the CA certificates trusted for the server,
	// instead of the system's. Text between the blocks (a bundle's
	// comments) is ignored.
	CABundlePEM string
	// IncludeSystemRoots trusts the system's CAs as well as CABundlePEM.
	IncludeSystemRoots bool
}

// hasCert reports whether the config holds a client certificate.
func (t *TLSConfig) hasCert() bool { return t != nil && t.ClientCertificatePEM != "" }

// empty reports whether the config changes nothing.
func (t *TLSConfig) empty() bool {
	return t == nil || (t.ClientCertificatePEM == "" && t.ClientKeyPEM == "" && t.CABundlePEM == "")
}

// String says what the config holds, never the key.
func (t *TLSConfig) String() string {
	if t == nil {
		return "<nil>"
	}
	var parts []string
	if t.ClientCertificatePEM != "" {
		parts = append(parts, "client certificate")
	}
	if t.ClientKeyPEM != "" {
		parts = append(parts, "client key "+redacted)
	}
	if t.CABundlePEM != "" {
		parts = append(parts, "CA bundle")
	}
	if t.IncludeSystemRoots {
		parts = append(parts, "system roots")
	}
	return "tokenclient.TLSConfig{" + strings.Join(parts, ", ") + "}"
}

// GoString is String, so that %#v does not print the key either.
func (t *TLSConfig) GoString() string { return t.String() }

// Validate parses the config as a request would, so that a bad PEM is
// refused when it is written rather than when it is first used. Its
// errors never quote the PEM.
func (t *TLSConfig) Validate() error {
	_, err := t.parse()
	return err
}

// CertificateInfo describes a client certificate, for showing an operator
// which one is configured. Nothing in it is secret.
type CertificateInfo struct {
	Subject    string
	Issuer     string
	NotBefore  time.Time
	NotAfter   time.Time
	SelfSigned bool
	// SHA256Fingerprint is the hex SHA-256 of the leaf's DER, as vendors'
	// consoles show it.
	SHA256Fingerprint string
}

// ClientCertificateInfo describes the leaf of ClientCertificatePEM.
func (t *TLSConfig) ClientCertificateInfo() (*CertificateInfo, error) {
	if !t.hasCert() {
		return nil, errors.New("no client certificate is configured")
	}
	certs, err := parseCertificates("client certificate", t.ClientCertificatePEM)
	if err != nil {
		return nil, err
	}
	leaf := certs[0]
	sum := sha256.Sum256(leaf.Raw)
	return &CertificateInfo{
		Subject:           leaf.Subject.String(),
		Issuer:            leaf.Issuer.String(),
		NotBefore:         leaf.NotBefore,
		NotAfter:          leaf.NotAfter,
		SelfSigned:        bytes.Equal(leaf.RawIssuer, leaf.RawSubject) && leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil,
		SHA256Fingerprint: hex.EncodeToString(sum[:]),
	}, nil
}

// parsedTLS is a TLSConfig ready for a transport.
type parsedTLS struct {
	cert  *tls.Certificate // nil without a client certificate
	roots *x509.CertPool   // nil for the system's
}

func (t *TLSConfig) parse() (*parsedTLS, error) {
	p := &parsedTLS{}
	if t == nil {
		return p, nil
	}
	switch {
	case t.ClientCertificatePEM != "" && t.ClientKeyPEM == "":
		return nil, errors.New("the client certificate has no key: give the client key too")
	case t.ClientCertificatePEM == "" && t.ClientKeyPEM != "":
		return nil, errors.New("the client key has no certificate: give the client certificate too")
	case t.ClientCertificatePEM != "":
		certs, err := parseCertificates("client certificate", t.ClientCertificatePEM)
		if err != nil {
			return nil, err
		}
		keyDER, err := privateKeyBlock(t.ClientKeyPEM)
		if err != nil {
			return nil, err
		}
		chain := make([]byte, 0, len(t.ClientCertificatePEM))
		for _, c := range certs {
			chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		pair, err := tls.X509KeyPair(chain, keyDER)
		if err != nil {
			// X509KeyPair's messages hold no key bytes, but say it our
			// way: the operator named no "tls" anything.
			if strings.Contains(err.Error(), "does not match") {
				return nil, errors.New("the client key does not match the client certificate")
			}
			return nil, errors.New("the client key is not a usable private key")
		}
		pair.Leaf = certs[0]
		p.cert = &pair
	}
	if t.CABundlePEM != "" {
		certs, err := parseCertificates("CA bundle", t.CABundlePEM)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if t.IncludeSystemRoots {
			if sys, err := x509.SystemCertPool(); err == nil {
				pool = sys
			}
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
		p.roots = pool
	}
	return p, nil
}

// parseCertificates reads the PEM CERTIFICATE blocks of s. Any other block
// is refused, by type only: a key pasted into the wrong field must not be
// quoted back.
func parseCertificates(what, s string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := []byte(s)
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("the %s holds a PEM %q block where only CERTIFICATE blocks belong", what, sanitize(block.Type, maxValueLen, nil))
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d of the %s does not parse", n, what)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the %s is not PEM: it holds no -----BEGIN CERTIFICATE----- block", what)
	}
	return out, nil
}

// privateKeyBlock returns the one PEM private key block of s, re-encoded
// alone, refusing encrypted keys and other blocks.
func privateKeyBlock(s string) ([]byte, error) {
	block, rest := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("the client key is not PEM: it holds no -----BEGIN PRIVATE KEY----- block")
	}
	if strings.Contains(block.Type, "ENCRYPTED") || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
		return nil, errors.New("the client key is encrypted: give it decrypted (openssl pkey -in key.pem)")
	}
	switch block.Type {
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
	default:
		return nil, fmt.Errorf("the client key is a PEM %q block: want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY", sanitize(block.Type, maxValueLen, nil))
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, errors.New("the client key holds more than one PEM block: give the key alone")
	}
	return pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: block.Bytes}), nil
}

// cacheKey identifies a TLSConfig without holding it: a hash of every
// field, each length-prefixed so that no two configs collide by
// concatenation.
func (t *TLSConfig) cacheKey() [32]byte {
	h := sha256.New()
	for _, f := range []string{"tokenclient-tls-v1", t.ClientCertificatePEM, t.ClientKeyPEM, t.CABundlePEM} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	if t.IncludeSystemRoots {
		h.Write([]byte{1})
	}
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}

// transportCache holds a transport per distinct TLSConfig, least recently
// used first out, so that requests with the same config share connections
// and a Client serving many credentials stays bounded.
type transportCache struct {
	mu    sync.Mutex
	max   int
	byKey map[[32]byte]*list.Element
	order *list.List // of *cachedClient, most recently used at the front
}

type cachedClient struct {
	key       [32]byte
	client    *http.Client
	transport *http.Transport
}

func newTransportCache(max int) *transportCache {
	if max <= 0 {
		max = DefaultMaxTLSConfigs
	}
	return &transportCache{max: max, byKey: map[[32]byte]*list.Element{}, order: list.New()}
}

// len is how many transports are cached, for tests.
func (tc *transportCache) len() int {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.order.Len()
}

// httpClientFor returns the http.Client for a TLS config: the Client's
// own for none, else a cached one built on a clone of the Client's
// transport.
func (c *Client) httpClientFor(t *TLSConfig) (*http.Client, error) {
	if t.empty() {
		return c.http, nil
	}
	key := t.cacheKey()
	tc := c.tls
	tc.mu.Lock()
	if el, ok := tc.byKey[key]; ok {
		tc.order.MoveToFront(el)
		hc := el.Value.(*cachedClient).client
		tc.mu.Unlock()
		return hc, nil
	}
	tc.mu.Unlock()

	// Parsed outside the lock: two requests racing to build the same
	// transport is cheaper than every request waiting on one parse.
	p, err := t.parse()
	if err != nil {
		return nil, err
	}
	tr, err := c.tlsTransport(p)
	if err != nil {
		return nil, err
	}
	hc := *c.http
	hc.Transport = tr

	tc.mu.Lock()
	defer tc.mu.Unlock()
	if el, ok := tc.byKey[key]; ok {
		tr.CloseIdleConnections()
		tc.order.MoveToFront(el)
		return el.Value.(*cachedClient).client, nil
	}
	tc.byKey[key] = tc.order.PushFront(&cachedClient{key: key, client: &hc, transport: tr})
	for tc.order.Len() > tc.max {
		old := tc.order.Back()
		tc.order.Remove(old)
		cc := old.Value.(*cachedClient)
		delete(tc.byKey, cc.key)
		// Requests in flight keep their connections; idle ones go now.
		cc.transport.CloseIdleConnections()
	}
	return &hc, nil
}

// tlsTransport clones the Client's transport with the parsed config.
func (c *Client) tlsTransport(p *parsedTLS) (*http.Transport, error) {
	var tr *http.Transport
	switch base := c.transport.(type) {
	case nil:
		tr = cleanhttp.DefaultPooledTransport()
	case *http.Transport:
		tr = base.Clone()
	default:
		return nil, fmt.Errorf("the Client's %T transport cannot take a TLS configuration", base)
	}
	cfg := &tls.Config{}
	if tr.TLSClientConfig != nil {
		cfg = tr.TLSClientConfig.Clone()
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if p.roots != nil {
		cfg.RootCAs = p.roots
	}
	cert := p.cert
	cfg.Certificates = nil
	// Set even without a certificate: knowing that the server asked for
	// one tells "certificate required" from other handshake failures.
	cfg.GetClientCertificate = func(info *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if pr, ok := info.Context().Value(probeKey{}).(*tlsProbe); ok {
			pr.certRequested.Store(true)
		}
		if cert == nil {
			return &tls.Certificate{}, nil
		}
		return cert, nil
	}
	// HTTP/1.1 only (see TLSConfig): an empty, non-nil TLSNextProto turns
	// HTTP/2 off, and offering only http/1.1 in ALPN keeps a server from
	// choosing it.
	cfg.NextProtos = []string{"http/1.1"}
	tr.ForceAttemptHTTP2 = false
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	tr.TLSClientConfig = cfg
	return tr, nil
}

// tlsProbe records, for one request, what the TLS handshake of a
// connection it dialled showed. The transport dials with the request's
// context values, so both the trace and GetClientCertificate reach it; a
// request served by a pooled connection sees no handshake, and then
// nothing is concluded.
type tlsProbe struct {
	handshake     atomic.Bool
	resumed       atomic.Bool
	certRequested atomic.Bool
}

type probeKey struct{}

// certNotRequested reports whether this request's own handshake finished
// without the server asking for a client certificate.
func (p *tlsProbe) certNotRequested() bool {
	return p.handshake.Load() && !p.resumed.Load() && !p.certRequested.Load()
}

// TLSFailure says why a TLS handshake failed, for advice.
type TLSFailure string

const (
	// TLSUntrustedServer: the server's certificate chains to no trusted
	// CA. For a private CA, set the CA bundle.
	TLSUntrustedServer TLSFailure = "untrusted_server_certificate"
	// TLSServerNameMismatch: the certificate is not for this host name.
	TLSServerNameMismatch TLSFailure = "server_name_mismatch"
	// TLSServerCertificateInvalid: expired, not yet valid, or otherwise
	// unusable.
	TLSServerCertificateInvalid TLSFailure = "invalid_server_certificate"
	// TLSClientCertificateRequired: the server wants a client certificate
	// and none was configured.
	TLSClientCertificateRequired TLSFailure = "client_certificate_required"
	// TLSClientCertificateRejected: the server refused the client
	// certificate that was sent.
	TLSClientCertificateRejected TLSFailure = "client_certificate_rejected"
)

// advice is the sentence a failure's message ends with.
func (f TLSFailure) advice() string {
	switch f {
	case TLSUntrustedServer:
		return "the server's certificate is not signed by a CA this client trusts: if the endpoint uses a private CA, set the CA bundle to that CA's certificate"
	case TLSServerNameMismatch:
		return "the server's certificate is not valid for this host name: check the URL's host"
	case TLSServerCertificateInvalid:
		return "the server's certificate is not valid (expired or not yet valid, or not for server use)"
	case TLSClientCertificateRequired:
		return "the server requires a client certificate (mutual TLS): set a client certificate and key"
	case TLSClientCertificateRejected:
		return "the server did not accept the client certificate: check that it is the one registered with the vendor, issued by a CA the vendor trusts, and not expired"
	}
	return ""
}

// TLS alerts (RFC 8446 section 6) that concern the client's certificate.
const (
	alertHandshakeFailure       = 40
	alertBadCertificate         = 42
	alertUnsupportedCertificate = 43
	alertCertificateRevoked     = 44
	alertCertificateExpired     = 45
	alertCertificateUnknown     = 46
	alertUnknownCA              = 48
	alertAccessDenied           = 49
	alertCertificateRequired    = 116
)

// classifyTLS says which TLS failure err is, or "" for none. hadCert is
// whether a client certificate was configured; probe (may be nil) whether
// the server asked for one.
func classifyTLS(err error, hadCert bool, probe *tlsProbe) TLSFailure {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &unknown):
		return TLSUntrustedServer
	case errors.As(err, &hostname):
		return TLSServerNameMismatch
	case errors.As(err, &invalid):
		return TLSServerCertificateInvalid
	}
	code, ok := remoteAlert(err)
	if !ok {
		return ""
	}
	asked := probe != nil && probe.certRequested.Load()
	switch code {
	case alertCertificateRequired:
		return TLSClientCertificateRequired
	case alertBadCertificate, alertUnsupportedCertificate, alertCertificateRevoked,
		alertCertificateExpired, alertCertificateUnknown, alertUnknownCA, alertAccessDenied:
		if hadCert {
			return TLSClientCertificateRejected
		}
		// A TLS 1.2 server answers a missing certificate this way.
		return TLSClientCertificateRequired
	case alertHandshakeFailure:
		switch {
		case asked && hadCert:
			return TLSClientCertificateRejected
		case asked:
			return TLSClientCertificateRequired
		}
	}
	return ""
}

// remoteAlert finds a TLS alert the server sent in err. crypto/tls
// reports one as a *net.OpError "remote error" around its unexported
// alert type, a uint8.
func remoteAlert(err error) (uint8, bool) {
	var op *net.OpError
	for e := err; errors.As(e, &op); e = op.Err {
		if op.Op == "remote error" && op.Err != nil {
			if v := reflect.ValueOf(op.Err); v.Kind() == reflect.Uint8 {
				return uint8(v.Uint()), true
			}
		}
		if op.Err == nil {
			break
		}
	}
	// tls.AlertError is not looked for: crypto/tls wraps it around the
	// alerts it sends itself, not those it receives.
	return 0, false
}

// withProbe puts a fresh probe into ctx.
func withProbe(ctx context.Context) (context.Context, *tlsProbe) {
	p := &tlsProbe{}
	return context.WithValue(ctx, probeKey{}, p), p
}

// closeIdle closes the idle connections of every cached transport.
func (tc *transportCache) closeIdle() {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for el := tc.order.Front(); el != nil; el = el.Next() {
		el.Value.(*cachedClient).transport.CloseIdleConnections()
	}
}
