// Package bootstrap stands the vendoroauth plugin up in an existing Vault
// from a declarative file: it registers the plugin binary (sha256 and
// version), enables or upgrades the mount, writes the policies, writes each
// app (one OAuth client shared by many connected accounts) with its
// connections, and writes each self-contained credential's config.
//
// Secrets never appear in the file or on a command line: the file names an
// environment variable or a file for each of them, and they travel to Vault
// only in the body of an HTTPS request. Everything is idempotent: running
// the same file again changes nothing that is already right.
package bootstrap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// Defaults for the plugin section.
const (
	DefaultPluginName    = "vendoroauth"
	DefaultPluginCommand = "vault-plugin-secrets-vendoroauth"
)

// File is the declarative file, as JSON. See credentials.example.json.
type File struct {
	// Mount is where the plugin is enabled; "vendoroauth" if empty.
	Mount string `json:"mount"`
	// Description is the mount's description when it is enabled.
	Description string `json:"description"`
	// Plugin, if present, is registered in the catalog, and the mount is
	// enabled with (or upgraded to) its version.
	Plugin *Plugin `json:"plugin"`
	// Policies writes the operator policy and one reader policy per
	// credential.
	Policies bool `json:"policies"`
	// Credentials maps a credential name to its config/<name> fields.
	Credentials map[string]map[string]json.RawMessage `json:"credentials"`
	// Apps maps an app name to its apps/<app> fields, and, under
	// "connections", each connected account's config/<app>/<account>
	// fields.
	Apps map[string]map[string]json.RawMessage `json:"apps"`
}

// connectionsKey is the field of an app in the file that holds its
// connections; it is not sent to apps/<app>.
const connectionsKey = "connections"

// Plugin says which plugin binary to register.
type Plugin struct {
	// Name in the catalog; "vendoroauth" if empty.
	Name string `json:"name"`
	// Version the binary was built with (v1.2.3); Vault refuses a binary
	// that reports another.
	Version string `json:"version"`
	// Command is the binary's file name in Vault's plugin_directory;
	// the base name of Binary, else vault-plugin-secrets-vendoroauth.
	Command string `json:"command"`
	// Binary is a local copy of the binary, to compute its sha256.
	Binary string `json:"binary"`
	// SHA256 of the binary, when there is no local copy (e.g. from the
	// release's SHA256SUMS).
	SHA256 string `json:"sha256"`
}

// What each field is comes from the plugin's own table of fields
// (backend/model), not from a copy that could drift from it.
var (
	// secretFields must come from an environment variable or a file: an
	// inline value would put the secret into the declarative file.
	secretFields = fieldSet(func(f *model.Field) bool { return f.Secret && f.Kind != model.Pairs })
	// mapFields are objects of name to value; secretMaps' values are
	// secrets (extra_headers).
	mapFields  = fieldSet(func(f *model.Field) bool { return f.Kind == model.Pairs })
	secretMaps = fieldSet(func(f *model.Field) bool { return f.Secret && f.Kind == model.Pairs })
	// connectionOnly are the fields of one connected account, never of an
	// app.
	connectionOnly = fieldSet(func(f *model.Field) bool { return f.In(model.OnConnection) && !f.In(model.OnApp) })
	// appOwned are the fields that belong to an app, never to one of its
	// connections: the plugin refuses them on config/<app>/<account>, and
	// the tool says so before anything is sent.
	appOwned = fieldSet(func(f *model.Field) bool { return !f.In(model.OnConnection) })
)

func fieldSet(keep func(*model.Field) bool) map[string]bool {
	out := map[string]bool{}
	for _, name := range model.Names(keep) {
		out[name] = true
	}
	return out
}

// Plan is a loaded file with every secret read, ready to apply.
type Plan struct {
	Mount       string
	Description string
	Plugin      *Plugin
	Policies    bool
	Credentials []Credential
	// Apps are written before the credentials, each followed by its
	// connections.
	Apps []App
	// secrets holds every secret value, so output can be scrubbed of
	// them whatever happens.
	secrets []string
}

// Credential is one config/<name> write.
type Credential struct {
	Name string
	// Body is the write's body, secrets included.
	Body map[string]interface{}
	// Shown describes each field for output, secrets by their source.
	Shown map[string]string
}

// App is one apps/<name> write and the connections written after it.
type App struct {
	Name string
	// Body is the write's body, secrets included; Shown describes each
	// field for output, secrets by their source.
	Body  map[string]interface{}
	Shown map[string]string
	// Connections are config/<app>/<account> writes; each Name is
	// "<app>/<account>".
	Connections []Credential
}

// SecretRef names where a secret comes from.
type SecretRef struct {
	Env  string `json:"env"`
	File string `json:"file"`
}

func (r SecretRef) String() string {
	if r.Env != "" {
		return "<env " + r.Env + ">"
	}
	return "<file " + r.File + ">"
}

// Load reads the declarative file at path and every secret it refers to.
// Every problem is reported, each naming the credential, the field and the
// missing variable or file, before anything is sent to Vault.
func Load(path string, getenv func(string) (string, bool)) (*Plan, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(raw, filepath.Dir(path), getenv)
}

// Parse is Load for a file's contents; relative secret files are found
// from dir.
func Parse(raw []byte, dir string, getenv func(string) (string, bool)) (*Plan, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("declarative file: %w", err)
	}
	if dec.More() {
		return nil, errors.New("declarative file: more than one JSON value")
	}
	p := &Plan{Mount: strings.Trim(f.Mount, "/"), Description: f.Description, Policies: f.Policies}
	if p.Mount == "" {
		p.Mount = DefaultMount
	}
	var problems []string
	if !mountPattern.MatchString(p.Mount) {
		problems = append(problems, fmt.Sprintf("mount %q is not a plain mount path", f.Mount))
	}
	if f.Plugin != nil {
		pl, err := checkPlugin(*f.Plugin, dir)
		if err != nil {
			problems = append(problems, err.Error())
		}
		p.Plugin = pl
	}

	r := resolver{dir: dir, getenv: getenv}
	for _, name := range sortedKeys(f.Credentials) {
		if !namePattern.MatchString(name) {
			problems = append(problems, fmt.Sprintf("credential %q: names use letters, digits, '_', '-' and '.', starting and ending with a letter or digit", name))
			continue
		}
		c := Credential{Name: name, Body: map[string]interface{}{}, Shown: map[string]string{}}
		problems = append(problems, r.fields(fmt.Sprintf("credential %q", name), f.Credentials[name], c.Body, c.Shown, unknownAt(model.OnCredential, nil))...)
		p.Credentials = append(p.Credentials, c)
	}
	for _, name := range sortedKeys(f.Apps) {
		app, probs := r.app(name, f.Apps[name])
		problems = append(problems, probs...)
		if app != nil {
			p.Apps = append(p.Apps, *app)
		}
	}
	// Longest first, so a secret inside another is not left half-shown.
	p.secrets = r.secrets
	sort.Slice(p.secrets, func(i, j int) bool { return len(p.secrets[i]) > len(p.secrets[j]) })
	if len(problems) > 0 {
		return nil, &LoadError{Problems: problems}
	}
	return p, nil
}

// LoadError lists everything wrong with a declarative file.
type LoadError struct{ Problems []string }

func (e *LoadError) Error() string {
	return "the declarative file cannot be applied; nothing was changed:\n  " + strings.Join(e.Problems, "\n  ")
}

var shaPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

func checkPlugin(pl Plugin, dir string) (*Plugin, error) {
	if pl.Name == "" {
		pl.Name = DefaultPluginName
	}
	if pl.Version == "" {
		return nil, errors.New("plugin: version is required (the version the binary was built with, e.g. v0.1.0)")
	}
	if !strings.HasPrefix(pl.Version, "v") {
		return nil, fmt.Errorf("plugin: version %q must look like v1.2.3", pl.Version)
	}
	if pl.Command == "" {
		pl.Command = DefaultPluginCommand
		if pl.Binary != "" {
			pl.Command = filepath.Base(pl.Binary)
		}
	}
	if strings.ContainsRune(pl.Command, '/') {
		return nil, fmt.Errorf("plugin: command %q must be a file name in Vault's plugin_directory", pl.Command)
	}
	pl.SHA256 = strings.ToLower(pl.SHA256)
	if pl.Binary != "" {
		bin := pl.Binary
		if !filepath.IsAbs(bin) {
			bin = filepath.Join(dir, bin)
		}
		sum, err := fileSHA256(bin)
		if err != nil {
			return nil, fmt.Errorf("plugin: binary: %w", err)
		}
		if pl.SHA256 != "" && pl.SHA256 != sum {
			return nil, fmt.Errorf("plugin: sha256 %s does not match binary %s (%s)", pl.SHA256, bin, sum)
		}
		pl.SHA256 = sum
	}
	if !shaPattern.MatchString(pl.SHA256) {
		return nil, errors.New("plugin: give binary (a local copy of the plugin) or sha256 (64 hex digits)")
	}
	return &pl, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }() // read-only
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// segmentPattern is one segment of an app's or a connection's name, as the
// plugin accepts it: letters, digits and '_', with '-', '.' and '@' inside
// (an account may be named by an e-mail address). It has no glob
// characters, so such a name is safe in a policy path.
var segmentPattern = regexp.MustCompile(`^\w(?:[\w.@-]*\w)?$`)

const segmentRule = "names use letters, digits and '_', with '-', '.' and '@' inside, starting and ending with a letter or digit"

// app reads one app of the file and its connections.
func (r *resolver) app(name string, raw map[string]json.RawMessage) (*App, []string) {
	where := fmt.Sprintf("app %q", name)
	if !segmentPattern.MatchString(name) {
		return nil, []string{where + ": " + segmentRule}
	}
	app := &App{Name: name, Body: map[string]interface{}{}, Shown: map[string]string{}}
	problems := r.fields(where, raw, app.Body, app.Shown, unknownAt(model.OnApp, func(field string) string {
		switch {
		case field == connectionsKey:
			return "-" // read below
		case field == "app":
			return "is not a field of an app"
		case connectionOnly[field]:
			return `belongs to one connected account: put it under "connections": {"<account>": {...}}`
		}
		return ""
	}))
	conns := map[string]map[string]json.RawMessage{}
	if c, ok := raw[connectionsKey]; ok {
		if err := json.Unmarshal(c, &conns); err != nil {
			return app, append(problems, where+`: connections must be an object of account name to its fields, such as {"acme": {"refresh_token": {"file": "..."}}}`)
		}
	}
	for _, account := range sortedKeys(conns) {
		cwhere := fmt.Sprintf("connection %q of app %q", account, name)
		if !segmentPattern.MatchString(account) {
			problems = append(problems, cwhere+": "+segmentRule)
			continue
		}
		c := Credential{Name: name + "/" + account, Body: map[string]interface{}{}, Shown: map[string]string{}}
		problems = append(problems, r.fields(cwhere, conns[account], c.Body, c.Shown, unknownAt(model.OnConnection, func(field string) string {
			switch {
			case appOwned[field]:
				return fmt.Sprintf("belongs to the app: put it in app %q itself, where every connection shares it", name)
			case field == "app":
				return "is implied: the connection is listed under its app"
			}
			return ""
		}))...)
		app.Connections = append(app.Connections, c)
	}
	return app, problems
}

// fields resolves the fields of one entry of the file into body and shown,
// and returns a problem for each that cannot be. refuse, if set, says why a
// field has no place in this entry ("" if it has; "-" skips it silently).
func (r *resolver) fields(where string, raw map[string]json.RawMessage, body map[string]interface{}, shown map[string]string, refuse func(string) string) []string {
	var problems []string
	for _, field := range sortedKeys(raw) {
		if refuse != nil {
			if why := refuse(field); why == "-" {
				continue
			} else if why != "" {
				problems = append(problems, fmt.Sprintf("%s: %s %s", where, field, why))
				continue
			}
		}
		val, s, err := r.field(field, raw[field])
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %s: %s", where, field, err))
			continue
		}
		body[field], shown[field] = val, s
	}
	return problems
}

// unknownAt adds to refuse (which may be nil) what the plugin itself
// would refuse: a field that is not one of its fields anywhere, named with
// the fields it takes there, so that a typo ("provder") is found before
// anything is sent, not after earlier writes succeeded.
func unknownAt(scope model.Scope, refuse func(string) string) func(string) string {
	return func(field string) string {
		if refuse != nil {
			if why := refuse(field); why != "" {
				return why
			}
		}
		if f, known := model.Lookup(field); !known || !f.In(scope) {
			return "is not a field of the plugin here; it takes: " + strings.Join(model.Names(func(f *model.Field) bool { return f.In(scope) }), ", ")
		}
		return ""
	}
}

// resolver reads secret references.
type resolver struct {
	dir     string
	getenv  func(string) (string, bool)
	secrets []string
}

// field turns one field of the file into the value to send and the text to
// show for it.
func (r *resolver) field(field string, raw json.RawMessage) (interface{}, string, error) {
	if mapFields[field] {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, "", errors.New("must be an object of name to value")
		}
		out := make(map[string]interface{}, len(m))
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var shown []string
		for _, k := range keys {
			v, s, err := r.value(m[k], secretMaps[field])
			if err != nil {
				return nil, "", fmt.Errorf("%s: %w", k, err)
			}
			if _, ok := v.(string); !ok {
				return nil, "", fmt.Errorf("%s: must be a string", k)
			}
			out[k] = v
			shown = append(shown, k+"="+s)
		}
		return out, "{" + strings.Join(shown, ", ") + "}", nil
	}
	return r.value(raw, secretFields[field])
}

// value decodes a plain JSON value or a secret reference. A secret must be
// a reference.
func (r *resolver) value(raw json.RawMessage, secret bool) (interface{}, string, error) {
	var ref SecretRef
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
		if err := dec.Decode(&ref); err != nil || (ref.Env == "") == (ref.File == "") {
			return nil, "", errors.New(`a reference is {"env": "VARIABLE"} or {"file": "/path"}, exactly one of them`)
		}
		v, err := r.read(ref)
		if err != nil {
			return nil, "", err
		}
		return v, ref.String(), nil
	}
	if secret {
		return nil, "", errors.New(`is a secret: give {"env": "VARIABLE"} or {"file": "/path"}, not the value itself`)
	}
	var v interface{}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, "", err
	}
	switch x := v.(type) {
	case string, bool, float64:
		return x, fmt.Sprint(x), nil
	case []interface{}:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, "", errors.New("a list must hold strings")
			}
			parts = append(parts, s)
		}
		return x, strings.Join(parts, ","), nil
	}
	return nil, "", errors.New("must be a string, number, boolean, list of strings or a reference")
}

// vaultOwnFiles are the base names of the files Vault's, OpenBao's and
// their agents' tokens are kept in: the CLI's ~/.vault-token and the
// token files this repository's Agent and Proxy steps write.
var vaultOwnFiles = map[string]bool{".vault-token": true, "vault-token": true, ".bao-token": true, "bao-token": true}

// ownSource says why ref names a source of the tool's own Vault
// credentials rather than of a vendor's secret, or "" if it does not.
// Whoever may change the file (a pull request to a GitOps repository) but
// not the pipeline's environment must not be able to send the token that
// runs the tool to a token_url of their choosing: VAULT_* and BAO_*
// variables configure the Vault client (VAULT_TOKEN, BAO_TOKEN, and the
// paths of its keys), and token files hold a Vault token.
func ownSource(ref SecretRef, path string) string {
	if ref.Env != "" {
		up := strings.ToUpper(ref.Env)
		if strings.HasPrefix(up, "VAULT_") || strings.HasPrefix(up, "BAO_") {
			return fmt.Sprintf("environment variable %s configures the Vault client this tool runs with (VAULT_* and BAO_* are Vault's own)", ref.Env)
		}
		return ""
	}
	names := []string{filepath.Base(path)}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		names = append(names, filepath.Base(real))
	}
	for _, n := range names {
		if vaultOwnFiles[n] {
			return fmt.Sprintf("file %s is a Vault token file (%s)", ref.File, n)
		}
	}
	return ""
}

// read returns the secret a reference points at. Trailing newlines are
// dropped: files written by echo or by secret managers usually end in one.
func (r *resolver) read(ref SecretRef) (string, error) {
	path := ref.File
	if path != "" && !filepath.IsAbs(path) {
		path = filepath.Join(r.dir, path)
	}
	if why := ownSource(ref, path); why != "" {
		return "", fmt.Errorf("%s: a secret may come from any other environment variable or file, never from Vault's own token", why)
	}
	var v string
	if ref.Env != "" {
		s, ok := r.getenv(ref.Env)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", ref.Env)
		}
		v = s
	} else {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("reading secret file: %w", err)
		}
		v = string(b)
	}
	v = strings.TrimRight(v, "\r\n")
	if strings.TrimSpace(v) == "" {
		return "", fmt.Errorf("%s is empty", strings.Trim(ref.String(), "<>"))
	}
	r.secrets = append(r.secrets, v)
	return v, nil
}

// RefuseVaultToken returns an error if any secret of the plan is token,
// the Vault token the tool runs with, however the file reached it (an
// Agent's sink file under another name, a variable that copies
// VAULT_TOKEN): the file must never send it to a vendor. The error names
// no value.
func (p *Plan) RefuseVaultToken(token string) error {
	if token == "" {
		return nil
	}
	for _, s := range p.secrets {
		if s == token {
			return &LoadError{Problems: []string{"a secret of the file is the Vault token this tool runs with: a secret may come from any environment variable or file except Vault's own token"}}
		}
	}
	return nil
}

// Redact replaces every secret the plan holds with "<redacted>".
func (p *Plan) Redact(s string) string {
	for _, sec := range p.secrets {
		s = strings.ReplaceAll(s, sec, "<redacted>")
	}
	return s
}
