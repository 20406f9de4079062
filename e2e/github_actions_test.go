//go:build e2e

package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"gopkg.in/yaml.v3"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/bootstrap"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// githubIssuer is GitHub's OIDC issuer, which the example's header names
// and the test replaces with its own.
const githubIssuer = "https://token.actions.githubusercontent.com"

// oidcIssuer plays GitHub's OIDC token service: the endpoint a job asks
// for its token (ACTIONS_ID_TOKEN_REQUEST_URL, with the request token as a
// bearer token), and the discovery document and JWKS Vault's jwt auth
// method checks it against. The job's claims are set per run.
type oidcIssuer struct {
	srv          *httptest.Server
	key          *rsa.PrivateKey
	requestToken string
	mu           sync.Mutex
	repository   string
	ref          string
}

func newOIDCIssuer(t *testing.T) *oidcIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	o := &oidcIssuer{key: key, requestToken: "actions-request-token-" + fmt.Sprint(time.Now().UnixNano())}
	o.srv = httptest.NewServer(http.HandlerFunc(o.serve))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *oidcIssuer) job(repository, ref string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.repository, o.ref = repository, ref
}

func (o *oidcIssuer) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": o.srv.URL, "jwks_uri": o.srv.URL + "/.well-known/jwks",
			"subject_types_supported": []string{"public"}, "response_types_supported": []string{"id_token"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"claims_supported":                      []string{"sub", "aud", "exp", "iat", "iss", "repository", "ref"},
		})
	case "/.well-known/jwks":
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &o.key.PublicKey, KeyID: "gh", Algorithm: "RS256", Use: "sig"}}})
	case "/token":
		if r.Header.Get("Authorization") != "bearer "+o.requestToken && r.Header.Get("Authorization") != "Bearer "+o.requestToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		o.mu.Lock()
		repo, ref := o.repository, o.ref
		o.mu.Unlock()
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: o.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "gh"))
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		now := time.Now()
		claims := map[string]any{
			"iss": o.srv.URL, "aud": r.URL.Query().Get("audience"), "sub": "repo:" + repo + ":ref:" + ref,
			"repository": repo, "ref": ref, "iat": now.Unix(), "nbf": now.Add(-5 * time.Second).Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		}
		tok, err := jwt.Signed(signer).Claims(claims).Serialize()
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"value": tok})
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// workflow is the part of a GitHub Actions workflow the test reads.
type workflow struct {
	Jobs map[string]struct {
		Steps []struct {
			Uses string            `yaml:"uses"`
			With map[string]string `yaml:"with"`
			Run  string            `yaml:"run"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

// headerCommands are the shell commands in a file's header comment: the
// lines indented by "#   " after its first such line, until the comment's
// next paragraph of prose.
func headerCommands(text string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, "#") {
			break
		}
		if strings.HasPrefix(l, "#   ") {
			out = append(out, strings.TrimPrefix(l, "#   "))
		} else if len(out) > 0 && strings.TrimSpace(strings.TrimPrefix(l, "#")) != "" {
			break
		}
	}
	return strings.Join(out, "\n") + "\n"
}

// TestGitHubActionsExample runs bootstrap/ci/github-actions.yml's step
// for real: Vault's jwt auth method and role configured by the commands of
// the file's header, run as written with the local issuer in place of
// GitHub's, and the released hashicorp/vault-action (../shared/ci/) run
// under Node as a runner runs it, with the step's inputs from the
// workflow. The job of the bound repository and branch gets a valid
// vendor token through the reader policy; a job of another repository or
// branch is refused and gets nothing.
func TestGitHubActionsExample(t *testing.T) {
	action := filepath.Join(sharedDir(t, "ci"), "vault-action-3.4.0")
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node on PATH: vault-action runs under Node; skipped")
	}
	root, err := vaulttest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "bootstrap", "ci", "github-actions.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var wf workflow
	if err := yaml.Unmarshal(raw, &wf); err != nil {
		t.Fatalf("github-actions.yml is not YAML: %v", err)
	}
	var with map[string]string
	for _, j := range wf.Jobs {
		for _, s := range j.Steps {
			if strings.HasPrefix(s.Uses, "hashicorp/vault-action@") {
				with = s.With
			}
			if s.Run != "" {
				if out, err := exec.Command("bash", "-n", "-c", s.Run).CombinedOutput(); err != nil {
					t.Errorf("a run step is not valid bash: %v\n%s", err, out)
				}
			}
		}
	}
	if with == nil {
		t.Fatal("github-actions.yml has no hashicorp/vault-action step")
	}

	// The credential and the reader policy the role names.
	ornd := vendors.Vendor(standin.VendorOfficeRnD)
	ornd.AddClient(standin.Client{ID: "gha-ornd", Secret: "gha-ornd-secret", Scopes: []string{"officernd.api.read"}})
	writeConfig(t, "officernd", map[string]interface{}{
		"provider": "officernd", "token_url": baseURL + ornd.TokenPath(), "client_id": "gha-ornd",
		"client_secret": "gha-ornd-secret", "scopes": "officernd.api.read",
	})
	policy, err := bootstrap.ReaderPolicy(mount, "officernd")
	if err != nil {
		t.Fatal(err)
	}
	if err := vault.Client.Sys().PutPolicy(bootstrap.ReaderPolicyName("officernd"), policy); err != nil {
		t.Fatal(err)
	}

	// The Vault side, as the header says, GitHub's issuer replaced.
	issuer := newOIDCIssuer(t)
	vaultBin, err := vaulttest.VaultBin()
	if err != nil {
		t.Fatal(err)
	}
	setup := strings.ReplaceAll(headerCommands(string(raw)), githubIssuer, issuer.srv.URL)
	if !strings.Contains(setup, "vault auth enable -path=github jwt") || !strings.Contains(setup, "role/officernd-ci") {
		t.Fatalf("the header's commands are not the expected setup:\n%s", setup)
	}
	shims := t.TempDir()
	if err := os.Symlink(vaultBin, filepath.Join(shims, "vault")); err != nil {
		t.Fatal(err)
	}
	sh := exec.Command("bash", "-euo", "pipefail", "-c", setup)
	sh.Env = append(os.Environ(), "PATH="+shims+":"+os.Getenv("PATH"), "VAULT_ADDR="+vault.Addr, "VAULT_TOKEN="+vaulttest.RootToken,
		"BAO_ADDR="+vault.Addr, "BAO_TOKEN="+vaulttest.RootToken)
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("the header's Vault setup failed: %v\n%s\n---\n%s", err, out, setup)
	}
	t.Cleanup(func() {
		_ = vault.Client.Sys().DisableAuth("github")
		call(t, "DELETE", mount+"/config/officernd", nil)
	})

	inputs := actionDefaults(t, filepath.Join(action, "action.yml"))
	for k, v := range with {
		inputs[k] = v
	}
	inputs["url"] = vault.Addr // the only input that names GitHub's side of the example

	runAction := func(repository, ref string) (map[string]string, string, error) {
		t.Helper()
		issuer.job(repository, ref)
		dir := t.TempDir()
		envFile, outFile := filepath.Join(dir, "env"), filepath.Join(dir, "output")
		for _, f := range []string{envFile, outFile} {
			if err := os.WriteFile(f, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(node, filepath.Join(action, "dist", "index.js"))
		cmd.Dir = dir
		env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "GITHUB_ENV=" + envFile, "GITHUB_OUTPUT=" + outFile,
			"ACTIONS_ID_TOKEN_REQUEST_URL=" + issuer.srv.URL + "/token?api-version=2.0",
			"ACTIONS_ID_TOKEN_REQUEST_TOKEN=" + issuer.requestToken, "RUNNER_TEMP=" + dir}
		for k, v := range inputs {
			env = append(env, "INPUT_"+strings.ToUpper(strings.ReplaceAll(k, " ", "_"))+"="+v)
		}
		cmd.Env = env
		var b bytes.Buffer
		cmd.Stdout, cmd.Stderr = &b, &b
		err := cmd.Run()
		exported, rerr := os.ReadFile(envFile)
		if rerr != nil {
			t.Fatal(rerr)
		}
		return parseGitHubFile(string(exported)), b.String(), err
	}

	got, log, err := runAction("your-org/your-repo", "refs/heads/main")
	t.Logf("vault-action as your-org/your-repo on main (%v):\n%s", err, log)
	tok := got["OFFICERND_TOKEN"]
	if err != nil || tok == "" {
		t.Fatalf("the bound job got no token (exit %v); exported: %v", err, keys(got))
	}
	if !ornd.Valid(tok) {
		t.Error("the job got a token the vendor did not issue")
	}
	// The runner masks a value in the log from the ::add-mask:: command
	// on; the action must announce the token so before anything else.
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, tok) && strings.TrimSpace(l) != "::add-mask::"+tok {
			t.Errorf("the action printed the token other than in ::add-mask::: %q", l)
		}
	}
	for _, job := range [][2]string{{"someone-else/your-repo", "refs/heads/main"}, {"your-org/your-repo", "refs/heads/feature"}} {
		got, log, err := runAction(job[0], job[1])
		if err == nil || got["OFFICERND_TOKEN"] != "" {
			t.Errorf("a job of %s on %s was not refused (exit %v, exported %v):\n%s", job[0], job[1], err, keys(got), log)
		}
	}

	// The GitLab example cannot run here: its YAML parses and its
	// script lines are valid shell.
	gl, err := os.ReadFile(filepath.Join(root, "bootstrap", "ci", "gitlab-ci.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var jobs map[string]any
	if err := yaml.Unmarshal(gl, &jobs); err != nil {
		t.Fatalf("gitlab-ci.yml is not YAML: %v", err)
	}
	for name, j := range jobs {
		m, ok := j.(map[string]any)
		if !ok {
			continue
		}
		lines, _ := m["script"].([]any)
		for _, l := range lines {
			if out, err := exec.Command("bash", "-n", "-c", fmt.Sprint(l)).CombinedOutput(); err != nil {
				t.Errorf("gitlab-ci.yml %s: %q is not valid shell: %v %s", name, l, err, out)
			}
		}
	}
}

// actionDefaults are the inputs' defaults from action.yml, which the
// runner passes as INPUT_* when the workflow does not set them.
func actionDefaults(t *testing.T, path string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var a struct {
		Inputs map[string]struct {
			Default string `yaml:"default"`
		} `yaml:"inputs"`
	}
	if err := yaml.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, in := range a.Inputs {
		if in.Default != "" {
			out[k] = in.Default
		}
	}
	return out
}

// parseGitHubFile reads a GITHUB_ENV or GITHUB_OUTPUT file: NAME=value
// lines and NAME<<DELIMITER blocks.
func parseGitHubFile(s string) map[string]string {
	out := map[string]string{}
	lines := strings.Split(s, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if name, delim, ok := strings.Cut(l, "<<"); ok {
			var val []string
			for i++; i < len(lines) && lines[i] != delim; i++ {
				val = append(val, lines[i])
			}
			out[name] = strings.Join(val, "\n")
			continue
		}
		if name, val, ok := strings.Cut(l, "="); ok {
			out[name] = val
		}
	}
	return out
}
