package tokenclient

import (
	"encoding/json"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// redacted replaces a secret in messages.
const redacted = "[redacted]"

// Caps on vendor-controlled text that ends up in error messages: enough to
// be useful, too little to flood a log line.
const (
	maxDescriptionLen = 300
	maxCodeLen        = 100
	maxStatusLen      = 100
	maxLocationLen    = 300
	maxValueLen       = 40
)

// minSubstringSecret is the shortest secret hidden wherever it occurs,
// even inside a word. A shorter one (a test's "s", a short PIN) occurs by
// chance inside ordinary words ("signed by" holds "b"), so replacing it
// everywhere mangles the message without protecting anything; it is hidden
// wherever it stands as a word of its own, which is how a vendor echoes a
// value it was sent ("client_secret=ab&", "\"ab\"", "secret ab is").
const minSubstringSecret = 8

// Redact replaces every occurrence of each non-empty secret in s by
// "[redacted]"; a secret shorter than minSubstringSecret bytes only where
// it is not part of a longer word (see wordBounded).
//
// It marks every byte that belongs to any occurrence of any secret first
// and replaces each marked run once. That gives the same result as
// replacing the longest secrets first where occurrences do not overlap, and
// also hides both secrets where they do (a secret that ends where another
// begins), which sequential replacement would leave half visible. A secret
// found only inside an earlier "[redacted]" is left alone, so that
// redacting twice changes nothing.
func Redact(s string, secrets ...string) string {
	if s == "" {
		return s
	}
	protected := markerBytes(s)
	var covered []bool
	for _, secret := range secrets {
		covered = coverSecret(s, secret, protected, covered)
	}
	if covered == nil {
		return s
	}
	return replaceCovered(s, covered)
}

// markerBytes marks the bytes of s that belong to a "[redacted]"; nil
// when there is none.
func markerBytes(s string) []bool {
	if !strings.Contains(s, redacted) {
		return nil
	}
	protected := make([]bool, len(s))
	for from := 0; ; {
		i := strings.Index(s[from:], redacted)
		if i < 0 {
			break
		}
		for k := from + i; k < from+i+len(redacted); k++ {
			protected[k] = true
		}
		from += i + len(redacted)
	}
	return protected
}

// coverSecret marks in covered (allocated on the first occurrence found
// if nil) the bytes of every occurrence of secret in s that does not lie
// inside a "[redacted]", and returns covered.
func coverSecret(s, secret string, protected, covered []bool) []bool {
	if secret == "" || len(secret) > len(s) {
		return covered
	}
	marked := 0 // covered[:marked] is already set for this secret
	for from := 0; from <= len(s)-len(secret); {
		i := strings.Index(s[from:], secret)
		if i < 0 {
			break
		}
		start, end := from+i, from+i+len(secret)
		from = start + 1
		if len(secret) < minSubstringSecret && !wordBounded(s, start, end) {
			continue
		}
		if protected != nil && protected[start] && protected[end-1] && insideOneMarker(s, start, end) {
			continue
		}
		if covered == nil {
			covered = make([]bool, len(s))
		}
		// Occurrences come in order, so skipping what this secret
		// already marked keeps a periodic secret ("aaaa" in a long run
		// of a) linear rather than quadratic.
		for k := max(start, marked); k < end; k++ {
			covered[k] = true
		}
		marked = max(marked, end)
	}
	return covered
}

// wordBounded reports whether s[start:end] is not glued to a word on
// either side: at each end, the secret's own edge character or its
// neighbour in s is not a word character (a letter, a digit or '_'), or
// there is no neighbour. A secret "ab" is bounded in "x=ab&y" and "(ab)",
// not in "abc" or "grab".
func wordBounded(s string, start, end int) bool {
	if start > 0 && isWordByte(s[start-1]) && isWordByte(s[start]) {
		return false
	}
	if end < len(s) && isWordByte(s[end]) && isWordByte(s[end-1]) {
		return false
	}
	return true
}

// isWordByte reports whether b is an ASCII letter, digit or '_', or part
// of a multi-byte character (letters of other scripts join words too).
func isWordByte(b byte) bool {
	return b == '_' || b >= 0x80 || ('0' <= b && b <= '9') || ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z')
}

// replaceCovered replaces each run of covered bytes of s by one
// "[redacted]".
func replaceCovered(s string, covered []bool) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		if !covered[i] {
			j := i
			for j < len(s) && !covered[j] {
				j++
			}
			b.WriteString(s[i:j])
			i = j
			continue
		}
		for i < len(s) && covered[i] {
			i++
		}
		b.WriteString(redacted)
	}
	return b.String()
}

// insideOneMarker reports whether s[start:end] lies within a single
// "[redacted]" of s.
func insideOneMarker(s string, start, end int) bool {
	lo := max(0, end-len(redacted))
	for k := lo; k <= start && k+len(redacted) <= len(s); k++ {
		if s[k:k+len(redacted)] == redacted {
			return true
		}
	}
	return false
}

// expandSecrets adds the forms in which a vendor is likely to echo a
// secret back: URL-escaped (it echoes the form body or the query) and
// JSON-escaped (it echoes a JSON body inside its own JSON string).
func expandSecrets(secrets []string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, s := range secrets {
		add(s)
		add(url.QueryEscape(s))
		add(url.PathEscape(s))
		add((&url.URL{Path: s}).EscapedPath())
		// Encoders differ on whether they escape <, > and & as \u003c:
		// cover both.
		add(jsonEscape(s, true))
		add(jsonEscape(s, false))
	}
	return out
}

// jsonEscape is s as it appears inside a JSON string.
func jsonEscape(s string, escapeHTML bool) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	if err := enc.Encode(s); err != nil {
		return ""
	}
	// Encode writes "s"\n.
	return strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(b.String(), `"`), "\n"), `"`)
}

// cleanText is vendor text fit to hand out as it is: invalid UTF-8
// replaced, control and invisible formatting characters removed,
// whitespace collapsed to single spaces, nothing redacted or cut.
func cleanText(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToValidUTF8(s, string(utf8.RuneError)) {
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r):
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// sanitize makes vendor-controlled text fit for an error message: secrets
// redacted, invalid UTF-8 replaced, control and invisible formatting
// characters removed (they can forge log lines or reorder text on screen),
// whitespace collapsed, and at most limit characters long.
//
// It redacts both before and after cleaning: before, for secrets that
// themselves hold characters cleaning changes; after, for a secret the
// vendor split with a control character. It truncates last, so a cut can
// never leave part of a secret visible.
func sanitize(s string, limit int, secrets []string) string {
	s = Redact(cleanText(Redact(s, secrets...)), secrets...)
	if utf8.RuneCountInString(s) > limit {
		cut, n := 0, 0
		for i := range s {
			if n == limit-1 {
				cut = i
				break
			}
			n++
		}
		s = s[:cut] + "…"
	}
	return s
}
