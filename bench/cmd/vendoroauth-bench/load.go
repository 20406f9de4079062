package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// newHTTPClient returns a keep-alive client that holds enough idle
// connections for every worker, so no measured request pays for a dial.
func newHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 1024,
			IdleConnTimeout:     2 * time.Minute,
			DisableCompression:  true,
		},
		Timeout: time.Minute,
	}
}

// doer performs one request; it returns the response size, or an error for
// anything but the expected answer.
type doer func(ctx context.Context, rng *rand.Rand, buf *bytes.Buffer) (int, error)

// vaultGET reads a path from Vault's HTTP API with the root token. paths
// picks the path for each request.
func vaultGET(hc *http.Client, addr, token string, paths func(*rand.Rand) string) doer {
	return func(ctx context.Context, rng *rand.Rand, buf *bytes.Buffer) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, addr+"/v1/"+paths(rng), nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("X-Vault-Token", token)
		return send(hc, req, http.StatusOK, buf)
	}
}

func send(hc *http.Client, req *http.Request, want int, buf *bytes.Buffer) (int, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }() // read-only; read in full below
	buf.Reset()
	n, err := io.Copy(buf, resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != want {
		return 0, fmt.Errorf("%s %s: HTTP %d: %.300s", req.Method, req.URL.Path, resp.StatusCode, buf.String())
	}
	return int(n), nil
}

// sample is what one or more measurement windows recorded.
type sample struct {
	latencies []time.Duration
	errors    int
	firstErr  error
	seconds   float64 // measured wall time
	bytes     int     // size of the last response
	cpu       map[string]float64
}

func (s *sample) merge(o sample) {
	s.latencies = append(s.latencies, o.latencies...)
	s.errors += o.errors
	if s.firstErr == nil {
		s.firstErr = o.firstErr
	}
	s.seconds += o.seconds
	if o.bytes > 0 {
		s.bytes = o.bytes
	}
	if s.cpu == nil {
		s.cpu = map[string]float64{}
	}
	for k, v := range o.cpu {
		s.cpu[k] += v
	}
}

// stats summarises a sample.
type stats struct {
	Requests  int                `json:"requests"`
	Errors    int                `json:"errors"`
	Seconds   float64            `json:"seconds"`
	RPS       float64            `json:"rps"`
	P50ms     float64            `json:"p50_ms"`
	P99ms     float64            `json:"p99_ms"`
	RespBytes int                `json:"response_bytes,omitempty"`
	CPUusPer  map[string]float64 `json:"cpu_us_per_request,omitempty"`
}

func (s sample) stats() stats {
	lat := slices.Clone(s.latencies)
	slices.Sort(lat)
	st := stats{Requests: len(lat), Errors: s.errors, Seconds: s.seconds, RespBytes: s.bytes}
	if s.seconds > 0 {
		st.RPS = float64(len(lat)) / s.seconds
	}
	if len(lat) > 0 {
		st.P50ms = ms(percentile(lat, 0.50))
		st.P99ms = ms(percentile(lat, 0.99))
		st.CPUusPer = map[string]float64{}
		for k, v := range s.cpu {
			st.CPUusPer[k] = v * 1e6 / float64(len(lat))
		}
	}
	return st
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(p*float64(len(sorted)) + 0.5)
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// run drives do from conc workers: warmup first (not recorded), then dur
// measured. Only requests that complete inside the measured window count,
// and the CPU time of the processes in procs is taken over that window.
func run(ctx context.Context, do doer, conc int, warmup, dur time.Duration, procs map[string]int) sample {
	return runN(ctx, do, conc, warmup, dur, 0, procs)
}

// runN is run that also ends the window after limit measured requests (0:
// no limit). Requests in flight when the window ends are let finish but
// not counted, so no connection is torn down mid-request.
func runN(ctx context.Context, do doer, conc int, warmup, dur time.Duration, limit int, procs map[string]int) sample {
	start := time.Now()
	measureFrom := start.Add(warmup)
	measureTo := measureFrom.Add(dur)

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		total    sample
		counted  atomic.Int64
		stopped  atomic.Bool
		stopOnce sync.Once
		endAt    time.Time
		stopCh   = make(chan struct{})
	)
	stop := func() {
		stopOnce.Do(func() {
			endAt = time.Now()
			stopped.Store(true)
			close(stopCh)
		})
	}
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w)+1, uint64(start.UnixNano())))
			var buf bytes.Buffer
			var local sample
			local.latencies = make([]time.Duration, 0, 4096)
			for !stopped.Load() && ctx.Err() == nil {
				t0 := time.Now()
				n, err := do(ctx, rng, &buf)
				t1 := time.Now()
				if stopped.Load() || t1.Before(measureFrom) {
					continue
				}
				if t1.After(measureTo) {
					stop()
					continue
				}
				if err != nil {
					local.errors++
					if local.firstErr == nil {
						local.firstErr = err
					}
					continue
				}
				local.bytes = n
				local.latencies = append(local.latencies, t1.Sub(t0))
				if limit > 0 && counted.Add(1) >= int64(limit) {
					stop()
				}
			}
			mu.Lock()
			total.merge(local)
			mu.Unlock()
		}(w)
	}
	// Timers, so the window opens and closes on time even while every
	// worker waits on a slow request.
	var meter *cpuMeter
	select {
	case <-time.After(time.Until(measureFrom)):
		meter = newCPUMeter(procs)
	case <-stopCh:
	case <-ctx.Done():
	}
	timer := time.AfterFunc(time.Until(measureTo), stop)
	defer timer.Stop()
	select {
	case <-stopCh:
	case <-ctx.Done():
		stop()
	}
	cpu := map[string]float64{}
	if meter != nil {
		cpu = meter.stop()
	}
	wg.Wait()
	total.cpu = cpu
	if endAt.After(measureTo) {
		endAt = measureTo
	}
	if endAt.After(measureFrom) {
		total.seconds = endAt.Sub(measureFrom).Seconds()
	}
	return total
}
