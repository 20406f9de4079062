package standin

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTokenPaths(t *testing.T) {
	t.Parallel()
	s := New()
	for name, want := range map[string]string{
		"generic":     "/generic/token",
		"officernd":   "/officernd/oauth/token",
		"boldpenguin": "/boldpenguin/auth/token",
		"eshopbox":    "/eshopbox/api/v1/generateToken",
		"penbox":      "/penbox/token",
	} {
		if got := s.Vendor(name).TokenPath(); got != want {
			t.Errorf("%s: TokenPath = %q, want %q", name, got, want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Vendor(unknown) did not panic")
		}
	}()
	s.Vendor("nope")
}

func TestRouting(t *testing.T) {
	t.Parallel()
	s, base := newServer(t)
	if _, err := s.Start("127.0.0.1:0"); err == nil {
		t.Fatal("second Start succeeded")
	}
	for path, status := range map[string]int{
		"/":                       200,
		"/nope/token":             404,
		"/officernd/oauth/token/": 404,
		"/officernd/token":        404,
		"/penbox/authorize/x":     404,
	} {
		r := call{method: http.MethodGet, path: path}.do(t, base)
		if r.status != status {
			t.Errorf("GET %s: %d, want %d", path, r.status, status)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

func TestStatsAndReset(t *testing.T) {
	t.Parallel()
	s, base := newServer(t)
	v := s.Vendor(VendorOfficeRnD)
	v.AddClient(Client{ID: "c", Secret: "s", Scopes: []string{"officernd.api.read"}})
	good := form("client_id", "c", "client_secret", "s", "grant_type", "client_credentials", "scope", "officernd.api.read")
	p := v.TokenPath()
	call{path: p, form: good}.do(t, base)
	call{path: p, form: good}.do(t, base)
	call{path: p, form: form("client_id", "c", "client_secret", "x", "grant_type", "client_credentials", "scope", "officernd.api.read")}.do(t, base)
	call{path: p, form: form("client_id", "c", "client_secret", "s", "grant_type", "client_credentials", "scope", "officernd.api.write")}.do(t, base)
	call{method: http.MethodGet, path: p}.do(t, base)

	st := v.Stats()
	if st.Requests != 5 || st.Grants != 2 || st.ByGrantType["client_credentials"] != 2 || len(st.ByGrantType) != 1 ||
		st.Failures["invalid_client"] != 1 || st.Failures["invalid_scope"] != 1 || st.Failures["http_405"] != 1 || len(st.Failures) != 3 {
		t.Fatalf("stats = %+v", st)
	}
	st.Failures["mutated"] = 1 // a copy: must not leak back
	if _, leaked := v.Stats().Failures["mutated"]; leaked {
		t.Fatal("Stats returned the live map")
	}
	if other := s.Vendor(VendorPenbox).Stats(); other.Requests != 0 {
		t.Fatalf("penbox counted officernd's requests: %+v", other)
	}
	if n := len(v.Requests()); n != 5 {
		t.Fatalf("%d recorded requests, want 5", n)
	}

	v.Reset()
	if st := v.Stats(); st.Requests != 0 || st.Grants != 0 || len(st.Failures) != 0 || len(v.Requests()) != 0 {
		t.Fatalf("after Reset: %+v, %d requests", st, len(v.Requests()))
	}
	want{status: 200}.check(t, call{path: p, form: good}.do(t, base)) // clients survive Reset
}

func TestRecorded(t *testing.T) {
	t.Parallel()
	s, base := newServer(t)
	v := s.Vendor(VendorEshopbox)
	v.AddClient(Client{ID: "c", Secret: "s"})
	rt := v.IssueRefreshToken("c")
	if _, ok := v.LastRequest(); ok {
		t.Fatal("LastRequest before any request")
	}
	call{path: v.TokenPath(), json: map[string]string{"client_id": "c", "client_secret": "s", "grant_type": "refresh_token", "refresh_token": rt},
		header: map[string]string{"X-Trace": "1"}}.do(t, base)
	r, ok := v.LastRequest()
	if !ok || !r.BodyJSON || r.Method != http.MethodPost || r.Path != v.TokenPath() || r.Form["refresh_token"] != rt ||
		r.Header.Get("X-Trace") != "1" || r.Header.Get("Content-Type") != "application/json" || r.At.IsZero() {
		t.Fatalf("LastRequest = %+v", r)
	}
	call{path: v.TokenPath() + "?debug=1", form: form("grant_type", "refresh_token"),
		header: map[string]string{"Authorization": basicRaw("c", "s")}}.do(t, base)
	r, _ = v.LastRequest()
	if r.BodyJSON || r.Form["grant_type"] != "refresh_token" || r.Header.Get("Authorization") != basicRaw("c", "s") {
		t.Fatalf("LastRequest = %+v", r)
	}

	// Only the last 1000 are kept; driven in-process to stay fast.
	g := s.Vendor(VendorGeneric)
	for i := 0; i < maxRecorded+5; i++ {
		req := httptest.NewRequest(http.MethodPost, g.TokenPath(), strings.NewReader(fmt.Sprintf("n=%d", i)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		s.ServeHTTP(httptest.NewRecorder(), req)
	}
	reqs := g.Requests()
	if len(reqs) != maxRecorded || reqs[0].Form["n"] != "5" || reqs[len(reqs)-1].Form["n"] != fmt.Sprint(maxRecorded+4) {
		t.Fatalf("kept %d requests, first n=%s", len(reqs), reqs[0].Form["n"])
	}
	if g.Stats().Requests != maxRecorded+5 {
		t.Fatalf("Requests = %d", g.Stats().Requests)
	}
}

func TestFailNext(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		behavior Behavior
		status   int
		key      string
		ct       string
	}{
		{"json body and Retry-After", Behavior{FailNext: 2, FailStatus: 503, FailBody: `{"error":"temporarily_unavailable"}`,
			FailHeader: http.Header{"Retry-After": {"7"}}}, 503, "temporarily_unavailable", "application/json"},
		{"plain body", Behavior{FailNext: 2, FailStatus: 502, FailBody: "upstream exploded"}, 502, "http_502", "text/plain"},
		{"defaults", Behavior{FailNext: 2}, 503, "temporarily_unavailable", "application/json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, base := newServer(t)
			v := s.Vendor(VendorOfficeRnD)
			v.AddClient(Client{ID: "c", Secret: "s"})
			v.SetBehavior(tc.behavior)
			c := call{path: v.TokenPath(), form: form("client_id", "c", "client_secret", "s", "grant_type", "client_credentials", "scope", "x")}
			for i := 0; i < 2; i++ {
				r := c.do(t, base)
				if r.status != tc.status || !strings.HasPrefix(r.header.Get("Content-Type"), tc.ct) {
					t.Fatalf("attempt %d: %d %q %s", i, r.status, r.header.Get("Content-Type"), r.body)
				}
				if tc.behavior.FailBody != "" && string(r.body) != tc.behavior.FailBody {
					t.Fatalf("body %q", r.body)
				}
				if ra := tc.behavior.FailHeader.Get("Retry-After"); ra != "" && r.header.Get("Retry-After") != ra {
					t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
				}
				if got := v.Behavior().FailNext; got != 1-i {
					t.Fatalf("FailNext = %d after %d failures", got, i+1)
				}
			}
			want{status: 200}.check(t, c.do(t, base))
			st := v.Stats()
			if st.Failures[tc.key] != 2 || st.Grants != 1 || st.Requests != 3 {
				t.Fatalf("stats = %+v", st)
			}
		})
	}
}

func TestDelay(t *testing.T) {
	t.Parallel()
	s, base := newServer(t)
	v := s.Vendor(VendorOfficeRnD)
	v.AddClient(Client{ID: "c", Secret: "s"})
	c := call{path: v.TokenPath(), form: form("client_id", "c", "client_secret", "s", "grant_type", "client_credentials", "scope", "x")}

	v.SetBehavior(Behavior{Delay: 150 * time.Millisecond})
	start := time.Now()
	want{status: 200}.check(t, c.do(t, base))
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("answered after %v, before the delay", d)
	}

	// A client that gives up stops the handler: it neither answers nor
	// issues a token, and says so in Failures.
	v.SetBehavior(Behavior{Delay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	c.ctx = ctx
	if _, err := c.try(base); err == nil {
		t.Fatal("request answered despite an hour's delay")
	}
	eventually(t, "the handler to notice the client left", func() bool { return v.Stats().Failures["client_gone"] == 1 })
	if st := v.Stats(); st.Grants != 1 || st.Requests != 2 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestCloseEndsDelay checks Close releases requests held by Delay.
func TestCloseEndsDelay(t *testing.T) {
	t.Parallel()
	s := New()
	v := s.Vendor(VendorGeneric)
	v.SetBehavior(Behavior{Delay: time.Hour})
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, v.TokenPath(), nil))
	}()
	eventually(t, "the request to arrive", func() bool { return v.Stats().Requests == 1 })
	_ = s.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the delay")
	}
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d", rec.Code)
	}
}

// TestConcurrent hammers one vendor while changing its knobs, for -race.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	s, base := newServer(t)
	v := s.Vendor(VendorPenbox)
	v.AddClient(Client{ID: "c", Secret: "s"})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rt := v.IssueRefreshToken("c")
			for j := 0; j < 10; j++ {
				r, err := call{path: v.TokenPath(), form: form("client_id", "c", "client_secret", "s",
					"grant_type", "refresh_token", "refresh_token", rt)}.try(base)
				if err != nil {
					t.Error(err)
					return
				}
				if next, ok := r.obj["refresh_token"].(string); ok {
					rt = next
				}
				v.Valid(r.str("access_token"))
			}
		}()
	}
	for i := 0; i < 20; i++ {
		v.SetBehavior(Behavior{Rotate: i%2 == 0, ReuseDetection: true})
		_ = v.Stats()
		_ = v.Requests()
	}
	wg.Wait()
	if st := v.Stats(); st.Requests != 80 {
		t.Fatalf("Requests = %d", st.Requests)
	}
}
