// Command vendoroauth-bench measures the vendoroauth plugin inside a real
// Vault, through Vault's HTTP API, the way readers use it.
//
// It builds the plugin, a null plugin (bench/nullplugin: same SDK and
// plugin.ServeMultiplex, a fixed secret under a lease) and a profiling
// build, starts a Vault dev server on loopback and in-process vendor
// stand-ins, and measures in one run:
//
//   - cached token/<name> reads beside the null plugin (with and without a
//     lease) and KV v1 and v2 reads of a value of the same size, at each
//     concurrency, with the CPU each process spends per request;
//   - cold reads (every read needs a grant) beside the same token request
//     sent straight to the stand-in;
//   - vendor calls per token lifetime: many concurrent readers hammering
//     one credential of short-lived tokens; Agent-like readers (each
//     re-reads at 85-95% of the lease it got) with the life left on each
//     token when a reader replaced it; and 1,000 credentials read once
//     and then left alone (the last two in the background of the rest);
//   - what metrics and webhooks cost cached reads: beside the null plugin
//     with and without a scraper of <mount>/metrics, and while an app's
//     events go to a receiver that answers or hangs;
//   - cached reads through a local `vault proxy` with `cache {}` (the
//     shipped bootstrap/proxy/vault-proxy.hcl) beside direct reads;
//   - the plugin's resident memory and cached-read latency with 10, 1,000
//     and 10,000 credentials;
//   - one app with 100,000 connections beside one with 10: the time to
//     write them, the plugin's RSS per connection, cached-read p50, a
//     LIST page and a status call;
//   - optionally CPU profiles of Vault and the plugin under load.
//
// It prints one table, writes it as JSON for comparing commits, and exits
// non-zero when an acceptance check fails (unless -no-fail).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
)

type options struct {
	duration           time.Duration
	warmup             time.Duration
	rounds             int
	concurrency        []int
	scale              []int
	scaleConcurrency   int
	coldMax            int
	coldWarmup         int
	lifetime           time.Duration
	lifetimes          int
	lifetimeReaders    int
	agentReaders       int
	agentLifetime      time.Duration
	agentLifetimes     int
	agentSkew          time.Duration
	idleCredentials    int
	idleLifetime       time.Duration
	proxy              bool
	connections        int
	connWarm           int
	connWriters        int
	connRestart        bool
	profileFor         time.Duration
	profileConcurrency int
	out                string
	goBench            string
	only               string
	noFail             bool
}

func main() {
	o := &options{}
	flag.DurationVar(&o.duration, "duration", envDuration("BENCH_DURATION", 6*time.Second), "measured time per cell (env BENCH_DURATION)")
	flag.DurationVar(&o.warmup, "warmup", envDuration("BENCH_WARMUP", 300*time.Millisecond), "unmeasured warm-up before each measured slice (env BENCH_WARMUP)")
	flag.IntVar(&o.rounds, "rounds", envInt("BENCH_ROUNDS", 6), "slices per cell; targets take turns slice by slice (env BENCH_ROUNDS)")
	conc := flag.String("concurrency", "1,16,64", "concurrent readers for the throughput cells")
	scale := flag.String("credentials", "10,1000,10000", "credential counts for the memory and latency cells")
	flag.IntVar(&o.scaleConcurrency, "credentials-concurrency", 1, "concurrent readers for the many-credentials cells (1: p50 is a read's latency, not time queued behind other readers)")
	flag.IntVar(&o.coldMax, "cold-max", 3000, "at most this many measured cold reads")
	flag.IntVar(&o.coldWarmup, "cold-warmup", 50, "cold reads made before measuring")
	flag.DurationVar(&o.lifetime, "lifetime", 10*time.Second, "stand-in token lifetime for the upstream-requests cell")
	flag.IntVar(&o.lifetimes, "lifetimes", 4, "token lifetimes the upstream-requests cell runs for")
	flag.IntVar(&o.lifetimeReaders, "lifetime-readers", 64, "concurrent readers in the upstream-requests cell")
	flag.IntVar(&o.agentReaders, "agent-readers", 8, "Agent-like readers (each re-reads at 85-95% of its lease)")
	flag.DurationVar(&o.agentLifetime, "agent-lifetime", 60*time.Second, "stand-in token lifetime for the Agent-like readers")
	flag.IntVar(&o.agentLifetimes, "agent-lifetimes", 8, "token lifetimes the Agent-like readers run for (in the background of the other phases)")
	flag.DurationVar(&o.agentSkew, "agent-skew", time.Second, "expiry_skew of the Agent-like readers' credential")
	flag.IntVar(&o.idleCredentials, "idle-credentials", 1000, "credentials read once and then left alone while the Agent-like readers run")
	flag.DurationVar(&o.idleLifetime, "idle-lifetime", 5*time.Minute, "stand-in token lifetime of the idle credentials (5 minutes: the shortest the old rule refreshed ahead)")
	flag.BoolVar(&o.proxy, "proxy", true, "measure cached reads through a local vault proxy among the throughput targets")
	flag.IntVar(&o.connections, "connections", 100000, "connections of one app in the many-connections cell (measured beside an app with 10)")
	flag.IntVar(&o.connWarm, "connections-warm", 300, "connections read once (one vendor grant each) for the many-connections cached-read cell")
	flag.IntVar(&o.connWriters, "connections-writers", 32, "concurrent writers filling the many-connections mount")
	flag.BoolVar(&o.connRestart, "connections-restart", true, "then reload the many-connections mount's plugin and time LIST while its load after the start runs")
	flag.DurationVar(&o.profileFor, "profile", envDuration("BENCH_PROFILE", 0), "take CPU profiles of Vault and the plugins for this long (0: none; env BENCH_PROFILE)")
	flag.IntVar(&o.profileConcurrency, "profile-concurrency", 16, "concurrent readers while profiling")
	flag.StringVar(&o.out, "out", os.Getenv("BENCH_OUT"), "JSON file to write (default bench/results/<date>-<commit>.json; env BENCH_OUT)")
	flag.StringVar(&o.goBench, "gobench", "", "output of `go test -bench` to include in the table and JSON")
	flag.StringVar(&o.only, "only", "", "comma-separated phases to run: throughput,observe,scale,cold,lifetime,agent,idle,connections,profile (default all)")
	flag.BoolVar(&o.noFail, "no-fail", false, "exit 0 even when an acceptance check fails")
	flag.Parse()
	var err error
	if o.concurrency, err = ints(*conc); err != nil {
		fatalf("-concurrency: %v", err)
	}
	if o.scale, err = ints(*scale); err != nil {
		fatalf("-credentials: %v", err)
	}
	if o.rounds < 1 {
		o.rounds = 1
	}
	if o.connections < connBase || o.connWarm < 1 || o.connWriters < 1 {
		fatalf("-connections must be at least %d, -connections-warm and -connections-writers at least 1", connBase)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := benchmark(ctx, o)
	os.Exit(code)
}

// benchmark runs the phases -only selects, in order, and reports.
func benchmark(ctx context.Context, o *options) int { //nolint:cyclop,funlen // a linear script: each phase is an if want(...) that ends the run on failure
	started := time.Now()
	e, err := setup(ctx, o)
	if e != nil {
		defer e.close()
	}
	if err != nil {
		logf("setup: %v", err)
		if e != nil && e.vault != nil {
			logf("vault log:\n%s", tail(e.vault.Log(), 40))
		}
		return 1
	}
	sha, dirty := gitDescribe(e.root)
	rep := &report{
		Date:         started.UTC().Format(time.RFC3339),
		Commit:       sha,
		Dirty:        dirty,
		CPUs:         runtime.NumCPU(),
		CPUModel:     cpuModel(),
		OS:           runtime.GOOS + "/" + runtime.GOARCH,
		GoVersion:    runtime.Version(),
		VaultVersion: e.vaultVersion(),
		Settings: map[string]string{
			"duration": o.duration.String(), "warmup": o.warmup.String(), "rounds": strconv.Itoa(o.rounds),
			"lifetime": o.lifetime.String(), "lifetimes": strconv.Itoa(o.lifetimes),
			"agent_lifetime": o.agentLifetime.String(), "agent_lifetimes": strconv.Itoa(o.agentLifetimes),
			"agent_readers": strconv.Itoa(o.agentReaders), "agent_skew": o.agentSkew.String(),
			"idle_credentials": strconv.Itoa(o.idleCredentials), "idle_lifetime": o.idleLifetime.String(),
			"connections": strconv.Itoa(o.connections), "connections_warm": strconv.Itoa(o.connWarm),
			"connections_writers": strconv.Itoa(o.connWriters),
		},
	}
	fail := func(phase string, err error) int {
		logf("%s: %v", phase, err)
		logf("vault log (last 40 lines):\n%s", tail(e.vault.Log(), 40))
		return 1
	}
	want := o.want

	// The throughput credential reads from a stand-in that lives for the
	// whole run (tokens of an hour: no grant while measuring).
	srv, _, tokenURL, err := startVendor(standin.Behavior{})
	if err != nil {
		return fail("stand-in", err)
	}
	defer stopVendor(srv)
	targets, err := e.prepareThroughput(ctx, tokenURL)
	if err != nil {
		return fail("prepare", err)
	}
	if o.proxy && want("throughput") {
		if err := e.startProxy(ctx); err != nil {
			return fail("vault proxy", err)
		}
		targets = append(targets, target{Name: proxyTarget, Path: "vendoroauth/token/bench", Plugin: "proxy", do: e.proxyGET("vendoroauth/token/bench")})
		if err := e.proxyWarm(ctx, "vendoroauth/token/bench"); err != nil {
			return fail("vault proxy", err)
		}
	}

	// The vendor-economy phases mostly wait: the idle credentials are
	// written and read once now, then left alone while the Agent-like
	// readers run, in the background of every other phase.
	var idle *idlePhase
	if want("idle") {
		if idle, err = e.idleStart(ctx, o); err != nil {
			return fail("idle credentials", err)
		}
	}
	type agentOutcome struct {
		res *agentLikeResult
		err error
	}
	agentDone := make(chan agentOutcome, 1)
	if want("agent") {
		go func() {
			r, err := e.agentLike(ctx, o)
			agentDone <- agentOutcome{r, err}
		}()
	} else {
		close(agentDone)
	}

	// Memory first, before load has grown the plugin's heap.
	var scaleRows []scaleRow
	if want("scale") {
		if scaleRows, rep.PluginBaseRSSKiB, err = e.populateScale(ctx, o); err != nil {
			return fail("many credentials", err)
		}
	}
	if want("throughput") {
		if rep.Throughput, err = e.throughput(ctx, o, targets); err != nil {
			return fail("throughput", err)
		}
	}
	if want("observe") {
		if rep.Observe, err = e.observe(ctx, o); err != nil {
			return fail("observability", err)
		}
	}
	if want("scale") {
		if err := e.measureScale(ctx, o, scaleRows); err != nil {
			return fail("many credentials", err)
		}
		rep.Scale = scaleRows
	}
	// Profiles before the cold and lifetime phases, whose leases Vault
	// would be revoking in the background.
	if o.profileFor > 0 && want("profile") {
		dir := strings.TrimSuffix(outPath(o, e.root, rep), ".json") + "-profiles"
		if rep.Profiles, err = e.profile(ctx, o, dir); err != nil {
			return fail("profile", err)
		}
	}
	if want("cold") {
		if rep.Cold, err = e.cold(ctx, o); err != nil {
			return fail("cold reads", err)
		}
	}
	if want("lifetime") {
		if rep.Lifetime, err = e.lifetime(ctx, o); err != nil {
			return fail("upstream requests", err)
		}
	}
	// Last of the foreground phases: its 100,000 entries grow Vault's
	// heap (and its GC work) for every later read.
	if want("connections") {
		if rep.Connections, err = e.connections(ctx, o); err != nil {
			return fail("many connections", err)
		}
	}
	if want("agent") {
		logf("waiting for the Agent-like readers")
		out := <-agentDone
		if out.err != nil {
			return fail("Agent-like readers", out.err)
		}
		rep.AgentLike = out.res
	}
	if idle != nil {
		if rep.Idle, err = e.idleFinish(ctx, idle); err != nil {
			return fail("idle credentials", err)
		}
	}
	if rss, err := rssKiB(e.pluginPID); err == nil {
		rep.PluginEndRSSKiB = rss
	}
	if o.goBench != "" {
		if rep.GoBench, err = parseGoBench(o.goBench); err != nil {
			logf("reading %s: %v", o.goBench, err)
		}
	}
	rep.check()
	rep.Seconds = time.Since(started).Seconds()

	if err := rep.print(os.Stdout); err != nil {
		// The JSON below still holds every result.
		logf("printing the report: %v", err)
	}
	path := outPath(o, e.root, rep)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		logf("%v", err)
		return 1
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		logf("%v", err)
		return 1
	}
	fmt.Printf("\nwrote %s (%.0fs)\n", path, rep.Seconds)
	for _, c := range rep.Checks {
		if !c.Pass && !o.noFail {
			return 2
		}
	}
	return 0
}

// want reports whether -only selects phase.
func (o *options) want(phase string) bool {
	return o.only == "" || strings.Contains(","+o.only+",", ","+phase+",")
}

func outPath(o *options, root string, rep *report) string {
	if o.out != "" {
		return o.out
	}
	name := rep.Date[:10] + "-" + rep.Commit
	if rep.Dirty {
		name += "-dirty"
	}
	return filepath.Join(root, "bench", "results", name+".json")
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func fatalf(format string, args ...any) {
	logf(format, args...)
	os.Exit(2)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a list of positive numbers", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fatalf("%s=%q: %v", name, v, err)
		}
		return d
	}
	return def
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			fatalf("%s=%q: %v", name, v, err)
		}
		return n
	}
	return def
}
