package bootstrap

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// sameAsRead reports whether Vault already holds what body would write,
// judged by what a read of the same path answers (data): each non-secret
// field as the read shows it, each secret by whether the read says it is
// set (the plugin never shows a secret, so a secret whose value changed
// looks the same; it is written all the same, see Apply), secret pairs
// (extra_headers) by their names. A field the read does not show, or shows
// only as the setting in effect (a "" that returns a field to its
// default), cannot be compared and counts as a change. It returns the
// first field that differs, "" when none does.
func sameAsRead(body map[string]interface{}, data map[string]interface{}) string {
	for _, field := range sortedKeys(body) {
		if !fieldSame(field, body[field], data) {
			return field
		}
	}
	return ""
}

func fieldSame(field string, want interface{}, data map[string]interface{}) bool {
	if secretFields[field] {
		set, ok := data[field+"_set"].(bool)
		return ok && set
	}
	if secretMaps[field] {
		f, _ := model.Lookup(field)
		m, _ := want.(map[string]interface{})
		return sameStrings(sortedKeys(m), stringsOf(data[f.NamesKey()]), true)
	}
	got, ok := data[field]
	if !ok {
		return false
	}
	switch w := want.(type) {
	case map[string]interface{}:
		return sameMap(w, got)
	case []interface{}:
		return sameStrings(stringsOf(w), stringsOf(got), false)
	case bool:
		return boolOf(got) == strconv.FormatBool(w)
	case float64:
		if n, ok := numberOf(got); ok {
			return n == w
		}
		return sameDuration(strconv.FormatFloat(w, 'f', -1, 64), got)
	case string:
		return sameString(w, got)
	}
	return false
}

// sameMap compares an object of the file (extra_params, metadata) with the
// read's.
func sameMap(want map[string]interface{}, got interface{}) bool {
	g, ok := got.(map[string]interface{})
	if !ok || len(g) != len(want) {
		return false
	}
	for k, v := range want {
		if fmt.Sprint(g[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

// sameString compares a string of the file with the read's value, which
// may be the same string, a list the string names comma-separated, or a
// duration in another form.
func sameString(want string, got interface{}) bool {
	if want == "" {
		// "" returns the field to its default, which the read shows as
		// the value in effect: cannot be compared.
		return false
	}
	if s, ok := got.(string); ok && s == want {
		return true
	}
	if l := stringsOf(got); l != nil {
		return sameStrings(splitList(want), l, false)
	}
	return sameDuration(want, got)
}

// sameStrings compares two lists of strings, in order unless sorted.
func sameStrings(a, b []string, sorted bool) bool {
	if len(a) != len(b) {
		return false
	}
	if sorted {
		a, b = append([]string(nil), a...), append([]string(nil), b...)
		sort.Strings(a)
		sort.Strings(b)
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// stringsOf is v as a list of strings when it is one (a JSON list), else
// nil.
func stringsOf(v interface{}) []string {
	l, ok := v.([]interface{})
	if !ok {
		return nil
	}
	out := make([]string, 0, len(l))
	for _, e := range l {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

// splitList is a comma-separated list as the plugin takes one.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func boolOf(v interface{}) string {
	switch x := v.(type) {
	case bool:
		return strconv.FormatBool(x)
	case string:
		if b, err := strconv.ParseBool(x); err == nil {
			return strconv.FormatBool(b)
		}
	}
	return ""
}

func numberOf(v interface{}) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}

// sameDuration compares a duration as the file gives it ("10m", "600")
// with one as a read shows it (seconds as a number, or a duration string):
// Vault takes either form on a write.
func sameDuration(want string, got interface{}) bool {
	w, ok := durationOf(want)
	if !ok {
		return false
	}
	var g time.Duration
	switch x := got.(type) {
	case string:
		if g, ok = durationOf(x); !ok {
			return false
		}
	default:
		n, ok := numberOf(x)
		if !ok {
			return false
		}
		g = time.Duration(n * float64(time.Second))
	}
	return w == g
}

func durationOf(s string) (time.Duration, bool) {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(n * float64(time.Second)), true
	}
	d, err := time.ParseDuration(s)
	return d, err == nil
}
