package tokenclient

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stall answers nothing until the client gives up, so that the test
// server can close.
func stall(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}

// hangingListener accepts connections and never writes, so that a TLS
// handshake never ends. It closes what it accepted when the test ends.
func hangingListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// refusedAddr is an address nothing listens on: a port that was just
// free.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestExchangeTransport checks that failures to get an answer are
// *TransportErrors that say whether the request may have reached the
// server.
func TestExchangeTransport(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup returns the token URL and the client to use.
		setup func(t *testing.T) (string, *Client)
		// ctx makes the context; nil means context.Background.
		ctx         func() (context.Context, context.CancelFunc)
		wantSent    bool
		wantTimeout bool
		wantErr     string
	}{
		{
			name: "slow server hits the client timeout",
			setup: func(t *testing.T) (string, *Client) {
				v := newFakeVendor(t, stall)
				return v.URL + "/token?q=1", New(WithTimeout(500 * time.Millisecond))
			},
			wantSent: true, wantTimeout: true,
			wantErr: "no answer from token endpoint http://127.0.0.1:*",
		},
		{
			name: "slow server hits the context deadline",
			setup: func(t *testing.T) (string, *Client) {
				v := newFakeVendor(t, stall)
				return v.URL + "/token", New()
			},
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 500*time.Millisecond)
			},
			wantSent: true, wantTimeout: true,
			wantErr: "no answer from token endpoint http://127.0.0.1:*",
		},
		{
			name: "server stalls in the middle of the body",
			setup: func(t *testing.T) (string, *Client) {
				v := newFakeVendor(t, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusOK)
					_, _ = io.WriteString(w, `{"access_token":`)
					w.(http.Flusher).Flush()
					<-r.Context().Done()
				})
				return v.URL + "/token", New(WithTimeout(500 * time.Millisecond))
			},
			wantSent: true, wantTimeout: true,
			wantErr: "no complete answer from token endpoint http://127.0.0.1:*",
		},
		{
			name: "TLS handshake never ends",
			setup: func(t *testing.T) (string, *Client) {
				return "https://" + hangingListener(t) + "/token", New(WithTimeout(150 * time.Millisecond))
			},
			wantSent: false, wantTimeout: true,
			wantErr: "cannot reach token endpoint https://127.0.0.1:*",
		},
		{
			name: "connection refused",
			setup: func(t *testing.T) (string, *Client) {
				return "http://" + refusedAddr(t) + "/token", New()
			},
			wantSent: false, wantTimeout: false,
			wantErr: "cannot reach token endpoint http://127.0.0.1:*",
		},
		{
			name: "connection closed after the request was read",
			setup: func(t *testing.T) (string, *Client) {
				v := newFakeVendor(t, func(w http.ResponseWriter, _ *http.Request) {
					c, _, err := w.(http.Hijacker).Hijack()
					if err == nil {
						c.Close()
					}
				})
				return v.URL + "/token", New()
			},
			wantSent: true, wantTimeout: false,
			wantErr: "lost the connection to token endpoint http://127.0.0.1:*",
		},
		{
			name: "context canceled before the call",
			setup: func(t *testing.T) (string, *Client) {
				v := newFakeVendor(t, replyJSON(http.StatusOK, okBody))
				return v.URL + "/token", New()
			},
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			wantSent: false, wantTimeout: false,
			wantErr: "request to token endpoint http://127.0.0.1:*",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tokenURL, c := tc.setup(t)
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()
			start := time.Now()
			_, err := c.Exchange(ctx, Request{
				TokenURL: tokenURL, GrantType: "refresh_token", ClientID: "cid", ClientSecret: testClientSecret,
				Params: map[string]string{"refresh_token": testRefreshToken},
			})
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("Exchange took %s: the time limit did not hold", elapsed)
			}
			var te *TransportError
			if !errors.As(err, &te) {
				t.Fatalf("error = %v (%T), want *TransportError", err, err)
			}
			if te.Sent != tc.wantSent || te.Timeout != tc.wantTimeout {
				t.Errorf("Sent, Timeout = %v, %v; want %v, %v (%v)", te.Sent, te.Timeout, tc.wantSent, tc.wantTimeout, err)
			}
			if te.Unwrap() == nil {
				t.Error("Unwrap() = nil, want the network error")
			}
			checkMessage(t, err, tc.wantErr)
			if strings.Contains(err.Error(), "q=1") || strings.Contains(err.Error(), "Post ") {
				t.Errorf("error %q repeats the URL's query or net/http's wording", err)
			}
			if tc.wantTimeout && !strings.HasSuffix(err.Error(), "(timeout)") {
				t.Errorf("error %q does not say timeout", err)
			}
		})
	}
}

// TestExchangeTimeoutMessage checks the whole message of a timeout, which
// names the limit the request had.
func TestExchangeTimeoutMessage(t *testing.T) {
	t.Parallel()
	v := newFakeVendor(t, stall)
	// Long enough that a loaded machine still connects and sends in time:
	// the message would otherwise, rightly, say "cannot reach".
	_, err := New(WithTimeout(500*time.Millisecond)).Exchange(context.Background(), Request{
		TokenURL: v.URL + "/oauth/token?x=y", GrantType: "client_credentials", ClientID: "cid",
	})
	want := "no answer from token endpoint " + v.URL + "/oauth/token within 500ms (timeout)"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

// TestExchangeRedirect checks that a redirect is reported, not followed:
// following would send the client credentials to another host.
func TestExchangeRedirect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// location is the Location header; "{other}" is replaced by the
		// other server's URL.
		location string
		status   int
		// client makes the Client; nil means New().
		client       func() *Client
		wantLocation string
	}{
		{name: "302 to another host", location: "{other}/token?client_secret=x", status: http.StatusFound, wantLocation: "{other}/token"},
		{name: "307 to another host", location: "{other}/v2/token", status: http.StatusTemporaryRedirect, wantLocation: "{other}/v2/token"},
		{name: "308 with a relative path", location: "/v2/token?x=1", status: http.StatusPermanentRedirect, wantLocation: "{self}/v2/token"},
		{
			name: "a given http.Client that follows redirects still does not", location: "{other}/token", status: http.StatusMovedPermanently,
			client: func() *Client {
				return New(WithHTTPClient(&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return nil }}))
			},
			wantLocation: "{other}/token",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var otherHits atomic.Int32
			other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				otherHits.Add(1)
				replyJSON(http.StatusOK, okBody)(w, nil)
			}))
			t.Cleanup(other.Close)
			self := newFakeVendor(t, func(w http.ResponseWriter, r *http.Request) {
				loc := strings.ReplaceAll(tc.location, "{other}", other.URL)
				http.Redirect(w, r, loc, tc.status)
			})
			c := New()
			if tc.client != nil {
				c = tc.client()
			}
			_, err := c.Exchange(context.Background(), Request{
				TokenURL: self.URL + "/token", GrantType: "client_credentials", ClientID: "cid", ClientSecret: testClientSecret,
			})
			var ve *Error
			if !errors.As(err, &ve) {
				t.Fatalf("error = %v (%T), want *Error", err, err)
			}
			wantLoc := strings.NewReplacer("{other}", other.URL, "{self}", self.URL).Replace(tc.wantLocation)
			if ve.StatusCode != tc.status || ve.Location != wantLoc {
				t.Errorf("StatusCode, Location = %d, %q; want %d, %q", ve.StatusCode, ve.Location, tc.status, wantLoc)
			}
			want := "token endpoint redirected (HTTP " + statusLine(tc.status) + ") to " + wantLoc +
				"; redirects are not followed: set token_url to the endpoint itself"
			if err.Error() != want {
				t.Errorf("error = %q\nwant    %q", err, want)
			}
			if n := otherHits.Load(); n != 0 {
				t.Errorf("the other server got %d requests, want 0", n)
			}
			if n := len(self.requests()); n != 1 {
				t.Errorf("the token endpoint got %d requests, want 1", n)
			}
		})
	}
}

// TestExchangeRawStatusLine checks a vendor whose status line is not one
// net/http would write: the status text is kept, sanitised.
func TestExchangeRawStatusLine(t *testing.T) {
	t.Parallel()
	v := newFakeVendor(t, func(w http.ResponseWriter, _ *http.Request) {
		c, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		writeRaw(buf, "HTTP/1.1 418 Short And Stout\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
	})
	_, err := New().Exchange(context.Background(), Request{TokenURL: v.URL, GrantType: "client_credentials", ClientID: "cid"})
	checkMessage(t, err, "token endpoint answered HTTP 418 Short And Stout")
}

func writeRaw(buf *bufio.ReadWriter, s string) {
	_, _ = buf.WriteString(s)
	_ = buf.Flush()
}

// TestNew checks the options: the timeout each combination ends up with,
// that redirects are always refused, and that a given http.Client is not
// changed.
func TestNew(t *testing.T) {
	t.Parallel()
	given := &http.Client{Timeout: 7 * time.Second}
	tests := []struct {
		name string
		opts []Option
		want time.Duration
	}{
		{"default", nil, DefaultTimeout},
		{"WithTimeout", []Option{WithTimeout(5 * time.Second)}, 5 * time.Second},
		{"zero WithTimeout is the default", []Option{WithTimeout(0)}, DefaultTimeout},
		{"negative WithTimeout is the default", []Option{WithTimeout(-time.Second)}, DefaultTimeout},
		{"the given client's timeout", []Option{WithHTTPClient(given)}, 7 * time.Second},
		{"WithTimeout wins over the given client's, in any order", []Option{WithTimeout(time.Second), WithHTTPClient(given)}, time.Second},
		{"a given client without a timeout gets the default", []Option{WithHTTPClient(&http.Client{})}, DefaultTimeout},
		{"nil options and clients are ignored", []Option{nil, WithHTTPClient(nil)}, DefaultTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := New(tc.opts...)
			if c.http.Timeout != tc.want {
				t.Errorf("timeout = %s, want %s", c.http.Timeout, tc.want)
			}
			if c.http.CheckRedirect == nil || !errors.Is(c.http.CheckRedirect(nil, nil), http.ErrUseLastResponse) {
				t.Error("redirects are not refused")
			}
			if c.http == given || given.CheckRedirect != nil || given.Timeout != 7*time.Second {
				t.Error("the given http.Client was changed or shared")
			}
		})
	}
}

// TestExchangeUnmadeClient checks that a Client not made by New fails
// instead of panicking.
func TestExchangeUnmadeClient(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]*Client{"nil": nil, "zero": {}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := c.Exchange(context.Background(), Request{TokenURL: "https://x.example/token", GrantType: "g"}); err == nil {
				t.Error("Exchange on an unmade Client succeeded")
			}
		})
	}
}

// TestExchangeConcurrent shares one Client between goroutines, for -race.
func TestExchangeConcurrent(t *testing.T) {
	t.Parallel()
	v := newFakeVendor(t, replyJSON(http.StatusOK, okBody))
	c := New()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Exchange(context.Background(), Request{TokenURL: v.URL, GrantType: "client_credentials", ClientID: "cid", ClientSecret: "x"})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestExchangeTLS checks WithHTTPClient with an httptest TLS server's
// client, the way tests of other packages are expected to use it.
func TestExchangeTLS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(replyJSON(http.StatusOK, okBody))
	// The untrusted handshake below is expected: keep it out of the log.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	tok, err := New(WithHTTPClient(srv.Client())).Exchange(context.Background(), Request{
		TokenURL: srv.URL + "/token", GrantType: "client_credentials", ClientID: "cid", ClientSecret: "x",
	})
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if tok.AccessToken != testAccessToken || tok.ExpiresIn != time.Hour {
		t.Errorf("token = %v", tok)
	}
	// Without the server's certificate the handshake fails before
	// anything is sent.
	_, err = New().Exchange(context.Background(), Request{TokenURL: srv.URL + "/token", GrantType: "client_credentials", ClientID: "cid"})
	var te *TransportError
	if !errors.As(err, &te) || te.Sent || te.Timeout {
		t.Errorf("untrusted certificate: error = %v, want an unsent *TransportError", err)
	}
}
