package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/standin"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/internal/vaulttest"
)

// The cost of observability on cached reads, in four pairs of cells of
// token/<name> beside the leased null plugin at 16 readers:
//
//   - quiet: nothing else happens (what the throughput phase measures);
//   - scraping: a Prometheus-like scraper GETs vendoroauth/metrics every
//     second with a token of the shipped metrics policy;
//   - receiver up: an app of the mount with a notify_url whose receiver
//     answers at once, and a connection created and deleted every 200 ms
//     (two events, two deliveries a cycle);
//   - receiver hanging: the same, with a receiver that accepts
//     connections and never answers, so every delivery waits out its
//     10 s timeout and the backlog grows.
//
// The plugin's ratio to the null plugin in each pair is what observability
// costs a reader: a scrape must cost no read, and a dead receiver nothing.

type observeRow struct {
	Case    string  `json:"case"`
	VsNull  float64 `json:"token_vs_null_lease"`
	TokenP  stats   `json:"token"`
	NullP   stats   `json:"null"`
	Scrapes int     `json:"scrapes,omitempty"`
	// ScrapeP50ms and ScrapeBytes describe the scrapes made meanwhile.
	ScrapeP50ms float64 `json:"scrape_p50_ms,omitempty"`
	ScrapeBytes int     `json:"scrape_bytes,omitempty"`
	Events      int     `json:"events,omitempty"`
	Delivered   int64   `json:"delivered,omitempty"`
}

type observeResult struct {
	Concurrency int          `json:"concurrency"`
	Rows        []observeRow `json:"rows"`
}

const observeConcurrency = 16

func (e *env) observe(ctx context.Context, o *options) (*observeResult, error) {
	// A token of the shipped metrics policy, as Prometheus would hold.
	tmpl, err := readRepoFile(e.root, "bootstrap/policies/vendoroauth-metrics.hcl.tmpl")
	if err != nil {
		return nil, err
	}
	if _, err := e.call(ctx, http.MethodPut, "sys/policies/acl/bench-metrics", map[string]any{"policy": strings.ReplaceAll(tmpl, "${MOUNT}", "vendoroauth")}); err != nil {
		return nil, err
	}
	tok, err := e.tokenWith(ctx, "bench-metrics")
	if err != nil {
		return nil, err
	}
	targets := []target{
		{Name: tokenTarget, Path: "vendoroauth/token/bench", Plugin: "plugin"},
		{Name: nullLeaseTarget, Path: "null/token/bench", Plugin: "null"},
	}
	res := &observeResult{Concurrency: observeConcurrency}
	cell := func(name string) (observeRow, error) {
		row := observeRow{Case: name}
		var ts, ns sample
		for r := 0; r < o.rounds; r++ {
			for k := range targets {
				t := targets[(k+r)%len(targets)]
				s := run(ctx, e.get(fixed(t.Path)), observeConcurrency, o.warmup, o.duration/time.Duration(o.rounds), e.procs(t.Plugin))
				if s.errors > 0 {
					return row, fmt.Errorf("%s, %s: %d errors, first: %w", name, t.Name, s.errors, s.firstErr)
				}
				if t.Name == tokenTarget {
					ts.merge(s)
				} else {
					ns.merge(s)
				}
			}
		}
		row.TokenP, row.NullP = ts.stats(), ns.stats()
		if row.NullP.RPS > 0 {
			row.VsNull = row.TokenP.RPS / row.NullP.RPS
		}
		logf("observability, %s: token %.0f/s, null %.0f/s (token/null %.2f)", name, row.TokenP.RPS, row.NullP.RPS, row.VsNull)
		return row, nil
	}

	quiet, err := cell("quiet")
	if err != nil {
		return nil, err
	}
	res.Rows = append(res.Rows, quiet)

	// Scraping every second.
	scraping, err := e.whileScraping(ctx, tok, func() (observeRow, error) { return cell("scraping every 1s") })
	if err != nil {
		return nil, err
	}
	res.Rows = append(res.Rows, scraping)

	for _, hang := range []bool{false, true} {
		row, err := e.observeWebhooks(ctx, hang, cell)
		if err != nil {
			return nil, err
		}
		res.Rows = append(res.Rows, row)
	}
	return res, nil
}

// whileScraping runs measure while a scraper GETs vendoroauth/metrics
// every second with tok, as Prometheus would, and records the scrapes in
// its row.
func (e *env) whileScraping(ctx context.Context, tok string, measure func() (observeRow, error)) (observeRow, error) {
	sctx, stop := context.WithCancel(ctx)
	var (
		mu     sync.Mutex
		lat    []float64
		size   int
		scrErr error
		done   sync.WaitGroup
	)
	done.Add(1)
	go func() {
		defer done.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			start := time.Now()
			n, err := e.rawGET(sctx, "vendoroauth/metrics", tok)
			mu.Lock()
			switch {
			case err != nil && sctx.Err() == nil && scrErr == nil:
				scrErr = err
			case err == nil:
				lat = append(lat, float64(time.Since(start).Microseconds())/1000)
				size = n
			}
			mu.Unlock()
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	row, err := measure()
	stop()
	done.Wait()
	if err != nil {
		return row, err
	}
	if scrErr != nil {
		return row, fmt.Errorf("scraping vendoroauth/metrics: %w", scrErr)
	}
	sort.Float64s(lat)
	row.Scrapes, row.ScrapeBytes = len(lat), size
	if len(lat) > 0 {
		row.ScrapeP50ms = lat[len(lat)/2]
	}
	return row, nil
}

// observeWebhooks measures cached reads while an app's events are being
// delivered to a receiver that answers at once, or hangs.
func (e *env) observeWebhooks(ctx context.Context, hang bool, cell func(string) (observeRow, error)) (observeRow, error) {
	name, app := "receiver up, an event every 100ms", "hooks-up"
	if hang {
		name, app = "receiver hanging, an event every 100ms", "hooks-hang"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return observeRow{}, err
	}
	var delivered atomic.Int64
	var conns sync.WaitGroup
	var hung []net.Conn
	var hungMu sync.Mutex
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		delivered.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})}
	if hang {
		// Accept and never answer: every delivery waits for its timeout.
		conns.Add(1)
		go func() {
			defer conns.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				hungMu.Lock()
				hung = append(hung, c)
				hungMu.Unlock()
			}
		}()
	} else {
		go func() { _ = srv.Serve(l) }()
	}
	defer func() {
		_ = srv.Close()
		_ = l.Close()
		conns.Wait()
		hungMu.Lock()
		for _, c := range hung {
			_ = c.Close()
		}
		hungMu.Unlock()
	}()
	vsrv, v, tokenURL, err := startVendor(standin.Behavior{})
	if err != nil {
		return observeRow{}, err
	}
	defer stopVendor(vsrv)
	if _, err := e.call(ctx, http.MethodPost, "vendoroauth/apps/"+app, map[string]any{
		"token_url": tokenURL, "grant_type": "refresh_token", "client_id": clientID, "client_secret": clientSecret,
		"notify_url": "http://" + l.Addr().String() + "/hook", "notify_secret": benchWebhookSecret,
	}); err != nil {
		return observeRow{}, err
	}
	// The event stream: a connection written and deleted every 100 ms
	// (a deleted event each), in the background of the cells.
	sctx, stop := context.WithCancel(ctx)
	var events atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			p := fmt.Sprintf("vendoroauth/config/%s/c%d", app, i)
			if _, err := e.call(sctx, http.MethodPost, p, map[string]any{"refresh_token": v.IssueRefreshToken(clientID)}); err == nil {
				if _, err := e.call(sctx, http.MethodDelete, p, nil); err == nil {
					events.Add(1)
				}
			}
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	row, err := cell(name)
	stop()
	wg.Wait()
	row.Events, row.Delivered = int(events.Load()), delivered.Load()
	if _, derr := e.call(ctx, http.MethodDelete, "vendoroauth/apps/"+app, nil); derr != nil && err == nil {
		err = derr
	}
	return row, err
}

// benchWebhookSecret signs the benchmark's deliveries.
const benchWebhookSecret = "whsec_RmFrZUJlbmNoU2VjcmV0Rm9yV2ViaG9va3NPbmx5MDE="

// rawGET reads a path that answers a raw body (metrics) with token, and
// returns its size.
func (e *env) rawGET(ctx context.Context, path, token string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.vault.Addr+"/v1/"+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := e.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	var b bytes.Buffer
	n, err := b.ReadFrom(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: HTTP %d: %.200s", path, resp.StatusCode, b.String())
	}
	return int(n), err
}

// tokenWith creates a token holding only policy.
func (e *env) tokenWith(ctx context.Context, policy string) (string, error) {
	body, _ := json.Marshal(map[string]any{"policies": []string{policy}, "no_default_policy": true, "ttl": "2h"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.vault.Addr+"/v1/auth/token/create", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("X-Vault-Token", vaulttest.RootToken)
	resp, err := e.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	var out struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", fmt.Errorf("creating a token with %s: HTTP %d: %w", policy, resp.StatusCode, err)
	}
	if out.Auth.ClientToken == "" {
		return "", fmt.Errorf("creating a token with %s: HTTP %d and no token", policy, resp.StatusCode)
	}
	return out.Auth.ClientToken, nil
}

func readRepoFile(root, path string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(path)))
	return string(b), err
}
