package vaulttest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ShippedProxyListen is the listener address in the shipped Proxy
// configuration (bootstrap/proxy/vault-proxy.hcl); ProxyConfig moves it
// to a free port.
const ShippedProxyListen = "127.0.0.1:8100"

// ProxyConfig returns the shipped Proxy configuration with its listener
// moved to listen, and nothing else changed, so that tests and the
// benchmark run the file as shipped.
func ProxyConfig(listen string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(root, "bootstrap", "proxy", "vault-proxy.hcl"))
	if err != nil {
		return "", err
	}
	want := fmt.Sprintf("address     = %q", ShippedProxyListen)
	if strings.Count(string(b), want) != 1 {
		return "", fmt.Errorf("bootstrap/proxy/vault-proxy.hcl has no single line %q to move the listener from", want)
	}
	return strings.Replace(string(b), want, fmt.Sprintf("address     = %q", listen), 1), nil
}

// Proxy is a running `vault proxy` (`bao proxy` with OpenBao).
type Proxy struct {
	// Addr is the proxy's listener, "http://127.0.0.1:<port>".
	Addr string
	// PID is the proxy's process id.
	PID  int
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  *syncBuffer
}

// ProxyOptions configure StartProxy.
type ProxyOptions struct {
	// Dir is the proxy's working directory: the configuration is written
	// there as vault-proxy.hcl, and Token as vault-token (the shipped
	// configuration's token_file).
	Dir string
	// Config is the configuration (see ProxyConfig); Listen is the
	// listener address in it.
	Config, Listen string
	// VaultAddr is the server the proxy talks to (VAULT_ADDR and
	// BAO_ADDR).
	VaultAddr string
	// Token is the auto-auth token.
	Token string
	// LogLevel is the proxy's log level (default info).
	LogLevel string
}

// StartProxy starts the proxy with the server binary the tests use and
// waits until it answers requests with its auto-auth token.
func StartProxy(opts ProxyOptions) (*Proxy, error) {
	bin, err := VaultBin()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(opts.Dir, "vault-proxy.hcl"), []byte(opts.Config), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(opts.Dir, "vault-token"), []byte(opts.Token+"\n"), 0o600); err != nil {
		return nil, err
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	p := &Proxy{Addr: "http://" + opts.Listen, done: make(chan struct{}), log: &syncBuffer{}}
	p.cmd = exec.Command(bin, "proxy", "-config=vault-proxy.hcl", "-log-level="+opts.LogLevel)
	p.cmd.Dir = opts.Dir
	p.cmd.Env = CLIEnv("ADDR", opts.VaultAddr, "TOKEN", "")
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s proxy: %w", bin, err)
	}
	p.PID = p.cmd.Process.Pid
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	if err := p.waitReady(60 * time.Second); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// waitReady polls until a request without a token is answered with the
// auto-auth token (auth/token/lookup-self, which the default policy
// allows).
func (p *Proxy) waitReady(limit time.Duration) error {
	hc := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(limit)
	var last string
	for {
		select {
		case <-p.done:
			return fmt.Errorf("the proxy exited before answering (%v); output:\n%s", p.err, p.Log()) //nolint:errorlint // p.err is nil when it exited with status 0; context, not the cause
		default:
		}
		resp, err := hc.Get(p.Addr + "/v1/auth/token/lookup-self")
		if err == nil {
			_ = resp.Body.Close() // only the status matters
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = "HTTP " + strconv.Itoa(resp.StatusCode)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the proxy did not answer with its auto-auth token within %s (%s); output:\n%s", limit, last, p.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Log returns what the proxy has printed so far.
func (p *Proxy) Log() string { return p.log.String() }

// Exited reports whether the proxy process has ended.
func (p *Proxy) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop ends the proxy.
func (p *Proxy) Stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Get reads path through the proxy without a token of its own, so the
// proxy uses its auto-auth token (and may answer from its cache).
func (p *Proxy) Get(ctx context.Context, hc *http.Client, path string) (int, []byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.Addr+"/v1/"+strings.TrimPrefix(path, "/"), nil)
	if err != nil {
		return 0, nil, nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer func() { _ = resp.Body.Close() }() // read-only; read in full below
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return resp.StatusCode, nil, resp.Header, err
	}
	return resp.StatusCode, buf.Bytes(), resp.Header, nil
}

// syncBuffer is a bytes.Buffer that a process's stdout and stderr may
// write to at once.
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
