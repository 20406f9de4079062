//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// The end-to-end checks of issue 19 ("Hardening, second round") in the
// real server: unauthenticated JWKS requests cost the plugin no memory,
// expired authorizations are swept, and one app's slow refreshes do not
// delay another's keep-alive.

// rssKiB is a process's resident set, from /proc.
func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return n
				}
			}
		}
	}
	t.Fatalf("no VmRSS for pid %d", pid)
	return 0
}

// TestHardeningInItsOwnVault runs, in a Vault of its own (so that the
// plugin process serves nothing else while its memory is measured, and
// with sys/raw to age authorizations), the unauthenticated-JWKS memory
// check and the sweep of expired authorizations.
func TestHardeningInItsOwnVault(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	v := startMountedVault(t, vaulttest.Options{PluginDir: vault.PluginDir, LogPath: filepath.Join(dir, "vault.log"), RawStorage: true}, pluginVersion, pluginSHA(t))
	vend := standin.New()
	base, err := vend.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer vend.Close()
	pbx := vend.Vendor(standin.VendorPenbox)
	pbx.AddClient(standin.Client{ID: "h19-pb", Secret: "h19-pb-secret-Qe7"})
	do := func(method, path string, body map[string]interface{}) (int, apiResponse) {
		t.Helper()
		var raw []byte
		if body != nil {
			raw, _ = json.Marshal(body)
		}
		status, out, err := v.Raw(method, path, raw)
		if status == 0 {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		var r apiResponse
		_ = json.Unmarshal(out, &r)
		return status, r
	}
	if status, r := do("POST", mount+"/apps/partner", partnerAppConfig(base, pbx, "h19-pb", "h19-pb-secret-Qe7")); status != 204 && status != 200 {
		t.Fatalf("apps/partner: HTTP %d %v", status, r.Errors)
	}
	// A credential whose JWKS is published, so that the requests below go
	// beside a real one.
	if status, r := do("POST", mount+"/config/signer", map[string]interface{}{"token_url": base + "/generic/token", "client_id": "s", "auth_style": "private_key_jwt", "grant_type": "client_credentials"}); status != 204 && status != 200 {
		t.Fatalf("config/signer: HTTP %d %v", status, r.Errors)
	}
	if status, r := do("POST", mount+"/rotate-key/signer", map[string]interface{}{"algorithm": "RS256"}); status != 200 {
		t.Fatalf("rotate-key/signer: HTTP %d %v", status, r.Errors)
	}

	t.Run("unauthenticated JWKS requests leave the plugin's memory flat", func(t *testing.T) {
		jwksMemory(t, v)
	})
	t.Run("expired authorizations are gone after the sweep", func(t *testing.T) {
		sweepInVault(t, v, do)
	})
}

// jwksMemory sends unauthenticated JWKS requests with distinct 4 KiB names
// to apps/<name>/jwks, where memory grew (2,000 in make test:
// E2E_JWKS_LONG_NAMES=10000 for the measurement, which takes
// minutes, since Vault itself spends some 25 ms of CPU on each request
// with a path that long, on any mount), and 2,000 with distinct names of
// 128 characters (the cap: these are looked up) to both JWKS paths, and
// checks the plugin's RSS stays within 5 MiB of where it was. Before the
// fix each name of an app that does not exist left a snapshot in a map
// that was never evicted: 2,000 names of 4 KiB kept more than 8 MiB, and
// 2,000 names of 32 KiB 78 MiB.
func jwksMemory(t *testing.T, v *vaulttest.Vault) {
	longNames := 2000
	if n, err := strconv.Atoi(os.Getenv("E2E_JWKS_LONG_NAMES")); err == nil && n > 0 {
		longNames = n
	}
	pids, err := vaulttest.PluginProcesses(v.PID())
	if err != nil || len(pids) != 1 {
		t.Fatalf("want the one plugin process, got %v (%v)", pids, err)
	}
	pid := pids[0]
	hc := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) int {
		resp, err := hc.Get(v.Addr + "/v1/" + mount + "/" + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("jwks/signer"); code != 200 {
		t.Fatalf("jwks/signer: HTTP %d", code)
	}
	run := func(n int, path func(i int) string) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[int]int{}
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 8 {
					c := get(path(i))
					mu.Lock()
					codes[c]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if codes[404] != n {
			t.Errorf("answers: %v, want %d 404s", codes, n)
		}
	}
	pad := func(prefix string, i, size int) string {
		s := fmt.Sprintf("%s%06d", prefix, i)
		return s + strings.Repeat("x", size-len(s))
	}
	// Warm up: the HTTP and gRPC buffers the requests need, once.
	run(200, func(i int) string { return "apps/" + pad("warm", i, 4096) + "/jwks" })
	time.Sleep(time.Second)
	before := rssKiB(t, pid)
	start := time.Now()
	run(longNames, func(i int) string { return "apps/" + pad("long", i, 4096) + "/jwks" })
	long := time.Since(start)
	run(2000, func(i int) string {
		if i%2 == 0 {
			return "apps/" + pad("capped", i, 128) + "/jwks"
		}
		return "jwks/" + pad("capped", i, 128)
	})
	time.Sleep(time.Second)
	after := rssKiB(t, pid)
	t.Logf("plugin RSS %.1f MiB before, %.1f MiB after %d JWKS requests with distinct 4 KiB names (%s) and 2,000 with distinct 128-character names (%+d KiB)",
		float64(before)/1024, float64(after)/1024, longNames, long.Round(time.Millisecond), after-before)
	if after-before > 5*1024 {
		t.Errorf("the plugin's RSS grew by %d KiB, more than 5 MiB", after-before)
	}
	if code := get("jwks/signer"); code != 200 {
		t.Errorf("jwks/signer after: HTTP %d", code)
	}
}

// sweepInVault starts 200 authorizations of new accounts with 3 KiB of
// metadata each (as a public "connect" button can), ages 150 of them past
// their expiry through sys/raw, reloads the plugin (nothing of them is in
// its memory then, as after a restart) and waits for the sweep: the 150
// are deleted, the 50 still open stay.
func sweepInVault(t *testing.T, v *vaulttest.Vault, do func(string, string, map[string]interface{}) (int, apiResponse)) {
	for i := range 200 {
		status, r := do("POST", fmt.Sprintf("%s/authorize/partner/new-%03d", mount, i), map[string]interface{}{
			"redirect_uri": partnerCallback, "metadata": "customer=" + strings.Repeat("c", 3000)})
		if status != 200 {
			t.Fatalf("authorize/partner/new-%03d: HTTP %d %v", i, status, r.Errors)
		}
	}
	m, err := v.Client.Sys().GetMount(mount)
	if err != nil {
		t.Fatal(err)
	}
	root := "sys/raw/logical/" + m.UUID + "/authz/partner/"
	list := func(path string) []string {
		t.Helper()
		s, err := v.Client.Logical().List(path)
		if err != nil {
			t.Fatalf("LIST %s: %v", path, err)
		}
		if s == nil {
			return nil
		}
		var out []string
		for _, k := range s.Data["keys"].([]interface{}) {
			out = append(out, k.(string))
		}
		return out
	}
	stored := func() map[string]bool {
		out := map[string]bool{}
		for _, acct := range list(root) {
			for _, id := range list(root + acct) {
				out[acct+id] = true
			}
		}
		return out
	}
	if n := len(stored()); n != 200 {
		t.Fatalf("%d authorizations stored, want 200", n)
	}
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	for i := range 150 {
		acct := fmt.Sprintf("new-%03d/", i)
		for _, id := range list(root + acct) {
			s, err := v.Client.Logical().Read(root + acct + id)
			if err != nil || s == nil {
				t.Fatalf("reading %s%s: %v", acct, id, err)
			}
			var a map[string]interface{}
			if err := json.Unmarshal([]byte(str(s.Data["value"])), &a); err != nil {
				t.Fatal(err)
			}
			a["expires_at"] = past
			b, _ := json.Marshal(a)
			if _, err := v.Client.Logical().Write(root+acct+id, map[string]interface{}{"value": string(b)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	start := time.Now()
	if _, err := v.Client.Sys().ReloadPlugin(&api.ReloadPluginInput{Mounts: []string{mount}}); err != nil {
		t.Fatalf("reloading the mount: %v", err)
	}
	deadline := start.Add(90 * time.Second)
	var left map[string]bool
	for {
		left = stored()
		if len(left) <= 50 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("after the reload, %d authorizations were left after %s", len(left), time.Since(start).Round(time.Millisecond))
	if len(left) != 50 {
		t.Fatalf("%d authorizations stored 90 s after the reload, want the 50 still open", len(left))
	}
	for i := 150; i < 200; i++ {
		if ids := list(root + fmt.Sprintf("new-%03d/", i)); len(ids) != 1 {
			t.Errorf("the open authorization of new-%03d is gone", i)
		}
	}
}

// TestSlowAppDoesNotDelayAnothersKeepAlive: in its own mount, an app at
// the lowest refresh_rate whose 50 connections are due for a keep-alive at
// a vendor that answers in 2 s, and another app whose one connection's
// keep-alive is due 3 s later at a prompt vendor. The second's keep-alive
// must come within a few seconds of its time; it is measured and logged.
func TestSlowAppDoesNotDelayAnothersKeepAlive(t *testing.T) {
	t.Parallel()
	const m = "vendoroauth-keepalive"
	if err := vault.Enable(m, pluginVersion); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = vault.Client.Sys().Unmount(m) }()
	slowSrv, fastSrv := standin.New(), standin.New()
	slowBase, err := slowSrv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer slowSrv.Close()
	fastBase, err := fastSrv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer fastSrv.Close()
	slow, fast := slowSrv.Vendor(standin.VendorGeneric), fastSrv.Vendor(standin.VendorGeneric)
	app := func(name, base string, v *standin.Vendor, extra map[string]interface{}) {
		v.AddClient(standin.Client{ID: name, Secret: name + "-secret-K8p"})
		data := map[string]interface{}{"token_url": base + v.TokenPath(), "client_id": name, "client_secret": name + "-secret-K8p", "grant_type": "refresh_token"}
		for k, val := range extra {
			data[k] = val
		}
		if status, r, _ := call(t, "POST", m+"/apps/"+name, data); status != 204 && status != 200 {
			t.Fatalf("apps/%s: HTTP %d %v", name, status, r.Errors)
		}
	}
	app("slow", slowBase, slow, map[string]interface{}{"refresh_rate": model.MinRefreshRate, "keepalive_interval": 2})
	app("fast", fastBase, fast, map[string]interface{}{"keepalive_interval": 5})
	connect := func(name string, v *standin.Vendor, client, rt string) {
		v.AddRefreshToken(client, rt)
		if status, r, _ := call(t, "POST", m+"/config/"+name, map[string]interface{}{"refresh_token": rt}); status != 204 && status != 200 {
			t.Fatalf("config/%s: HTTP %d %v", name, status, r.Errors)
		}
		if status, r, _ := call(t, "GET", m+"/token/"+name, nil); status != 200 {
			t.Fatalf("token/%s: HTTP %d %v", name, status, r.Errors)
		}
	}
	for i := range 50 {
		connect(fmt.Sprintf("slow/a%02d", i), slow, "slow", fmt.Sprintf("rt-slow-%02d-Xw", i))
	}
	connect("fast/a", fast, "fast", "rt-fast-Xw")
	due := time.Now().Add(5 * time.Second)
	slow.SetBehavior(standin.Behavior{Delay: 2 * time.Second})
	before := fast.Stats().Requests
	deadline := due.Add(60 * time.Second)
	for fast.Stats().Requests == before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if fast.Stats().Requests == before {
		t.Fatalf("the fast app's keep-alive, due 5 s after its token, had not come a minute after that")
	}
	late := time.Since(due)
	t.Logf("the fast app's keep-alive came %s after it was due, beside 50 of another app's due at refresh_rate=%g at a vendor answering in 2 s (that app made %d keep-alives meanwhile)",
		late.Round(time.Millisecond), model.MinRefreshRate, slow.Stats().Grants-50)
	if late > 3*time.Second {
		t.Errorf("the fast app's keep-alive came %s late, more than a few seconds", late)
	}
}
