package vendoroauth

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// thief is an authorization server where no secret was written for: it
// answers every endpoint as a vendor would (tokens, device codes,
// revocations, metadata), so that every path the plugin has runs to its
// end, and records every request it gets, with its headers, body and
// whether a client certificate came, to find secrets in. With a CA it
// serves TLS under a certificate that CA issued, and asks for client
// certificates; its certificate can be swapped, as someone on the network
// path would present their own for the same address.
type thief struct {
	URL  string
	Host string
	mu   sync.Mutex
	seen []string
	cert atomic.Pointer[tls.Certificate]
	// invalidClient makes the token endpoint refuse every client.
	invalidClient atomic.Bool
	// deviceCode is the device codes it hands out, each with its number.
	deviceCode string
	issued     atomic.Int64
}

func newThief(t *testing.T, ca *standin.TestCA) *thief {
	t.Helper()
	f := &thief{deviceCode: "THIEF-DEVICE-CODE"}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	if ca == nil {
		srv.Start()
	} else {
		f.present(t, ca)
		// httptest adds a certificate of its own, which a handshake
		// without a server name would get; each handshake gets the
		// current one instead.
		srv.TLS = &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
				return &tls.Config{MinVersion: tls.VersionTLS12, ClientAuth: tls.RequestClientCert, Certificates: []tls.Certificate{*f.cert.Load()}}, nil
			},
		}
		srv.StartTLS()
	}
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	f.Host = strings.TrimPrefix(strings.TrimPrefix(srv.URL, "https://"), "http://")
	return f
}

// present makes the server answer TLS handshakes with a certificate ca
// issued for the loopback address.
func (f *thief) present(t *testing.T, ca *standin.TestCA) {
	t.Helper()
	issued, err := ca.IssueServer("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	c, err := issued.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	f.cert.Store(&c)
}

func (f *thief) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var rec strings.Builder
	fmt.Fprintf(&rec, "%s %s?%s", r.Method, r.URL.Path, r.URL.RawQuery)
	names := make([]string, 0, len(r.Header))
	for k := range r.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := strings.Join(r.Header[k], ",")
		if enc, ok := strings.CutPrefix(v, "Basic "); ok && k == "Authorization" {
			if dec, err := base64.StdEncoding.DecodeString(enc); err == nil {
				v = "Basic " + string(dec)
			}
		}
		fmt.Fprintf(&rec, " %s=%s", k, v)
	}
	if r.Host != "" {
		fmt.Fprintf(&rec, " host=%s", r.Host)
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		rec.WriteString(" CLIENT-CERTIFICATE")
	}
	fmt.Fprintf(&rec, " body=%s", body)
	f.mu.Lock()
	f.seen = append(f.seen, rec.String())
	f.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	form := parseBody(r, body)
	switch {
	case strings.HasPrefix(r.URL.Path, "/.well-known/"):
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": f.URL, "token_endpoint": f.URL + "/token", "authorization_endpoint": f.URL + "/authorize",
			"revocation_endpoint": f.URL + "/revoke", "device_authorization_endpoint": f.URL + "/device",
		})
	case r.URL.Path == "/device":
		fmt.Fprintf(w, `{"device_code":"%s-%d","user_code":"USER","verification_uri":%q,"expires_in":600,"interval":1}`, f.deviceCode, f.issued.Add(1), f.URL+"/verify")
	case r.URL.Path == "/revoke":
	case f.invalidClient.Load():
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"invalid_client"}`)
	case strings.HasSuffix(form["grant_type"], "device_code"):
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"authorization_pending"}`)
	case form["grant_type"] == "refresh_token" || form["grant_type"] == "client_credentials":
		// No rotation: the refresh token the plugin holds stays the one
		// to look for.
		fmt.Fprint(w, `{"access_token":"THIEF-AT","token_type":"Bearer","expires_in":3600}`)
	default:
		fmt.Fprint(w, `{"access_token":"THIEF-AT","token_type":"Bearer","expires_in":3600,"refresh_token":"THIEF-RT"}`)
	}
}

// parseBody reads a form or JSON body, and grant_type from the query.
func parseBody(r *http.Request, body []byte) map[string]string {
	out := map[string]string{}
	if json.Unmarshal(body, &out) != nil {
		if vals, err := url.ParseQuery(string(body)); err == nil {
			for k := range vals {
				out[k] = vals.Get(k)
			}
		}
	}
	if g := r.URL.Query().Get("grant_type"); g != "" {
		out["grant_type"] = g
	}
	return out
}

// requests is how many requests came so far, for got's since.
func (f *thief) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

// got is the first request since the since'th that carries one of
// needles (in its headers, decoded Basic credentials, body or as
// CLIENT-CERTIFICATE), or "".
func (f *thief) got(since int, needles ...string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, rec := range f.seen[min(since, len(f.seen)):] {
		for _, n := range needles {
			if n != "" && strings.Contains(rec, n) {
				return n + " in: " + rec
			}
		}
	}
	return ""
}
