package vaulttest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"
)

// Agent-like readers: each reads a leased token, holds it, and reads again
// at a uniformly random 85-95% of the lease it got, as Vault Agent and
// consul-template do with a lease they do not renew. The end-to-end test
// and the benchmark run them against the plugin and judge the same facts:
// how many vendor calls per token lifetime they cost, that no reader ever
// holds an expired token, and how much life a token had left when each
// reader replaced it.

// LeasedToken is what one read handed a reader.
type LeasedToken struct {
	Token string
	Lease time.Duration
}

// AgentLikeOptions configure RunAgentLike.
type AgentLikeOptions struct {
	Readers  int
	Duration time.Duration
	// MinShare and MaxShare bound the share of a lease after which a
	// reader reads again (default 0.85 and 0.95).
	MinShare, MaxShare float64
	// Read reads the token once.
	Read func(ctx context.Context) (LeasedToken, error)
	// Expiry is when the vendor says a token expires; false for a token
	// it never issued.
	Expiry func(token string) (time.Time, bool)
	// Seed makes the readers' choices repeatable (0: from the clock).
	Seed uint64
}

// Replacement is a reader's re-read that brought a different token.
type Replacement struct {
	Reader int
	// At is when the answer with the new token arrived.
	At       time.Time
	Old, New string
	// OldLeft is the old token's life left at At, by the vendor's expiry.
	OldLeft time.Duration
}

// AgentLikeResult is what the readers saw.
type AgentLikeResult struct {
	Start, End   time.Time
	Reads        int
	Replacements []Replacement
	// Problems are reads that failed, tokens the vendor never issued,
	// and every moment a reader held an expired token.
	Problems []string
	// MinLease and MaxLease are the shortest and longest lease handed
	// out.
	MinLease, MaxLease time.Duration
	// Tokens are the distinct tokens handed out, in the order first seen.
	Tokens []string
}

// RunAgentLike runs the readers for opts.Duration (or until ctx ends).
func RunAgentLike(ctx context.Context, opts AgentLikeOptions) *AgentLikeResult {
	if opts.MinShare == 0 {
		opts.MinShare, opts.MaxShare = 0.85, 0.95
	}
	seed := opts.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	a := &agentRun{opts: opts, seed: seed, seen: map[string]bool{}, res: &AgentLikeResult{Start: time.Now()}}
	a.end = a.res.Start.Add(opts.Duration)
	ctx, cancel := context.WithDeadline(ctx, a.end)
	defer cancel()
	var wg sync.WaitGroup
	for r := 0; r < opts.Readers; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			a.reader(ctx, r)
		}(r)
	}
	wg.Wait()
	res := a.res
	res.End = time.Now()
	sort.Slice(res.Replacements, func(i, j int) bool { return res.Replacements[i].At.Before(res.Replacements[j].At) })
	return res
}

// agentRun is one RunAgentLike: what the readers share.
type agentRun struct {
	opts AgentLikeOptions
	seed uint64
	end  time.Time

	mu   sync.Mutex
	seen map[string]bool
	res  *AgentLikeResult
}

func (a *agentRun) problem(format string, args ...any) {
	a.mu.Lock()
	a.res.Problems = append(a.res.Problems, fmt.Sprintf(format, args...))
	a.mu.Unlock()
}

// reader is reader r: it reads, holds the token and reads again until
// ctx ends.
func (a *agentRun) reader(ctx context.Context, r int) {
	rng := rand.New(rand.NewPCG(a.seed, uint64(r)+1))
	var held string
	var heldExp time.Time
	for {
		lt, err := a.opts.Read(ctx)
		at := time.Now()
		if ctx.Err() != nil {
			// The run ended during the read: judge what is held
			// at the end.
			break
		}
		if err != nil {
			a.problem("reader %d at %s: %v", r, at.Format("15:04:05.000"), err)
			// Agent retries after a backoff; so does this reader.
			if !sleepCtx(ctx, time.Second) {
				break
			}
			continue
		}
		exp, ok := a.opts.Expiry(lt.Token)
		switch {
		case !ok:
			a.problem("reader %d at %s: a token the vendor never issued", r, at.Format("15:04:05.000"))
		case !at.Before(exp):
			a.problem("reader %d at %s: handed a token that expired %s earlier", r, at.Format("15:04:05.000"), at.Sub(exp))
		}
		a.record(r, lt, at, held, heldExp)
		if held != "" && lt.Token != held && !at.Before(heldExp) {
			a.problem("reader %d held a token until %s that had expired at %s (%s)", r, at.Format("15:04:05.000"), heldExp.Format("15:04:05.000"), at.Sub(heldExp))
		}
		held, heldExp = lt.Token, exp
		share := a.opts.MinShare + rng.Float64()*(a.opts.MaxShare-a.opts.MinShare)
		if !sleepCtx(ctx, time.Duration(float64(lt.Lease)*share)) {
			break
		}
	}
	if held != "" && !heldExp.After(a.end) {
		a.problem("reader %d ended the run holding a token that expired at %s", r, heldExp.Format("15:04:05.000"))
	}
}

// record counts a read by reader r at at that handed it lt while it held
// held (expiring at heldExp).
func (a *agentRun) record(r int, lt LeasedToken, at time.Time, held string, heldExp time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	res := a.res
	res.Reads++
	if res.MinLease == 0 || lt.Lease < res.MinLease {
		res.MinLease = lt.Lease
	}
	if lt.Lease > res.MaxLease {
		res.MaxLease = lt.Lease
	}
	if !a.seen[lt.Token] {
		a.seen[lt.Token] = true
		res.Tokens = append(res.Tokens, lt.Token)
	}
	if held != "" && lt.Token != held {
		res.Replacements = append(res.Replacements, Replacement{Reader: r, At: at, Old: held, New: lt.Token, OldLeft: heldExp.Sub(at)})
	}
}

// LeftAtReplacement returns the life left on each replaced token when
// each reader replaced it, shortest first.
func (r *AgentLikeResult) LeftAtReplacement() []time.Duration {
	out := make([]time.Duration, 0, len(r.Replacements))
	for _, rp := range r.Replacements {
		out = append(out, rp.OldLeft)
	}
	slices.Sort(out)
	return out
}

// CallsPerLifetime is vendor calls per token lifetime over a run, counting
// the call whose token is still in use at the end: n calls (sent at
// calls[0] … calls[n-1]) bought tokens that are handed out from the first
// call until the last token's hand-out end, handout after the last call
// was sent, so they cost n × life / (calls[n-1] + handout − calls[0]).
// Dividing by the run's length instead would count the last token whole
// but only the part of its life the run happened to reach, which moves
// the figure by up to one call per run.
func CallsPerLifetime(calls []time.Time, life, handout time.Duration) float64 {
	if len(calls) == 0 {
		return 0
	}
	c := slices.Clone(calls)
	slices.SortFunc(c, func(a, b time.Time) int { return a.Compare(b) })
	span := c[len(c)-1].Add(handout).Sub(c[0])
	if span <= 0 {
		return 0
	}
	return float64(len(c)) * float64(life) / float64(span)
}

// CallIntervalsPerLifetime is the pace of the calls: (n − 1) intervals
// over the time from the first call to the last, per token lifetime; it
// leaves the call in progress out.
func CallIntervalsPerLifetime(calls []time.Time, life time.Duration) float64 {
	if len(calls) < 2 {
		return 0
	}
	c := slices.Clone(calls)
	slices.SortFunc(c, func(a, b time.Time) int { return a.Compare(b) })
	span := c[len(c)-1].Sub(c[0])
	if span <= 0 {
		return 0
	}
	return float64(len(c)-1) * float64(life) / float64(span)
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
