package standin

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// TestCA is a private certificate authority for tests: it signs the
// stand-in authorization server's TLS certificates, or the client
// certificates a mutual-TLS endpoint accepts. Keys are ECDSA P-256, which
// is fast to generate. Nothing it makes is trusted anywhere else.
type TestCA struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM string
}

// Issued is a certificate and its key, PEM-encoded as an operator would
// paste them.
type Issued struct {
	CertPEM string
	KeyPEM  string
	// Cert is the parsed leaf.
	Cert *x509.Certificate
}

// TLSCertificate is the pair for a tls.Config.
func (i *Issued) TLSCertificate() (tls.Certificate, error) {
	return tls.X509KeyPair([]byte(i.CertPEM), []byte(i.KeyPEM))
}

// NewTestCA makes a CA named name, valid from an hour ago for a day.
func NewTestCA(name string) (*TestCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"vendoroauth stand-in"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("standin: creating CA %q: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &TestCA{cert: cert, key: key, certPEM: certPEM(der)}, nil
}

// CertPEM is the CA's certificate: what a CA bundle holds.
func (ca *TestCA) CertPEM() string { return ca.certPEM }

// Certificate is the CA's parsed certificate.
func (ca *TestCA) Certificate() *x509.Certificate { return ca.cert }

// Pool is a pool holding only this CA.
func (ca *TestCA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// CertOptions shape an issued certificate; zero values are the defaults.
type CertOptions struct {
	// CommonName is the subject's CN.
	CommonName string
	// Hosts are DNS names or IP addresses for a server certificate;
	// default 127.0.0.1, ::1 and localhost.
	Hosts []string
	// NotBefore and NotAfter default to an hour ago and a day from now;
	// set them in the past for an expired certificate.
	NotBefore, NotAfter time.Time
}

// IssueServer issues a server certificate for hosts (default loopback).
func (ca *TestCA) IssueServer(hosts ...string) (*Issued, error) {
	return ca.Issue(CertOptions{CommonName: "stand-in server", Hosts: hosts}, x509.ExtKeyUsageServerAuth)
}

// IssueClient issues a client certificate with the given CN, for
// tls_client_auth.
func (ca *TestCA) IssueClient(commonName string) (*Issued, error) {
	return ca.Issue(CertOptions{CommonName: commonName}, x509.ExtKeyUsageClientAuth)
}

// Issue issues a certificate for usage with the options.
func (ca *TestCA) Issue(o CertOptions, usage x509.ExtKeyUsage) (*Issued, error) {
	return issue(o, usage, ca.cert, ca.key)
}

// SelfSignedClient makes a self-signed client certificate with the given
// CN, for self_signed_tls_client_auth.
func SelfSignedClient(commonName string) (*Issued, error) {
	return issue(CertOptions{CommonName: commonName}, x509.ExtKeyUsageClientAuth, nil, nil)
}

func issue(o CertOptions, usage x509.ExtKeyUsage, parent *x509.Certificate, parentKey crypto.Signer) (*Issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if o.NotBefore.IsZero() {
		o.NotBefore = now.Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = now.Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: o.CommonName},
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		hosts := o.Hosts
		if len(hosts) == 0 {
			hosts = []string{"127.0.0.1", "::1", "localhost"}
		}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, fmt.Errorf("standin: issuing %q: %w", o.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Issued{
		CertPEM: certPEM(der),
		KeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
		Cert:    cert,
	}, nil
}

func certPEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(errors.New("standin: no randomness"))
	}
	return n
}
