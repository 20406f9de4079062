package backend

import "time"

// The hand-out rule: pure functions of a token, its settings and the time,
// kept apart from the refresh machinery so they can be read and tested on
// their own.

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

// handoutShare is the share of a token's full lease below which it stops
// being handed out: a fifth, because Vault Agent re-reads a non-renewable
// secret at 85-95% of its lease, so at most 15% of any lease it got is
// left then, and the re-read must get a fresh token. With a tenth, the
// e2e Agent test saw every such re-read get the old token with 3-5 s left,
// and Agent replace the file under a second before the vendor's expiry.
const handoutShare = 5

// Lease returns how long tok may be handed out for at now, and whether it
// may be handed out at all. A token stops being handed out once its lease
// would be shorter than a fifth of its full lease (handoutShare). A static
// token cannot be replaced, so it is handed out to the last second.
func Lease(tok *Token, s *Settings, now time.Time) (time.Duration, bool) {
	if tok == nil || s == nil {
		return 0, false
	}
	skew := effectiveSkew(tok, s)
	ttl := tok.ExpiresAt.Sub(now) - skew
	minLease := (tok.ExpiresAt.Sub(tok.ObtainedAt) - skew) / handoutShare
	if minLease < time.Second || s.Static() {
		minLease = time.Second
	}
	if ttl < minLease {
		return 0, false
	}
	if s.MaxTTL > 0 && ttl > s.MaxTTL {
		ttl = s.MaxTTL
	}
	return ttl.Truncate(time.Second), true
}

// handoutEnd is when tok stops being handed out.
func handoutEnd(tok *Token, s *Settings) time.Time {
	skew := effectiveSkew(tok, s)
	minLease := (tok.ExpiresAt.Sub(tok.ObtainedAt) - skew) / handoutShare
	if minLease < time.Second {
		minLease = time.Second
	}
	return tok.ExpiresAt.Add(-skew - minLease)
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
