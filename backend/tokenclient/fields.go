package tokenclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
)

// Bounds on ResponseFields: enough for every vendor field we know of (an
// id_token with many claims is a few kilobytes), small enough that a
// misbehaving vendor cannot make a cached token entry grow without limit.
const (
	// MaxResponseFields is how many fields a Request may name.
	MaxResponseFields = 32
	// MaxResponseFieldName is the longest field name, in bytes.
	MaxResponseFieldName = 128
	// MaxResponseFieldBytes is the largest value kept, in bytes of its
	// JSON; a larger one is left out and named in ExtraFields.Omitted.
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
	// Values holds each named field that was present, as the JSON it came
	// as: a string as a JSON string, a number as its JSON text, an object
	// or an array as it came (keys in order), null as null. A
	// form-encoded answer's fields are strings. Never nil.
	Values map[string]json.RawMessage
	// Omitted names, sorted, the fields that were named and present but
	// not kept: their JSON is over MaxResponseFieldBytes.
	Omitted []string
}

// Get returns a kept field's JSON; it is safe on a nil *ExtraFields.
func (e *ExtraFields) Get(name string) (json.RawMessage, bool) {
	if e == nil {
		return nil, false
	}
	v, ok := e.Values[name]
	return v, ok
}

// String names the fields, never their values: one may be an id_token.
func (e *ExtraFields) String() string {
	if e == nil {
		return "<nil>"
	}
	names := make([]string, 0, len(e.Values))
	for k := range e.Values {
		names = append(names, k)
	}
	sort.Strings(names)
	return fmt.Sprintf("tokenclient.ExtraFields{Values: %v, Omitted: %v}", names, e.Omitted)
}

// GoString is String.
func (e *ExtraFields) GoString() string { return e.String() }

// extraFields keeps the named fields as the JSON they came as; one too
// large is named in Omitted, so the caller can say so rather than drop it
// unseen.
func extraFields(fields map[string]any, keep []string) *ExtraFields {
	if len(keep) == 0 {
		return nil
	}
	extra := map[string]json.RawMessage{}
	var omitted []string
	for _, name := range keep {
		v, ok := fields[name]
		if !ok {
			continue
		}
		if _, done := extra[name]; done {
			continue
		}
		// The body was decoded with UseNumber: numbers come back as the
		// text they were sent as.
		raw, err := json.Marshal(v)
		if err != nil || len(raw) > MaxResponseFieldBytes {
			omitted = append(omitted, name)
			continue
		}
		extra[name] = raw
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
