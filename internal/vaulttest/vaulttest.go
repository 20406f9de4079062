// Package vaulttest runs a real Vault server with the plugin registered, for
// end-to-end tests. It drives Vault exactly as an operator would: a plugin
// binary in a plugin directory, registered by sha256 and version, enabled
// as a secrets engine, all through the HTTP API.
package vaulttest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
)

// PluginName is the name the plugin is registered under in tests.
const PluginName = "vendoroauth"

// PluginBinary is the plugin's file name in the plugin directory.
const PluginBinary = "vault-plugin-secrets-vendoroauth"

// RootToken is the dev server's root token.
const RootToken = "root"

// Vault is one running Vault dev server.
type Vault struct {
	Addr      string
	Client    *api.Client
	PluginDir string
	LogPath   string
	cmd       *exec.Cmd
	done      chan struct{}
}

// Options configure Start.
type Options struct {
	// PluginDir holds the plugin binary (see BuildPlugin).
	PluginDir string
	// LogLevel is Vault's log level; "trace" shows the plugin's every line.
	LogLevel string
	// LogPath receives Vault's output; a file in PluginDir if empty.
	LogPath string
	// RawStorage enables sys/raw, so a test can write storage entries as
	// an older plugin left them.
	RawStorage bool
	// AuditFile, if set, is the file a file audit device at "file/" writes
	// to, with the device's default options (HMAC included). Start returns
	// only once the device is enabled. Vault enables it through the API;
	// OpenBao refuses that ("cannot enable audit device via API") and
	// gets it declared in its config file instead.
	AuditFile string
}

// AuditPath is where Options.AuditFile's audit device is mounted.
const AuditPath = "file"

// VaultBin returns the vault binary the tests use: $VAULT_BIN, or the one
// scripts/vault.sh provides (building it if needed).
func VaultBin() (string, error) {
	if b := os.Getenv("VAULT_BIN"); b != "" {
		return b, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(filepath.Join(root, "scripts", "vault.sh")).Output()
	if err != nil {
		return "", fmt.Errorf("scripts/vault.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// RepoRoot finds the module root from this source file.
func RepoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the repository")
	}
	return filepath.Abs(filepath.Join(filepath.Dir(file), "..", ".."))
}

// BuildPlugin builds the plugin binary stamped with version into dir and
// returns its sha256.
func BuildPlugin(dir, version string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, PluginBinary)
	cmd := exec.Command("go", "build", "-o", out, "-ldflags", "-X main.version="+version, "./cmd/vault-plugin-secrets-vendoroauth")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the plugin: %w\n%s", err, b)
	}
	return FileSHA256(out)
}

// FileSHA256 returns the hex sha256 of a file.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }() // read-only
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }() // only the port number is wanted
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreePorts returns n distinct loopback TCP ports that were free a moment
// ago: each is held until all are chosen, so that two of them cannot be the
// same port (FreePort twice can be: the kernel may hand out a port again as
// soon as it is closed, and a cluster whose node listens for Raft on
// another node's API port never forms).
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer func() { _ = l.Close() }() // only the port numbers are wanted
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Start runs `vault server -dev` on a free loopback port with the plugin
// directory configured, and waits until it answers.
func Start(opts Options) (*Vault, error) {
	bin, err := VaultBin()
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if opts.LogPath == "" {
		opts.LogPath = filepath.Join(opts.PluginDir, "..", fmt.Sprintf("vault-%d.log", port))
	}
	cfg := filepath.Join(filepath.Dir(opts.LogPath), fmt.Sprintf("vault-%d.hcl", port))
	hcl := fmt.Sprintf("plugin_directory = %q\ndisable_mlock = true\n", opts.PluginDir)
	if opts.RawStorage {
		hcl += "raw_storage_endpoint = true\n"
	}
	flavor, err := ServerFlavor()
	if err != nil {
		return nil, err
	}
	if opts.AuditFile != "" && flavor == FlavorOpenBao {
		// https://openbao.org/docs/configuration/audit: declared devices
		// are created on the active node when it unseals.
		hcl += fmt.Sprintf("audit %q %q {\n  options {\n    file_path = %q\n  }\n}\n", "file", AuditPath, opts.AuditFile)
	}
	if err := os.WriteFile(cfg, []byte(hcl), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(opts.LogPath)
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "server", "-dev",
		"-dev-root-token-id="+RootToken,
		"-dev-listen-address="+addr,
		"-dev-no-store-token",
		"-config="+cfg,
		"-log-level="+opts.LogLevel,
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so stopping it also stops its plugin
	// processes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = CLIEnv("ADDR", "", "TOKEN", "")
	if err := cmd.Start(); err != nil {
		_ = logf.Close() // the start error is the one to report
		return nil, fmt.Errorf("starting vault: %w", err)
	}
	v := &Vault{Addr: "http://" + addr, PluginDir: opts.PluginDir, LogPath: opts.LogPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		// Vault has exited and its output is written; nobody is left to
		// report a failed close to.
		_ = logf.Close()
		close(v.done)
	}()

	conf := api.DefaultConfig()
	conf.Address = v.Addr
	conf.MaxRetries = 0
	client, err := api.NewClient(conf)
	if err != nil {
		v.Stop()
		return nil, err
	}
	client.SetToken(RootToken)
	v.Client = client
	if err := v.waitReady(60 * time.Second); err != nil {
		v.Stop()
		return nil, err
	}
	if opts.AuditFile != "" {
		if err := v.enableAudit(flavor, opts.AuditFile); err != nil {
			v.Stop()
			return nil, err
		}
	}
	return v, nil
}

// enableAudit enables (Vault) or waits for (OpenBao, declared in the
// config) the file audit device, and checks that it writes to path.
func (v *Vault) enableAudit(flavor Flavor, path string) error {
	if flavor != FlavorOpenBao {
		if err := v.Client.Sys().EnableAuditWithOptions(AuditPath, &api.EnableAuditOptions{
			Type:    "file",
			Options: map[string]string{"file_path": path},
		}); err != nil {
			return fmt.Errorf("enabling the file audit device: %w", err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		audits, err := v.Client.Sys().ListAudit()
		if err == nil {
			if a, ok := audits[AuditPath+"/"]; ok {
				if a.Type != "file" || a.Options["file_path"] != path {
					return fmt.Errorf("the audit device at %s/ is %s writing to %q, not file writing to %q", AuditPath, a.Type, a.Options["file_path"], path)
				}
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no audit device at %s/ within 30s (%v); log:\n%s", AuditPath, err, v.Log()) //nolint:errorlint // err is nil when the list worked but lacked the device; context, not the cause
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (v *Vault) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-v.done:
			return fmt.Errorf("vault exited before answering; log:\n%s", v.Log())
		default:
		}
		h, err := v.Client.Sys().Health()
		if err == nil && h.Initialized && !h.Sealed {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vault did not answer within %s: %v; log:\n%s", limit, err, v.Log()) //nolint:errorlint // err is nil when Vault answered but was not ready; context, not the cause
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Register adds the plugin binary in the plugin directory to the catalog
// under PluginName with its sha256 and version.
func (v *Vault) Register(version, sha string) error {
	return v.Client.Sys().RegisterPluginWithContext(context.Background(), &api.RegisterPluginInput{
		Name:    PluginName,
		Type:    api.PluginTypeSecrets,
		Command: PluginBinary,
		SHA256:  sha,
		Version: version,
	})
}

// Enable mounts the registered plugin version at path.
func (v *Vault) Enable(path, version string) error {
	return v.Client.Sys().Mount(path, &api.MountInput{
		Type:   PluginName,
		Config: api.MountConfigInput{PluginVersion: version},
	})
}

// Log returns what Vault has printed so far.
func (v *Vault) Log() string {
	b, _ := os.ReadFile(v.LogPath)
	return string(b)
}

// Stop ends Vault and its plugin processes.
func (v *Vault) Stop() {
	if v.cmd == nil || v.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-v.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
		<-v.done
	}
}

// Raw performs an HTTP request against Vault and returns status and body,
// for tests that assert on exactly what a client sees.
func (v *Vault) Raw(method, path string, body []byte) (int, []byte, error) {
	r := v.Client.NewRequest(method, "/v1/"+strings.TrimPrefix(path, "/"))
	// A query string (?after=…&limit=…) goes as parameters: in the path
	// it would be escaped into the path itself.
	if p, q, ok := strings.Cut(r.URL.Path, "?"); ok {
		r.URL.Path = p
		r.Params, _ = url.ParseQuery(q)
	}
	if body != nil {
		r.BodyBytes = body
	}
	// As RawWith: no non-deprecated call takes an arbitrary method.
	resp, err := v.Client.RawRequestWithContext(context.Background(), r) //nolint:staticcheck // SA1019: see above
	if resp == nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	var buf bytes.Buffer
	_, _ = io.Copy(&buf, resp.Body)
	return resp.StatusCode, buf.Bytes(), nil
}
