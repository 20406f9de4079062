package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunDemo(t *testing.T) {
	t.Parallel()
	addrFile := filepath.Join(t.TempDir(), "standin.addr")
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-demo", "-addr-file", addrFile}, &logs) }()

	var base string
	deadline := time.Now().Add(10 * time.Second)
	for base == "" {
		if b, err := os.ReadFile(addrFile); err == nil {
			base = string(b)
		} else if time.Now().After(deadline) {
			t.Fatalf("no addr file; logs:\n%s", logs.String())
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("addr file holds %q", base)
	}

	post := func(path string, body url.Values, header map[string]string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %d %v", path, resp.StatusCode, out)
		}
		return out
	}
	var tokens []string
	out := post("/boldpenguin/auth/token?grant_type=client_credentials", url.Values{}, map[string]string{
		"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(demoBoldPenguinID+":"+demoBoldPenguinSecret)),
		"x-api-key":     demoBoldPenguinAPIKey,
	})
	tokens = append(tokens, out["access_token"].(string), out["refresh_token"].(string))
	out = post("/officernd/oauth/token", url.Values{"client_id": {demoOfficeRnDID}, "client_secret": {demoOfficeRnDSecret},
		"grant_type": {"client_credentials"}, "scope": {"officernd.api.read officernd.api.write"}}, nil)
	tokens = append(tokens, out["access_token"].(string))
	out = post("/eshopbox/api/v1/generateToken", url.Values{"client_id": {demoEshopboxID}, "client_secret": {demoEshopboxSecret},
		"grant_type": {"refresh_token"}, "refresh_token": {demoEshopboxRefreshToken}}, nil)
	tokens = append(tokens, out["access_token"].(string))
	out = post("/penbox/token", url.Values{"client_id": {demoPenboxID}, "client_secret": {demoPenboxSecret},
		"grant_type": {"refresh_token"}, "refresh_token": {demoPenboxRefreshToken}}, nil)
	if rt, _ := out["refresh_token"].(string); !strings.HasPrefix(rt, "penbox-rt-") {
		t.Fatalf("penbox demo does not rotate: %v", out)
	}
	tokens = append(tokens, out["access_token"].(string), out["refresh_token"].(string))
	// The Penbox demo client's registered callback (make dev's partner
	// app) gets a code; another callback is refused without a redirect.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	authorize := func(redirectURI string) *http.Response {
		t.Helper()
		q := url.Values{"client_id": {demoPenboxID}, "redirect_uri": {redirectURI}, "response_type": {"code"},
			"scope": {"offline_access"}, "state": {"demo-state-0123456789"}}
		resp, err := noFollow.Get(base + "/penbox/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := authorize(demoPenboxRedirectURI)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), demoPenboxRedirectURI+"?") ||
		loc.Query().Get("code") == "" || loc.Query().Get("state") != "demo-state-0123456789" {
		t.Fatalf("authorize with the demo callback: HTTP %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	code := loc.Query().Get("code")
	out = post("/penbox/token", url.Values{"client_id": {demoPenboxID}, "client_secret": {demoPenboxSecret},
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {demoPenboxRedirectURI}}, nil)
	tokens = append(tokens, code, out["access_token"].(string), out["refresh_token"].(string))
	if resp := authorize("http://127.0.0.1/elsewhere/callback"); resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Errorf("authorize with an unregistered callback: HTTP %d, Location %q; want a 400 and no redirect", resp.StatusCode, resp.Header.Get("Location"))
	}

	out = post("/generic/token", url.Values{"grant_type": {"client_credentials"}}, map[string]string{
		"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(demoGenericID+":"+demoGenericSecret)),
	})
	tokens = append(tokens, out["access_token"].(string))

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if _, err := os.Stat(addrFile); !os.IsNotExist(err) {
		t.Fatalf("addr file left behind: %v", err)
	}

	got := logs.String()
	for _, line := range []string{
		"POST /boldpenguin/auth/token 200 vendor=boldpenguin",
		"POST /officernd/oauth/token 200 vendor=officernd",
		"POST /eshopbox/api/v1/generateToken 200 vendor=eshopbox",
		"POST /penbox/token 200 vendor=penbox",
		"POST /generic/token 200 vendor=generic",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("logs lack %q:\n%s", line, got)
		}
	}
	secrets := append(tokens, demoBoldPenguinSecret, demoBoldPenguinAPIKey, demoOfficeRnDSecret, demoEshopboxSecret,
		demoEshopboxRefreshToken, demoPenboxSecret, demoPenboxRefreshToken, demoGenericSecret, "Basic ", "grant_type")
	for _, s := range secrets {
		if strings.Contains(got, s) {
			t.Errorf("logs contain %q:\n%s", s, got)
		}
	}
}

func TestRunRejectsArgs(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	if err := run(context.Background(), []string{"extra"}, &logs); err == nil {
		t.Fatal("run accepted a stray argument")
	}
	if err := run(context.Background(), []string{"-listen", "256.0.0.1:bad"}, &logs); err == nil {
		t.Fatal("run accepted a bad listen address")
	}
}

// TestRunAuthServerDemo: with -authserver-dir the stand-in also serves
// the strict authorization server and writes what make dev's demo
// credentials need: its issuer (whose metadata answers), the mutual-TLS
// token URL, the private CA, the demo client certificate (key 0600) and a
// refresh token to revoke.
func TestRunAuthServerDemo(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	addrFile, dir := filepath.Join(tmp, "standin.addr"), filepath.Join(tmp, "authserver")
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-demo", "-addr-file", addrFile, "-authserver-dir", dir, "-vault-addr", "http://127.0.0.1:1"}, &logs)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(addrFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no addr file; logs:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	issuer := read("issuer")
	resp, err := http.Get(issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&meta)
	_ = resp.Body.Close()
	if meta["issuer"] != issuer || meta["device_authorization_endpoint"] == nil || meta["revocation_endpoint"] == nil {
		t.Errorf("metadata at %s: %v", issuer, meta)
	}
	if u := read("mtls-token-url"); !strings.HasPrefix(u, "https://127.0.0.1:") {
		t.Errorf("mtls-token-url = %q", u)
	}
	for _, name := range []string{"server-ca.pem", "mtls-client.pem"} {
		if !strings.Contains(read(name), "BEGIN CERTIFICATE") {
			t.Errorf("%s holds no certificate", name)
		}
	}
	for _, name := range []string{"mtls-client-key.pem", "revoke-demo-refresh-token"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() == 0 {
			t.Errorf("%s: %v, mode %v", name, err, fi.Mode())
		}
	}
}
