package tokenclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
)

// Bounds on ResponseFields: enough for every vendor field we know of (an
// id_token with many claims is a few kilobytes), small enough that a
// misbehaving vendor cannot make a cached token entry grow without limit.
const (
	// MaxResponseFields is how many fields a Request may name.
	MaxResponseFields = 32
	// MaxResponseFieldName is the longest field name, in bytes.
	MaxResponseFieldName = 128
	// MaxResponseFieldBytes is the largest value kept, in bytes; a longer
	// one is left out and named in Token.ExtraOmitted.
	MaxResponseFieldBytes = 16 << 10
)

// checkResponseFields refuses names that cannot be kept. refresh_token
// is refused because it must never leave the plugin; the fields Token
// already has (access_token, ...) may be named, which only repeats them.
func checkResponseFields(names []string) error {
	if len(names) > MaxResponseFields {
		return fmt.Errorf("at most %d response fields can be kept, not %d", MaxResponseFields, len(names))
	}
	for _, n := range names {
		switch {
		case n == "":
			return errors.New("a response field has an empty name")
		case len(n) > MaxResponseFieldName:
			return fmt.Errorf("response field names are at most %d bytes", MaxResponseFieldName)
		case n == "refresh_token":
			return errors.New("response field refresh_token cannot be kept: the refresh token never leaves the plugin")
		}
		for i := 0; i < len(n); i++ {
			if c := n[i]; c < ' ' || c == 0x7f {
				return errors.New("a response field name has control characters")
			}
		}
	}
	return nil
}

// CheckResponseFields is the validation a Request's ResponseFields get,
// for config writes.
func CheckResponseFields(names []string) error { return checkResponseFields(names) }

// ExtraFields are the token response fields a Request asked to keep.
type ExtraFields struct {
	// Values holds each named field that was present as a string, number
	// or boolean: a number as its JSON text, a boolean as "true" or
	// "false". Never nil.
	Values map[string]string
	// Omitted names, sorted, the fields that were named and present but
	// not kept: an object, an array, null, or a value over
	// MaxResponseFieldBytes.
	Omitted []string
}

// Get returns a kept field; it is safe on a nil *ExtraFields.
func (e *ExtraFields) Get(name string) (string, bool) {
	if e == nil {
		return "", false
	}
	v, ok := e.Values[name]
	return v, ok
}

// String names the fields, never their values: one may be an id_token.
func (e *ExtraFields) String() string {
	if e == nil {
		return "<nil>"
	}
	return fmt.Sprintf("tokenclient.ExtraFields{Values: %v, Omitted: %v}", sortedKeys(e.Values), e.Omitted)
}

// GoString is String.
func (e *ExtraFields) GoString() string { return e.String() }

// extraFields keeps the named scalar fields, as strings.
func extraFields(fields map[string]any, keep []string) *ExtraFields {
	if len(keep) == 0 {
		return nil
	}
	extra := map[string]string{}
	var omitted []string
	for _, name := range keep {
		v, ok := fields[name]
		if !ok {
			continue
		}
		if _, done := extra[name]; done {
			continue
		}
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case json.Number:
			s = v.String()
		case bool:
			s = strconv.FormatBool(v)
		default:
			omitted = append(omitted, name)
			continue
		}
		if len(s) > MaxResponseFieldBytes {
			omitted = append(omitted, name)
			continue
		}
		extra[name] = s
	}
	sort.Strings(omitted)
	return &ExtraFields{Values: extra, Omitted: dedupe(omitted)}
}

func dedupe(sorted []string) []string {
	if len(sorted) < 2 {
		return sorted
	}
	out := sorted[:1]
	for _, s := range sorted[1:] {
		if s != out[len(out)-1] {
			out = append(out, s)
		}
	}
	return out
}
