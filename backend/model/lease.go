package model

import "time"

// The hand-out rule: pure functions of a token, its settings and the time,
// kept apart from the refresh machinery so they can be read and tested on
// their own.
//
// A token of life L (from when its request was sent to the vendor's
// expiry E) with skew s (expiry_skew, at most L/10) has a margin
//
//	M = max(3% of L, F)   (0 for a static token)
//	F = 2 s, or 1 s for tokens of under 40 s
//
// and is handed out from the cache while at least M of its life is left
// before E - s. Each lease ends at the lease end
//
//	H = E - s - (M - F)
//
// at the latest: a cached read at t is handed a lease of floor(H - t)
// seconds, never less than F, renewable up to the same end and never
// beyond it. So a reader's copy of a token (in Vault Agent, Vault Proxy's
// cache, consul-template, an application) is dropped or re-read by H, and
// the re-read that lands after the hand-out end H - F gets the next
// token; a reader that re-reads at 85-95% of its lease (or renews, as
// Agent does, until less than 10-20% of it is left) lands before the
// hand-out end and gets the same token again under a lease that still
// ends at H, so the leases shrink geometrically towards H rather than
// loop: a handful of cheap cache hits per token and reader.
//
// The floor F is for consul-template (inside Vault Agent), which drops an
// answer that arrives within the same wall-clock second as the one before
// it ("no new data (index was the same)"): a token handed out under a
// lease of 1 s may be followed, within that second, by the read that gets
// the next token, and Agent would keep the old one in its file until the
// new one's lease ran out. Under a lease of 2 s or more a reader's next
// read comes at least 1.3 s later (Agent renews first, after 2/3 of the
// lease; others re-read at 85%). A replaced token's leases are renewed to
// their own end (its successor's reads do not cut them short) for the same
// reason. Tokens of under 40 s get F = 1 s instead, so that a 20 s token
// is still handed out to 90% of its life: Agent reading such short tokens
// may keep one past its expiry (README, Leases).
//
// A token is then replaced once per L - s - M of a busy credential's time
// (plus a vendor round trip), so the vendor calls per token lifetime are
//
//	L / (L - s - M) = 1 / (0.97 - s/L)   for L >= 67 s
//
// for an hour-long token with the default 30 s skew: 3600 / 3462 = 1.040.

// handoutMarginPercent is the margin M as a share of a token's life.
const handoutMarginPercent = 3

// minCachedLease is F, the shortest lease a cached token of life at least
// shortTokenLife is handed out under, and its least margin M (see above);
// shorter tokens have a floor of 1 s.
const (
	minCachedLease = 2 * time.Second
	shortTokenLife = 40 * time.Second
)

// floor is F for tok.
func floor(tok *Token) time.Duration {
	if tok.ExpiresAt.Sub(tok.ObtainedAt) < shortTokenLife {
		return time.Second
	}
	return minCachedLease
}

// effectiveSkew is the skew actually applied to tok: at most a tenth of its
// life, since a skew near the token's life would make almost every read a
// grant, and for short-lived tokens a long skew multiplies vendor calls.
func effectiveSkew(tok *Token, s *Settings) time.Duration {
	lifetime := tok.ExpiresAt.Sub(tok.ObtainedAt)
	if s.ExpirySkew > lifetime/10 {
		return lifetime / 10
	}
	return s.ExpirySkew
}

// margin is M: how much of tok's life before E - s is not handed out.
func margin(tok *Token, s *Settings) time.Duration {
	if s.Static() {
		// A static token cannot be replaced: it is handed out to its
		// skew.
		return 0
	}
	m := tok.ExpiresAt.Sub(tok.ObtainedAt) * handoutMarginPercent / 100
	return max(m, floor(tok))
}

// handoutEnd is when tok stops being handed out from the cache.
func HandoutEnd(tok *Token, s *Settings) time.Time {
	return tok.ExpiresAt.Add(-effectiveSkew(tok, s) - margin(tok, s))
}

// leaseEnd is H: when every lease tok is handed out under ends at the
// latest.
func leaseEnd(tok *Token, s *Settings) time.Time {
	if s.Static() {
		return HandoutEnd(tok, s)
	}
	return HandoutEnd(tok, s).Add(floor(tok))
}

// capTTL applies max_ttl.
func capTTL(ttl time.Duration, s *Settings) time.Duration {
	if s.MaxTTL > 0 && ttl > s.MaxTTL {
		return s.MaxTTL
	}
	return ttl
}

// Lease returns how long tok may be handed out from the cache for at now,
// and whether it may be handed out at all: a lease to H of at least F,
// capped by max_ttl.
func Lease(tok *Token, s *Settings, now time.Time) (time.Duration, bool) {
	if tok == nil || s == nil || now.After(HandoutEnd(tok, s)) {
		return 0, false
	}
	ttl := leaseEnd(tok, s).Sub(now).Truncate(time.Second)
	if ttl < time.Second || (!s.Static() && ttl < floor(tok)) {
		return 0, false
	}
	return capTTL(ttl, s), true
}

// freshLease is the lease of a token just obtained from the vendor: to H,
// or when a token lives so briefly that less than a second is left, one
// second if that still ends by E - s.
func FreshLease(tok *Token, s *Settings, now time.Time) (time.Duration, bool) {
	if tok == nil || s == nil {
		return 0, false
	}
	ttl := leaseEnd(tok, s).Sub(now).Truncate(time.Second)
	if ttl < time.Second {
		if tok.ExpiresAt.Add(-effectiveSkew(tok, s)).Sub(now) < time.Second {
			return 0, false
		}
		ttl = time.Second
	}
	return capTTL(ttl, s), true
}

// renewLease is how long a lease holding tok may be extended for at now:
// to H, while at least a second is left.
func RenewLease(tok *Token, s *Settings, now time.Time) (time.Duration, bool) {
	if tok == nil || s == nil {
		return 0, false
	}
	ttl := leaseEnd(tok, s).Sub(now).Truncate(time.Second)
	if ttl < time.Second {
		return 0, false
	}
	return capTTL(ttl, s), true
}

// VendorCallsPerLifetime is the rule's cost for a busy credential: how many
// tokens of life L with skew s a reader that never stops reading uses per L.
func VendorCallsPerLifetime(life, skew time.Duration) float64 {
	tok := &Token{ObtainedAt: time.Time{}, ExpiresAt: time.Time{}.Add(life)}
	s := &Settings{ExpirySkew: skew}
	return float64(life) / float64(HandoutEnd(tok, s).Sub(tok.ObtainedAt))
}

// staleLease is how long a token that is past its hand-out end may still be
// served, after a refresh failed: to its expiry minus the skew, so a reader
// never holds it past the point the operator said tokens stop being safe
// to use; false when less than a second is left.
func StaleLease(tok *Token, s *Settings, now time.Time) (time.Duration, bool) {
	if tok == nil || s == nil {
		return 0, false
	}
	left := tok.ExpiresAt.Sub(now) - effectiveSkew(tok, s)
	if left < time.Second {
		return 0, false
	}
	if s.MaxTTL > 0 && left > s.MaxTTL {
		left = s.MaxTTL
	}
	return left.Truncate(time.Second), true
}
