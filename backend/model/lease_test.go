package model

import (
	"testing"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
)

func TestLease(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tok := func(life time.Duration) *Token { return &Token{ObtainedAt: t0, ExpiresAt: t0.Add(life)} }
	skew := func(d time.Duration) *Settings { return &Settings{ExpirySkew: d} }
	cases := []struct {
		name    string
		tok     *Token
		s       *Settings
		at      time.Duration // since t0
		wantTTL time.Duration
		wantOK  bool
	}{
		// M = 108 s, hand-out end 3462 s, leases end at H = 3464 s.
		{"fresh hour token: the lease ends at H", tok(time.Hour), skew(30 * time.Second), 0, 3464 * time.Second, true},
		{"max_ttl caps", tok(time.Hour), &Settings{ExpirySkew: 30 * time.Second, MaxTTL: time.Minute}, 0, time.Minute, true},
		// 30 s token: skew capped at 3 s, F = 1 s (under 40 s), M = 1 s
		// (3% is 0.9 s), hand-out end 26 s, H = 27 s.
		{"skew capped at a tenth", tok(30 * time.Second), skew(time.Hour), 0, 27 * time.Second, true},
		{"a re-read before the hand-out end gets a lease to H", tok(30 * time.Second), skew(3 * time.Second), 23 * time.Second, 4 * time.Second, true},
		{"just before the hand-out end: 1 s, never less", tok(30 * time.Second), skew(3 * time.Second), 25900 * time.Millisecond, time.Second, true},
		{"past the hand-out end: replaced", tok(30 * time.Second), skew(3 * time.Second), 26100 * time.Millisecond, 0, false},
		{"20 s token, 1 s skew: handed out to 90% of its life", tok(20 * time.Second), skew(time.Second), 17900 * time.Millisecond, time.Second, true},
		{"20 s token, 1 s skew: replaced after 90%", tok(20 * time.Second), skew(time.Second), 18100 * time.Millisecond, 0, false},
		// 60 s token: F = 2 s = M (3% is 1.8 s), hand-out end 57 s, H = 59 s.
		{"a minute-long token just before the hand-out end: 2 s, never less", tok(time.Minute), skew(time.Second), 56900 * time.Millisecond, 2 * time.Second, true},
		{"a minute-long token past the hand-out end: replaced", tok(time.Minute), skew(time.Second), 57100 * time.Millisecond, 0, false},
		{"expired", tok(time.Hour), skew(0), time.Hour + time.Second, 0, false},
		{"static to its skew", tok(time.Hour), &Settings{GrantType: providers.GrantStatic, Grant: MustGrant(providers.GrantStatic), ExpirySkew: 30 * time.Second}, time.Hour - 32*time.Second, 2 * time.Second, true},
		{"nil token", nil, skew(0), 0, 0, false},
		{"nil settings", tok(time.Hour), nil, 0, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ttl, ok := Lease(c.tok, c.s, t0.Add(c.at))
			if ok != c.wantOK || (ok && ttl != c.wantTTL) {
				t.Errorf("Lease = %s, %v; want %s, %v", ttl, ok, c.wantTTL, c.wantOK)
			}
			if ok && c.tok.ExpiresAt.Add(-effectiveSkew(c.tok, c.s)).Before(t0.Add(c.at).Add(ttl)) {
				t.Errorf("lease runs into the expiry skew")
			}
		})
	}
}

// TestHandOutRuleArithmetic checks the numbers the README and issue state:
// an hour-long token with the default skew is handed out to 96% of its
// life, at 1.04 vendor calls per lifetime for a busy credential, and a
// 20 s token with a 1 s skew is not replaced before 90% of its life.
func TestHandOutRuleArithmetic(t *testing.T) {
	t.Parallel()
	if got := VendorCallsPerLifetime(time.Hour, DefaultExpirySkew); got > 1.05 {
		t.Errorf("an hour-long token costs %.3f vendor calls per lifetime, want at most 1.05", got)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		life, skew time.Duration
		minShare   float64 // the earliest replacement, as a share of the life
	}{
		{time.Hour, DefaultExpirySkew, 0.95},
		{20 * time.Second, time.Second, 0.90},
		{60 * time.Second, time.Second, 0.95},
	} {
		tok := &Token{ObtainedAt: t0, ExpiresAt: t0.Add(c.life)}
		s := &Settings{ExpirySkew: c.skew}
		at := time.Duration(float64(c.life)*c.minShare) - time.Millisecond
		if _, ok := Lease(tok, s, t0.Add(at)); !ok {
			t.Errorf("life %s, skew %s: replaced before %.0f%% of its life", c.life, c.skew, c.minShare*100)
		}
	}
}

// TestAgentLikeReadersGetFreshTokensInTime plays a reader that re-reads at
// 85-95% of every lease it gets (Vault Agent, consul-template) across many
// lifetimes: it never holds a token past the expiry skew, every token it
// replaces has at least the skew left, and it re-reads a handful of times
// per token, never in a tight loop.
func TestAgentLikeReadersGetFreshTokensInTime(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, life := range []time.Duration{20 * time.Second, 60 * time.Second, 5 * time.Minute, time.Hour, 24 * time.Hour} {
		for _, sk := range []time.Duration{0, time.Second, 30 * time.Second} {
			for _, f := range []float64{0.85, 0.9, 0.95} {
				s := &Settings{ExpirySkew: sk}
				tok := &Token{ObtainedAt: t0, ExpiresAt: t0.Add(life)}
				now, reads := t0, 0
				for lifetimes := 0; lifetimes < 5; {
					ttl, ok := Lease(tok, s, now)
					if !ok {
						// Replaced: the plugin gets a new token now.
						if left := tok.ExpiresAt.Sub(now); left < effectiveSkew(tok, s) {
							t.Errorf("life %s skew %s f %.2f: replaced with %s left, under the skew", life, sk, f, left)
						}
						tok = &Token{ObtainedAt: now, ExpiresAt: now.Add(life)}
						lifetimes++
						if reads > 12 {
							t.Errorf("life %s skew %s f %.2f: %d reads for one token", life, sk, f, reads)
						}
						reads = 0
						continue
					}
					reads++
					if end := now.Add(ttl); end.After(tok.ExpiresAt.Add(-effectiveSkew(tok, s))) {
						t.Errorf("life %s skew %s: a lease ends at %s, after the skew", life, sk, end)
					}
					now = now.Add(time.Duration(float64(ttl) * f))
				}
			}
		}
	}
}

func TestResolveFillsPresetDefaults(t *testing.T) {
	t.Parallel()
	c := Config{Provider: "boldpenguin", Environment: "staging", ClientID: "i", ClientSecret: "s", APIKey: "k"}
	s, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	r := c.Request(s)
	if r.TokenURL != "https://api-smartdata.di-beta.boldpenguin.com/auth/token" || !r.GrantTypeInQuery || r.Headers["x-api-key"] != "k" || r.BasicEncoding != "raw" {
		t.Errorf("request: %v", r)
	}
	in := false
	c.GrantTypeInQuery = &in
	c.AuthStyle = "body"
	s, _ = c.Resolve()
	if s.GrantTypeInQuery || s.AuthStyle != "body" {
		t.Errorf("overrides ignored: %+v", s)
	}
}
