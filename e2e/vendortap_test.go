//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

// vendorTap serves a stand-in on its own loopback listener and watches
// every token request on the way: which client sent it, which refresh
// token it presented, what the vendor answered and whether the answer
// reached the plugin. It can hold each answer for a while after the vendor
// has processed it, which is the moment a crash loses a rotated refresh
// token (the vendor has killed the old one, the plugin never sees the new
// one), and it can name the process that sent a request.
type vendorTap struct {
	vs   *standin.Server
	base string
	srv  *http.Server
	// hold is how long an answer is held after the vendor processed the
	// request (nanoseconds).
	hold atomic.Int64
	// owner, if set, names the sender of a request from the
	// connection's client and server addresses; it runs while the
	// connection is open.
	owner atomic.Pointer[func(client, server string) string]

	mu      sync.Mutex
	calls   []*tapCall
	changed chan struct{} // closed and replaced on every change
}

// tapCall is one token request as the tap saw it.
type tapCall struct {
	Path      string
	Client    string // client_id from the body or the Basic header
	Grant     string
	Presented string // refresh token presented, if any
	From      string // who sent it (owner), if known
	Remote    string
	At        time.Time // arrived
	Processed time.Time // the vendor answered; zero while it works
	Done      time.Time // the answer was written or given up
	Status    int
	Issued    string // refresh token in the answer, if any
	Access    string // access token in the answer, if any
	Error     string // OAuth error code in the answer, if any
	// Gone: the client went away before the answer was written (the
	// plugin died). With Status 200 and a rotating vendor, a rotation the
	// plugin never saw.
	Gone bool
}

// inFlight reports whether the call has no answer yet.
func (c tapCall) inFlight() bool { return c.Done.IsZero() }

// answerHeld reports whether the vendor has processed the call and the
// tap holds its answer.
func (c tapCall) answerHeld() bool { return !c.Processed.IsZero() && c.Done.IsZero() }

func newVendorTap(t *testing.T, vs *standin.Server) *vendorTap {
	t.Helper()
	tap := &vendorTap{vs: vs, changed: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tap.base = "http://" + ln.Addr().String()
	tap.srv = &http.Server{Handler: tap, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = tap.srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = vs.Close() // pending delays give up first
		_ = tap.srv.Close()
	})
	return tap
}

func (tap *vendorTap) setHold(d time.Duration) { tap.hold.Store(int64(d)) }

func (tap *vendorTap) setOwner(f func(client, server string) string) { tap.owner.Store(&f) }

// update applies f to a call under the lock and wakes waiters.
func (tap *vendorTap) update(f func()) {
	tap.mu.Lock()
	f()
	close(tap.changed)
	tap.changed = make(chan struct{})
	tap.mu.Unlock()
}

func (tap *vendorTap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(bytes.NewReader(body))
	call := &tapCall{Path: r.URL.Path, Remote: r.RemoteAddr, At: time.Now()}
	form := map[string]string{}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(body, &form)
	} else if vals, err := url.ParseQuery(string(body)); err == nil {
		for k := range vals {
			form[k] = vals.Get(k)
		}
	}
	call.Client, call.Grant, call.Presented = form["client_id"], form["grant_type"], form["refresh_token"]
	if user, _, ok := parseBasic(r.Header.Get("Authorization")); ok && call.Client == "" {
		call.Client, _ = url.QueryUnescape(user)
	}
	if f := tap.owner.Load(); f != nil {
		server := ""
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			server = a.String()
		}
		call.From = (*f)(r.RemoteAddr, server)
	}
	tap.update(func() { tap.calls = append(tap.calls, call) })

	rec := httptest.NewRecorder()
	tap.vs.ServeHTTP(rec, r)
	gone := r.Context().Err() != nil
	var answer struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		Error        string `json:"error"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &answer)
	tap.update(func() {
		call.Processed = time.Now()
		call.Status = rec.Code
		call.Issued, call.Access, call.Error = answer.RefreshToken, answer.AccessToken, answer.Error
		if gone {
			// The stand-in saw the client leave during its Delay and
			// did not process the request.
			call.Status, call.Issued, call.Access = 0, "", ""
		}
	})
	if !gone {
		if d := time.Duration(tap.hold.Load()); d > 0 {
			timer := time.NewTimer(d)
			select {
			case <-timer.C:
			case <-r.Context().Done():
				timer.Stop()
				gone = true
			}
		}
	}
	if !gone {
		for k, vals := range rec.Header() {
			w.Header()[k] = vals
		}
		w.WriteHeader(rec.Code)
		if _, err := w.Write(rec.Body.Bytes()); err != nil {
			gone = true
		}
	}
	tap.update(func() {
		call.Done = time.Now()
		call.Gone = gone
	})
}

// snapshot returns a copy of every call so far, oldest first.
func (tap *vendorTap) snapshot() []tapCall {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	out := make([]tapCall, len(tap.calls))
	for i, c := range tap.calls {
		out[i] = *c
	}
	return out
}

// waitFor waits until cond holds for the calls so far, or ctx ends; it
// returns the calls it last saw.
func (tap *vendorTap) waitFor(ctx context.Context, cond func([]tapCall) bool) ([]tapCall, error) {
	for {
		tap.mu.Lock()
		ch := tap.changed
		tap.mu.Unlock()
		calls := tap.snapshot()
		if cond(calls) {
			return calls, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return calls, ctx.Err()
		}
	}
}

// chainBreak is a refresh that presented a refresh token other than the
// last one the vendor issued to its client: a rotation the plugin lost.
type chainBreak struct {
	Client    string
	At        time.Time
	Presented string
	// LostIn is the call whose rotation was lost; Gone says its answer
	// never reached the plugin (rather than reaching it and not being
	// stored).
	LostIn tapCall
	// Outcome is the vendor's answer to the stale presentation: "ok"
	// (accepted within a rotation grace) or the OAuth error code.
	Outcome string
}

// chainBreaks walks every client's refresh calls in order and reports each
// presentation of a refresh token other than the last one issued.
func chainBreaks(calls []tapCall) []chainBreak {
	byClient := map[string][]tapCall{}
	for _, c := range calls {
		if c.Grant == "refresh_token" {
			byClient[c.Client] = append(byClient[c.Client], c)
		}
	}
	clients := make([]string, 0, len(byClient))
	for c := range byClient {
		clients = append(clients, c)
	}
	sort.Strings(clients)
	var out []chainBreak
	for _, client := range clients {
		cs := byClient[client]
		sort.SliceStable(cs, func(i, j int) bool { return cs[i].At.Before(cs[j].At) })
		var last *tapCall
		for i := range cs {
			c := cs[i]
			if c.inFlight() || c.Status == 0 {
				continue // never processed: it rotated nothing
			}
			if last != nil && last.Issued != "" && c.Presented != last.Issued {
				outcome := c.Error
				if c.Status == http.StatusOK {
					outcome = "ok"
				}
				out = append(out, chainBreak{Client: client, At: c.At, Presented: c.Presented, LostIn: *last, Outcome: outcome})
			}
			if c.Status == http.StatusOK && c.Issued != "" {
				last = &cs[i]
			}
		}
	}
	return out
}
