package keys

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// SchemaVersion is the storable form's version. A Set written by a newer
// plugin is refused, not misread.
const SchemaVersion = 1

// MaxPrevious bounds how many previous keys a Set keeps: rotating in a
// loop must not grow the stored entry or the JWKS without limit. The
// oldest go first.
const MaxPrevious = 8

// Set is a credential's keys. The zero Set has no key; Current is nil
// until a key is added.
type Set struct {
	// Current signs assertions.
	Current *Key
	// Next is a staged key: published, not yet signing. Rotate promotes
	// it.
	Next *Key
	// Previous are former current keys, public halves only, newest first,
	// each published until its RetireAt.
	Previous []*Key
}

// String lists the keys by id and algorithm only.
func (s Set) String() string {
	var b strings.Builder
	b.WriteString("keys.Set{Current: ")
	b.WriteString(s.Current.String())
	if s.Next != nil {
		b.WriteString(", Next: " + s.Next.String())
	}
	for _, k := range s.Previous {
		b.WriteString(", Previous: " + k.String())
	}
	b.WriteString("}")
	return b.String()
}

// GoString is String, so that %#v does not print a private key.
func (s Set) GoString() string { return s.String() }

// Stage makes k the next key: it is published at once and signs after
// the next Rotate. A key already staged is dropped (it never signed).
func (s *Set) Stage(k *Key) error {
	if k == nil || k.signer == nil {
		return errors.New("a staged key needs its private half")
	}
	if s.has(k.id) {
		return fmt.Errorf("the set already has a key with id %q", k.id)
	}
	s.Next = k
	return nil
}

// StageFor makes k the next key: published at once, signing from at on,
// when the current key's public half stays published for overlap (Signing,
// Promote). A staged key whose time had come is made current first, so a
// key that may have signed is never dropped unpublished; one whose time
// had not come is replaced (it never signed).
func (s *Set) StageFor(k *Key, at time.Time, overlap time.Duration, now time.Time) error {
	if overlap < 0 {
		return errors.New("the overlap cannot be negative")
	}
	if _, err := s.Promote(now, false); err != nil {
		return err
	}
	if err := s.Stage(k); err != nil {
		return err
	}
	k.activateAt, k.overlap = at.UTC(), overlap
	return nil
}

// DropStaged forgets a staged key whose time has not come: it never
// signed.
func (s *Set) DropStaged() { s.Next = nil }

// Signing is the key that signs at now: the staged key once its time has
// come, else the current one (nil when there is none).
func (s Set) Signing(now time.Time) *Key {
	if s.Next != nil && !s.Next.activateAt.IsZero() && !now.Before(s.Next.activateAt) {
		return s.Next
	}
	return s.Current
}

// Promote makes the staged key current when its time has come by now, or
// at once with force; the key it replaces stays published for the
// staged key's overlap from when it began to sign. It reports whether it
// promoted one (the caller stores the Set).
func (s *Set) Promote(now time.Time, force bool) (bool, error) {
	k := s.Next
	if k == nil || (!force && (k.activateAt.IsZero() || now.Before(k.activateAt))) {
		return false, nil
	}
	from := k.activateAt
	if force || from.IsZero() {
		from = now
	}
	overlap := k.overlap
	k.activateAt, k.overlap = time.Time{}, 0
	if err := s.Rotate(nil, from, overlap); err != nil {
		return false, err
	}
	return true, nil
}

// Rotate makes next the current key, or the staged key when next is nil.
// The old current key's public half stays published for overlap after
// now, so that assertions it signed a moment ago, and vendors that cached
// the JWKS before, still verify. An overlap of zero retires it at once.
func (s *Set) Rotate(next *Key, now time.Time, overlap time.Duration) error {
	if overlap < 0 {
		return errors.New("the overlap cannot be negative")
	}
	if next == nil {
		next = s.Next
	}
	if next == nil {
		return errors.New("no key to rotate to: give one or stage one")
	}
	if next.signer == nil {
		return errors.New("the new current key needs its private half")
	}
	if next != s.Next && s.has(next.id) {
		return fmt.Errorf("the set already has a key with id %q", next.id)
	}
	if s.Current != nil {
		old := s.Current.publicOnly()
		old.retireAt = now.Add(overlap).UTC().Truncate(time.Second)
		if overlap > 0 {
			s.Previous = append([]*Key{old}, s.Previous...)
		}
	}
	if next == s.Next {
		s.Next = nil
	}
	next.retireAt = time.Time{}
	s.Current = next
	s.Prune(now)
	if len(s.Previous) > MaxPrevious {
		s.Previous = s.Previous[:MaxPrevious]
	}
	return nil
}

// Unbound reports whether the current or staged key was stored without a
// binding (by an older release).
func (s Set) Unbound() bool {
	return (s.Current != nil && s.Current.bound == nil) || (s.Next != nil && s.Next.bound == nil)
}

// BindUnbound binds the current and staged keys stored without a binding
// (by an older release) to d.
func (s *Set) BindUnbound(d model.Destination) error {
	for _, k := range []*Key{s.Current, s.Next} {
		if k != nil && k.bound == nil {
			k.Bind(d)
		}
	}
	return nil
}

// Prune drops previous keys whose overlap has ended, and reports whether
// it dropped any (the caller stores the Set again).
func (s *Set) Prune(now time.Time) bool {
	kept := s.Previous[:0]
	for _, k := range s.Previous {
		if now.Before(k.retireAt) {
			kept = append(kept, k)
		}
	}
	dropped := len(kept) != len(s.Previous)
	for i := len(kept); i < len(s.Previous); i++ {
		s.Previous[i] = nil
	}
	s.Previous = kept
	return dropped
}

// Published is every key in the JWKS at now: current, staged, then the
// previous keys still in their overlap.
func (s Set) Published(now time.Time) []*Key {
	var out []*Key
	if s.Current != nil {
		out = append(out, s.Current)
	}
	if s.Next != nil {
		out = append(out, s.Next)
	}
	for _, k := range s.Previous {
		if now.Before(k.retireAt) {
			out = append(out, k)
		}
	}
	return out
}

// NextRetirement is the earliest RetireAt among the previous keys, zero
// when none, so a caller can prune on time.
func (s Set) NextRetirement() time.Time {
	var t time.Time
	for _, k := range s.Previous {
		if t.IsZero() || k.retireAt.Before(t) {
			t = k.retireAt
		}
	}
	return t
}

func (s Set) has(kid string) bool {
	if (s.Current != nil && s.Current.id == kid) || (s.Next != nil && s.Next.id == kid) {
		return true
	}
	for _, k := range s.Previous {
		if k.id == kid {
			return true
		}
	}
	return false
}

// stored is the storable form of a Set.
type stored struct {
	Version  int         `json:"version"`
	Current  *storedKey  `json:"current,omitempty"`
	Next     *storedKey  `json:"next,omitempty"`
	Previous []storedKey `json:"previous,omitempty"`
}

type storedKey struct {
	ID       string    `json:"kid"`
	Alg      Algorithm `json:"alg"`
	Created  time.Time `json:"created"`
	Imported bool      `json:"imported,omitempty"`
	RetireAt time.Time `json:"retire_at,omitzero"`
	// PrivatePKCS8 is the private key, PKCS #8 DER; only current and
	// staged keys have one.
	PrivatePKCS8 []byte `json:"private_pkcs8,omitempty"`
	// PublicPKIX is the public key, PKIX DER. Every key has one, so the
	// unauthenticated JWKS is served without decoding a private key
	// (ParsePublic); a current or staged key an older release stored has
	// none, and its public half comes from its private key.
	PublicPKIX []byte `json:"public_pkix,omitempty"`
	// Bound is where a current or staged key may sign for.
	Bound *model.Destination `json:"bound,omitempty"`
	// ActivateAt and Overlap are a staged key's: when it signs, and how
	// long the key it replaces stays published then.
	ActivateAt time.Time     `json:"activate_at,omitzero"`
	Overlap    time.Duration `json:"overlap,omitempty"`
}

// MarshalJSON is the storable form. It holds the private keys of the
// current and staged keys: store it seal-wrapped, never return it. It has
// a value receiver so that a Set held by value in a stored struct is
// encoded in full, not as its (unexported) fields.
func (s Set) MarshalJSON() ([]byte, error) {
	st := stored{Version: SchemaVersion}
	var err error
	if s.Current != nil {
		if st.Current, err = storeKey(s.Current, true); err != nil {
			return nil, err
		}
	}
	if s.Next != nil {
		if st.Next, err = storeKey(s.Next, true); err != nil {
			return nil, err
		}
	}
	for _, k := range s.Previous {
		sk, err := storeKey(k, false)
		if err != nil {
			return nil, err
		}
		st.Previous = append(st.Previous, *sk)
	}
	return json.Marshal(st)
}

func storeKey(k *Key, private bool) (*storedKey, error) {
	sk := &storedKey{ID: k.id, Alg: k.alg, Created: k.created, Imported: k.imported, RetireAt: k.retireAt}
	if private {
		sk.Bound, sk.ActivateAt, sk.Overlap = k.bound, k.activateAt, k.overlap
	}
	var err error
	if private {
		if k.signer == nil {
			return nil, fmt.Errorf("key %q has no private half to store", k.id)
		}
		if sk.PrivatePKCS8, err = x509.MarshalPKCS8PrivateKey(k.signer); err != nil {
			return nil, fmt.Errorf("key %q cannot be encoded for storage", k.id)
		}
	}
	if sk.PublicPKIX, err = x509.MarshalPKIXPublicKey(k.public); err != nil {
		return nil, fmt.Errorf("key %q cannot be encoded for storage", k.id)
	}
	return sk, nil
}

// UnmarshalJSON reads the storable form, checking every key: a Set that
// does not parse in full is refused rather than half used.
func (s *Set) UnmarshalJSON(data []byte) error {
	out, err := parseStored(data, true)
	if err != nil {
		return err
	}
	*s = *out
	return nil
}

// ParsePublic reads the storable form's public halves only: what the
// JWKS and a key's public facts need. It is what an unauthenticated read
// of the JWKS decodes, so that anyone who may ask for it cannot make the
// plugin decode a private key (an RSA-4096 one takes most of a
// millisecond) on every request. The Set it returns holds no private key
// and cannot be stored or sign. A key an older release stored without its
// public half is read from its private key.
func ParsePublic(data []byte) (*Set, error) { return parseStored(data, false) }

func parseStored(data []byte, withPrivate bool) (*Set, error) {
	var st stored
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, errors.New("the stored key set does not parse")
	}
	switch {
	case st.Version > SchemaVersion:
		return nil, fmt.Errorf("the stored key set has schema version %d; this plugin reads up to %d: upgrade the plugin", st.Version, SchemaVersion)
	case st.Version < 1:
		return nil, errors.New("the stored key set has no schema version")
	}
	out := &Set{}
	var err error
	for _, k := range []struct {
		from *storedKey
		to   **Key
	}{{st.Current, &out.Current}, {st.Next, &out.Next}} {
		if k.from == nil {
			continue
		}
		private := withPrivate || len(k.from.PublicPKIX) == 0
		if *k.to, err = loadKey(k.from, private); err != nil {
			return nil, err
		}
		if !withPrivate {
			*k.to = (*k.to).publicOnly()
		}
	}
	for i := range st.Previous {
		k, err := loadKey(&st.Previous[i], false)
		if err != nil {
			return nil, err
		}
		out.Previous = append(out.Previous, k)
	}
	sort.SliceStable(out.Previous, func(i, j int) bool { return out.Previous[i].retireAt.After(out.Previous[j].retireAt) })
	return out, nil
}

// loadPrivate reads a stored key's private half into k.
func loadPrivate(k *Key, sk *storedKey) error {
	raw, err := x509.ParsePKCS8PrivateKey(sk.PrivatePKCS8)
	if err != nil {
		return fmt.Errorf("stored key %q has no readable private key", sk.ID)
	}
	signer, ok := raw.(crypto.Signer)
	if !ok {
		return fmt.Errorf("stored key %q cannot sign", sk.ID)
	}
	k.signer, k.public = signer, signer.Public()
	// The JWKS is served from the public half alone: it must be this
	// key's.
	if len(sk.PublicPKIX) > 0 {
		der, err := x509.MarshalPKIXPublicKey(k.public)
		if err != nil || !bytes.Equal(der, sk.PublicPKIX) {
			return fmt.Errorf("stored key %q: its public half is not its private key's", sk.ID)
		}
	}
	return nil
}

// loadKey reads a stored key: from its private key with private, else
// from its public key alone.
func loadKey(sk *storedKey, private bool) (*Key, error) {
	if sk.ID == "" {
		return nil, errors.New("a stored key has no id")
	}
	k := &Key{id: sk.ID, alg: sk.Alg, created: sk.Created, imported: sk.Imported, retireAt: sk.RetireAt, bound: sk.Bound, activateAt: sk.ActivateAt, overlap: sk.Overlap}
	var err error
	if private {
		err = loadPrivate(k, sk)
	} else {
		k.public, err = x509.ParsePKIXPublicKey(sk.PublicPKIX)
		if err != nil {
			err = fmt.Errorf("stored key %q has no readable public key", sk.ID)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := checkKeyType(k.public); err != nil {
		return nil, fmt.Errorf("stored key %q: %w", sk.ID, err)
	}
	if err := checkAlgorithm(k.public, k.alg); err != nil {
		return nil, fmt.Errorf("stored key %q: %w", sk.ID, err)
	}
	return k, nil
}
