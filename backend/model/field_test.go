package model

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

// Every field of Config and App has a row (or is one the plugin records
// itself), and every row a field of the right kind: a new field cannot be
// forgotten by the schemas, reads, writes, merges and comparisons made
// from the table.
func TestEveryFieldHasARow(t *testing.T) {
	t.Parallel()
	if err := CheckTable(); err != nil {
		t.Fatal(err)
	}
	for _, ty := range []reflect.Type{configType, appType} {
		for i := range ty.NumField() {
			sf := ty.Field(i)
			name, _, _ := cutTag(sf.Tag.Get("json"))
			if name == "-" {
				continue // not stored: what the store read of an older release
			}
			if _, ok := byName[name]; !ok && !internalFields[name] && name != "config" {
				t.Errorf("%s.%s (json %q) has no row", ty.Name(), sf.Name, name)
			}
		}
	}
}

func cutTag(tag string) (string, string, bool) {
	for i := range len(tag) {
		if tag[i] == ',' {
			return tag[:i], tag[i+1:], true
		}
	}
	return tag, "", false
}

// changed is c with f set to a value different from its zero value.
func changed(t *testing.T, f *Field, c Config) Config {
	t.Helper()
	var v any
	switch f.Kind {
	case String:
		v = "x"
	case Bool:
		v = true
	case Seconds:
		v = 7
	case Words, List, Set:
		v = []string{"x"}
	case Pairs:
		v = map[string]string{"x": "y"}
	default:
		t.Fatalf("row %s: teach this test its kind", f.Name)
	}
	if err := f.Set(&c, v); err != nil {
		t.Fatal(err)
	}
	return c
}

// A change of a field the table marks as sent makes another vendor
// request; a change of any other does not.
func TestSameRequestFollowsTheTable(t *testing.T) {
	t.Parallel()
	for _, f := range fields {
		if f.Holder != InConfig {
			continue
		}
		base := Config{}
		c := changed(t, f, base)
		if got := base.SameRequest(&c); got == f.Sent {
			t.Errorf("%s: SameRequest after a change = %v, but the row says sent=%v", f.Name, got, f.Sent)
		}
	}
	// The fields the plugin records itself are not sent.
	c := Config{Bound: Bindings{"refresh_token": {Endpoints: []string{"x"}}}, Discovered: &Discovered{TokenURL: "z"}}
	if !(&Config{}).SameRequest(&c) {
		t.Error("recorded fields count as sent")
	}
}

// A connection's config inherits from its app every row it may not set
// or leaves unset, overrides the shared ones it sets (extra_params
// merged), and keeps what only an account holds.
func TestEffectiveFollowsTheTable(t *testing.T) {
	t.Parallel()
	for _, f := range fields {
		if f.Holder != InConfig {
			continue
		}
		app := &App{Config: changed(t, f, Config{})}
		conn := Config{App: "a"}
		if f.In(OnConnection) && f.Name != "app" {
			conn = changed(t, f, Config{App: "a"})
		}
		eff := conn.Effective(app)
		switch {
		case f.Name == "app":
			if eff.App != "a" {
				t.Errorf("app: %q", eff.App)
			}
		case f.ConnectionOnly(), f.Shared():
			if !f.Equal(&eff, &conn) {
				t.Errorf("%s: the connection's value is not in effect: %v", f.Name, f.Get(&eff))
			}
		default:
			if !f.Equal(&eff, &app.Config) {
				t.Errorf("%s: the app's value is not in effect: %v", f.Name, f.Get(&eff))
			}
		}
	}
	app := &App{Config: Config{ExtraParams: map[string]string{"a": "1", "b": "1"}}}
	conn := Config{App: "a", ExtraParams: map[string]string{"b": "2"}}
	if got := conn.Effective(app).ExtraParams; !reflect.DeepEqual(got, map[string]string{"a": "1", "b": "2"}) {
		t.Errorf("extra_params merged = %v", got)
	}
	if app.Config.ExtraParams["b"] != "1" {
		t.Error("the merge changed the app")
	}
}

// Converting a credential into a connection keeps exactly what a
// connection may hold.
func TestAsConnectionKeepsTheAccount(t *testing.T) {
	t.Parallel()
	for _, f := range fields {
		if f.Holder != InConfig || f.Name == "app" {
			continue
		}
		c := changed(t, f, Config{})
		got := c.AsConnection("a")
		if kept := f.IsSet(&got); kept != f.In(OnConnection) {
			t.Errorf("%s: kept=%v after conversion; a connection may set it: %v", f.Name, kept, f.In(OnConnection))
		}
	}
}

// Clone is deep: changing the copy leaves the original alone.
func TestCloneIsDeep(t *testing.T) {
	t.Parallel()
	d := time.Second
	on := true
	c := Config{Scopes: []string{"a"}, ExtraParams: map[string]string{"a": "b"}, ExpirySkew: &d, UsePKCE: &on, Discovered: &Discovered{AuthMethods: []string{"x"}, FetchedAt: time.Unix(5, 0)}}
	x := c.Clone()
	x.Scopes[0], x.ExtraParams["a"], *x.ExpirySkew, *x.UsePKCE, x.Discovered.AuthMethods[0] = "z", "z", time.Hour, false, "z"
	if c.Scopes[0] != "a" || c.ExtraParams["a"] != "b" || *c.ExpirySkew != time.Second || !*c.UsePKCE || c.Discovered.AuthMethods[0] != "x" {
		t.Errorf("the original changed: %+v", c)
	}
	if !x.Discovered.FetchedAt.Equal(time.Unix(5, 0)) {
		t.Errorf("a time was lost: %v", x.Discovered.FetchedAt)
	}
}

// Every name a config may set as grant_type is a row of the grant table,
// and every preset names only those.
func TestGrantsAreRows(t *testing.T) {
	t.Parallel()
	if len(ConfigurableGrants()) == 0 || !slices.Contains(ConfigurableGrants(), ConnectedGrant().Name) {
		t.Errorf("configurable grants %v", ConfigurableGrants())
	}
	for _, g := range grants {
		if g.CallsVendor && g.Wire == "" {
			t.Errorf("grant %s calls the vendor but sends no grant_type", g.Name)
		}
	}
}
