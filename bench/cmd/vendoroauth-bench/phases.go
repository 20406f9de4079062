package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// The stand-in client every benchmark credential uses.
const (
	clientID     = "bench-client"
	clientSecret = "bench-secret"
)

// startVendor starts a fresh stand-in with the benchmark client on the
// generic vendor. Each phase gets its own, so one phase's issued tokens do
// not slow the next (the stand-in scans its tokens once it holds 10,000).
func startVendor(b standin.Behavior) (*standin.Server, *standin.Vendor, string, error) {
	srv := standin.New()
	base, err := srv.Start("127.0.0.1:0")
	if err != nil {
		return nil, nil, "", err
	}
	v := srv.Vendor(standin.VendorGeneric)
	v.AddClient(standin.Client{ID: clientID, Secret: clientSecret})
	v.SetBehavior(b)
	return srv, v, base + v.TokenPath(), nil
}

// stopVendor stops a phase's stand-in once its measurements are taken;
// how it stops changes none of them, so its error is dropped.
func stopVendor(srv *standin.Server) { _ = srv.Close() }

func credential(tokenURL string) map[string]any {
	return map[string]any{
		"token_url":     tokenURL,
		"client_id":     clientID,
		"client_secret": clientSecret,
	}
}

// writeConfigs writes config/<prefix><i> for i in [from, to) on mount.
func (e *env) writeConfigs(ctx context.Context, mount, prefix string, from, to int, tokenURL string) error {
	body := credential(tokenURL)
	return parallel(to-from, 16, func(i int) error {
		_, err := e.call(ctx, http.MethodPost, fmt.Sprintf("%s/config/%s%d", mount, prefix, from+i), body)
		return err
	})
}

// readTokens reads token/<prefix><i> once for i in [from, to).
func (e *env) readTokens(ctx context.Context, mount, prefix string, from, to int) error {
	return parallel(to-from, 16, func(i int) error {
		_, err := e.call(ctx, http.MethodGet, fmt.Sprintf("%s/token/%s%d", mount, prefix, from+i), nil)
		return err
	})
}

// ---- throughput ----------------------------------------------------------

type target struct {
	Name string
	Path string
	// Plugin is the role of the plugin process serving Path ("" for
	// Vault's built-in engines; "proxy" for reads through vault proxy).
	Plugin string
	// do reads Path some other way than straight from Vault.
	do doer
}

// The throughput targets other rows are compared with.
const (
	tokenTarget     = "token (vendoroauth)"
	nullLeaseTarget = "null plugin, lease"
	kv2Target       = "KV v2"
	proxyTarget     = "token via vault proxy (cache)"
)

// prepareThroughput configures the token credential and writes KV values
// of the token's size.
func (e *env) prepareThroughput(ctx context.Context, tokenURL string) ([]target, error) {
	if _, err := e.call(ctx, http.MethodPost, "vendoroauth/config/bench", credential(tokenURL)); err != nil {
		return nil, err
	}
	if _, err := e.call(ctx, http.MethodPost, "prof/config/bench", credential(tokenURL)); err != nil {
		return nil, err
	}
	tok, err := e.call(ctx, http.MethodGet, "vendoroauth/token/bench", nil)
	if err != nil {
		return nil, err
	}
	if _, err := e.call(ctx, http.MethodGet, "prof/token/bench", nil); err != nil {
		return nil, err
	}
	// The KV values are the token's data, so the same bytes cross Vault.
	value := map[string]any{}
	for _, k := range []string{"access_token", "token_type", "expires_at", "scope"} {
		value[k] = tok[k]
	}
	if _, err := e.call(ctx, http.MethodPost, "kv1/bench", value); err != nil {
		return nil, err
	}
	// KV v2 upgrades its storage after mounting and refuses writes until
	// it is done.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := e.call(ctx, http.MethodPost, "kv2/data/bench", map[string]any{"data": value})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return []target{
		{Name: tokenTarget, Path: "vendoroauth/token/bench", Plugin: "plugin"},
		{Name: nullLeaseTarget, Path: "null/token/bench", Plugin: "null"},
		{Name: "null plugin, no lease", Path: "null/static/bench", Plugin: "null"},
		{Name: "KV v1", Path: "kv1/bench"},
		{Name: kv2Target, Path: "kv2/data/bench"},
	}, nil
}

// procs is the set of processes whose CPU time a cell measures.
func (e *env) procs(plugin string) map[string]int {
	p := map[string]int{"loadgen": 0}
	if e.vaultPID > 0 {
		p["vault"] = e.vaultPID
	}
	switch plugin {
	case "plugin":
		p["plugin"] = e.pluginPID
	case "null":
		p["plugin"] = e.nullPID
	case "prof":
		p["plugin"] = e.profPID
	case "scale":
		p["plugin"] = e.scalePID
	case "proxy":
		// Cached answers never reach Vault; the lease renewals do.
		p["plugin"] = e.pluginPID
		if e.proxy != nil {
			p["proxy"] = e.proxy.PID
		}
	}
	return p
}

type throughputRow struct {
	Target      string  `json:"target"`
	Path        string  `json:"path"`
	Concurrency int     `json:"concurrency"`
	VsNull      float64 `json:"vs_null_lease,omitempty"`
	VsKV2       float64 `json:"vs_kv2,omitempty"`
	// CPUVsNull is the leased null plugin's CPU per request (Vault and the
	// plugin process) over this target's: less disturbed by other load on
	// the machine than req/s, and what capacity a saturated server has.
	CPUVsNull float64 `json:"cpu_vs_null_lease,omitempty"`
	// VsNullSlices (the plugin's row only) is req/s over the null
	// plugin's in each round of slices: their spread shows how much the
	// machine's other load moved the overall ratio.
	VsNullSlices []float64 `json:"vs_null_lease_per_round,omitempty"`
	stats
}

// throughput measures every target at every concurrency. Each cell's time
// is split into rounds, and the targets take turns round by round in a
// rotating order, so a noisy neighbour or Vault's growing lease table hits
// all of them alike.
func (e *env) throughput(ctx context.Context, o *options, targets []target) ([]throughputRow, error) {
	var rows []throughputRow
	for _, c := range o.concurrency {
		samples := make([]sample, len(targets))
		slices := make([][]float64, len(targets)) // req/s per round
		for r := 0; r < o.rounds; r++ {
			for k := range targets {
				i := (k + r) % len(targets)
				t := targets[i]
				do := t.do
				if do == nil {
					do = e.get(fixed(t.Path))
				}
				s := run(ctx, do, c, o.warmup, o.duration/time.Duration(o.rounds), e.procs(t.Plugin))
				if s.errors > 0 {
					return nil, fmt.Errorf("%s at %d readers: %d errors, first: %w", t.Name, c, s.errors, s.firstErr)
				}
				samples[i].merge(s)
				if s.seconds > 0 {
					slices[i] = append(slices[i], float64(len(s.latencies))/s.seconds)
				}
			}
		}
		first := len(rows)
		for i, t := range targets {
			rows = append(rows, throughputRow{Target: t.Name, Path: t.Path, Concurrency: c, stats: samples[i].stats()})
		}
		// The yardsticks are the leased null plugin and KV v2, found by
		// name: more targets may follow them.
		var null, kv2, nullCPU float64
		for _, r := range rows[first:] {
			switch r.Target {
			case nullLeaseTarget:
				null, nullCPU = r.RPS, serverCPU(r.stats)
			case kv2Target:
				kv2 = r.RPS
			}
		}
		for i := first; i < len(rows); i++ {
			if null > 0 {
				rows[i].VsNull = rows[i].RPS / null
			}
			if c := serverCPU(rows[i].stats); c > 0 {
				rows[i].CPUVsNull = nullCPU / c
			}
			if i == first && len(slices[0]) == len(slices[1]) {
				for r, v := range slices[0] {
					if slices[1][r] > 0 {
						rows[i].VsNullSlices = append(rows[i].VsNullSlices, v/slices[1][r])
					}
				}
			}
			if kv2 > 0 {
				rows[i].VsKV2 = rows[i].RPS / kv2
			}
		}
		logf("throughput at %d readers: token %.0f/s, null %.0f/s (token/null %.2f)", c, rows[first].RPS, null, rows[first].VsNull)
		if last := rows[len(rows)-1]; last.Target == proxyTarget {
			logf("throughput at %d readers: through vault proxy %.0f/s (x%.2f null, x%.2f KV v2)", c, last.RPS, last.VsNull, last.VsKV2)
		}
	}
	return rows, nil
}

// serverCPU is the CPU time per request of Vault, the plugin process and
// (for reads through it) vault proxy.
func serverCPU(s stats) float64 {
	return s.CPUusPer["vault"] + s.CPUusPer["plugin"] + s.CPUusPer["proxy"]
}

// ---- cold reads ------------------------------------------------------------

type coldResult struct {
	Plugin stats `json:"plugin_cold_read"`
	Direct stats `json:"direct_standin_call"`
	// OverheadP50ms is what a grant through Vault and the plugin adds to
	// the vendor call itself, at the median.
	OverheadP50ms float64 `json:"overhead_p50_ms"`
	Grants        int     `json:"standin_grants"`
}

// cold measures reads that need a grant, one reader at a time: each read is
// of a credential never read before. Beside it, the same token request
// sent straight to the stand-in.
func (e *env) cold(ctx context.Context, o *options) (*coldResult, error) {
	srv, v, tokenURL, err := startVendor(standin.Behavior{})
	if err != nil {
		return nil, err
	}
	defer stopVendor(srv)
	n := o.coldMax + o.coldWarmup
	logf("cold reads: writing %d credentials", n)
	if err := e.writeConfigs(ctx, "cold", "c", 0, n, tokenURL); err != nil {
		return nil, err
	}
	v.Reset()
	var (
		mu   sync.Mutex
		next int
	)
	fresh := func(*rand.Rand) string {
		mu.Lock()
		defer mu.Unlock()
		i := next
		next++
		return fmt.Sprintf("cold/token/c%d", i%n)
	}
	// Warm-up by count, not time: a fixed number of names is spent.
	warm := runN(ctx, e.get(fresh), 1, 0, time.Hour, o.coldWarmup, nil)
	if warm.errors > 0 {
		return nil, fmt.Errorf("cold warm-up: %w", warm.firstErr)
	}
	s := runN(ctx, e.get(fresh), 1, 0, o.duration, o.coldMax, e.procs("plugin"))
	if s.errors > 0 {
		return nil, fmt.Errorf("cold reads: %d errors, first: %w", s.errors, s.firstErr)
	}
	res := &coldResult{Plugin: s.stats()}
	st := v.Stats()
	res.Grants = st.Grants
	mu.Lock()
	reads := next
	mu.Unlock()
	if st.Grants != reads || st.Requests != reads {
		return nil, fmt.Errorf("cold reads: %d reads made %d vendor requests and %d grants; every read should grant once", reads, st.Requests, st.Grants)
	}

	dsrv, dv, dURL, err := startVendor(standin.Behavior{})
	if err != nil {
		return nil, err
	}
	defer stopVendor(dsrv)
	direct := directGrant(e.hc, dURL)
	if w := runN(ctx, direct, 1, 0, time.Hour, o.coldWarmup, nil); w.errors > 0 {
		return nil, fmt.Errorf("direct warm-up: %w", w.firstErr)
	}
	d := runN(ctx, direct, 1, 0, o.duration, o.coldMax, map[string]int{"loadgen": 0})
	if d.errors > 0 {
		return nil, fmt.Errorf("direct calls: %d errors, first: %w", d.errors, d.firstErr)
	}
	res.Direct = d.stats()
	res.OverheadP50ms = res.Plugin.P50ms - res.Direct.P50ms
	_ = dv
	logf("cold read p50 %.2f ms, direct call p50 %.2f ms", res.Plugin.P50ms, res.Direct.P50ms)
	return res, nil
}

// directGrant is the client-credentials request the plugin sends for a
// generic credential (HTTP Basic with RFC 6749 encoding, a form body),
// sent straight to the stand-in.
func directGrant(hc *http.Client, tokenURL string) doer {
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(clientID)+":"+url.QueryEscape(clientSecret)))
	body := url.Values{"grant_type": {"client_credentials"}}.Encode()
	return func(ctx context.Context, _ *rand.Rand, buf *bytes.Buffer) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", auth)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		return send(hc, req, http.StatusOK, buf)
	}
}

// ---- upstream requests per lifetime ----------------------------------------

type lifetimeResult struct {
	Readers         int     `json:"readers"`
	LifetimeSeconds float64 `json:"token_lifetime_seconds"`
	Seconds         float64 `json:"seconds"`
	Reads           int     `json:"reads"`
	ReadErrors      int     `json:"read_errors"`
	Upstream        int     `json:"upstream_requests"`
	UpstreamFailed  int     `json:"upstream_failures"`
	Refreshes       int     `json:"refreshes"`
	TokensSeen      int     `json:"distinct_tokens_seen"`
	PerRefresh      float64 `json:"upstream_per_refresh"`
	// RefreshEverySeconds is the mean time from one refresh to the next;
	// PerLifetime is the vendor requests one token lifetime of wall time
	// costs at that pace. It is above one by design: a token is handed
	// out until its hand-out end (expiry minus the skew minus the margin
	// M = max(3% of its life, 2 s)), so a busy credential costs
	// L / (L - s - M) per lifetime (Rule, from model.Lease; Formula is
	// model.VendorCallsPerLifetime, which is 1 / (0.97 - s/L) for tokens
	// of 67 s or more; for the 10 s tokens here, s = 1 s and M = 2 s:
	// 10 / 7 = 1.43).
	// PerLifetimeCounted counts every request, the one whose token is in
	// use at the end included, over the time their tokens are handed out
	// (vaulttest.CallsPerLifetime).
	RefreshEverySeconds float64   `json:"refresh_every_seconds"`
	RefreshAtSeconds    []float64 `json:"refresh_at_seconds"` // since the first
	PerLifetime         float64   `json:"upstream_per_vendor_lifetime"`
	PerLifetimeCounted  float64   `json:"upstream_per_lifetime_counting_the_last"`
	Rule                float64   `json:"rule_upstream_per_lifetime"`
	Formula             float64   `json:"formula_upstream_per_lifetime"`
}

// lifetime runs many concurrent readers of one credential whose tokens live
// a few seconds, for several lifetimes, and counts the vendor requests.
func (e *env) lifetime(ctx context.Context, o *options) (*lifetimeResult, error) {
	srv, v, tokenURL, err := startVendor(standin.Behavior{Lifetime: o.lifetime})
	if err != nil {
		return nil, err
	}
	defer stopVendor(srv)
	if _, err := e.call(ctx, http.MethodPost, "life/config/life", credential(tokenURL)); err != nil {
		return nil, err
	}
	v.Reset()
	var (
		mu   sync.Mutex
		seen = map[string]bool{}
	)
	read := e.get(fixed("life/token/life"))
	do := func(ctx context.Context, rng *rand.Rand, buf *bytes.Buffer) (int, error) {
		n, err := read(ctx, rng, buf)
		if err != nil {
			return n, err
		}
		var r struct {
			Data struct {
				AccessToken string `json:"access_token"`
			} `json:"data"`
		}
		if err := json.Unmarshal(buf.Bytes(), &r); err != nil || r.Data.AccessToken == "" {
			return 0, fmt.Errorf("token read without a token: %v", err) //nolint:errorlint // err is nil when the answer parsed but held no token
		}
		mu.Lock()
		seen[r.Data.AccessToken] = true
		mu.Unlock()
		return n, nil
	}
	dur := time.Duration(o.lifetimes) * o.lifetime
	logf("upstream requests: %d readers for %s (%d lifetimes of %s)", o.lifetimeReaders, dur, o.lifetimes, o.lifetime)
	s := run(ctx, do, o.lifetimeReaders, 0, dur, nil)
	st := v.Stats()
	res := &lifetimeResult{
		Readers:         o.lifetimeReaders,
		LifetimeSeconds: o.lifetime.Seconds(),
		Seconds:         s.seconds,
		Reads:           len(s.latencies),
		ReadErrors:      s.errors,
		Upstream:        st.Requests,
		UpstreamFailed:  st.Requests - st.Grants,
		TokensSeen:      len(seen),
	}
	// Refreshes are told apart by time: the requests of one refresh come
	// within moments of each other, refreshes a good part of a lifetime
	// apart.
	var first, last, lastStart time.Time
	var at []time.Time
	for _, r := range v.Requests() {
		at = append(at, r.At)
		if last.IsZero() || r.At.Sub(last) > o.lifetime/4 {
			res.Refreshes++
			if first.IsZero() {
				first = r.At
			}
			lastStart = r.At
			res.RefreshAtSeconds = append(res.RefreshAtSeconds, math.Round(r.At.Sub(first).Seconds()*1000)/1000)
		}
		last = r.At
	}
	if res.Refreshes > 0 {
		res.PerRefresh = float64(res.Upstream) / float64(res.Refreshes)
	}
	// From the refreshes' start times, not the window: whether the last
	// refresh fell just inside or just outside the window would move a
	// count-based figure by a whole refresh.
	if res.Refreshes > 1 {
		every := lastStart.Sub(first) / time.Duration(res.Refreshes-1)
		res.RefreshEverySeconds = every.Seconds()
		res.PerLifetime = float64(res.Upstream) / float64(res.Refreshes) * o.lifetime.Seconds() / every.Seconds()
	}
	res.PerLifetimeCounted = vaulttest.CallsPerLifetime(at, o.lifetime, handoutLife(o.lifetime, model.DefaultExpirySkew))
	res.Rule = float64(o.lifetime) / float64(handoutLife(o.lifetime, model.DefaultExpirySkew))
	res.Formula = model.VendorCallsPerLifetime(o.lifetime, model.DefaultExpirySkew)
	if s.errors > 0 {
		return res, fmt.Errorf("lifetime readers: %d errors, first: %w", s.errors, s.firstErr)
	}
	logf("upstream: %d requests in %d refreshes over %.1fs", res.Upstream, res.Refreshes, s.seconds)
	return res, nil
}

// ---- many credentials ------------------------------------------------------

type scaleRow struct {
	Credentials int   `json:"credentials"`
	Readers     int   `json:"readers"`
	RSSKiB      int64 `json:"plugin_rss_kib"`
	// RSSKiB is the whole plugin process after this level's credentials
	// were written and read; the levels live in separate mounts of the
	// same process, so it grows by each level in turn.
	AddedKiBPerCredential float64 `json:"added_kib_per_credential"`
	VsSmallestP50         float64 `json:"p50_vs_smallest"`
	stats
}

// populateScale writes and pre-warms every level's credentials, one mount
// per level, and records the plugin's RSS after each.
func (e *env) populateScale(ctx context.Context, o *options) ([]scaleRow, int64, error) {
	srv, _, tokenURL, err := startVendor(standin.Behavior{})
	if err != nil {
		return nil, 0, err
	}
	defer stopVendor(srv)
	time.Sleep(time.Second) // let the plugin process settle after mounting
	base, err := rssKiB(e.scalePID)
	if err != nil {
		return nil, 0, err
	}
	prev := base
	var rows []scaleRow
	for _, n := range o.scale {
		logf("many credentials: writing and reading %d credentials", n)
		if err := e.writeConfigs(ctx, scaleMount(n), "s", 0, n, tokenURL); err != nil {
			return nil, 0, err
		}
		if err := e.readTokens(ctx, scaleMount(n), "s", 0, n); err != nil {
			return nil, 0, err
		}
		time.Sleep(time.Second)
		rss, err := rssKiB(e.scalePID)
		if err != nil {
			return nil, 0, err
		}
		rows = append(rows, scaleRow{Credentials: n, RSSKiB: rss, AddedKiBPerCredential: float64(rss-prev) / float64(n)})
		prev = rss
	}
	return rows, base, nil
}

// measureScale reads random pre-warmed names of each level, the levels
// taking turns round by round.
func (e *env) measureScale(ctx context.Context, o *options, rows []scaleRow) error {
	paths := make([][]string, len(rows))
	for i, r := range rows {
		paths[i] = make([]string, r.Credentials)
		for k := range paths[i] {
			paths[i][k] = fmt.Sprintf("%s/token/s%d", scaleMount(r.Credentials), k)
		}
	}
	samples := make([]sample, len(rows))
	for r := 0; r < o.rounds; r++ {
		for k := range rows {
			i := (k + r) % len(rows)
			p := paths[i]
			s := run(ctx, e.get(func(rng *rand.Rand) string { return p[rng.IntN(len(p))] }),
				o.scaleConcurrency, o.warmup, o.duration/time.Duration(o.rounds), e.procs("scale"))
			if s.errors > 0 {
				return fmt.Errorf("reads among %d credentials: %d errors, first: %w", rows[i].Credentials, s.errors, s.firstErr)
			}
			samples[i].merge(s)
		}
	}
	for i := range rows {
		rows[i].stats = samples[i].stats()
		rows[i].Readers = o.scaleConcurrency
		if rows[0].P50ms > 0 {
			rows[i].VsSmallestP50 = rows[i].P50ms / rows[0].P50ms
		}
	}
	logf("many credentials: p50 %.2f ms with %d, %.2f ms with %d", rows[0].P50ms, rows[0].Credentials, rows[len(rows)-1].P50ms, rows[len(rows)-1].Credentials)
	return nil
}

// ---- profiles --------------------------------------------------------------

type profileResult struct {
	Dir   string   `json:"dir"`
	Files []string `json:"files"`
}

// profile takes CPU profiles of Vault and of the plugin process while
// readers load the profiling build of the plugin, then the null plugin.
func (e *env) profile(ctx context.Context, o *options, dir string) (*profileResult, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	res := &profileResult{Dir: dir}
	for _, c := range []struct{ name, path, addr string }{
		{"token", "prof/token/bench", e.profAddr},
		{"null", "null/token/bench", e.nullProfAddr},
	} {
		secs := int(o.profileFor.Seconds())
		logf("profiling %s reads for %ds", c.name, secs)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		files := []string{
			filepath.Join(dir, c.name+"-vault.pprof"),
			filepath.Join(dir, c.name+"-plugin.pprof"),
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs[0] = fetch(ctx, e.hc, e.vault.Addr+"/v1/sys/pprof/profile?seconds="+strconv.Itoa(secs), files[0])
		}()
		go func() {
			defer wg.Done()
			errs[1] = fetch(ctx, e.hc, "http://"+c.addr+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), files[1])
		}()
		s := run(ctx, e.get(fixed(c.path)), o.profileConcurrency, 0, o.profileFor+time.Second, nil)
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
		if s.errors > 0 {
			return nil, fmt.Errorf("profiling %s: %w", c.name, s.firstErr)
		}
		res.Files = append(res.Files, files...)
	}
	sort.Strings(res.Files)
	return res, nil
}

func fetch(ctx context.Context, hc *http.Client, u, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Vault-Token", vaulttest.RootToken)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("GET %s: HTTP %d: %s", u, resp.StatusCode, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close() // the copy error is the one to report
		return err
	}
	return f.Close()
}
