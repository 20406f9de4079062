// Command vendor-standin serves the vendor stand-in (internal/standin) on a
// loopback port, for `make dev` and end-to-end tests: the plugin's token
// URLs point at it instead of the real vendors.
//
//	vendor-standin -listen 127.0.0.1:0 -demo -addr-file .dev/standin.addr
//
// With -demo it registers fixed, public demo clients (see the demo*
// constants). Once listening it writes its base URL to -addr-file, and it
// logs one line per request to stderr: method, path, status and vendor, never
// a query string, header, body or token.
//
// With -authserver-dir it also serves internal/standin's strict standards
// authorization server (discovery, revocation, the device flow,
// private_key_jwt, mutual TLS with a private CA) on three more loopback
// ports, registers its demo clients, and writes into that directory what a
// demo credential needs (see writeAuthServerFiles): make dev configures one
// credential per feature from them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// Demo clients. The dev script and docs use these exact values; they are
// public and only ever valid against the stand-in.
const (
	demoOfficeRnDID     = "officernd-demo-client"
	demoOfficeRnDSecret = "officernd-demo-secret"

	demoBoldPenguinID     = "boldpenguin-demo-client"
	demoBoldPenguinSecret = "boldpenguin-demo-secret"
	demoBoldPenguinAPIKey = "boldpenguin-demo-api-key"

	demoEshopboxID           = "eshopbox-demo-client"
	demoEshopboxSecret       = "eshopbox-demo-secret"
	demoEshopboxRefreshToken = "eshopbox-demo-refresh-token"

	demoPenboxID           = "penbox-demo-client"
	demoPenboxSecret       = "penbox-demo-secret"
	demoPenboxRefreshToken = "penbox-demo-refresh-token"
	// demoPenboxRedirectURI is the partner callback registered for the
	// Penbox demo client, the one make dev's app allows and its
	// authorizations use. Nothing listens there: the dev script reads the
	// code and state from the stand-in's redirect without following it.
	demoPenboxRedirectURI = "http://127.0.0.1/partner/penbox/callback"

	demoGenericID     = "generic-demo-client"
	demoGenericSecret = "generic-demo-secret"
)

// shutdownGrace bounds how long in-flight requests may take after a signal.
const shutdownGrace = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "vendor-standin:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done; it is main without the process around it,
// so tests can drive it.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("vendor-standin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on; keep it on loopback (plain HTTP, demo credentials)")
	demo := fs.Bool("demo", false, "register the fixed demo clients the dev script uses")
	addrFile := fs.String("addr-file", "", "once listening, write the base URL (http://host:port) to this file, atomically")
	authDir := fs.String("authserver-dir", "", "also serve the strict authorization server, with -demo its demo clients, and write its URLs, CA and demo client certificate into this directory")
	vaultAddr := fs.String("vault-addr", "", "with -authserver-dir -demo: the Vault whose unauthenticated jwks path the private_key_jwt demo client's keys are fetched from")
	mount := fs.String("mount", "vendoroauth", "with -vault-addr: the plugin's mount path")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}

	s := standin.New()
	if *demo {
		registerDemo(s)
	}
	logger := log.New(stderr, "vendor-standin: ", log.LstdFlags|log.Lmicroseconds)
	if *authDir != "" {
		as, err := startAuthServer(*authDir, *demo, *vaultAddr, *mount)
		if err != nil {
			return err
		}
		defer func() { _ = as.Close() }()
		logger.Printf("authorization server: issuer %s, mutual TLS at %s", as.Issuer(), as.URL(standin.MutualTLS))
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	base := "http://" + ln.Addr().String()
	srv := &http.Server{Handler: logRequests(s, logger), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	if *addrFile != "" {
		if err := writeFileAtomic(*addrFile, base); err != nil {
			_ = srv.Close()
			return err
		}
	}
	logger.Printf("listening on %s (demo clients: %t)", base, *demo)

	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	}
	logger.Printf("shutting down")
	_ = s.Close() // requests held by Delay give up now
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err = srv.Shutdown(sctx)
	if *addrFile != "" {
		// A stale file would point the next dev run at a dead port.
		if rmErr := os.Remove(*addrFile); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			logger.Printf("removing %s: %v", *addrFile, rmErr)
		}
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// registerDemo registers the demo clients.
func registerDemo(s *standin.Server) {
	s.Vendor(standin.VendorOfficeRnD).AddClient(standin.Client{
		ID: demoOfficeRnDID, Secret: demoOfficeRnDSecret,
		Scopes: []string{"officernd.api.read", "officernd.api.write"},
	})
	s.Vendor(standin.VendorBoldPenguin).AddClient(standin.Client{
		ID: demoBoldPenguinID, Secret: demoBoldPenguinSecret, APIKey: demoBoldPenguinAPIKey,
	})
	esb := s.Vendor(standin.VendorEshopbox)
	esb.AddClient(standin.Client{ID: demoEshopboxID, Secret: demoEshopboxSecret})
	esb.AddRefreshToken(demoEshopboxID, demoEshopboxRefreshToken)
	pb := s.Vendor(standin.VendorPenbox)
	pb.AddClient(standin.Client{ID: demoPenboxID, Secret: demoPenboxSecret, RedirectURIs: []string{demoPenboxRedirectURI}})
	pb.AddRefreshToken(demoPenboxID, demoPenboxRefreshToken)
	pb.SetBehavior(standin.Behavior{Rotate: true})
	s.Vendor(standin.VendorGeneric).AddClient(standin.Client{ID: demoGenericID, Secret: demoGenericSecret})
}

// Demo clients of the authorization server: one per feature that needs more
// than a client secret. make dev configures a credential for each; the
// names are the credentials' too.
const (
	demoDiscoveryID     = "discovery-demo-client"
	demoDiscoverySecret = "discovery-demo-secret"
	demoRevokeID        = "revoke-demo-client"
	demoRevokeSecret    = "revoke-demo-secret"
	demoDeviceID        = "device-demo-client"
	demoPKJWTID         = "pkjwt-demo-client"
	demoPKJWTName       = "pkjwt-demo"
	demoMTLSID          = "mtls-demo-client"
	// demoDeviceInterval is the polling interval the demo device flow
	// announces: short, so the demo and its test do not wait.
	demoDeviceInterval = time.Second
)

// startAuthServer starts the authorization server, registers its demo
// clients with -demo, and writes its files into dir.
func startAuthServer(dir string, demo bool, vaultAddr, mount string) (*standin.AuthServer, error) {
	as, err := standin.NewAuthServer(standin.AuthServerOptions{DeviceInterval: demoDeviceInterval})
	if err != nil {
		return nil, fmt.Errorf("authorization server: %w", err)
	}
	files := map[string]string{
		"issuer":         as.Issuer(),
		"mtls-token-url": as.Endpoints(standin.MutualTLS).Token,
		"server-ca.pem":  as.ServerCA().CertPEM(),
	}
	if demo {
		if err := addAuthDemo(as, vaultAddr, mount, files); err != nil {
			_ = as.Close()
			return nil, err
		}
	}
	if err := writeAuthServerFiles(dir, files); err != nil {
		_ = as.Close()
		return nil, err
	}
	return as, nil
}

// addAuthDemo registers the demo clients and adds to files what their
// credentials need that is made at start: the mutual-TLS client's
// certificate and key, and a refresh token to revoke.
func addAuthDemo(as *standin.AuthServer, vaultAddr, mount string, files map[string]string) error {
	clients := []standin.AuthClient{
		{ID: demoDiscoveryID, Secret: demoDiscoverySecret},
		{ID: demoRevokeID, Secret: demoRevokeSecret},
		{ID: demoDeviceID, Method: standin.MethodNone},
		{ID: demoMTLSID, Method: standin.MethodTLSClientAuth, TLSSubject: "CN=" + demoMTLSID},
	}
	if vaultAddr != "" {
		clients = append(clients, standin.AuthClient{ID: demoPKJWTID, Method: standin.MethodPrivateKeyJWT,
			JWKSURL: strings.TrimRight(vaultAddr, "/") + "/v1/" + strings.Trim(mount, "/") + "/jwks/" + demoPKJWTName})
	}
	for _, c := range clients {
		if err := as.AddClient(c); err != nil {
			return err
		}
	}
	cert, err := as.ClientCA().IssueClient(demoMTLSID)
	if err != nil {
		return err
	}
	rt, err := as.IssueRefreshToken(demoRevokeID)
	if err != nil {
		return err
	}
	files["mtls-client.pem"] = cert.CertPEM
	files["mtls-client-key.pem"] = cert.KeyPEM
	files["revoke-demo-refresh-token"] = rt
	return nil
}

// writeAuthServerFiles writes each file into dir: the URLs and the CA
// certificate readable by all, the private key and the refresh token
// 0600 (they are demo values, but the habit is the point).
func writeAuthServerFiles(dir string, files map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := writeFileAtomic(path, data); err != nil {
			return err
		}
		if strings.HasSuffix(name, "-key.pem") || strings.HasSuffix(name, "refresh-token") {
			if err := os.Chmod(path, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeFileAtomic writes data to a temporary file beside path and renames it
// into place, so a reader never sees a partial URL.
func writeFileAtomic(path, data string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	_, werr := f.WriteString(data)
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(tmp, 0o644)
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, werr)
	}
	return nil
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// statusClientGone is logged when the client left before an answer (nginx's
// convention).
const statusClientGone = 499

// logRequests logs one line per request. Only the method, the path (never
// the query: it holds state and PKCE values), the status and the vendor are
// logged; headers and bodies carry secrets and are never looked at here.
func logRequests(next http.Handler, logger *log.Logger) http.Handler {
	vendors := map[string]bool{}
	for _, n := range standin.Names() {
		vendors[n] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		status := sw.status
		if status == 0 {
			status = http.StatusOK
			if r.Context().Err() != nil {
				status = statusClientGone
			}
		}
		vendor, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if !vendors[vendor] {
			vendor = "-"
		}
		logger.Printf("%s %s %d vendor=%s %s", printable(r.Method), printable(r.URL.Path), status, vendor,
			time.Since(start).Round(time.Microsecond))
	})
}

// printable drops control characters so a request cannot forge log lines.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
