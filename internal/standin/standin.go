// Package standin plays the OAuth2 token endpoints of the vendors the plugin
// supports, so tests and the dev demo can run without reaching the real
// vendors.
//
// The stand-in is the contract: it is strict on purpose. Each vendor rejects
// every request the real vendor would reject, with the status and error body
// the vendor would give, so a plugin bug fails a test instead of passing
// against a lenient fake. Vendor behaviour comes from the vendors' own docs
// (kept in the repository's shared vendor notes); where the docs are silent
// the stand-in follows RFC 6749 to the letter.
//
// One Server holds every vendor, each under its own path prefix
// ("/officernd/...", "/penbox/..."), on one listener.
//
// AuthServer (authserver.go) is separate: a standards-only authorization
// server (RFC 7523 client assertions, RFC 8705 mutual TLS on its own TLS
// listeners, RFC 8414 metadata, RFC 7009 revocation, the RFC 8628 device
// flow), with TestCA to mint the certificates its tests need.
package standin

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Vendor names, as they appear in paths and token prefixes.
const (
	VendorGeneric     = "generic"
	VendorOfficeRnD   = "officernd"
	VendorBoldPenguin = "boldpenguin"
	VendorEshopbox    = "eshopbox"
	VendorPenbox      = "penbox"
)

// Names lists the vendors every Server plays, sorted.
func Names() []string {
	names := []string{VendorGeneric, VendorOfficeRnD, VendorBoldPenguin, VendorEshopbox, VendorPenbox}
	sort.Strings(names)
	return names
}

// Server is an http.Handler that plays every vendor. It is safe for
// concurrent use, including changing vendors' behaviour while serving.
type Server struct {
	vendors map[string]*Vendor

	// skew shifts the stand-in's clock (nanoseconds), so tests can expire
	// codes and tokens without waiting.
	skew atomic.Int64

	closeOnce sync.Once
	closed    chan struct{} // closed by Close: pending delays give up

	mu       sync.Mutex
	httpSrv  *http.Server
	listener net.Listener
}

// New returns a Server playing all vendors, with no clients registered.
func New() *Server {
	s := &Server{vendors: map[string]*Vendor{}, closed: make(chan struct{})}
	for _, v := range []*Vendor{
		newGeneric(s),
		newOfficeRnD(s),
		newBoldPenguin(s),
		newEshopbox(s),
		newPenbox(s),
	} {
		s.vendors[v.name] = v
	}
	return s
}

// now is the stand-in's clock.
func (s *Server) now() time.Time {
	return time.Now().Add(time.Duration(s.skew.Load()))
}

// advance moves the stand-in's clock forward by d.
func (s *Server) advance(d time.Duration) { s.skew.Add(int64(d)) }

// Vendor returns the named vendor. It panics on an unknown name: it is a test
// helper, and a typo there should stop the test at once.
func (s *Server) Vendor(name string) *Vendor {
	v, ok := s.vendors[name]
	if !ok {
		panic(fmt.Sprintf("standin: unknown vendor %q (have %s)", name, strings.Join(Names(), ", ")))
	}
	return v
}

// ServeHTTP routes a request to the vendor named by the first path segment.
// GET / lists the vendors and their token paths, which also serves as a
// readiness probe.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		var b strings.Builder
		b.WriteString("vendoroauth vendor stand-in\n")
		for _, n := range Names() {
			fmt.Fprintf(&b, "%-12s POST %s\n", n, s.vendors[n].TokenPath())
		}
		fmt.Fprintf(&b, "%-12s GET  /%s/authorize\n", VendorPenbox, VendorPenbox)
		_, _ = w.Write([]byte(b.String()))
		return
	}
	name, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	v, ok := s.vendors[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	v.serve(w, r, "/"+rest)
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves in the background.
// It returns the base URL, e.g. "http://127.0.0.1:41234".
func (s *Server) Start(addr string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return "", errors.New("standin: server is closed")
	default:
	}
	if s.httpSrv != nil {
		return "", errors.New("standin: server already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("standin: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.httpSrv, s.listener = srv, ln
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

// Close stops the listener Start opened, drops open connections, and makes
// pending Delays give up. It is safe to call more than once, and without
// Start.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	s.mu.Lock()
	srv := s.httpSrv
	s.httpSrv = nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	if err := srv.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("standin: close: %w", err)
	}
	return nil
}
