package model

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
)

// Scope says where a field may be written.
type Scope uint8

const (
	// OnCredential is a self-contained credential's config/<name>.
	OnCredential Scope = 1 << iota
	// OnApp is an app's apps/<app>.
	OnApp
	// OnConnection is a connection's config/<app>/<account>.
	OnConnection
)

// Kind is how the API takes a field and how the model keeps it.
type Kind uint8

const (
	// String is a string, trimmed of spaces.
	String Kind = iota
	// Bool is a *bool: nil is the default, and "" returns to it.
	Bool
	// Seconds is a time.Duration (0 is the default), or a *time.Duration
	// where 0 is a setting of its own (nil is the default, and "" returns
	// to it); the API takes and shows seconds. Negative is refused.
	Seconds
	// Words is a []string given as a list or comma-separated, each value
	// split on spaces (scopes).
	Words
	// List is a []string given as a list or comma-separated, each value
	// trimmed, empty ones dropped.
	List
	// Set is a List sorted, without duplicates.
	Set
	// Pairs is a map[string]string given as key=value pairs.
	Pairs
	// Int is an int.
	Int
	// Float is a float64.
	Float
)

// Holder is where a field's value is kept.
type Holder uint8

const (
	// InConfig is Config: what a credential, a connection and an app's
	// client hold.
	InConfig Holder = iota
	// InApp is App: what only an app holds.
	InApp
	// Input is taken by a write and not kept as given: a static token
	// (written as the entry's token), a signing key (to the key set).
	Input
)

// Role says how a field decides where secrets go.
type Role uint8

const (
	// NoRole: the field says nothing about where requests go.
	NoRole Role = iota
	// Endpoint: the field chooses an endpoint secrets are sent to.
	Endpoint
	// Trust: the field decides who may answer at the endpoints.
	Trust
	// Audience: the field decides where a client assertion is valid.
	Audience
	// Routing: the field goes with every request and could route it.
	Routing
)

// Field is one row of the model: everything the plugin knows about one
// config or app field. The path schemas, the write and read maps, what
// belongs to an app and what to a connection, how a connection inherits
// from its app, which changes make another vendor request, conversion, and
// the bootstrap tool's checks are derived from these rows.
type Field struct {
	// Name is the API name, and the JSON tag of the Go field that holds
	// the value.
	Name   string
	Kind   Kind
	Holder Holder
	// Scope is where the field may be written.
	Scope Scope
	// Secret: write-only; a read says whether it is set, never its value,
	// and it is bound to where it was written for.
	Secret bool
	// Sent: the field is part of what the vendor is asked (its request,
	// its endpoint, the client's identity), so a change makes a token
	// obtained before it stale.
	Sent bool
	// Role says how the field decides where secrets go.
	Role Role
	// Default is the value in effect when the field is not set (and its
	// preset has none, FromPreset); nil when unset means empty.
	Default any
	// FromPreset is the value in effect when the field is not set, by the
	// credential's preset.
	FromPreset func(p *providers.Preset) any
	// Allowed lists the values the field takes, for the schema.
	Allowed func() []string
	// Check, when set, refuses a value a write gives (after it is
	// cleaned), saying why.
	Check func(v any) error
	// Display is the field's name in the UI.
	Display string
	// Help says what the field is for.
	Help string
}

// internalFields are the Config and App fields that the API never takes:
// what the plugin records about a credential. They are listed so that every
// field of Config and App is accounted for (a test checks).
var internalFields = map[string]bool{
	"bound": true, "discovered": true, "version": true,
	"previous_client_secret": true, "previous_until": true, "previous_bound": true,
	"notify_bound": true, "notify_from": true,
}

// Fields lists every field, in the order help and reads show them.
func Fields() []*Field { return fields }

// Lookup returns the field called name.
func Lookup(name string) (*Field, bool) {
	f, ok := byName[name]
	return f, ok
}

// In reports whether f may be written at scope s.
func (f *Field) In(s Scope) bool { return f.Scope&s != 0 }

// AppOwned reports whether f belongs to an app and never to one of its
// connections: a credential may set it, a connection may not.
func (f *Field) AppOwned() bool { return f.In(OnCredential) && !f.In(OnConnection) }

// ConnectionOnly reports whether f is one account's and never an app's.
func (f *Field) ConnectionOnly() bool { return f.In(OnConnection) && !f.In(OnApp) }

// Shared reports whether both an app and its connections may set f: the
// connection's value, where set, wins.
func (f *Field) Shared() bool { return f.In(OnApp) && f.In(OnConnection) }

// Decides reports whether f decides where secrets go or who may answer
// there.
func (f *Field) Decides() bool { return f.Role != NoRole }

// Names lists the names of the fields for which keep reports true.
func Names(keep func(*Field) bool) []string {
	var out []string
	for _, f := range fields {
		if keep(f) {
			out = append(out, f.Name)
		}
	}
	return out
}

// Optional reports whether unset and zero differ for f: a *bool or a
// *time.Duration, where "" returns to the default.
func (f *Field) Optional() bool {
	t, ok := f.goType()
	return ok && t.Kind() == reflect.Pointer
}

var (
	configType = reflect.TypeFor[Config]()
	appType    = reflect.TypeFor[App]()
	byName     = map[string]*Field{}
	// index maps a JSON name to its Go field's index, per holder type.
	index = map[reflect.Type]map[string][]int{}
)

func init() {
	for _, t := range []reflect.Type{configType, appType} {
		index[t] = jsonIndex(t)
	}
	for _, f := range fields {
		if _, dup := byName[f.Name]; dup {
			panic("model: field " + f.Name + " has two rows")
		}
		byName[f.Name] = f
	}
	if err := CheckTable(); err != nil {
		panic(err)
	}
}

// jsonIndex maps each JSON name of t's fields to the field.
func jsonIndex(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = sf.Index
		}
	}
	return out
}

// CheckTable reports a field of Config or App that has no row, a row with
// no field to hold it, and a row whose kind does not fit its Go type.
func CheckTable() error {
	var problems []string
	for _, t := range []reflect.Type{configType, appType} {
		for name := range index[t] {
			if _, ok := byName[name]; !ok && !internalFields[name] && !(t == appType && name == "config") {
				problems = append(problems, fmt.Sprintf("%s.%s has no row in model.fields", t.Name(), name))
			}
		}
	}
	for _, f := range fields {
		if f.Holder == Input {
			continue
		}
		gt, ok := f.goType()
		if !ok {
			problems = append(problems, fmt.Sprintf("row %s has no field in %s", f.Name, f.holderType().Name()))
			continue
		}
		if !kindFits(f.Kind, gt) {
			problems = append(problems, fmt.Sprintf("row %s: kind %d does not fit %s", f.Name, f.Kind, gt))
		}
	}
	problems = append(problems, checkEndpoints()...)
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("model: the field table does not match the model: %s", strings.Join(problems, "; "))
	}
	return nil
}

func kindFits(k Kind, t reflect.Type) bool {
	switch k {
	case String:
		return t.Kind() == reflect.String
	case Bool:
		return t == reflect.TypeFor[*bool]()
	case Seconds:
		return t == reflect.TypeFor[time.Duration]() || t == reflect.TypeFor[*time.Duration]()
	case Words, List, Set:
		return t == reflect.TypeFor[[]string]()
	case Pairs:
		return t == reflect.TypeFor[map[string]string]()
	case Int:
		return t.Kind() == reflect.Int
	case Float:
		return t.Kind() == reflect.Float64
	}
	return false
}

func (f *Field) holderType() reflect.Type {
	if f.Holder == InApp {
		return appType
	}
	return configType
}

func (f *Field) goType() (reflect.Type, bool) {
	idx, ok := index[f.holderType()][f.Name]
	if !ok {
		return nil, false
	}
	return f.holderType().FieldByIndex(idx).Type, true
}

// slot is f's value in holder, a *Config or *App.
func (f *Field) slot(holder any) reflect.Value {
	v := reflect.ValueOf(holder)
	if v.Kind() != reflect.Pointer || v.Elem().Type() != f.holderType() {
		panic(fmt.Sprintf("model: field %s is held by %s, not %T", f.Name, f.holderType().Name(), holder))
	}
	return v.Elem().FieldByIndex(index[f.holderType()][f.Name])
}

// IsSet reports whether holder sets f: a value that is not the zero value
// (an empty list or map is not set).
func (f *Field) IsSet(holder any) bool {
	v := f.slot(holder)
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() > 0
	}
	return !v.IsZero()
}

// Get is f's value in holder as the model keeps it (a pointer for an
// optional field).
func (f *Field) Get(holder any) any { return f.slot(holder).Interface() }

// Value is f's value in holder with the pointer of an optional field
// taken away: nil when unset.
func (f *Field) Value(holder any) any {
	v := f.slot(holder)
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		return v.Elem().Interface()
	}
	return v.Interface()
}

// Clear returns f in holder to unset.
func (f *Field) Clear(holder any) {
	v := f.slot(holder)
	v.Set(reflect.Zero(v.Type()))
}

// Set stores v, as the API parsed it (string, bool, int seconds, []string,
// map[string]string, int, float64), into holder, cleaned as f's kind says.
// Its errors are the caller's to fix.
func (f *Field) Set(holder any, v any) error {
	slot := f.slot(holder)
	var out reflect.Value
	switch f.Kind {
	case String:
		s, _ := v.(string)
		out = reflect.ValueOf(strings.TrimSpace(s))
	case Bool:
		b, _ := v.(bool)
		out = reflect.ValueOf(&b)
	case Seconds:
		n, _ := v.(int)
		if n < 0 {
			return fmt.Errorf("%s cannot be negative", f.Name)
		}
		d := time.Duration(n) * time.Second
		out = reflect.ValueOf(d)
		if slot.Kind() == reflect.Pointer {
			out = reflect.ValueOf(&d)
		}
	case Words, List, Set:
		out = reflect.ValueOf(cleanList(f.Kind, v.([]string)))
	case Pairs:
		out = reflect.ValueOf(maps.Clone(v.(map[string]string)))
	case Int, Float:
		out = reflect.ValueOf(v)
	}
	if f.Check != nil {
		if err := f.Check(out.Interface()); err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
	}
	slot.Set(out.Convert(slot.Type()))
	return nil
}

func cleanList(k Kind, in []string) []string {
	var out []string
	for _, s := range in {
		if k == Words {
			out = append(out, strings.Fields(s)...)
		} else if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	if k == Set {
		slices.Sort(out)
		out = slices.Compact(out)
	}
	return out
}

// Equal reports whether a and b hold the same value of f.
func (f *Field) Equal(a, b any) bool {
	va, vb := f.slot(a), f.slot(b)
	switch va.Kind() {
	case reflect.Slice, reflect.Map:
		if va.Len() == 0 && vb.Len() == 0 {
			return true
		}
	case reflect.Pointer:
		if va.IsNil() || vb.IsNil() {
			return va.IsNil() == vb.IsNil()
		}
		return va.Elem().Interface() == vb.Elem().Interface()
	}
	return reflect.DeepEqual(va.Interface(), vb.Interface())
}

// copyField sets f in dst to src's value, deep.
func (f *Field) copyField(dst, src any) {
	f.slot(dst).Set(deepCopy(f.slot(src)))
}

// NamesKey is what a read calls the names of secret pairs, which it
// shows instead of their values: extra_headers shows as
// extra_header_names.
func (f *Field) NamesKey() string {
	return strings.TrimSuffix(f.Name, "s") + "_names"
}

// InEffect is f's value in effect in holder: its own if set, else the
// default the preset gives (nil when there is none).
func (f *Field) InEffect(holder any, p *providers.Preset) any {
	switch {
	case f.IsSet(holder):
		return f.Value(holder)
	case f.FromPreset != nil && p != nil:
		return f.FromPreset(p)
	case f.Default != nil:
		return f.Default
	}
	return f.Value(holder)
}
