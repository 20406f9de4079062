package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// The many-connections cell: one app with 10 connections beside one with
// o.connections (100,000 by default), each mount in a plugin process of
// its own (the plugin registered twice more), so each process's RSS and
// heap (and its GC work) are those of its own connections, and the two
// are measured in the same minutes, taking turns.
//
// Connections are written as an operator with existing refresh tokens
// would (config/<app>/<account> refresh_token=...), each token registered
// at the stand-in. Only a few hundred are ever read: reading the others
// would be one vendor grant each, and a connection nobody reads must cost
// the vendor nothing.
const (
	connApp     = "bench"
	connBase    = 10 // the small mount's connections
	connSmall   = "conn-small"
	connLarge   = "conn-large"
	connTimings = 60 // timed LIST pages and status calls per kind and mount
)

func connName(i int) string { return fmt.Sprintf("a%06d", i) }

// connRefreshToken is the refresh token of a connection, registered at
// the stand-in: each connection has its own, as each account would.
func connRefreshToken(mount string, i int) string { return fmt.Sprintf("rt-%s-%06d", mount, i) }

// connOpRow is one kind of request (a LIST page, a status call), timed
// one at a time at both sizes.
type connOpRow struct {
	Op    string `json:"op"`
	Small stats  `json:"at_base"`
	Large stats  `json:"at_n"`
	// KeysSmall and KeysLarge are the names a LIST page answered.
	KeysSmall int     `json:"keys_at_base,omitempty"`
	KeysLarge int     `json:"keys_at_n,omitempty"`
	P50Ratio  float64 `json:"p50_ratio"`
	// Checked: an acceptance check holds the ratio (not the 10-name
	// page, the same size at both: it is shown for comparison).
	Checked bool `json:"checked"`
}

type connectionsResult struct {
	Base        int `json:"base_connections"`
	Connections int `json:"connections"`
	Writers     int `json:"writers"`
	// FillSeconds is the wall time of writing every connection of the
	// large mount; FillPerSecond is connections written a second.
	FillSeconds   float64 `json:"fill_seconds"`
	FillPerSecond float64 `json:"fill_per_second"`
	// The large mount's plugin process before its first connection and
	// after the fill (and after the reads), and what it grew by per
	// connection; Vault's process the same (it holds the storage).
	RSSBeforeKiB       int64   `json:"plugin_rss_before_kib"`
	RSSAfterKiB        int64   `json:"plugin_rss_after_fill_kib"`
	RSSEndKiB          int64   `json:"plugin_rss_end_kib"`
	BytesPerConnection float64 `json:"plugin_bytes_per_connection"`
	SmallRSSKiB        int64   `json:"base_plugin_rss_kib"`
	VaultBeforeKiB     int64   `json:"vault_rss_before_kib"`
	VaultAfterKiB      int64   `json:"vault_rss_after_fill_kib"`
	VaultBytesPerConn  float64 `json:"vault_bytes_per_connection"`
	// Warm is how many connections of each mount were read once (their
	// token cached) for the cached-read cells.
	WarmSmall int `json:"warm_at_base"`
	WarmLarge int `json:"warm_at_n"`
	// Reads is the cached-read cell: a random warm connection, one
	// reader, the two mounts taking turns.
	ReadSmall     stats       `json:"cached_read_at_base"`
	ReadLarge     stats       `json:"cached_read_at_n"`
	ReadP50Ratio  float64     `json:"cached_read_p50_ratio"`
	Ops           []connOpRow `json:"ops"`
	StatusTotal   int         `json:"status_total_at_n"`
	StatusHealthy int         `json:"status_healthy_at_n"`
	// Vendor calls of the large mount: during the fill (none), for the
	// warm reads (one each) and during the measurements (none).
	CallsFill    int `json:"vendor_calls_fill"`
	CallsWarm    int `json:"vendor_calls_warm"`
	CallsMeasure int `json:"vendor_calls_measure"`
	// LoadWaitSeconds is how long the cell waited, before timing LIST
	// pages and status calls, for both mounts' load after a start
	// (schedule_loaded): until it is done, LIST reads storage.
	LoadWaitSeconds float64      `json:"load_wait_seconds"`
	Restart         *connRestart `json:"restart,omitempty"`
}

// connRestart is the large mount after a reload of its plugin: the
// process starts empty, and until the load after the start has every name
// (it begins when the backend initialises, lists the names and reads the
// stored index), LIST pages are read from storage and status counts what
// it has so far.
type connRestart struct {
	LoadedAfterSeconds float64 `json:"loaded_after_seconds"`
	// Scheduled is how many connections were on the refresh schedule
	// before the reload (the warm ones' keep-alives) and after the load;
	// ScheduledAfterSeconds is when the schedule held them all again.
	ScheduledBefore       int     `json:"scheduled_before"`
	ScheduledAfter        int     `json:"scheduled_after"`
	ScheduledAfterSeconds float64 `json:"scheduled_after_seconds"`
	// Loading is LIST ?limit=1000 while the load had not finished
	// (answered from storage); Loaded the same after it.
	Loading stats `json:"list_while_loading"`
	Loaded  stats `json:"list_loaded"`
	// RSSKiB is the new process after the load: the index of every
	// name, no entry cached (the load caches none).
	RSSKiB             int64   `json:"plugin_rss_loaded_kib"`
	BytesPerConnection float64 `json:"plugin_bytes_per_connection_loaded"`
	CallsVendor        int     `json:"vendor_calls"`
}

// connAppConfig is the app both mounts' connections belong to: a generic
// refresh-token client of the stand-in.
func connAppConfig(tokenURL string) map[string]any {
	c := credential(tokenURL)
	c["grant_type"] = "refresh_token"
	return c
}

// connections runs the many-connections cell.
func (e *env) connections(ctx context.Context, o *options) (*connectionsResult, error) { //nolint:cyclop,funlen // a linear script of the cell's steps (fill, warm, cached reads, LIST and status timings), each ending the cell on failure
	srv, v, tokenURL, err := startVendor(standin.Behavior{})
	if err != nil {
		return nil, err
	}
	defer stopVendor(srv)
	n := o.connections
	res := &connectionsResult{Base: connBase, Connections: n, Writers: o.connWriters}
	for _, m := range []struct {
		mount string
		n     int
	}{{connSmall, connBase}, {connLarge, n}} {
		for i := 0; i < m.n; i++ {
			v.AddRefreshToken(clientID, connRefreshToken(m.mount, i))
		}
	}
	for _, m := range []string{connSmall, connLarge} {
		if _, err := e.call(ctx, http.MethodPost, m+"/apps/"+connApp, connAppConfig(tokenURL)); err != nil {
			return nil, err
		}
	}
	write := func(mount string, i int) error {
		_, err := e.call(ctx, http.MethodPost, fmt.Sprintf("%s/config/%s/%s", mount, connApp, connName(i)), map[string]any{"refresh_token": connRefreshToken(mount, i)})
		return err
	}
	if err := parallel(connBase, connBase, func(i int) error { return write(connSmall, i) }); err != nil {
		return nil, err
	}

	time.Sleep(time.Second) // let the large mount's process settle
	if res.RSSBeforeKiB, err = rssKiB(e.connLargePID); err != nil {
		return nil, err
	}
	res.VaultBeforeKiB, _ = rssKiB(e.vaultPID)
	v.Reset()

	// The fill, in a shuffled order: accounts are connected in no
	// particular order of their names.
	order := rand.New(rand.NewPCG(1, 2)).Perm(n)
	logf("connections: writing %d connections of apps/%s with %d writers", n, connApp, o.connWriters)
	var done atomic.Int64
	start := time.Now()
	stopProgress := make(chan struct{})
	go func() {
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				d := done.Load()
				logf("connections: %d written in %.0fs (%.0f/s)", d, time.Since(start).Seconds(), float64(d)/time.Since(start).Seconds())
			case <-stopProgress:
				return
			}
		}
	}()
	err = parallel(n, o.connWriters, func(i int) error {
		if err := write(connLarge, order[i]); err != nil {
			return err
		}
		done.Add(1)
		return nil
	})
	close(stopProgress)
	if err != nil {
		return nil, fmt.Errorf("writing connections: %w", err)
	}
	fill := time.Since(start)
	res.FillSeconds = fill.Seconds()
	res.FillPerSecond = float64(n) / fill.Seconds()
	res.CallsFill = v.Stats().Requests
	time.Sleep(2 * time.Second)
	if res.RSSAfterKiB, err = rssKiB(e.connLargePID); err != nil {
		return nil, err
	}
	res.VaultAfterKiB, _ = rssKiB(e.vaultPID)
	res.BytesPerConnection = float64(res.RSSAfterKiB-res.RSSBeforeKiB) * 1024 / float64(n)
	if res.VaultBeforeKiB > 0 && res.VaultAfterKiB > 0 {
		res.VaultBytesPerConn = float64(res.VaultAfterKiB-res.VaultBeforeKiB) * 1024 / float64(n)
	}
	logf("connections: %d written in %.1fs (%.0f/s); plugin RSS %.1f -> %.1f MiB (%+.0f B/connection); %d vendor calls",
		n, res.FillSeconds, res.FillPerSecond, float64(res.RSSBeforeKiB)/1024, float64(res.RSSAfterKiB)/1024, res.BytesPerConnection, res.CallsFill)

	// Warm: read a few hundred connections once each, spread over the
	// names, and every connection of the small mount.
	warmLarge := make([]string, 0, o.connWarm)
	for k := 0; k < min(o.connWarm, n); k++ {
		warmLarge = append(warmLarge, fmt.Sprintf("%s/token/%s/%s", connLarge, connApp, connName(k*n/min(o.connWarm, n))))
	}
	warmSmall := make([]string, 0, connBase)
	for i := 0; i < connBase; i++ {
		warmSmall = append(warmSmall, fmt.Sprintf("%s/token/%s/%s", connSmall, connApp, connName(i)))
	}
	var callsBefore int
	for _, paths := range [][]string{warmSmall, warmLarge} {
		callsBefore = v.Stats().Requests
		if err := parallel(len(paths), 16, func(i int) error {
			_, err := e.call(ctx, http.MethodGet, paths[i], nil)
			return err
		}); err != nil {
			return nil, fmt.Errorf("warm reads: %w", err)
		}
	}
	res.WarmSmall, res.WarmLarge = len(warmSmall), len(warmLarge)
	res.CallsWarm = v.Stats().Requests - callsBefore // the large mount's
	callsBefore = v.Stats().Requests

	// Cached reads, one reader, the mounts taking turns slice by slice.
	var small, large sample
	for r := 0; r < o.rounds; r++ {
		for k := 0; k < 2; k++ {
			paths, into := warmSmall, &small
			if (k+r)%2 == 1 {
				paths, into = warmLarge, &large
			}
			s := run(ctx, e.get(func(rng *rand.Rand) string { return paths[rng.IntN(len(paths))] }),
				1, o.warmup, o.duration/time.Duration(o.rounds), nil)
			if s.errors > 0 {
				return nil, fmt.Errorf("cached reads: %d errors, first: %w", s.errors, s.firstErr)
			}
			into.merge(s)
		}
	}
	res.ReadSmall, res.ReadLarge = small.stats(), large.stats()
	if res.ReadSmall.P50ms > 0 {
		res.ReadP50Ratio = res.ReadLarge.P50ms / res.ReadSmall.P50ms
	}
	logf("connections: cached-read p50 %.2f ms among %d, %.2f ms among %d (x%.2f)", res.ReadSmall.P50ms, connBase, res.ReadLarge.P50ms, n, res.ReadP50Ratio)

	// LIST pages and status calls, one at a time, in a rotating order,
	// once both mounts answer from their index.
	waitFrom := time.Now()
	for _, m := range []string{connSmall, connLarge} {
		if err := e.waitLoaded(ctx, m, 3*time.Minute); err != nil {
			return nil, err
		}
	}
	res.LoadWaitSeconds = time.Since(waitFrom).Seconds()
	ops := []struct {
		name         string
		small, large doer
		isList       bool
		checked      bool
	}{
		{name: fmt.Sprintf("LIST config/%s/?limit=1000", connApp), isList: true, checked: true,
			small: e.list(connSmall+"/config/"+connApp+"/", "limit=1000"), large: e.list(connLarge+"/config/"+connApp+"/", "limit=1000")},
		{name: fmt.Sprintf("LIST config/%s/?limit=1000&after=<middle>", connApp), isList: true, checked: true,
			small: e.list(connSmall+"/config/"+connApp+"/", "limit=1000&after="+connName(connBase/2)),
			large: e.list(connLarge+"/config/"+connApp+"/", "limit=1000&after="+connName(n/2))},
		{name: fmt.Sprintf("LIST config/%s/?limit=10", connApp), isList: true,
			small: e.list(connSmall+"/config/"+connApp+"/", "limit=10"), large: e.list(connLarge+"/config/"+connApp+"/", "limit=10")},
		{name: "GET status/" + connApp, checked: true,
			small: e.get(fixed(connSmall + "/status/" + connApp)), large: e.get(fixed(connLarge + "/status/" + connApp))},
	}
	type timed struct {
		do   doer
		s    *sample
		keys *int
	}
	var all []timed
	rows := make([]connOpRow, len(ops))
	smallS, largeS := make([]sample, len(ops)), make([]sample, len(ops))
	for i, op := range ops {
		rows[i].Op, rows[i].Checked = op.name, op.checked
		ts, tl := timed{op.small, &smallS[i], nil}, timed{op.large, &largeS[i], nil}
		if op.isList {
			ts.keys, tl.keys = &rows[i].KeysSmall, &rows[i].KeysLarge
		}
		all = append(all, ts, tl)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var buf bytes.Buffer
	for r := 0; r < connTimings; r++ {
		for k := range all {
			t := all[(k+r)%len(all)]
			t0 := time.Now()
			size, err := t.do(ctx, rng, &buf)
			d := time.Since(t0)
			if err != nil {
				return nil, err
			}
			t.s.latencies = append(t.s.latencies, d)
			t.s.seconds += d.Seconds()
			t.s.bytes = size
			if t.keys != nil && r == 0 {
				var lr struct {
					Data struct {
						Keys []string `json:"keys"`
					} `json:"data"`
				}
				if err := json.Unmarshal(buf.Bytes(), &lr); err != nil {
					return nil, err
				}
				*t.keys = len(lr.Data.Keys)
			}
		}
	}
	for i := range rows {
		rows[i].Small, rows[i].Large = smallS[i].stats(), largeS[i].stats()
		if rows[i].Small.P50ms > 0 {
			rows[i].P50Ratio = rows[i].Large.P50ms / rows[i].Small.P50ms
		}
		logf("connections: %s p50 %.2f ms at %d, %.2f ms at %d (x%.2f)", rows[i].Op, rows[i].Small.P50ms, connBase, rows[i].Large.P50ms, n, rows[i].P50Ratio)
	}
	res.Ops = rows

	st, err := e.call(ctx, http.MethodGet, connLarge+"/status/"+connApp, nil)
	if err != nil {
		return nil, err
	}
	if c, ok := st["counts"].(map[string]any); ok {
		res.StatusTotal = jsonInt(c["total"])
		res.StatusHealthy = jsonInt(c["healthy"])
	}
	res.CallsMeasure = v.Stats().Requests - callsBefore
	res.RSSEndKiB, _ = rssKiB(e.connLargePID)
	res.SmallRSSKiB, _ = rssKiB(e.connSmallPID)

	if o.connRestart {
		callsBefore = v.Stats().Requests
		scheduled, err := e.scheduled(ctx, connLarge)
		if err != nil {
			return nil, err
		}
		if res.Restart, err = e.connRestart(ctx, ops[0].large, res.RSSBeforeKiB, n, scheduled); err != nil {
			return nil, err
		}
		res.Restart.CallsVendor = v.Stats().Requests - callsBefore
	}
	return res, nil
}

// loaded reports whether mount's load after a start has finished.
func (e *env) loaded(ctx context.Context, mount string) (bool, error) {
	st, err := e.call(ctx, http.MethodGet, mount+"/status/"+connApp, nil)
	if err != nil {
		return false, err
	}
	done, _ := st["schedule_loaded"].(bool)
	return done, nil
}

// scheduled is how many credentials are on mount's refresh schedule.
func (e *env) scheduled(ctx context.Context, mount string) (int, error) {
	st, err := e.call(ctx, http.MethodGet, mount+"/status", nil)
	if err != nil {
		return 0, err
	}
	return jsonInt(st["scheduled"]), nil
}

// waitLoaded waits until mount's load after a start has finished.
func (e *env) waitLoaded(ctx context.Context, mount string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		done, err := e.loaded(ctx, mount)
		if err != nil || done {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: the load after a start has not finished after %s (schedule_loaded=false)", mount, limit)
		}
		if !sleepCtx(ctx, 250*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// connRestart reloads the large mount's plugin and times a LIST page
// while the load after the start runs and after it finished, and when the
// refresh schedule holds the scheduled connections it held before.
func (e *env) connRestart(ctx context.Context, list doer, baseKiB int64, n, scheduled int) (*connRestart, error) {
	logf("connections: reloading the plugin of %s and waiting for its load of %d connections", connLarge, n)
	start := time.Now()
	if _, err := e.vault.Client.Sys().ReloadPluginWithContext(ctx, &api.ReloadPluginInput{Mounts: []string{connLarge}}); err != nil {
		return nil, fmt.Errorf("reloading %s: %w", connLarge, err)
	}
	out := &connRestart{ScheduledBefore: scheduled}
	var loading, loaded sample
	rng := rand.New(rand.NewPCG(5, 6))
	var buf bytes.Buffer
	timeOne := func(into *sample) error {
		t0 := time.Now()
		size, err := list(ctx, rng, &buf)
		d := time.Since(t0)
		if err != nil {
			return err
		}
		into.latencies = append(into.latencies, d)
		into.seconds += d.Seconds()
		into.bytes = size
		return nil
	}
	deadline := start.Add(3 * time.Minute)
	for out.LoadedAfterSeconds == 0 || out.ScheduledAfterSeconds == 0 {
		if out.LoadedAfterSeconds == 0 {
			done, err := e.loaded(ctx, connLarge)
			if err != nil {
				return nil, err
			}
			if done {
				out.LoadedAfterSeconds = time.Since(start).Seconds()
			}
		}
		if out.ScheduledAfterSeconds == 0 {
			got, err := e.scheduled(ctx, connLarge)
			if err != nil {
				return nil, err
			}
			out.ScheduledAfter = got
			if got >= scheduled {
				out.ScheduledAfterSeconds = time.Since(start).Seconds()
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: the load after a reload has not finished after 3m (schedule_loaded after %.0fs; %d of %d scheduled)", connLarge, out.LoadedAfterSeconds, out.ScheduledAfter, scheduled)
		}
		if out.LoadedAfterSeconds == 0 {
			if err := timeOne(&loading); err != nil {
				return nil, err
			}
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
	for i := 0; i < 20; i++ {
		if err := timeOne(&loaded); err != nil {
			return nil, err
		}
	}
	out.Loading, out.Loaded = loading.stats(), loaded.stats()
	time.Sleep(2 * time.Second)
	if pids := findPIDs(e.connLargeExe, ""); len(pids) == 1 {
		e.connLargePID = pids[0]
		out.RSSKiB, _ = rssKiB(pids[0])
		out.BytesPerConnection = float64(out.RSSKiB-baseKiB) * 1024 / float64(n)
	}
	logf("connections: loaded %.1fs after the reload, %d of %d scheduled after %.1fs; LIST p50 %.2f ms while loading (%d timed), %.2f ms loaded; plugin RSS %.1f MiB",
		out.LoadedAfterSeconds, out.ScheduledAfter, out.ScheduledBefore, out.ScheduledAfterSeconds, out.Loading.P50ms, out.Loading.Requests, out.Loaded.P50ms, float64(out.RSSKiB)/1024)
	return out, nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// list is a doer-shaped LIST of path with a query string.
func (e *env) list(path, query string) doer {
	u := e.vault.Addr + "/v1/" + path + "?" + query
	return func(ctx context.Context, _ *rand.Rand, buf *bytes.Buffer) (int, error) {
		req, err := http.NewRequestWithContext(ctx, "LIST", u, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("X-Vault-Token", vaulttest.RootToken)
		return send(e.hc, req, http.StatusOK, buf)
	}
}

func jsonInt(v any) int {
	switch x := v.(type) {
	case float64:
		return int(x)
	case json.Number:
		n, _ := x.Int64()
		return int(n)
	}
	return -1
}
