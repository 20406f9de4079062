//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/doctest"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// TestDocsRun runs the documentation as written: internal/doctest turns
// every block of README.md and bootstrap/README.md into one testscript
// script, which runs, in order, against `make dev` started from a copy of
// the repository (the first block), as one newcomer's shell would.

// TestDocsRun: every command block of the READMEs runs as written, in
// order, against `make dev` in a copy of the repository; see the comment
// at the top of this file.
func TestDocsRun(t *testing.T) {
	root, err := vaulttest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	vaultBin, err := vaulttest.VaultBin()
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"bash", "curl", "sed", "sha256sum", "openssl", "timeout"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's examples need %s on PATH", tool)
		}
	}
	repo := filepath.Join(t.TempDir(), "repo")
	copyWorkTree(t, root, repo)

	// vault and bao on PATH are the server under test, as a user's would be.
	shims := t.TempDir()
	for _, n := range []string{"vault", "bao"} {
		if err := os.Symlink(vaultBin, filepath.Join(shims, n)); err != nil {
			t.Fatal(err)
		}
	}
	// The second, empty Vault for the install and upgrade blocks.
	freshPlugins := t.TempDir()
	fresh, err := vaulttest.Start(vaulttest.Options{PluginDir: freshPlugins, LogPath: filepath.Join(t.TempDir(), "fresh.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fresh.Stop)

	script, err := doctest.Script(repo, doctest.Docs)
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "docs.txtar"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	var workDir string
	t.Cleanup(func() { stopDocs(t, repo, workDir) })
	start := time.Now()
	testscript.Run(t, testscript.Params{
		Dir: dir,
		Setup: func(env *testscript.Env) error {
			workDir = env.WorkDir
			for _, kv := range os.Environ() {
				k, v, _ := strings.Cut(kv, "=")
				switch {
				case k == "WORK" || k == "TMPDIR" || strings.HasPrefix(k, "VAULT_") || strings.HasPrefix(k, "BAO_"):
					continue
				}
				env.Setenv(k, v)
			}
			env.Setenv("PATH", shims+string(os.PathListSeparator)+os.Getenv("PATH"))
			env.Setenv("VAULT_BIN", vaultBin)
			env.Setenv("VAULT_PORT", fmt.Sprint(port))
			env.Setenv("REPO", repo)
			env.Setenv("FRESH_ADDR", fresh.Addr)
			env.Setenv("FRESH_TOKEN", vaulttest.RootToken)
			env.Setenv("FRESH_PLUGINS", freshPlugins)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"jsonvalid": func(ts *testscript.TestScript, neg bool, args []string) {
				if !json.Valid([]byte(ts.ReadFile(args[0]))) {
					ts.Fatalf("%s is not valid JSON", args[0])
				}
			},
			"govalid": func(ts *testscript.TestScript, neg bool, args []string) {
				if _, err := parser.ParseFile(token.NewFileSet(), args[0], ts.ReadFile(args[0]), parser.AllErrors); err != nil {
					ts.Fatalf("%s is not a Go file: %v", args[0], err)
				}
			},
			"tmplvalid": func(ts *testscript.TestScript, neg bool, args []string) {
				// consul-template's functions, enough to parse the
				// templates the READMEs show.
				funcs := template.FuncMap{"secret": func(...string) (any, error) { return nil, nil }}
				if _, err := template.New(args[0]).Funcs(funcs).Parse(ts.ReadFile(args[0])); err != nil {
					ts.Fatalf("%s: %v", args[0], err)
				}
			},
		},
	})
	t.Logf("the documentation ran in %s", time.Since(start).Round(time.Second))
}

// stopDocs ends what the documentation left running: make dev's servers
// and any process whose id a block kept in a *_PID variable (Agent, Proxy).
func stopDocs(t *testing.T, repo, work string) {
	stop := exec.Command("scripts/dev.sh", "stop")
	stop.Dir = repo
	if out, err := stop.CombinedOutput(); err != nil {
		t.Logf("make dev-stop: %v\n%s", err, out)
	}
	if work == "" {
		return
	}
	f, err := os.Open(filepath.Join(work, ".docstate", "vars"))
	if err != nil {
		return
	}
	defer f.Close()
	pidRE := regexp.MustCompile(`^declare -[-a-zA-Z]* [A-Z_]*_PID="?([0-9]+)"?$`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := pidRE.FindStringSubmatch(sc.Text()); m != nil {
			var pid int
			if _, err := fmt.Sscan(m[1], &pid); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGTERM)
			}
		}
	}
}

// copyWorkTree copies the files git knows of, and the untracked ones it
// does not ignore, from root to dst: the work tree as a fresh clone with
// the uncommitted changes would have it, without bin/, .dev/ or the
// walkthroughs' leftovers.
func copyWorkTree(t *testing.T, root, dst string) {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, rel)
		fi, err := os.Lstat(src)
		if err != nil {
			continue // deleted in the work tree
		}
		target := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			link, err := os.Readlink(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(link, target); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, data, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	// git describe in the copy: a fresh clone's version, not the tags of
	// the checkout it came from.
	gitInit := exec.Command("git", "init", "-q")
	gitInit.Dir = dst
	if out, err := gitInit.CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
