//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// promBinary returns the path of prometheus or promtool from
// scripts/prometheus.sh, which installs Prometheus when it is missing; the
// test skips, with the script's reason, only when it cannot.
func promBinary(t *testing.T, which string) string {
	t.Helper()
	root, err := vaulttest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "prometheus.sh"), which)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("no %s: scripts/prometheus.sh could not install one: %v\n%s", which, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// TestShippedAlertRules runs promtool on the shipped alerting rules: they
// parse, and their unit tests (bootstrap/prometheus/
// vendoroauth-alerts_test.yml) pass.
func TestShippedAlertRules(t *testing.T) {
	promtool := promBinary(t, "promtool")
	root, _ := vaulttest.RepoRoot()
	dir := filepath.Join(root, "bootstrap", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "vendoroauth-alerts.yml"},
		{"test", "rules", "vendoroauth-alerts_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestPrometheusScrapesAndAlerts runs a real Prometheus server with the
// shipped scrape config (bootstrap/prometheus/prometheus.yml, moved to the
// test's Vault and mount, scraping every second) and alerting rules,
// scraping <mount>/metrics with a token that holds only the shipped
// metrics policy, read from a file. One connection's refresh token is
// revoked at the stand-in and refreshed: through Prometheus's HTTP API,
// the reauthorization gauge rises and VendorOAuthReauthorizationNeeded
// fires.
func TestPrometheusScrapesAndAlerts(t *testing.T) {
	start := time.Now()
	prom := promBinary(t, "prometheus")
	root, _ := vaulttest.RepoRoot()
	const pm = "vo-metrics" // a mount of its own: its counters are this test's
	if err := vault.Enable(pm, pluginVersion); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vault.Client.Sys().Unmount(pm) })

	// The shipped policy, for this mount.
	tmpl, err := os.ReadFile(filepath.Join(root, "bootstrap", "policies", "vendoroauth-metrics.hcl.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	putPolicyForTest(t, "e2e-metrics", strings.ReplaceAll(string(tmpl), "${MOUNT}", pm))
	tok := tokenWithPolicies(t, true, "e2e-metrics")
	for _, p := range []string{pm + "/token/x", pm + "/events/x", pm + "/status", pm + "/config/x", mount + "/metrics"} {
		if status, _, _ := callAs(t, tok, "GET", p, nil); status != 403 {
			t.Errorf("the metrics token may read %s (HTTP %d)", p, status)
		}
	}

	vs := standin.New()
	base, err := vs.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vs.Close()
	v := vs.Vendor(standin.VendorPenbox)
	const clientID, secret = "metrics-client", "metrics-client-secret-Lw2"
	v.AddClient(standin.Client{ID: clientID, Secret: secret, RedirectURIs: []string{partnerCallback}})
	if status, r, _ := call(t, "POST", pm+"/apps/shop", partnerAppConfig(base, v, clientID, secret)); status != 204 {
		t.Fatalf("apps/shop: HTTP %d %v", status, r.Errors)
	}
	rts := map[string]string{}
	for _, a := range []string{"acme", "globex"} {
		rts[a] = v.IssueRefreshToken(clientID)
		if status, r, _ := call(t, "POST", pm+"/config/shop/"+a, map[string]interface{}{"refresh_token": rts[a]}); status != 204 {
			t.Fatalf("config/shop/%s: HTTP %d %v", a, status, r.Errors)
		}
		if status, r, _ := call(t, "GET", pm+"/token/shop/"+a, nil); status != 200 {
			t.Fatalf("token/shop/%s: HTTP %d %v", a, status, r.Errors)
		}
	}

	// Prometheus, configured from the shipped file.
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "vendoroauth-metrics.token")
	if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile(filepath.Join(root, "bootstrap", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	vaultURL, _ := url.Parse(vault.Addr)
	conf := string(shipped)
	for _, r := range []struct{ old, new string }{
		{"scrape_interval: 30s", "scrape_interval: 1s"},
		{"evaluation_interval: 30s", "evaluation_interval: 1s"},
		{"- vendoroauth-alerts.yml", "- " + filepath.Join(root, "bootstrap", "prometheus", "vendoroauth-alerts.yml")},
		{"metrics_path: /v1/vendoroauth/metrics", "metrics_path: /v1/" + pm + "/metrics"},
		{"scheme: https", "scheme: http"},
		{"/etc/prometheus/vendoroauth-metrics.token", tokenFile},
		{"vault.example.com:8200", vaultURL.Host},
	} {
		if !strings.Contains(conf, r.old) {
			t.Fatalf("the shipped prometheus.yml has no %q", r.old)
		}
		conf = strings.ReplaceAll(conf, r.old, r.new)
	}
	confPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := vaulttest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	promURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prom, "--config.file="+confPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		_ = cmd.Wait()
		_ = logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("prometheus log (tail):\n%s", tail(string(b), 40))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := waitHTTP(ctx, promURL+"/-/ready"); err != nil {
		t.Fatal(err)
	}

	query := func(q string) []promSample {
		t.Helper()
		var out struct {
			Status string `json:"status"`
			Data   struct {
				Result []promSample `json:"result"`
			} `json:"data"`
		}
		promGet(t, promURL+"/api/v1/query?query="+url.QueryEscape(q), &out)
		return out.Data.Result
	}
	gauge := `vendoroauth_credentials{app="shop",state="needs_reauthorization"}`
	var targets struct {
		Data struct {
			Active []struct {
				Health    string `json:"health"`
				LastError string `json:"lastError"`
				ScrapeURL string `json:"scrapeUrl"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	scraped := func() bool {
		r := query(gauge)
		return len(r) == 1 && r[0].value() == "0"
	}
	for deadline := time.Now().Add(60 * time.Second); !scraped(); time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) {
			promGet(t, promURL+"/api/v1/targets", &targets)
			body, err := rawGet(vault.Addr+"/v1/"+pm+"/metrics", tok)
			t.Fatalf("Prometheus did not scrape the counts by state within 60s: targets %+v; %s: %v %+v", targets.Data.Active, gauge, err, grepText(body.body, "vendoroauth_credentials{", "index_loaded"))
		}
	}
	promGet(t, promURL+"/api/v1/targets", &targets)
	if len(targets.Data.Active) != 1 || targets.Data.Active[0].Health != "up" {
		t.Fatalf("the scrape target: %+v", targets.Data.Active)
	}
	// Give the rule a few evaluations of the old state, then the
	// customer's consent lapses at the vendor.
	time.Sleep(3 * time.Second)
	v.RevokeRefreshToken(rts["acme"])
	// The vendor refuses it; the token still valid is served with a
	// warning, and the connection needs reauthorization.
	refusedAt := time.Now()
	if status, r, _ := call(t, "POST", pm+"/refresh/shop/acme", nil); status != 200 || !strings.Contains(strings.Join(r.Warnings, " "), "reauthoriz") {
		t.Fatalf("refresh/shop/acme after the revocation: HTTP %d %v %v", status, r.Errors, r.Warnings)
	}
	waitFor(t, 30*time.Second, "the reauthorization gauge rises to 1", func() bool {
		r := query(gauge)
		return len(r) == 1 && r[0].value() == "1"
	})
	var fired time.Time
	waitFor(t, 30*time.Second, "VendorOAuthReauthorizationNeeded fires for app shop", func() bool {
		var alerts struct {
			Data struct {
				Alerts []struct {
					Labels map[string]string `json:"labels"`
					State  string            `json:"state"`
				} `json:"alerts"`
			} `json:"data"`
		}
		promGet(t, promURL+"/api/v1/alerts", &alerts)
		for _, a := range alerts.Data.Alerts {
			if a.Labels["alertname"] == "VendorOAuthReauthorizationNeeded" && a.Labels["app"] == "shop" && a.State == "firing" {
				fired = time.Now()
				return true
			}
		}
		return false
	})
	// What else was scraped: reads by outcome and the refused refresh.
	if r := query(`vendoroauth_vendor_requests_total{outcome="invalid_grant"}`); len(r) != 1 || r[0].value() != "1" {
		t.Errorf("invalid_grant refusals in Prometheus: %+v", r)
	}
	if r := query(`vendoroauth_token_reads_total{outcome="vendor_call"}`); len(r) != 1 || r[0].value() != "2" {
		t.Errorf("token reads after a vendor call in Prometheus: %+v", r)
	}
	if r := query(`vendoroauth_build_info{version="` + pluginVersion + `"}`); len(r) != 1 {
		t.Errorf("build info in Prometheus: %+v", r)
	}
	// The raw body as a client of Vault sees it.
	resp, err := rawGet(vault.Addr+"/v1/"+pm+"/metrics", tok)
	if err != nil || resp.status != 200 || !strings.HasPrefix(resp.contentType, "text/plain; version=0.0.4") ||
		strings.Contains(resp.body, "acme") || strings.Contains(resp.body, secret) || strings.Contains(resp.body, "penbox-rt-") {
		t.Errorf("GET %s/metrics: %v HTTP %d %q; holds a connection's name or a secret: %v", pm, err, resp.status, resp.contentType,
			strings.Contains(resp.body, "acme") || strings.Contains(resp.body, secret))
	}
	t.Logf("alert fired %s after the refresh was refused; test took %s", fired.Sub(refusedAt).Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
}

func grepText(body string, words ...string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// promSample is one sample of an instant query.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  []interface{}     `json:"value"`
}

func (s promSample) value() string {
	if len(s.Value) != 2 {
		return ""
	}
	v, _ := s.Value[1].(string)
	return v
}

func promGet(t *testing.T, u string, out interface{}) {
	t.Helper()
	resp, err := http.Get(u) //nolint:noctx // a local test server
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("%s: %v", u, err)
	}
}

type rawAnswer struct {
	status      int
	contentType string
	body        string
}

// rawGet reads a Vault path as Prometheus does: a GET with a Bearer token.
func rawGet(u, token string) (rawAnswer, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil) //nolint:noctx // a local test server
	if err != nil {
		return rawAnswer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return rawAnswer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return rawAnswer{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: string(b)}, err
}
