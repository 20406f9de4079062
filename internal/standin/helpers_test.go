package standin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// newServer starts a Server on loopback for one test.
func newServer(t *testing.T) (*Server, string) {
	t.Helper()
	s := New()
	base, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, base
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// call is one request to the stand-in.
type call struct {
	method string // POST when empty
	path   string
	query  url.Values
	form   url.Values        // a form body
	json   map[string]string // a JSON body
	raw    string            // a raw body, with contentType
	// contentType overrides the body's Content-Type ("-" sends none).
	contentType string
	header      map[string]string
	ctx         context.Context
}

// result is a response, read in full.
type result struct {
	status int
	header http.Header
	body   []byte
	obj    map[string]any // the body as a JSON object, when it is one
}

func (r result) str(key string) string {
	s, _ := r.obj[key].(string)
	return s
}

func (c call) do(t *testing.T, base string) result {
	t.Helper()
	res, err := c.try(base)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	return res
}

func (c call) try(base string) (result, error) {
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	u := base + c.path
	if len(c.query) > 0 {
		u += "?" + c.query.Encode()
	}
	var body io.Reader
	ct := ""
	switch {
	case c.form != nil:
		body, ct = strings.NewReader(c.form.Encode()), "application/x-www-form-urlencoded"
	case c.json != nil:
		b, _ := json.Marshal(c.json)
		body, ct = bytes.NewReader(b), "application/json"
	case c.raw != "":
		body = strings.NewReader(c.raw)
	}
	if c.contentType != "" {
		ct = c.contentType
	}
	if ct == "-" {
		ct = ""
	}
	ctx := c.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return result{}, err
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, err
	}
	res := result{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &res.obj)
	return res, nil
}

// basicRaw is an Authorization header over the raw "id:secret".
func basicRaw(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
}

// basicRFC6749 is an Authorization header over the form-encoded id and
// secret, as RFC 6749 section 2.3.1 says.
func basicRFC6749(id, secret string) string {
	return basicRaw(url.QueryEscape(id), url.QueryEscape(secret))
}

// want checks a response's status and, for an error, its code and that its
// description mentions each of the given strings.
type want struct {
	status int
	code   string   // "error" in the body; "" for success or non-OAuth bodies
	desc   []string // substrings of error_description
}

func (w want) check(t *testing.T, r result) {
	t.Helper()
	if r.status != w.status {
		t.Fatalf("status = %d, want %d; body %s", r.status, w.status, r.body)
	}
	if w.code != "" && r.str("error") != w.code {
		t.Fatalf("error = %q, want %q; body %s", r.str("error"), w.code, r.body)
	}
	for _, d := range w.desc {
		if !strings.Contains(r.str("error_description"), d) {
			t.Fatalf("error_description %q does not mention %q", r.str("error_description"), d)
		}
	}
	if w.status == http.StatusUnauthorized && r.str("error") != "invalid_client" {
		t.Fatalf("401 without invalid_client: %s", r.body)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

// number reads a JSON number field.
func (r result) number(t *testing.T, key string) float64 {
	t.Helper()
	n, ok := r.obj[key].(float64)
	if !ok {
		t.Fatalf("%s = %#v, want a JSON number; body %s", key, r.obj[key], r.body)
	}
	return n
}
