package vendoroauth

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// Field names, shared by the schemas, the handlers and the tests.
const (
	fieldName        = "name"
	fieldProvider    = "provider"
	fieldScopes      = "scopes"
	fieldApp         = "app"
	fieldMetadata    = "metadata"
	fieldAfter       = "after"
	fieldLimit       = "limit"
	fieldStateFilter = "state"
	// fieldDiscoveryChanged is only in answers: an app's issuer now names
	// endpoints the app does not use.
	fieldDiscoveryChanged = "discovery_changed"

	fieldIssuer         = "issuer"
	fieldSigningKey     = "signing_key"
	fieldSigningAlg     = "signing_algorithm"
	fieldAlgorithm      = "algorithm"
	fieldOverlap        = "overlap"
	fieldActivateAfter  = "activate_after"
	fieldActivateStaged = "activate_staged"
	fieldDestination    = "destination"

	fieldTTL         = "ttl"
	fieldRedirectURI = "redirect_uri"
	fieldState       = "state"
	fieldCode        = "code"

	fieldAccessToken = "access_token"
	fieldTokenType   = "token_type"
	fieldExpiresAt   = "expires_at"
	fieldScope       = "scope"
)

// nameSegment is one segment of a credential or app name, as Vault's own
// generic names: word characters, with - . @ inside.
const nameSegment = `\w(?:[\w\-.@]*\w)?`

// credentialName matches a credential's name: one segment for a
// self-contained credential (or a connection converted from one), or
// "<app>/<account>" for a connection of an app, so that a policy on
// token/<app>/* confines a caller to one app's connections.
var credentialName = `(?P<` + fieldName + `>` + nameSegment + `(?:/` + nameSegment + `)?)`

// appName matches an app's name.
var appName = `(?P<` + fieldApp + `>` + nameSegment + `)`

var nameSegmentRe = regexp.MustCompile(`^` + nameSegment + `$`)

// namedPaths are the paths whose next segments are a name. jwks/ is left
// out: its 404 is the same for every name it does not publish.
var namedPaths = []string{"config", "token", "authorize", "exchange", "device", "refresh", "rotate-key", "import-key", "apps", "status", "events"}

// badName says what is wrong with the name in path, which no path of the
// mount matched, or "" when the name is not the reason: Vault's bare
// "unsupported path" does not tell the user that a name cannot hold a
// space or a colon.
func badName(path string) string {
	prefix, rest, ok := strings.Cut(path, "/")
	if !ok || rest == "" || !slices.Contains(namedPaths, prefix) {
		return ""
	}
	segs := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	switch prefix {
	case "apps", "status", "events":
		segs = segs[:1] // an app's name, then its own paths
		rest = segs[0]
	default:
		if len(segs) > 2 {
			return fmt.Sprintf("%q is not a name: a name is one segment, or <app>/<account> for a connection of an app", rest)
		}
	}
	for _, seg := range segs {
		if !nameSegmentRe.MatchString(seg) {
			return fmt.Sprintf("%q is not a name: names are letters, digits, _, -, . and @, starting and ending with a letter, digit or _, at most %d characters (a connection is <app>/<account>)", rest, maxNameLen)
		}
	}
	return ""
}

// maxNameLen bounds each segment of a name (a credential's, an app's, an
// account's). Names come from callers, one of the paths that take them
// (jwks/) needs no token, and a name ends up in storage keys, the index
// and log lines: a bound keeps each of those small. 128 is far above any
// name seen in use (an account id, a UUID, an email address).
const maxNameLen = 128

// nameTooLong is the segment of path longer than maxNameLen, or "".
func nameTooLong(path string) string {
	for _, seg := range strings.Split(path, "/") {
		if len(seg) > maxNameLen {
			return seg
		}
	}
	return ""
}

// rejectUnknownFields refuses a request that carries a field the path does
// not know: Vault would only warn, and a mistyped field name silently
// ignored is a config that does not do what its author thinks.
func rejectUnknownFields(req *logical.Request, d *framework.FieldData) *logical.Response {
	var unknown []string
	for k := range req.Data {
		if _, ok := d.Schema[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	known := make([]string, 0, len(d.Schema))
	for k := range d.Schema {
		if k != fieldName {
			known = append(known, k)
		}
	}
	sort.Strings(known)
	return logical.ErrorResponse(fmt.Sprintf("unknown field(s) %s; this path takes: %s",
		strings.Join(unknown, ", "), strings.Join(known, ", ")))
}

// The config and app fields come from the model's table (backend/model):
// the schemas, the write and the read of every path that takes them are
// made from its rows here.

// schemaOf is the path schema of a row.
func schemaOf(f *model.Field) *framework.FieldSchema {
	fs := &framework.FieldSchema{
		Type:         fieldType[f.Kind],
		Description:  f.Help,
		DisplayAttrs: &framework.DisplayAttributes{Name: f.Display, Sensitive: f.Secret},
	}
	if f.Allowed != nil {
		for _, v := range f.Allowed() {
			fs.AllowedValues = append(fs.AllowedValues, v)
		}
	}
	if f.Default != nil && f.Kind == model.String {
		fs.Default = f.Default
	}
	return fs
}

var fieldType = map[model.Kind]framework.FieldType{
	model.String:  framework.TypeString,
	model.Bool:    framework.TypeBool,
	model.Seconds: framework.TypeDurationSecond,
	model.Words:   framework.TypeCommaStringSlice,
	model.List:    framework.TypeCommaStringSlice,
	model.Set:     framework.TypeCommaStringSlice,
	model.Pairs:   framework.TypeKVPairs,
	model.Int:     framework.TypeInt,
	model.Float:   framework.TypeFloat,
}

// schemaFor is the schema of the rows that may be written at scope.
func schemaFor(scope model.Scope) map[string]*framework.FieldSchema {
	out := map[string]*framework.FieldSchema{}
	for _, f := range model.Fields() {
		if f.In(scope) {
			out[f.Name] = schemaOf(f)
		}
	}
	return out
}

// applyFields copies into holder (a *model.Config or a *model.App) the
// rows held there that keep selects and the request carries. A field
// sent as "" returns to its default; for the optional ones
// (grant_type_in_query, expiry_skew, retry_lost_refresh, ...) that is the
// only way back, since their zero values are settings of their own.
func applyFields(holder any, where model.Holder, keep func(*model.Field) bool, req *logical.Request, d *framework.FieldData) error {
	for _, f := range model.Fields() {
		if f.Holder != where || !keep(f) {
			continue
		}
		if v, ok := d.GetOk(f.Name); ok {
			if err := f.Set(holder, v); err != nil {
				return &userError{msg: err.Error()}
			}
		}
		if f.Optional() && sentEmpty(req, f.Name) {
			f.Clear(holder)
		}
	}
	return nil
}

// readFields is what a read shows of the rows held in holder that keep
// selects: each value, with its default where it is unset; for a secret,
// whether it is set (<name>_set), or for secret pairs their names
// (extra_header_names); never a secret.
func readFields(holder any, where model.Holder, keep func(*model.Field) bool) map[string]interface{} {
	out := map[string]interface{}{}
	for _, f := range model.Fields() {
		if f.Holder != where || !keep(f) {
			continue
		}
		switch {
		case f.Secret && f.Kind == model.Pairs:
			out[f.NamesKey()] = sortedKeys(f.Get(holder).(map[string]string))
		case f.Secret:
			out[f.Name+"_set"] = f.IsSet(holder)
		default:
			out[f.Name] = shown(f, f.InEffect(holder, nil))
		}
	}
	return out
}

// shown is a value as the API shows it: durations in seconds, lists and
// maps never null, an unset optional as its kind's zero.
func shown(f *model.Field, v any) any {
	switch x := v.(type) {
	case time.Duration:
		return int64(x.Seconds())
	case []string:
		if x == nil {
			return []string{}
		}
	case map[string]string:
		if x == nil {
			return map[string]string{}
		}
	case nil:
		switch f.Kind {
		case model.Bool:
			return false
		case model.Seconds:
			return int64(0)
		}
	}
	return v
}

// showInEffect overwrites data with the settings in effect, preset
// defaults included.
func showInEffect(data map[string]interface{}, s *model.Settings) {
	for name, v := range s.InEffect() {
		f, _ := model.Lookup(name)
		data[name] = shown(f, v)
	}
}

func sortedKeys(m map[string]string) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
