package tokenclient

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Secrets shared by the tests. The client id and secret hold characters
// that form encoding changes, so that raw and RFC 6749 Basic encoding
// differ.
const (
	testClientID     = "id:with space"
	testClientSecret = "s3cr+t/é"
	testRefreshToken = "rt-0123456789abcdef"
	testAPIKey       = "k3y-fedcba9876543210"
	testAccessToken  = "at-issued-5f4dcc3b5aa765d6"
)

// okBody is a full RFC 6749 5.1 token response.
const okBody = `{"access_token":"` + testAccessToken + `","token_type":"bearer","expires_in":3600,"refresh_token":"rt-new","scope":"read write"}`

// captured is one request as the fake vendor saw it.
type captured struct {
	Method   string
	Host     string
	Path     string
	RawQuery string
	Header   http.Header
	Body     []byte
}

// fakeVendor is a token endpoint that records every request and answers
// with reply. The test checks the recorded requests in its own goroutine,
// after Exchange returns, so that a mismatch fails the right test.
type fakeVendor struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []captured
}

func newFakeVendor(t *testing.T, reply http.HandlerFunc) *fakeVendor {
	t.Helper()
	v := &fakeVendor{}
	v.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// The reply may read the body too, to echo it.
		r.Body = io.NopCloser(bytes.NewReader(body))
		v.mu.Lock()
		v.reqs = append(v.reqs, captured{
			Method:   r.Method,
			Host:     r.Host,
			Path:     r.URL.Path,
			RawQuery: r.URL.RawQuery,
			Header:   r.Header.Clone(),
			Body:     body,
		})
		v.mu.Unlock()
		reply(w, r)
	}))
	t.Cleanup(v.Close)
	return v
}

func (v *fakeVendor) requests() []captured {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]captured(nil), v.reqs...)
}

// replyWith answers every request with the same status, headers and body.
func replyWith(status int, header map[string]string, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// replyJSON answers with a JSON body.
func replyJSON(status int, body string) http.HandlerFunc {
	return replyWith(status, map[string]string{"Content-Type": "application/json"}, body)
}
