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

// Redact replaces every occurrence of each non-empty secret in s by
// "[redacted]".
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
	s = Redact(s, secrets...)
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
	s = Redact(b.String(), secrets...)
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
