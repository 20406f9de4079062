package keys

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// ParsePublic reads what the JWKS needs without a private key: from the
// stored public halves, or, for a key an older release stored with its
// private half alone, from that; a Set it returns cannot be stored. A
// stored public half that is not the private key's is refused by the full
// read, so the JWKS never publishes a key that does not sign.
func TestParsePublic(t *testing.T) {
	t.Parallel()
	cur, _ := Generate(ES256, 0, t0)
	next, _ := Generate(EdDSA, 0, t0)
	other, _ := Generate(ES256, 0, t0)
	set := &Set{Current: cur}
	if err := set.StageFor(next, t0.Add(time.Hour), time.Hour, t0); err != nil {
		t.Fatal(err)
	}
	raw, err := set.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var st stored
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	withoutPublic := st
	c, n := *st.Current, *st.Next
	c.PublicPKIX, n.PublicPKIX = nil, nil
	withoutPublic.Current, withoutPublic.Next = &c, &n
	older, _ := json.Marshal(withoutPublic)
	swapped := st
	sc := *st.Current
	otherRaw, _ := (&Set{Current: other}).MarshalJSON()
	var os stored
	_ = json.Unmarshal(otherRaw, &os)
	sc.PublicPKIX = os.Current.PublicPKIX
	swapped.Current = &sc
	mismatched, _ := json.Marshal(swapped)
	brokenPrivate := strings.Replace(string(raw), base64.StdEncoding.EncodeToString(st.Current.PrivatePKCS8), "AAAA", 1)

	want, _ := set.JWKS(t0)
	for _, tc := range []struct {
		name       string
		data       string
		publicOK   bool
		fullOK     bool
		jwksIsSame bool
	}{
		{"as stored now", string(raw), true, true, true},
		{"stored by an older release (no public halves)", string(older), true, true, true},
		{"a broken private key", brokenPrivate, true, false, true},
		{"a public half of another key", string(mismatched), true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, err := ParsePublic([]byte(tc.data))
			if (err == nil) != tc.publicOK {
				t.Fatalf("ParsePublic: %v", err)
			}
			if err == nil {
				got, _ := pub.JWKS(t0)
				if (string(got) == string(want)) != tc.jwksIsSame {
					t.Errorf("JWKS %s, want same=%t as %s", got, tc.jwksIsSame, want)
				}
				if pub.Current.Signer() != nil || pub.Next.Signer() != nil {
					t.Error("a public set holds a private key")
				}
				if _, err := pub.MarshalJSON(); err == nil {
					t.Error("a public set could be stored")
				}
			}
			var full Set
			if err := json.Unmarshal([]byte(tc.data), &full); (err == nil) != tc.fullOK {
				t.Errorf("the full read: %v", err)
			}
		})
	}
}
