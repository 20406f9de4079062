package tokenclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// Test PKI, made once: a CA for servers, one for clients, and one nobody
// trusts.
var (
	pkiOnce                    sync.Once
	serverCA, clientCA, roguCA *standin.TestCA
	clientCert, rogueCert      *standin.Issued
	expiredCert, selfSigned    *standin.Issued
	serverCert                 tls.Certificate
)

func pki(t testing.TB) {
	t.Helper()
	pkiOnce.Do(func() {
		must := func(err error) {
			if err != nil {
				panic(err)
			}
		}
		var err error
		serverCA, err = standin.NewTestCA("test server CA")
		must(err)
		clientCA, err = standin.NewTestCA("test client CA")
		must(err)
		roguCA, err = standin.NewTestCA("rogue CA")
		must(err)
		clientCert, err = clientCA.IssueClient("client-1")
		must(err)
		rogueCert, err = roguCA.IssueClient("client-1")
		must(err)
		expiredCert, err = clientCA.Issue(standin.CertOptions{CommonName: "client-1",
			NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}, x509.ExtKeyUsageClientAuth)
		must(err)
		selfSigned, err = standin.SelfSignedClient("self")
		must(err)
		srv, err := serverCA.IssueServer()
		must(err)
		serverCert, err = srv.TLSCertificate()
		must(err)
	})
}

// tlsVendor is a TLS token endpoint signed by serverCA. configure adjusts
// its TLS; the handler answers a token to a client certificate with CN
// client-1, or when no certificate is required, and 401 otherwise.
type tlsVendor struct {
	*httptest.Server
	conns atomic.Int32
	mu    sync.Mutex
	forms []url.Values
}

func newTLSVendor(t *testing.T, configure func(*tls.Config)) *tlsVendor {
	t.Helper()
	return newTLSVendorWith(t, configure, nil)
}

// newTLSVendorWith is newTLSVendor with another handler, which gets the
// vendor's base URL.
func newTLSVendorWith(t *testing.T, configure func(*tls.Config), handler func(base string) http.HandlerFunc) *tlsVendor {
	t.Helper()
	pki(t)
	v := &tlsVendor{}
	var base atomic.Value
	v.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if handler != nil {
			handler(base.Load().(string))(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		v.mu.Lock()
		v.forms = append(v.forms, form)
		v.mu.Unlock()
		if v.TLS.ClientAuth >= tls.RequestClientCert && (len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != "client-1") {
			replyJSON(http.StatusUnauthorized, `{"error":"invalid_client","error_description":"no client-1 certificate"}`)(w, r)
			return
		}
		if form.Get("client_id") == "needs-cert" && len(r.TLS.PeerCertificates) == 0 {
			replyJSON(http.StatusUnauthorized, `{"error":"invalid_client","error_description":"no client certificate"}`)(w, r)
			return
		}
		replyJSON(http.StatusOK, okBody)(w, r)
	}))
	v.Config.ErrorLog = log.New(io.Discard, "", 0)
	v.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			v.conns.Add(1)
		}
	}
	v.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}}
	if configure != nil {
		configure(v.TLS)
	}
	v.StartTLS()
	base.Store(v.URL)
	t.Cleanup(v.Close)
	return v
}

// requireClientCert makes the server ask for, and verify, a clientCA
// certificate.
func requireClientCert(maxVersion uint16) func(*tls.Config) {
	return func(c *tls.Config) {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = clientCA.Pool()
		c.MaxVersion = maxVersion
	}
}

func TestExchangeTLS_PrivateCAAndMutualTLS(t *testing.T) {
	t.Parallel()
	pki(t)
	mtls := func(cert *standin.Issued) *TLSConfig {
		c := &TLSConfig{CABundlePEM: serverCA.CertPEM()}
		if cert != nil {
			c.ClientCertificatePEM, c.ClientKeyPEM = cert.CertPEM, cert.KeyPEM
		}
		return c
	}
	tests := []struct {
		name      string
		configure func(*tls.Config)
		tls       *TLSConfig
		style     AuthStyle
		clientID  string
		// wantTLS is the expected TLSFailure, "" for success.
		wantTLS TLSFailure
		wantMsg string
		// wantNotRequested expects an *Error flagged
		// ClientCertificateNotRequested.
		wantNotRequested bool
	}{
		{name: "a CA bundle trusts the private CA", tls: &TLSConfig{CABundlePEM: serverCA.CertPEM()}},
		{name: "a CA bundle with comments between blocks", tls: &TLSConfig{CABundlePEM: "# test CA\n" + roguCA.CertPEM() + "\n# the real one\n" + serverCA.CertPEM()}},
		{name: "the CA bundle with the system roots too", tls: &TLSConfig{CABundlePEM: serverCA.CertPEM(), IncludeSystemRoots: true}},
		{
			name: "no CA bundle: the private CA is not trusted", wantTLS: TLSUntrustedServer,
			wantMsg: "set the CA bundle to that CA's certificate",
		},
		{name: "a CA bundle of another CA", tls: &TLSConfig{CABundlePEM: roguCA.CertPEM()}, wantTLS: TLSUntrustedServer},
		{name: "mTLS with a client certificate from the trusted CA", configure: requireClientCert(0), tls: mtls(clientCert)},
		{name: "mTLS on TLS 1.2", configure: requireClientCert(tls.VersionTLS12), tls: mtls(clientCert)},
		{
			name: "tls_client_auth sends the client id and a certificate", configure: requireClientCert(0), tls: mtls(clientCert),
			style: AuthTLSClient, clientID: "client-1",
		},
		{
			name: "mTLS without a client certificate", configure: requireClientCert(0), tls: mtls(nil),
			wantTLS: TLSClientCertificateRequired, wantMsg: "requires a client certificate (mutual TLS): set a client certificate and key",
		},
		{name: "mTLS without a client certificate on TLS 1.2", configure: requireClientCert(tls.VersionTLS12), tls: mtls(nil), wantTLS: TLSClientCertificateRequired},
		{
			name: "mTLS with a certificate from an untrusted CA", configure: requireClientCert(0), tls: mtls(rogueCert),
			wantTLS: TLSClientCertificateRejected, wantMsg: "did not accept the client certificate",
		},
		{name: "mTLS with an untrusted certificate on TLS 1.2", configure: requireClientCert(tls.VersionTLS12), tls: mtls(rogueCert), wantTLS: TLSClientCertificateRejected},
		{name: "mTLS with an expired client certificate", configure: requireClientCert(0), tls: mtls(expiredCert), wantTLS: TLSClientCertificateRejected},
		{name: "mTLS with a self-signed certificate the server does not know", configure: requireClientCert(0), tls: mtls(selfSigned), wantTLS: TLSClientCertificateRejected},
		{
			name: "a server that never asks for the certificate and refuses the client", tls: mtls(clientCert),
			style: AuthTLSClient, clientID: "needs-cert", wantNotRequested: true,
			wantMsg: "did not ask for the client certificate during the TLS handshake",
		},
		{
			name: "a server that asks and refuses is not flagged", configure: func(c *tls.Config) { c.ClientAuth = tls.RequestClientCert },
			tls: mtls(selfSigned), style: AuthTLSClient, clientID: "needs-cert", wantMsg: "vendor error invalid_client: no client-1 certificate (HTTP 401 Unauthorized)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := newTLSVendor(t, tc.configure)
			r := Request{TokenURL: v.URL + "/token", GrantType: "client_credentials", ClientID: "cid", ClientSecret: testClientSecret, TLS: tc.tls}
			if tc.style != "" {
				r.AuthStyle, r.ClientID, r.ClientSecret = tc.style, tc.clientID, ""
			}
			tok, err := New().Exchange(context.Background(), r)
			switch {
			case tc.wantTLS == "" && !tc.wantNotRequested && !strings.HasPrefix(tc.wantMsg, "vendor error"):
				if err != nil {
					t.Fatalf("Exchange: %v", err)
				}
				if tok.AccessToken != testAccessToken {
					t.Errorf("token = %v", tok)
				}
				if tc.style == AuthTLSClient {
					f := v.forms[0]
					if f.Get("client_id") != tc.clientID || f.Has("client_secret") || f.Has("client_assertion") {
						t.Errorf("tls_client_auth body = %v", f)
					}
				}
				return
			case tc.wantTLS != "":
				var te *TransportError
				if !errors.As(err, &te) {
					t.Fatalf("error = %v (%T), want *TransportError", err, err)
				}
				if te.TLSFailure != tc.wantTLS {
					t.Errorf("TLSFailure = %q, want %q (%v)", te.TLSFailure, tc.wantTLS, err)
				}
				if te.Sent {
					t.Errorf("Sent = true for a refused handshake: %v", err)
				}
				if Classify(err) != FailureTLS {
					t.Errorf("Classify = %q, want tls", Classify(err))
				}
				if !strings.HasPrefix(err.Error(), "the TLS handshake with token endpoint "+v.URL+"/token failed: ") {
					t.Errorf("error = %q", err)
				}
			default:
				var ve *Error
				if !errors.As(err, &ve) {
					t.Fatalf("error = %v (%T), want *Error", err, err)
				}
				if ve.ClientCertificateNotRequested != tc.wantNotRequested {
					t.Errorf("ClientCertificateNotRequested = %v, want %v", ve.ClientCertificateNotRequested, tc.wantNotRequested)
				}
			}
			if tc.wantMsg != "" && !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not say %q", err, tc.wantMsg)
			}
			if strings.Contains(err.Error(), clientCert.KeyPEM[30:60]) {
				t.Errorf("error holds the client key: %v", err)
			}
		})
	}
}

// TestExchangeTLS_DefaultClientClassifies checks that a request without a
// TLS config still gets the advice.
func TestExchangeTLS_DefaultClientClassifies(t *testing.T) {
	t.Parallel()
	v := newTLSVendor(t, requireClientCert(0))
	_, err := New().Exchange(context.Background(), Request{TokenURL: v.URL, GrantType: "client_credentials", ClientID: "c"})
	var te *TransportError
	if !errors.As(err, &te) || te.TLSFailure != TLSUntrustedServer || te.Sent {
		t.Fatalf("error = %v, want an unsent untrusted-server failure", err)
	}
	// Trusting the server through WithHTTPClient's roots, as the existing
	// tests do, reaches the client certificate check.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: serverCA.Pool()}}}
	_, err = New(WithHTTPClient(hc)).Exchange(context.Background(), Request{TokenURL: v.URL, GrantType: "client_credentials", ClientID: "c"})
	if !errors.As(err, &te) || te.TLSFailure != TLSClientCertificateRequired || te.Sent {
		t.Fatalf("error = %v, want an unsent client-certificate-required failure", err)
	}
	// A TLS config on such a client keeps its roots.
	_, err = New(WithHTTPClient(hc)).Exchange(context.Background(), Request{TokenURL: v.URL, GrantType: "client_credentials", ClientID: "c",
		TLS: &TLSConfig{ClientCertificatePEM: clientCert.CertPEM, ClientKeyPEM: clientCert.KeyPEM}})
	if err != nil {
		t.Fatalf("with a client certificate on WithHTTPClient's transport: %v", err)
	}
}

// TestExchangeTLS_MinVersion checks that TLS 1.1 is refused even when the
// server offers nothing better.
func TestExchangeTLS_MinVersion(t *testing.T) {
	t.Parallel()
	v := newTLSVendor(t, func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 })
	for name, r := range map[string]*TLSConfig{"with a TLS config": {CABundlePEM: serverCA.CertPEM()}, "without": nil} {
		_, err := New().Exchange(context.Background(), Request{TokenURL: v.URL, GrantType: "client_credentials", ClientID: "c", TLS: r})
		var te *TransportError
		if !errors.As(err, &te) || te.Sent {
			t.Errorf("%s: error = %v, want an unsent *TransportError", name, err)
		}
	}
	if n := len(v.forms); n != 0 {
		t.Errorf("the TLS 1.1 server got %d requests", n)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	t.Parallel()
	pki(t)
	keyBody := strings.Split(clientCert.KeyPEM, "\n")[1]
	tests := []struct {
		name string
		cfg  TLSConfig
		want string
	}{
		{"certificate without a key", TLSConfig{ClientCertificatePEM: clientCert.CertPEM}, "has no key"},
		{"key without a certificate", TLSConfig{ClientKeyPEM: clientCert.KeyPEM}, "has no certificate"},
		{"key of another certificate", TLSConfig{ClientCertificatePEM: clientCert.CertPEM, ClientKeyPEM: rogueCert.KeyPEM}, "does not match the client certificate"},
		{"certificate not PEM", TLSConfig{ClientCertificatePEM: "MIIB" + keyBody, ClientKeyPEM: clientCert.KeyPEM}, "client certificate is not PEM"},
		{"key not PEM", TLSConfig{ClientCertificatePEM: clientCert.CertPEM, ClientKeyPEM: keyBody}, "client key is not PEM"},
		{"key in the certificate field", TLSConfig{ClientCertificatePEM: clientCert.KeyPEM, ClientKeyPEM: clientCert.KeyPEM}, `holds a PEM "PRIVATE KEY" block`},
		{"certificate in the key field", TLSConfig{ClientCertificatePEM: clientCert.CertPEM, ClientKeyPEM: clientCert.CertPEM}, `client key is a PEM "CERTIFICATE" block`},
		{"encrypted key", TLSConfig{ClientCertificatePEM: clientCert.CertPEM, ClientKeyPEM: strings.ReplaceAll(clientCert.KeyPEM, "PRIVATE KEY", "ENCRYPTED PRIVATE KEY")}, "is encrypted"},
		{"two keys", TLSConfig{ClientCertificatePEM: clientCert.CertPEM, ClientKeyPEM: clientCert.KeyPEM + rogueCert.KeyPEM}, "more than one PEM block"},
		{"garbage DER in a key block", TLSConfig{ClientCertificatePEM: clientCert.CertPEM, ClientKeyPEM: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}, "not a usable private key"},
		{"garbage DER in a certificate", TLSConfig{CABundlePEM: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, "certificate 1 of the CA bundle does not parse"},
		{"CA bundle with a key in it", TLSConfig{CABundlePEM: serverCA.CertPEM() + clientCert.KeyPEM}, `CA bundle holds a PEM "PRIVATE KEY" block`},
		{"CA bundle that is not PEM", TLSConfig{CABundlePEM: "not a certificate"}, "CA bundle is not PEM"},
	}
	v := newFakeVendor(t, replyJSON(http.StatusOK, okBody))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			errV := cfg.Validate()
			_, errX := New().Exchange(context.Background(), Request{TokenURL: v.URL, GrantType: "client_credentials", ClientID: "c", TLS: &cfg})
			for _, err := range []error{errV, errX} {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error = %v, want %q", err, tc.want)
				}
				if strings.Contains(err.Error(), keyBody[10:40]) {
					t.Errorf("error quotes the key: %v", err)
				}
			}
			if Classify(errX) != FailureRequest {
				t.Errorf("Classify = %q, want request", Classify(errX))
			}
		})
	}
	t.Cleanup(func() {
		if n := len(v.requests()); n != 0 {
			t.Errorf("%d requests sent with a bad TLS config", n)
		}
	})
}

func TestTLSConfigString(t *testing.T) {
	t.Parallel()
	pki(t)
	cfg := &TLSConfig{ClientCertificatePEM: clientCert.CertPEM, ClientKeyPEM: clientCert.KeyPEM, CABundlePEM: serverCA.CertPEM()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		got := fmt.Sprintf(verb, cfg)
		if strings.Contains(got, "PRIVATE") || strings.Contains(got, clientCert.KeyPEM[30:60]) {
			t.Errorf("%s = %q shows the key", verb, got)
		}
	}
	info, err := cfg.ClientCertificateInfo()
	if err != nil {
		t.Fatal(err)
	}
	if info.Subject != "CN=client-1" || !strings.Contains(info.Issuer, "test client CA") || info.SelfSigned || len(info.SHA256Fingerprint) != 64 {
		t.Errorf("info = %+v", info)
	}
	self := &TLSConfig{ClientCertificatePEM: selfSigned.CertPEM, ClientKeyPEM: selfSigned.KeyPEM}
	if info, err := self.ClientCertificateInfo(); err != nil || !info.SelfSigned {
		t.Errorf("self-signed info = %+v, %v", info, err)
	}
	if _, err := (&TLSConfig{}).ClientCertificateInfo(); err == nil {
		t.Error("info without a certificate: no error")
	}
}

// TestTLSTransportCache checks that transports are made once per distinct
// config, reused (one connection for many requests), and bounded.
func TestTLSTransportCache(t *testing.T) {
	t.Parallel()
	v := newTLSVendor(t, nil)
	c := New(WithMaxTLSConfigs(2))
	send := func(cfg *TLSConfig) {
		t.Helper()
		if _, err := c.Exchange(context.Background(), Request{TokenURL: v.URL, GrantType: "client_credentials", ClientID: "c", TLS: cfg}); err != nil {
			t.Fatalf("Exchange: %v", err)
		}
	}
	a := &TLSConfig{CABundlePEM: serverCA.CertPEM()}
	for range 5 {
		// An equal config in a new struct hits the same transport.
		send(&TLSConfig{CABundlePEM: a.CABundlePEM})
	}
	if n := c.tls.len(); n != 1 {
		t.Errorf("%d cached transports after one config, want 1", n)
	}
	if n := v.conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 requests with one config, want 1", n)
	}
	b := &TLSConfig{CABundlePEM: serverCA.CertPEM(), IncludeSystemRoots: true}
	d := &TLSConfig{CABundlePEM: serverCA.CertPEM(), ClientCertificatePEM: clientCert.CertPEM, ClientKeyPEM: clientCert.KeyPEM}
	send(b)
	send(d)
	if n := c.tls.len(); n != 2 {
		t.Errorf("%d cached transports with a bound of 2, want 2", n)
	}
	// A config without anything uses the Client's own transport.
	if hc, err := c.httpClientFor(&TLSConfig{}); err != nil || hc != c.http {
		t.Error("an empty TLSConfig got its own transport")
	}

	// Many goroutines, a few configs: one transport each, no race.
	c2 := New()
	cfgs := []*TLSConfig{a, b, d, {CABundlePEM: serverCA.CertPEM() + "\n"}}
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c2.Exchange(context.Background(), Request{TokenURL: v.URL, GrantType: "client_credentials", ClientID: "c", TLS: cfgs[i%len(cfgs)]})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := c2.tls.len(); n != len(cfgs) {
		t.Errorf("%d cached transports for %d configs", n, len(cfgs))
	}
}

type customRT struct{}

func (customRT) RoundTrip(*http.Request) (*http.Response, error) { return nil, errors.New("unused") }

func TestTLSWithCustomTransport(t *testing.T) {
	t.Parallel()
	pki(t)
	c := New(WithHTTPClient(&http.Client{Transport: customRT{}}))
	_, err := c.Exchange(context.Background(), Request{TokenURL: "https://x.example/token", GrantType: "g", ClientID: "c", TLS: &TLSConfig{CABundlePEM: serverCA.CertPEM()}})
	if err == nil || !strings.Contains(err.Error(), "cannot take a TLS configuration") {
		t.Errorf("error = %v", err)
	}
}

// TestExchangeTLS_HTTP2 checks the certificate failures and success with
// a server that offers HTTP/2, as most vendors' do: a request with a
// TLSConfig speaks HTTP/1.1, where the TLS alert reliably reaches the
// classification (Go's HTTP/2 transport sometimes reports only "client
// conn could not be established").
func TestExchangeTLS_HTTP2(t *testing.T) {
	t.Parallel()
	pki(t)
	var proto atomic.Value
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		replyJSON(http.StatusOK, okBody)(w, r)
	}))
	s.EnableHTTP2 = true
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}}
	requireClientCert(0)(s.TLS)
	s.StartTLS()
	t.Cleanup(s.Close)
	ca := serverCA.CertPEM()
	for _, tc := range []struct {
		name string
		cfg  *TLSConfig
		want TLSFailure
	}{
		{"no certificate", &TLSConfig{CABundlePEM: ca}, TLSClientCertificateRequired},
		{"no certificate again", &TLSConfig{CABundlePEM: ca}, TLSClientCertificateRequired},
		{"an untrusted certificate again", &TLSConfig{CABundlePEM: ca, ClientCertificatePEM: rogueCert.CertPEM, ClientKeyPEM: rogueCert.KeyPEM}, TLSClientCertificateRejected},
		{"an untrusted certificate", &TLSConfig{CABundlePEM: ca, ClientCertificatePEM: rogueCert.CertPEM, ClientKeyPEM: rogueCert.KeyPEM}, TLSClientCertificateRejected},
		{"a good certificate", &TLSConfig{CABundlePEM: ca, ClientCertificatePEM: clientCert.CertPEM, ClientKeyPEM: clientCert.KeyPEM}, ""},
	} {
		_, err := New().Exchange(context.Background(), Request{TokenURL: s.URL, GrantType: "client_credentials", ClientID: "c", TLS: tc.cfg})
		var te *TransportError
		got := TLSFailure("")
		if errors.As(err, &te) {
			got = te.TLSFailure
		}
		switch {
		case got != tc.want:
			t.Errorf("%s: %v (TLSFailure %q), want %q", tc.name, err, got, tc.want)
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if p, _ := proto.Load().(string); p != "HTTP/1.1" {
		t.Errorf("the request went over %q, want HTTP/1.1", p)
	}
}
