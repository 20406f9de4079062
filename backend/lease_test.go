package backend

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

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
		{"fresh hour token", tok(time.Hour), skew(30 * time.Second), 0, time.Hour - 30*time.Second, true},
		{"max_ttl caps", tok(time.Hour), &Settings{ExpirySkew: 30 * time.Second, MaxTTL: time.Minute}, 0, time.Minute, true},
		{"skew capped at a tenth", tok(30 * time.Second), skew(time.Hour), 0, 27 * time.Second, true},
		// 30 s token, 3 s skew: full lease 27 s, minimum lease 5.4 s.
		{"agent re-read at 85% gets a new token", tok(30 * time.Second), skew(3 * time.Second), 23 * time.Second, 0, false},
		{"a fifth of the lease is still handed out", tok(30 * time.Second), skew(3 * time.Second), 21 * time.Second, 6 * time.Second, true},
		{"no sliver handed out", tok(30 * time.Second), skew(3 * time.Second), 25 * time.Second, 0, false},
		{"expired", tok(time.Hour), skew(0), time.Hour + time.Second, 0, false},
		{"static to the last second", tok(time.Hour), &Settings{GrantType: providers.GrantStatic}, time.Hour - 1500*time.Millisecond, time.Second, true},
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
			if ok && c.tok.ExpiresAt.Before(t0.Add(c.at).Add(ttl)) {
				t.Errorf("lease outlives the token")
			}
		})
	}
}

// TestAgentReReadGetsFreshToken checks the rule against how Vault Agent
// reads a non-renewable secret: whenever a reader got a lease, its re-read
// at 85% of that lease (the earliest Agent re-reads) must not get the same
// token again, and handoutEnd must agree with Lease. (Below ~20 s of
// lease, the whole second a lease loses to rounding can give that re-read
// the old token once, and the next one a new token: one extra read, no
// loop.)
func TestAgentReReadGetsFreshToken(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, life := range []time.Duration{25 * time.Second, 30 * time.Second, 59 * time.Minute, 24 * time.Hour} {
		for _, sk := range []time.Duration{0, time.Second, 30 * time.Second} {
			tok := &Token{ObtainedAt: t0, ExpiresAt: t0.Add(life)}
			s := &Settings{ExpirySkew: sk}
			step := life / 200
			for at := time.Duration(0); at < life; at += step {
				lease, ok := Lease(tok, s, t0.Add(at))
				if !ok {
					continue
				}
				reread := at + lease*85/100
				if again, ok := Lease(tok, s, t0.Add(reread)); ok {
					t.Errorf("life %s, skew %s: a reader leased %s at %s re-reads at %s and gets the same token again for %s",
						life, sk, lease, at, reread, again)
					break
				}
			}
			end := handoutEnd(tok, s)
			if _, ok := Lease(tok, s, end.Add(-10*time.Millisecond)); !ok {
				t.Errorf("life %s, skew %s: not handed out just before handoutEnd", life, sk)
			}
			if _, ok := Lease(tok, s, end.Add(10*time.Millisecond)); ok {
				t.Errorf("life %s, skew %s: still handed out after handoutEnd", life, sk)
			}
		}
	}
}

func TestScheduleTouchesOnlyDue(t *testing.T) {
	t.Parallel()
	s := newSchedule()
	t0 := time.Now()
	for i := 0; i < 1000; i++ {
		s.set(string(rune('a'+i%26))+time.Duration(i).String(), t0.Add(time.Duration(i)*time.Minute))
	}
	s.set("early", t0.Add(-time.Second))
	s.set("moved", t0.Add(-time.Second))
	s.set("moved", t0.Add(time.Hour*100)) // rescheduled: the old heap item is skipped
	got := s.popDue(t0)
	if len(got) != 2 || got[0] != "early" {
		t.Errorf("popDue = %v, want [early a0s]", got)
	}
	if len(s.popDue(t0)) != 0 {
		t.Errorf("a name was popped twice")
	}
}

func TestUpgradeStoredEntries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := &logical.InmemStorage{}
	old, _ := json.Marshal(map[string]any{"config": map[string]any{"provider": "generic", "client_id": "c"}})
	_ = s.Put(ctx, &logical.StorageEntry{Key: StoragePrefix + "old", Value: old})
	e, err := readEntry(ctx, s, "old")
	if err != nil || e.Version != SchemaVersion || e.Config.ClientID != "c" {
		t.Fatalf("version-0 entry: %+v, %v", e, err)
	}
	future, _ := json.Marshal(map[string]any{"version": SchemaVersion + 1})
	_ = s.Put(ctx, &logical.StorageEntry{Key: StoragePrefix + "future", Value: future})
	if _, err := readEntry(ctx, s, "future"); err == nil || !strings.Contains(err.Error(), "upgrade the plugin") {
		t.Errorf("an entry from a newer plugin: %v", err)
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

// A name rescheduled many times between pops must not grow the heap without
// bound (a credential refreshed every minute used to leave an item each).
func TestScheduleHeapStaysProportional(t *testing.T) {
	t.Parallel()
	s := newSchedule()
	now := time.Now()
	for i := range 1440 {
		s.set("x", now.Add(time.Duration(i)*time.Minute+exerciseAfter))
	}
	if len(s.heap) > 2*len(s.due)+65 {
		t.Errorf("%d heap items for %d scheduled names", len(s.heap), len(s.due))
	}
	if got := s.popDue(now.Add(1440*time.Minute + exerciseAfter)); len(got) != 1 || got[0] != "x" {
		t.Errorf("popDue = %v", got)
	}
}
