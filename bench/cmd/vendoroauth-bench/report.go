package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// report is one run: the printed table and the JSON file.
type report struct {
	Date             string             `json:"date"`
	Commit           string             `json:"commit"`
	Dirty            bool               `json:"dirty"`
	CPUs             int                `json:"cpus"`
	CPUModel         string             `json:"cpu_model"`
	OS               string             `json:"os"`
	GoVersion        string             `json:"go_version"`
	VaultVersion     string             `json:"vault_version"`
	Settings         map[string]string  `json:"settings"`
	Seconds          float64            `json:"seconds"`
	Throughput       []throughputRow    `json:"throughput,omitempty"`
	Observe          *observeResult     `json:"observability,omitempty"`
	Cold             *coldResult        `json:"cold,omitempty"`
	Lifetime         *lifetimeResult    `json:"upstream,omitempty"`
	AgentLike        *agentLikeResult   `json:"agent_like,omitempty"`
	Idle             *idleResult        `json:"idle,omitempty"`
	PluginBaseRSSKiB int64              `json:"plugin_base_rss_kib,omitempty"`
	PluginEndRSSKiB  int64              `json:"plugin_end_rss_kib,omitempty"`
	Scale            []scaleRow         `json:"credentials,omitempty"`
	Connections      *connectionsResult `json:"connections,omitempty"`
	GoBench          []goBench          `json:"go_benchmarks,omitempty"`
	Profiles         *profileResult     `json:"profiles,omitempty"`
	Checks           []check            `json:"checks"`
}

// check is one acceptance criterion of the benchmark.
type check struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Goal  string  `json:"goal"`
	Pass  bool    `json:"pass"`
}

// Acceptance thresholds.
const (
	minTokenVsNull   = 0.9 // cached reads at 16 readers, token/null req/s
	maxPerRefresh    = 1.0 // vendor requests per refresh under load
	maxScaleP50Ratio = 1.2 // p50 with the most credentials / with the fewest
	checkConcurrency = 16
	// Agent-like readers: vendor calls per token lifetime, counting the
	// call in progress. The rule itself costs L / (L - s - M) = 60 / 57 =
	// 1.053 for 60 s tokens with expiry_skew=1s (M = max(3% of L, 2 s) =
	// 2 s); the rest is room for vendor round trips and the readers'
	// timing.
	maxAgentPerLifetime = 1.07
	// Cached reads through vault proxy at checkConcurrency readers, over
	// KV v2's reads per second.
	minProxyVsKV2 = 2.0
	// Many connections: cached-read p50 among 100,000 connections over
	// among 10, as for the many-credentials cells.
	maxConnReadP50Ratio = 1.2
	// Many connections: a LIST page and a status call at 100,000 over at
	// 10. Not 1.2: a first page at 100,000 holds 1,000 names where the
	// one at 10 holds 10 (about 12 KB against 0.2 KB, encoded by the
	// plugin, decoded and encoded again by Vault), a cost of the page's
	// size that no index removes. Anything that touched every name per
	// request (a storage LIST of 100,000 keys, a sort or copy of the
	// whole list, a count by reading entries) costs tens to hundreds of
	// milliseconds there, 10x-100x a page's few milliseconds: 3x keeps
	// the page's size and this machine's noise in and that out.
	maxConnOpP50Ratio = 3.0
	// After a reload of the plugin with 100,000 connections: LIST and
	// status answered from the index (its load has every name) within
	// this many seconds, and every keep-alive on the schedule again
	// within maxReloadScheduleSeconds (issue 19; 80 s before the stored
	// index, with keep-alives unscheduled until then).
	maxReloadIndexSeconds    = 10.0
	maxReloadScheduleSeconds = 60.0
)

// check judges the report against the acceptance goals, in the order
// they are printed.
func (r *report) check() {
	r.checkTokenThroughput()
	r.checkObserve()
	r.checkVendorCalls()
	r.checkProxyThroughput()
	r.checkConnections()
	r.checkScale()
}

// checkTokenThroughput judges cached token reads against the null plugin.
func (r *report) checkTokenThroughput() {
	for _, t := range r.Throughput {
		if t.Concurrency == checkConcurrency && t.Target == tokenTarget {
			r.Checks = append(r.Checks, check{
				Name:  fmt.Sprintf("cached reads at %d readers, token/null req/s", checkConcurrency),
				Value: t.VsNull, Goal: fmt.Sprintf(">= %.2f", minTokenVsNull), Pass: t.VsNull >= minTokenVsNull,
			})
		}
	}
}

// Observability may cost a cached read at most this much of its ratio to
// the null plugin: a scrape every second, a receiver that hangs.
const minObserveRatio = 0.9

// checkObserve judges what metrics and webhooks cost cached reads: the
// token/null ratio while scraping over the quiet one, with a hanging
// receiver over one that answers.
func (r *report) checkObserve() {
	if r.Observe == nil || len(r.Observe.Rows) < 4 {
		return
	}
	rows := r.Observe.Rows
	for _, p := range [][2]int{{1, 0}, {3, 2}} {
		a, b := rows[p[0]], rows[p[1]]
		if b.VsNull <= 0 {
			continue
		}
		v := a.VsNull / b.VsNull
		r.Checks = append(r.Checks, check{
			Name:  fmt.Sprintf("cached reads at %d readers, token/null %s / %s", r.Observe.Concurrency, a.Case, b.Case),
			Value: v, Goal: fmt.Sprintf(">= %.2f", minObserveRatio), Pass: v >= minObserveRatio,
		})
	}
}

// checkProxyThroughput judges cached reads through vault proxy against
// KV v2.
func (r *report) checkProxyThroughput() {
	for _, t := range r.Throughput {
		if t.Concurrency == checkConcurrency && t.Target == proxyTarget {
			r.Checks = append(r.Checks, check{
				Name:  fmt.Sprintf("cached reads via vault proxy at %d readers, proxy/KV2 req/s", checkConcurrency),
				Value: t.VsKV2, Goal: fmt.Sprintf(">= %.1f, and past the null plugin", minProxyVsKV2),
				Pass: t.VsKV2 >= minProxyVsKV2 && t.VsNull > 1,
			})
		}
	}
}

// checkVendorCalls judges the vendor economy: readers hammering,
// Agent-like readers and idle credentials.
func (r *report) checkVendorCalls() {
	if l := r.Lifetime; l != nil {
		r.Checks = append(r.Checks, check{
			Name:  fmt.Sprintf("vendor requests per token issued, %d readers hammering", l.Readers),
			Value: l.PerRefresh, Goal: fmt.Sprintf("<= %.0f", maxPerRefresh),
			// Every vendor request must have produced the token that readers
			// then shared: as many tokens seen as requests made.
			Pass: l.PerRefresh <= maxPerRefresh && l.Refreshes > 0 && l.UpstreamFailed == 0 && l.TokensSeen == l.Upstream,
		})
	}
	if a := r.AgentLike; a != nil {
		r.Checks = append(r.Checks,
			check{
				Name:  fmt.Sprintf("Agent-like readers (%d, %gs tokens): vendor calls per lifetime", a.Readers, a.LifetimeSeconds),
				Value: a.PerLifetime, Goal: fmt.Sprintf("<= %.2f", maxAgentPerLifetime),
				Pass: a.PerLifetime > 0 && a.PerLifetime <= maxAgentPerLifetime && a.VendorFailures == 0,
			},
			check{
				Name:  "Agent-like readers: expired tokens held, failed reads",
				Value: float64(len(a.Problems)), Goal: "= 0", Pass: len(a.Problems) == 0,
			},
			check{
				Name:  "Agent-like readers: least life left at replacement (s)",
				Value: a.MinLeftSeconds, Goal: fmt.Sprintf(">= %g (expiry_skew)", a.SkewSeconds),
				Pass: a.Replacements > 0 && a.MinLeftSeconds >= a.SkewSeconds,
			})
	}
	if i := r.Idle; i != nil {
		r.Checks = append(r.Checks, check{
			Name:  fmt.Sprintf("idle: vendor calls from %d credentials read once", i.Credentials),
			Value: float64(i.CallsAfter), Goal: "= 0", Pass: i.CallsAfter == 0 && i.Scheduled == 0 && i.FirstReadCalls == i.Credentials,
		})
	}
}

// checkConnections judges the many-connections cell.
func (r *report) checkConnections() {
	c := r.Connections
	if c == nil {
		return
	}
	r.Checks = append(r.Checks, check{
		Name:  fmt.Sprintf("cached-read p50 among %d connections / among %d", c.Connections, c.Base),
		Value: c.ReadP50Ratio, Goal: fmt.Sprintf("<= %.1f", maxConnReadP50Ratio), Pass: c.ReadP50Ratio > 0 && c.ReadP50Ratio <= maxConnReadP50Ratio,
	})
	for _, op := range c.Ops {
		if !op.Checked {
			continue
		}
		r.Checks = append(r.Checks, check{
			Name:  fmt.Sprintf("%s p50 at %d / at %d", op.Op, c.Connections, c.Base),
			Value: op.P50Ratio, Goal: fmt.Sprintf("<= %.0f", maxConnOpP50Ratio), Pass: op.P50Ratio > 0 && op.P50Ratio <= maxConnOpP50Ratio,
		})
	}
	// What the measurements stand on: every connection counted and
	// listed, and the vendor called only by the warm reads.
	firstPage := 0
	if len(c.Ops) > 0 {
		firstPage = c.Ops[0].KeysLarge
	}
	if rs := c.Restart; rs != nil {
		r.Checks = append(r.Checks, check{
			Name:  fmt.Sprintf("after a reload with %d connections: LIST and status from the index, seconds", c.Connections),
			Value: rs.LoadedAfterSeconds, Goal: fmt.Sprintf("<= %.0f", maxReloadIndexSeconds), Pass: rs.LoadedAfterSeconds > 0 && rs.LoadedAfterSeconds <= maxReloadIndexSeconds,
		}, check{
			Name:  fmt.Sprintf("after a reload with %d connections: every keep-alive (%d) scheduled, seconds", c.Connections, rs.ScheduledBefore),
			Value: rs.ScheduledAfterSeconds, Goal: fmt.Sprintf("<= %.0f", maxReloadScheduleSeconds), Pass: rs.ScheduledAfterSeconds > 0 && rs.ScheduledAfterSeconds <= maxReloadScheduleSeconds,
		})
	}
	r.Checks = append(r.Checks, check{
		Name:  fmt.Sprintf("connections: vendor calls besides the %d warm reads", c.WarmLarge),
		Value: float64(c.CallsFill + c.CallsMeasure + (c.CallsWarm - c.WarmLarge)),
		Goal:  "= 0, status total = healthy = N, a full first page",
		Pass: c.CallsFill == 0 && c.CallsMeasure == 0 && c.CallsWarm == c.WarmLarge &&
			c.StatusTotal == c.Connections && c.StatusHealthy == c.Connections && firstPage == min(1000, c.Connections),
	})
}

// checkScale judges the many-credentials cells.
func (r *report) checkScale() {
	if n := len(r.Scale); n > 1 {
		last := r.Scale[n-1]
		r.Checks = append(r.Checks, check{
			Name:  fmt.Sprintf("cached-read p50 with %d credentials / with %d", last.Credentials, r.Scale[0].Credentials),
			Value: last.VsSmallestP50, Goal: fmt.Sprintf("<= %.1f", maxScaleP50Ratio), Pass: last.VsSmallestP50 <= maxScaleP50Ratio,
		})
	}
}

// print writes the report for people: a table of the measures and the
// acceptance checks. It renders into memory and writes once, so the only
// write error to report is out's.
func (r *report) print(out io.Writer) error {
	var b strings.Builder
	dirty := ""
	if r.Dirty {
		dirty = " (uncommitted changes)"
	}
	fmt.Fprintf(&b, "\nvendoroauth benchmark %s, commit %s%s\n", r.Date, r.Commit, dirty)
	fmt.Fprintf(&b, "%d CPUs (%s), %s, Vault %s, %s\n", r.CPUs, r.CPUModel, r.OS, r.VaultVersion, r.GoVersion)
	fmt.Fprintf(&b, "%s measured per cell in %s slices taking turns, %s warm-up before each slice\n\n",
		r.Settings["duration"], r.Settings["rounds"], r.Settings["warmup"])

	var table strings.Builder
	r.writeTable(&table)
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	if _, err := io.WriteString(w, table.String()); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}

	if r.PluginBaseRSSKiB > 0 {
		fmt.Fprintf(&b, "\nplugin RSS: %.1f MiB before any credential (the many-credentials process); %.1f MiB at the end (the process of the other cells)\n",
			float64(r.PluginBaseRSSKiB)/1024, float64(r.PluginEndRSSKiB)/1024)
	}
	if c := r.Connections; c != nil {
		fmt.Fprintf(&b, "connections: LIST and status timed one at a time, after %.0fs waiting for both mounts' load after a start (schedule_loaded)\n", c.LoadWaitSeconds)
	}
	if p := r.Profiles; p != nil {
		fmt.Fprintf(&b, "CPU profiles: %s (go tool pprof -top <file>)\n", p.Dir)
	}
	fmt.Fprintln(&b, "\nacceptance:")
	for _, c := range r.Checks {
		verdict := "PASS"
		if !c.Pass {
			verdict = "FAIL"
		}
		fmt.Fprintf(&b, "  %s  %-58s %6.2f  (goal %s)\n", verdict, c.Name, c.Value, c.Goal)
	}
	_, err := io.WriteString(out, b.String())
	return err
}

// writeTable writes the table of measures, tab-separated, header first.
func (r *report) writeTable(w *strings.Builder) {
	fmt.Fprintln(w, "measure\treaders\treq/s\tp50 ms\tp99 ms\t\tnotes")
	for _, t := range r.Throughput {
		note := fmt.Sprintf("x%.2f null%s, x%.2f KV2; CPU us/req %s (x%.2f null); %d B", t.VsNull, spread(t.VsNullSlices), t.VsKV2, cpuNote(t.CPUusPer), t.CPUVsNull, t.RespBytes)
		fmt.Fprintf(w, "%s\t%d\t%.0f\t%.2f\t%.2f\t\t%s\n", t.Target, t.Concurrency, t.RPS, t.P50ms, t.P99ms, note)
	}
	if ob := r.Observe; ob != nil {
		for _, row := range ob.Rows {
			note := fmt.Sprintf("x%.2f null%s (null %.0f/s); CPU us/req %s", row.VsNull, spread(row.VsNullSlices), row.NullP.RPS, cpuNote(row.TokenP.CPUusPer))
			if row.Scrapes > 0 {
				note += fmt.Sprintf("; %d scrapes, p50 %.2f ms, %d B", row.Scrapes, row.ScrapeP50ms, row.ScrapeBytes)
			}
			if row.Events > 0 {
				note += fmt.Sprintf("; %d events, %d delivered meanwhile", row.Events, row.Delivered)
			}
			fmt.Fprintf(w, "token, %s\t%d\t%.0f\t%.2f\t%.2f\t\t%s\n", row.Case, ob.Concurrency, row.TokenP.RPS, row.TokenP.P50ms, row.TokenP.P99ms, note)
		}
	}
	if c := r.Cold; c != nil {
		p, d := c.Plugin, c.Direct
		fmt.Fprintf(w, "cold read (every read grants)\t1\t%.0f\t%.2f\t%.2f\t\t%d reads; CPU us/req %s\n", p.RPS, p.P50ms, p.P99ms, p.Requests, cpuNote(p.CPUusPer))
		fmt.Fprintf(w, "direct call to stand-in\t1\t%.0f\t%.2f\t%.2f\t\t%d calls; Vault+plugin add %.2f ms at p50\n", d.RPS, d.P50ms, d.P99ms, d.Requests, c.OverheadP50ms)
	}
	for i, s := range r.Scale {
		// The first level's growth is mostly the process warming up (gRPC
		// buffers, the first mount's heap), not its few credentials.
		per := "-"
		if i > 0 {
			per = fmt.Sprintf("+%.2f KiB/credential", s.AddedKiBPerCredential)
		}
		fmt.Fprintf(w, "token/<random of %d>\t%d\t%.0f\t%.2f\t%.2f\t\tx%.2f p50 of %d; plugin RSS %.1f MiB (%s)\n",
			s.Credentials, s.Readers, s.RPS, s.P50ms, s.P99ms, s.VsSmallestP50, r.Scale[0].Credentials, float64(s.RSSKiB)/1024, per)
	}
	if c := r.Connections; c != nil {
		fmt.Fprintf(w, "write %d connections (%d writers)\t%d\t%.0f\t\t\t\t%.1fs; plugin RSS %.1f -> %.1f MiB, %+.0f B/connection (%.1f MiB after the reads; %.1f MiB for %d); Vault RSS %+.0f B/connection; %d vendor calls\n",
			c.Connections, c.Writers, c.Writers, c.FillPerSecond, c.FillSeconds, float64(c.RSSBeforeKiB)/1024, float64(c.RSSAfterKiB)/1024, c.BytesPerConnection,
			float64(c.RSSEndKiB)/1024, float64(c.SmallRSSKiB)/1024, c.Base, c.VaultBytesPerConn, c.CallsFill)
		fmt.Fprintf(w, "token/<random of %d warm>, %d connections\t1\t%.0f\t%.2f\t%.2f\t\tx1.00\n", c.WarmSmall, c.Base, c.ReadSmall.RPS, c.ReadSmall.P50ms, c.ReadSmall.P99ms)
		fmt.Fprintf(w, "token/<random of %d warm>, %d connections\t1\t%.0f\t%.2f\t%.2f\t\tx%.2f p50 of %d; %d vendor calls for %d warm reads, %d while measuring; status: %d total, %d healthy\n",
			c.WarmLarge, c.Connections, c.ReadLarge.RPS, c.ReadLarge.P50ms, c.ReadLarge.P99ms, c.ReadP50Ratio, c.Base, c.CallsWarm, c.WarmLarge, c.CallsMeasure, c.StatusTotal, c.StatusHealthy)
		for _, op := range c.Ops {
			for _, side := range []struct {
				n    int
				s    stats
				keys int
				note string
			}{{c.Base, op.Small, op.KeysSmall, "x1.00"}, {c.Connections, op.Large, op.KeysLarge, fmt.Sprintf("x%.2f p50 of %d", op.P50Ratio, c.Base)}} {
				note := side.note
				if strings.HasPrefix(op.Op, "LIST") {
					note += fmt.Sprintf("; %d names", side.keys)
				}
				fmt.Fprintf(w, "%s, %d connections\t1\t\t%.2f\t%.2f\t\t%s; %d B (%d timed)\n", op.Op, side.n, side.s.P50ms, side.s.P99ms, note, side.s.RespBytes, side.s.Requests)
			}
		}
		if rs := c.Restart; rs != nil {
			fmt.Fprintf(w, "LIST ?limit=1000 after a reload, while loading, %d connections\t1\t\t%.2f\t%.2f\t\tfrom storage: loaded %.1fs after the reload (%d timed meanwhile), %d of %d keep-alives scheduled after %.1fs; %d vendor calls\n",
				c.Connections, rs.Loading.P50ms, rs.Loading.P99ms, rs.LoadedAfterSeconds, rs.Loading.Requests, rs.ScheduledAfter, rs.ScheduledBefore, rs.ScheduledAfterSeconds, rs.CallsVendor)
			fmt.Fprintf(w, "LIST ?limit=1000 after a reload, loaded, %d connections\t1\t\t%.2f\t%.2f\t\tplugin RSS %.1f MiB after the load, %+.0f B/connection over the empty process (%d timed)\n",
				c.Connections, rs.Loaded.P50ms, rs.Loaded.P99ms, float64(rs.RSSKiB)/1024, rs.BytesPerConnection, rs.Loaded.Requests)
		}
	}
	if l := r.Lifetime; l != nil {
		fmt.Fprintf(w, "vendor calls, %d readers hammering (%gs tokens)\t%d\t%.0f\t\t\t\t%.2f per token issued: %d vendor requests (%d failed) in %d refreshes, %d tokens handed out; per lifetime %.3f counting the last (the rule's %.3f), a refresh every %.1fs\n",
			l.Readers, l.LifetimeSeconds, l.Readers, float64(l.Reads)/l.Seconds, l.PerRefresh, l.Upstream, l.UpstreamFailed, l.Refreshes, l.TokensSeen, l.PerLifetimeCounted, l.Rule, l.RefreshEverySeconds)
	}
	if a := r.AgentLike; a != nil {
		fmt.Fprintf(w, "vendor calls, Agent-like readers (%gs tokens, skew %gs)\t%d\t%.1f\t\t\t\t%.3f per lifetime counting the one in progress (the rule's %.3f; %.3f from the intervals; %.3f per %.2f lifetimes of run): %d calls (%d failed), %d tokens, %d reads, leases %g-%gs; life left at replacement min %.2fs, median %.2fs, max %.2fs (%d replacements); %d problems\n",
			a.LifetimeSeconds, a.SkewSeconds, a.Readers, float64(a.Reads)/a.Seconds, a.PerLifetime, a.Rule, a.Intervals, a.PerRunLifetime, a.Lifetimes,
			a.VendorCalls, a.VendorFailures, a.Tokens, a.Reads, a.MinLeaseSeconds, a.MaxLeaseSeconds, a.MinLeftSeconds, a.MedianLeftSeconds, a.MaxLeftSeconds, a.Replacements, len(a.Problems))
	}
	if i := r.Idle; i != nil {
		fmt.Fprintf(w, "vendor calls, %d credentials read once (%gs tokens)\t\t\t\t\t\t%d in %.0fs unread (the rule before 27b5b17: %d); %d scheduled for a refresh\n",
			i.Credentials, i.LifetimeSeconds, i.CallsAfter, i.WindowSeconds, i.OldRuleCalls, i.Scheduled)
	}
	for _, g := range r.GoBench {
		extra := ""
		for _, unit := range sortedKeysF(g.Extra) {
			extra += fmt.Sprintf(", %.1f %s", g.Extra[unit], unit)
		}
		fmt.Fprintf(w, "go %s\t\t\t\t\t\t%.0f ns/op, %.0f B/op, %.0f allocs/op%s\n", g.Name, g.NsPerOp, g.BytesPerOp, g.AllocsPerOp, extra)
	}
}

// spread is the median and range of per-round ratios, for the target the
// checks are about.
func spread(v []float64) string {
	if len(v) < 2 {
		return ""
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return fmt.Sprintf(" (rounds: median x%.2f, x%.2f-x%.2f)", s[len(s)/2], s[0], s[len(s)-1])
}

func cpuNote(m map[string]float64) string {
	var parts []string
	for _, k := range []string{"vault", "plugin", "proxy", "loadgen"} {
		if v, ok := m[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.0f", k, v))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// goBench is one line of `go test -bench -benchmem` output.
type goBench struct {
	Name        string  `json:"name"`
	Iterations  int64   `json:"iterations"`
	NsPerOp     float64 `json:"ns_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
	// Extra holds the metrics a benchmark reports itself (B/event,
	// puts/event), by unit.
	Extra map[string]float64 `json:"extra,omitempty"`
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+([\d.]+) ns/op((?:\s+[\d.]+ \S+)*)`)

func parseGoBench(path string) ([]goBench, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read-only
	var out []goBench
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		g := goBench{Name: strings.TrimPrefix(m[1], "Benchmark")}
		g.Iterations, _ = strconv.ParseInt(m[2], 10, 64)
		g.NsPerOp, _ = strconv.ParseFloat(m[3], 64)
		f := strings.Fields(m[4])
		for i := 0; i+1 < len(f); i += 2 {
			v, _ := strconv.ParseFloat(f[i], 64)
			switch f[i+1] {
			case "B/op":
				g.BytesPerOp = v
			case "allocs/op":
				g.AllocsPerOp = v
			default:
				if g.Extra == nil {
					g.Extra = map[string]float64{}
				}
				g.Extra[f[i+1]] = v
			}
		}
		out = append(out, g)
	}
	return out, sc.Err()
}

func sortedKeysF(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
