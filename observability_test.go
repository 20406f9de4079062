package vendoroauth

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend"
)

// The shipped alerting rules, their tests and the dashboard name only
// metrics the plugin exports, and the plugin exports every one it lists:
// a renamed metric cannot leave an alert that never fires.
func TestShippedRulesAndDashboardNameRealMetrics(t *testing.T) {
	t.Parallel()
	names := backend.MetricNames()
	env := newTestEnv(t)
	body := env.loadedMetrics(t)
	metricRef := regexp.MustCompile(`vendoroauth_[a-z_]+`)
	for _, f := range []string{"bootstrap/prometheus/vendoroauth-alerts.yml", "bootstrap/prometheus/vendoroauth-alerts_test.yml", "bootstrap/grafana/vendoroauth-dashboard.json"} {
		raw, err := os.ReadFile(filepath.FromSlash(f))
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for _, ref := range metricRef.FindAllString(string(raw), -1) {
			base := ref
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(ref, suffix); ok && slices.Contains(names, b) {
					base = b
				}
			}
			if !slices.Contains(names, base) {
				t.Errorf("%s names %s, which the plugin does not export", f, ref)
			}
			seen++
		}
		if seen == 0 {
			t.Errorf("%s names no metric", f)
		}
	}
	for _, n := range names {
		if !strings.Contains(body, "# TYPE "+n+" ") && !strings.Contains(body, "# HELP "+n+" ") {
			// Vectors appear once a label set is used; their HELP is
			// checked where they are exercised (TestMetrics).
			switch n {
			case backend.MetricTokenReads, backend.MetricCredentials, backend.MetricHeld, backend.MetricQueue,
				backend.MetricLag, backend.MetricEventsUnwritten, backend.MetricBuildInfo, backend.MetricIndexLoaded:
				t.Errorf("an empty mount's metrics have no %s", n)
			}
		}
	}
}
