package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/bench/internal/pprofenv"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/bench/nullbackend"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// Names under which the benchmark registers its plugins.
const (
	pluginVersion = "v0.1.0-bench"
	nullName      = "vendoroauth-null"
	profName      = "vendoroauth-prof"
	// scaleName is the real plugin registered a second time, so the
	// many-credentials mounts get a process of their own: its RSS is theirs
	// alone, and their 11,000 credentials do not grow the heap (and the GC
	// work) of the process the throughput cells measure.
	scaleName = "vendoroauth-scale"
	// econName is the real plugin registered a third time, for the
	// vendor-economy mounts (Agent-like readers and idle credentials),
	// which run in the background of the other phases: their grants and
	// 1,000 idle credentials stay out of the processes the other cells
	// measure.
	econName = "vendoroauth-economy"
	// connSmallName and connLargeName are the real plugin registered
	// twice more, for the many-connections cell: the mount with 10
	// connections and the one with 100,000 each get a process, so each
	// process's RSS, heap and GC work are those of its own connections.
	connSmallName = "vendoroauth-conn-small"
	connLargeName = "vendoroauth-conn-large"
)

// env is the running Vault with every plugin and mount the phases use.
type env struct {
	dir      string
	root     string
	vaultBin string
	vault    *vaulttest.Vault
	hc       *http.Client

	pluginExe, nullExe, profExe, scaleExe, econExe string
	connSmallExe, connLargeExe                     string
	vaultPID                                       int
	pluginPID, nullPID, profPID, scalePID          int
	connSmallPID, connLargePID                     int
	profAddr, nullProfAddr                         string

	// proxy is the `vault proxy` in front of Vault (nil without one).
	proxy *vaulttest.Proxy
}

// build compiles a main package of this module into the plugin directory.
func build(root, pkg, out, version string) (string, error) {
	args := []string{"build", "-o", out}
	if version != "" {
		args = append(args, "-ldflags", "-X main.version="+version)
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return vaulttest.FileSHA256(out)
}

// setup builds the plugins, starts Vault and mounts everything.
func setup(ctx context.Context, o *options) (*env, error) {
	root, err := vaulttest.RepoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "vendoroauth-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir, root: root, hc: newHTTPClient()}
	plugins := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		return e, err
	}
	if e.vaultBin, err = vaulttest.VaultBin(); err != nil {
		return e, err
	}
	if p, err := filepath.EvalSymlinks(e.vaultBin); err == nil {
		e.vaultBin = p
	}

	shas, err := e.buildPlugins(plugins)
	if err != nil {
		return e, err
	}

	logf("starting Vault (%s)", e.vaultBin)
	e.vault, err = vaulttest.Start(vaulttest.Options{
		PluginDir: plugins,
		LogLevel:  "warn",
		LogPath:   filepath.Join(dir, "vault.log"),
	})
	if err != nil {
		return e, err
	}
	if pids := findPIDs(e.vaultBin, dir); len(pids) == 1 {
		e.vaultPID = pids[0]
	}
	sys := e.vault.Client.Sys()
	if err := e.vault.Register(pluginVersion, shas[0]); err != nil {
		return e, fmt.Errorf("register plugin: %w", err)
	}
	nullAddrFile := filepath.Join(dir, "null-pprof.addr")
	profAddrFile := filepath.Join(dir, "prof-pprof.addr")
	for _, in := range []*api.RegisterPluginInput{
		{Name: nullName, Type: api.PluginTypeSecrets, Command: nullName, SHA256: shas[1], Version: nullbackend.Version,
			Env: []string{pprofenv.Env + "=127.0.0.1:0", pprofenv.AddrFileEnv + "=" + nullAddrFile}},
		{Name: profName, Type: api.PluginTypeSecrets, Command: profName, SHA256: shas[2], Version: pluginVersion,
			Env: []string{pprofenv.Env + "=127.0.0.1:0", pprofenv.AddrFileEnv + "=" + profAddrFile}},
		{Name: scaleName, Type: api.PluginTypeSecrets, Command: scaleName, SHA256: shas[0], Version: pluginVersion},
		{Name: econName, Type: api.PluginTypeSecrets, Command: econName, SHA256: shas[0], Version: pluginVersion},
		{Name: connSmallName, Type: api.PluginTypeSecrets, Command: connSmallName, SHA256: shas[0], Version: pluginVersion},
		{Name: connLargeName, Type: api.PluginTypeSecrets, Command: connLargeName, SHA256: shas[0], Version: pluginVersion},
	} {
		if err := sys.RegisterPluginWithContext(ctx, in); err != nil {
			return e, fmt.Errorf("register %s: %w", in.Name, err)
		}
	}

	mounts := []struct {
		path string
		in   api.MountInput
	}{
		{"vendoroauth", api.MountInput{Type: vaulttest.PluginName, Config: api.MountConfigInput{PluginVersion: pluginVersion}}},
		{"null", api.MountInput{Type: nullName, Config: api.MountConfigInput{PluginVersion: nullbackend.Version}}},
		{"prof", api.MountInput{Type: profName, Config: api.MountConfigInput{PluginVersion: pluginVersion}}},
		{"kv1", api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}},
		{"kv2", api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}},
		{"cold", api.MountInput{Type: vaulttest.PluginName, Config: api.MountConfigInput{PluginVersion: pluginVersion}}},
		{"life", api.MountInput{Type: vaulttest.PluginName, Config: api.MountConfigInput{PluginVersion: pluginVersion}}},
		{agentMount, api.MountInput{Type: econName, Config: api.MountConfigInput{PluginVersion: pluginVersion}}},
		{idleMount, api.MountInput{Type: econName, Config: api.MountConfigInput{PluginVersion: pluginVersion}}},
	}
	conns := o.want("connections")
	if conns {
		mounts = append(mounts, []struct {
			path string
			in   api.MountInput
		}{
			{connSmall, api.MountInput{Type: connSmallName, Config: api.MountConfigInput{PluginVersion: pluginVersion}}},
			{connLarge, api.MountInput{Type: connLargeName, Config: api.MountConfigInput{PluginVersion: pluginVersion}}},
		}...)
	}
	for _, n := range o.scale {
		mounts = append(mounts, struct {
			path string
			in   api.MountInput
		}{scaleMount(n), api.MountInput{Type: scaleName, Config: api.MountConfigInput{PluginVersion: pluginVersion}}})
	}
	for _, m := range mounts {
		if err := sys.MountWithContext(ctx, m.path, &m.in); err != nil {
			return e, fmt.Errorf("mount %s: %w", m.path, err)
		}
	}
	if err := e.findPlugins(nullAddrFile, profAddrFile, len(o.scale) > 0, conns); err != nil {
		return e, err
	}
	return e, nil
}

// buildPlugins builds the plugin, the null plugin and the profiling
// plugin into plugins, copies the plugin under the names of its other
// mounts, and returns the three binaries' sha256.
func (e *env) buildPlugins(plugins string) ([3]string, error) {
	logf("building the plugin, the null plugin and the profiling plugin")
	var shas [3]string
	var errs [3]error
	e.pluginExe = filepath.Join(plugins, vaulttest.PluginBinary)
	e.nullExe = filepath.Join(plugins, nullName)
	e.profExe = filepath.Join(plugins, profName)
	e.scaleExe = filepath.Join(plugins, scaleName)
	e.econExe = filepath.Join(plugins, econName)
	e.connSmallExe = filepath.Join(plugins, connSmallName)
	e.connLargeExe = filepath.Join(plugins, connLargeName)
	// The real plugin is built as the end-to-end tests build it.
	shas[0], errs[0] = vaulttest.BuildPlugin(plugins, pluginVersion)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); shas[1], errs[1] = build(e.root, "./bench/nullplugin", e.nullExe, "") }()
	go func() {
		defer wg.Done()
		shas[2], errs[2] = build(e.root, "./bench/profplugin", e.profExe, pluginVersion)
	}()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return shas, err
		}
	}
	if err := copyFile(e.pluginExe, e.scaleExe); err != nil {
		return shas, err
	}
	for _, exe := range []string{e.econExe, e.connSmallExe, e.connLargeExe} {
		if err := copyFile(e.pluginExe, exe); err != nil {
			return shas, err
		}
	}
	return shas, nil
}

// copyFile copies an executable.
func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}

func scaleMount(n int) string { return fmt.Sprintf("scale-%d", n) }

// findPlugins finds the plugin processes Vault started for the mounts.
func (e *env) findPlugins(nullAddrFile, profAddrFile string, scale, conns bool) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		p, n, f := findPIDs(e.pluginExe, ""), findPIDs(e.nullExe, ""), findPIDs(e.profExe, "")
		sc := findPIDs(e.scaleExe, "")
		cs, cl := findPIDs(e.connSmallExe, ""), findPIDs(e.connLargeExe, "")
		na, _ := os.ReadFile(nullAddrFile)
		pa, _ := os.ReadFile(profAddrFile)
		if len(p) == 1 && len(n) == 1 && len(f) == 1 && len(na) > 0 && len(pa) > 0 && (len(sc) == 1 || !scale) &&
			((len(cs) == 1 && len(cl) == 1) || !conns) {
			e.pluginPID, e.nullPID, e.profPID = p[0], n[0], f[0]
			if scale {
				e.scalePID = sc[0]
			}
			if conns {
				e.connSmallPID, e.connLargePID = cs[0], cl[0]
			}
			e.nullProfAddr, e.profAddr = string(na), string(pa)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cannot find the plugin processes (plugin %v, null %v, prof %v, scale %v, connections %v %v)", p, n, f, sc, cs, cl)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *env) close() {
	if e.proxy != nil {
		e.proxy.Stop()
	}
	if e.vault != nil {
		e.vault.Stop()
	}
	if e.dir != "" && os.Getenv("BENCH_KEEP") == "" {
		_ = os.RemoveAll(e.dir)
	}
}

// call performs one API request and decodes the answer's data.
func (e *env) call(ctx context.Context, method, path string, body any) (map[string]any, error) {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.vault.Addr+"/v1/"+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Vault-Token", vaulttest.RootToken)
	var buf bytes.Buffer
	want := http.StatusOK
	if method != http.MethodGet {
		want = 0
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }() // read-only; read in full below
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return nil, err
	}
	if (want != 0 && resp.StatusCode != want) || resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: HTTP %d: %.300s", method, path, resp.StatusCode, buf.String())
	}
	var out struct {
		Data map[string]any `json:"data"`
	}
	if buf.Len() > 0 {
		if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return out.Data, nil
}

// get is a doer-shaped GET of fixed or random paths.
func (e *env) get(paths func(*rand.Rand) string) doer {
	return vaultGET(e.hc, e.vault.Addr, vaulttest.RootToken, paths)
}

func fixed(p string) func(*rand.Rand) string { return func(*rand.Rand) string { return p } }

// parallel runs fn(i) for i in [0, n) on conc workers and returns the first
// error.
func parallel(n, conc int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		mu.Lock()
		stop := first != nil
		mu.Unlock()
		if stop {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// vaultVersion asks the server for its version.
func (e *env) vaultVersion() string {
	h, err := e.vault.Client.Sys().Health()
	if err != nil {
		return "unknown"
	}
	return h.Version
}

// gitDescribe returns the short commit and whether the tree has changes.
func gitDescribe(root string) (string, bool) {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "nogit", false
	}
	sha := strings.TrimSpace(string(out))
	st, _ := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output()
	return sha, len(bytes.TrimSpace(st)) > 0
}
