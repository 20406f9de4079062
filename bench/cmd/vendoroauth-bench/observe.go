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

// The cost of observability on cached reads: token/<name> beside the
// leased null plugin at 16 readers, in four cases:
//
//   - quiet: nothing else happens;
//   - scraping: a Prometheus-like scraper GETs vendoroauth/metrics every
//     second with a token of the shipped metrics policy;
//   - receiver up: an app of the mount has a notify_url whose receiver
//     answers at once, and a connection of it is written and deleted
//     every 100 ms (an event, and a delivery, each time);
//   - receiver hanging: the same with another app, whose receiver accepts
//     connections and never answers, so every delivery waits out its 10 s
//     timeout and the backlog grows.
//
// The cases take turns slice by slice in a rotating order, each slice
// measuring the plugin and the null plugin one after the other, as the
// throughput cells do: on a shared machine only ratios taken side by side
// mean something. What a case costs a reader is its token/null ratio over
// the quiet case's (for the hanging receiver, over the answering one's).

type observeRow struct {
	Case    string  `json:"case"`
	VsNull  float64 `json:"token_vs_null_lease"`
	TokenP  stats   `json:"token"`
	NullP   stats   `json:"null"`
	Scrapes int     `json:"scrapes,omitempty"`
	// ScrapeP50ms and ScrapeBytes describe the scrapes made meanwhile.
	ScrapeP50ms float64 `json:"scrape_p50_ms,omitempty"`
	ScrapeBytes int     `json:"scrape_bytes,omitempty"`
	Events      int64   `json:"events,omitempty"`
	Delivered   int64   `json:"delivered,omitempty"`
	// VsNullSlices is the ratio in each round, for its spread.
	VsNullSlices []float64 `json:"vs_null_lease_per_round,omitempty"`
}

type observeResult struct {
	Concurrency int          `json:"concurrency"`
	Rows        []observeRow `json:"rows"`
}

const observeConcurrency = 16

// The cases, in the order of the rows.
const (
	caseQuiet = iota
	caseScraping
	caseHookUp
	caseHookHang
	nCases
)

var caseNames = [nCases]string{"quiet", "scraping every 1s", "receiver up, an event every 100ms", "receiver hanging, an event every 100ms"}

// observeBackground is what runs behind the readers, switched by case.
type observeBackground struct {
	mode atomic.Int32

	mu       sync.Mutex
	scrapes  []float64 // ms
	size     int
	firstErr error

	events    [nCases]atomic.Int64
	delivered atomic.Int64
}

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
	bg := &observeBackground{}
	bg.mode.Store(caseQuiet)
	hooks, err := e.startReceivers(ctx, bg)
	if err != nil {
		return nil, err
	}
	defer hooks.close()
	bctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); e.scrapeLoop(bctx, bg, tok) }()
	go func() { defer wg.Done(); e.eventLoop(bctx, bg, hooks) }()
	defer func() { stop(); wg.Wait() }()

	targets := []target{
		{Name: tokenTarget, Path: "vendoroauth/token/bench", Plugin: "plugin"},
		{Name: nullLeaseTarget, Path: "null/token/bench", Plugin: "null"},
	}
	var tokS, nullS [nCases]sample
	var perRound [nCases][]float64
	slice := o.duration / time.Duration(o.rounds)
	for r := 0; r < o.rounds; r++ {
		for k := 0; k < nCases; k++ {
			c := (k + r) % nCases
			bg.mode.Store(int32(c))
			var rps [2]float64
			for j := range targets {
				t := targets[(j+r)%len(targets)]
				s := run(ctx, e.get(fixed(t.Path)), observeConcurrency, o.warmup, slice, e.procs(t.Plugin))
				if s.errors > 0 {
					return nil, fmt.Errorf("%s, %s: %d errors, first: %w", caseNames[c], t.Name, s.errors, s.firstErr)
				}
				i := 0
				if t.Name == tokenTarget {
					tokS[c].merge(s)
				} else {
					nullS[c].merge(s)
					i = 1
				}
				if s.seconds > 0 {
					rps[i] = float64(len(s.latencies)) / s.seconds
				}
			}
			if rps[1] > 0 {
				perRound[c] = append(perRound[c], rps[0]/rps[1])
			}
		}
	}
	return bg.rows(tokS, nullS, perRound)
}

// rows makes the result of the cases' samples.
func (bg *observeBackground) rows(tokS, nullS [nCases]sample, perRound [nCases][]float64) (*observeResult, error) {
	bg.mode.Store(caseQuiet)
	bg.mu.Lock()
	firstErr := bg.firstErr
	scr := append([]float64(nil), bg.scrapes...)
	size := bg.size
	bg.mu.Unlock()
	if firstErr != nil {
		return nil, firstErr
	}
	res := &observeResult{Concurrency: observeConcurrency}
	for c := 0; c < nCases; c++ {
		row := observeRow{Case: caseNames[c], TokenP: tokS[c].stats(), NullP: nullS[c].stats(), VsNullSlices: perRound[c]}
		if row.NullP.RPS > 0 {
			row.VsNull = row.TokenP.RPS / row.NullP.RPS
		}
		switch c {
		case caseScraping:
			sort.Float64s(scr)
			row.Scrapes, row.ScrapeBytes = len(scr), size
			if len(scr) > 0 {
				row.ScrapeP50ms = scr[len(scr)/2]
			}
		case caseHookUp:
			row.Events, row.Delivered = bg.events[c].Load(), bg.delivered.Load()
		case caseHookHang:
			row.Events = bg.events[c].Load()
		}
		logf("observability, %s: token %.0f/s, null %.0f/s (token/null %.2f)", row.Case, row.TokenP.RPS, row.NullP.RPS, row.VsNull)
		res.Rows = append(res.Rows, row)
	}
	return res, nil
}

// scrapeLoop scrapes vendoroauth/metrics every second while the case is
// scraping.
func (e *env) scrapeLoop(ctx context.Context, bg *observeBackground, tok string) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if bg.mode.Load() == caseScraping {
			start := time.Now()
			n, err := e.rawGET(ctx, "vendoroauth/metrics", tok)
			bg.mu.Lock()
			switch {
			case err != nil && ctx.Err() == nil && bg.firstErr == nil:
				bg.firstErr = fmt.Errorf("scraping vendoroauth/metrics: %w", err)
			case err == nil:
				bg.scrapes = append(bg.scrapes, float64(time.Since(start).Microseconds())/1000)
				bg.size = n
			}
			bg.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// receivers are the two apps' webhook receivers and the stand-in their
// connections' refresh tokens come from.
type receivers struct {
	srv     *http.Server
	up      net.Listener
	hang    net.Listener
	vendor  *standin.Vendor
	vsrv    *standin.Server
	mu      sync.Mutex
	hung    []net.Conn
	accepts sync.WaitGroup
}

func (h *receivers) close() {
	_ = h.srv.Close()
	_ = h.hang.Close()
	h.accepts.Wait()
	h.mu.Lock()
	for _, c := range h.hung {
		_ = c.Close()
	}
	h.mu.Unlock()
	stopVendor(h.vsrv)
}

// startReceivers starts a receiver that answers at once and one that
// accepts and never answers, and an app of the mount for each.
func (e *env) startReceivers(ctx context.Context, bg *observeBackground) (*receivers, error) {
	vsrv, v, tokenURL, err := startVendor(standin.Behavior{})
	if err != nil {
		return nil, err
	}
	h := &receivers{vendor: v, vsrv: vsrv}
	if h.up, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		stopVendor(vsrv)
		return nil, err
	}
	if h.hang, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		_ = h.up.Close()
		stopVendor(vsrv)
		return nil, err
	}
	h.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		bg.delivered.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = h.srv.Serve(h.up) }()
	h.accepts.Add(1)
	go func() {
		defer h.accepts.Done()
		for {
			c, err := h.hang.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.hung = append(h.hung, c)
			h.mu.Unlock()
		}
	}()
	for app, l := range map[string]net.Listener{"hooks-up": h.up, "hooks-hang": h.hang} {
		if _, err := e.call(ctx, http.MethodPost, "vendoroauth/apps/"+app, map[string]any{
			"token_url": tokenURL, "grant_type": "refresh_token", "client_id": clientID, "client_secret": clientSecret,
			"notify_url": "http://" + l.Addr().String() + "/hook", "notify_secret": benchWebhookSecret,
		}); err != nil {
			h.close()
			return nil, err
		}
	}
	return h, nil
}

// eventLoop writes and deletes a connection of the case's app every
// 100 ms (a connection.deleted event each), while the case has one.
func (e *env) eventLoop(ctx context.Context, bg *observeBackground, h *receivers) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		c := bg.mode.Load()
		app := map[int32]string{caseHookUp: "hooks-up", caseHookHang: "hooks-hang"}[c]
		if app != "" {
			p := fmt.Sprintf("vendoroauth/config/%s/c%d", app, i)
			if _, err := e.call(ctx, http.MethodPost, p, map[string]any{"refresh_token": h.vendor.IssueRefreshToken(clientID)}); err == nil {
				if _, err := e.call(ctx, http.MethodDelete, p, nil); err == nil {
					bg.events[c].Add(1)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
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
