package backend

import "time"

// The hand-out rule: pure functions of a token, its settings and the time,
// kept apart from the refresh machinery so they can be read and tested on
// their own.
//
// A token of life L (from when its request was sent to the vendor's
// expiry E) with skew s (expiry_skew, at most L/10) is handed out until its
// hand-out end
//
//	H = E - s - m,    m = 3% of L   (0 for a static token)
//
// and every lease it is handed out under ends at H at the latest: a lease
// read at t lasts floor(H - t) seconds, renewable up to the same end, never
// beyond it. So a reader's copy of a token (in Vault Agent, Vault Proxy's
// cache, consul-template, an application) is dropped or re-read by H, and
// the re-read that lands after H gets the next token; a reader that
// re-reads at 85-95% of its lease lands before H and gets the same token
// again under a lease that still ends at H, so the leases shrink
// geometrically towards H rather than loop (each re-read leaves at most
// 15% of the time to H). Vault leases are whole seconds: when less than a
// second is left before H, a one-second lease is still handed out if it
// ends by E - s, else the token is replaced.
//
// A token is then replaced once per L - s - m of a busy credential's time
// (plus a vendor round trip), so the vendor calls per token lifetime are
//
//	L / (L - s - m) = 1 / (0.97 - s/L)
//
// for an hour-long token with the default 30 s skew: 3600 / 3462 = 1.040.
// The margin m is what keeps a re-read at 85-95% of a lease from landing
// in a sliver of time with a lease too short to be useful.

// handoutMarginPercent is m as a share of a token's life.
const handoutMarginPercent = 3

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

// handoutEnd is H: when tok stops being handed out, and when every lease
// it is handed out under ends.
func handoutEnd(tok *Token, s *Settings) time.Time {
	end := tok.ExpiresAt.Add(-effectiveSkew(tok, s))
	if s.Static() {
		// A static token cannot be replaced: it is handed out to its
		// skew.
		return end
	}
	return end.Add(-tok.ExpiresAt.Sub(tok.ObtainedAt) * handoutMarginPercent / 100)
}

// Lease returns how long tok may be handed out for at now, and whether it
// may be handed out at all; the lease ends at the token's hand-out end at
// the latest, capped by max_ttl.
func Lease(tok *Token, s *Settings, now time.Time) (time.Duration, bool) {
	if tok == nil || s == nil {
		return 0, false
	}
	ttl := handoutEnd(tok, s).Sub(now).Truncate(time.Second)
	if ttl < time.Second {
		// Less than a second before H: one second, if it still ends by
		// the skew.
		if tok.ExpiresAt.Add(-effectiveSkew(tok, s)).Sub(now) < time.Second || !now.Before(handoutEnd(tok, s)) {
			return 0, false
		}
		ttl = time.Second
	}
	if s.MaxTTL > 0 && ttl > s.MaxTTL {
		ttl = s.MaxTTL
	}
	return ttl, true
}

// VendorCallsPerLifetime is the rule's cost for a busy credential: how many
// tokens of life L with skew s a reader that never stops reading uses per L.
func VendorCallsPerLifetime(life, skew time.Duration) float64 {
	tok := &Token{ObtainedAt: time.Time{}, ExpiresAt: time.Time{}.Add(life)}
	s := &Settings{ExpirySkew: skew}
	return float64(life) / float64(handoutEnd(tok, s).Sub(tok.ObtainedAt))
}

// staleLease is how long a token that is past its hand-out end may still be
// served, after a refresh failed: to its expiry minus the skew, so a reader
// never holds it past the point the operator said tokens stop being safe
// to use; false when less than a second is left.
func staleLease(tok *Token, s *Settings, now time.Time) (time.Duration, bool) {
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
