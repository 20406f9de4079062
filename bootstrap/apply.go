package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
)

// Options change how Apply works.
type Options struct {
	// ReseedRefreshTokens writes refresh_token to credentials that already
	// hold one. Off by default: a vendor that rotates refresh tokens
	// (Penbox) has replaced the one in the file after the first use, and
	// writing the file's again would replace a live token with a dead one.
	ReseedRefreshTokens bool
	// Check reads each credential's token after writing it, and reports
	// its expiry (never the token).
	Check bool
	// Out receives one line per action. Secrets are scrubbed from it.
	Out io.Writer
}

// Apply makes Vault match the plan: plugin registered, mount enabled at the
// plan's version, policies written, apps and their connections written,
// credentials written. It stops at the
// first failure and says which step failed; steps already done stay done,
// and running it again continues from there.
func Apply(ctx context.Context, c *api.Client, p *Plan, o Options) error {
	if o.Out == nil {
		o.Out = io.Discard
	}
	a := &applier{ctx: ctx, c: c, p: p, o: o}
	err := a.run()
	if err != nil {
		// Vault's errors quote requests only by path, but scrub anyway.
		return errors.New(p.Redact(err.Error()))
	}
	return nil
}

type applier struct {
	ctx context.Context
	c   *api.Client
	p   *Plan
	o   Options
}

func (a *applier) say(format string, args ...interface{}) {
	// Progress only: an output that cannot be written must not stop an
	// apply halfway, so the write error is dropped.
	_, _ = fmt.Fprintln(a.o.Out, a.p.Redact(fmt.Sprintf(format, args...)))
}

func (a *applier) run() error {
	if a.p.Plugin != nil {
		if err := a.register(); err != nil {
			return fmt.Errorf("registering plugin %s %s: %w", a.p.Plugin.Name, a.p.Plugin.Version, err)
		}
	}
	if err := a.mount(); err != nil {
		return fmt.Errorf("mount %s/: %w", a.p.Mount, err)
	}
	if a.p.Policies {
		if err := a.policies(); err != nil {
			return err
		}
	}
	// Apps first: a credential of the file may name one (app=...), and
	// a connection needs its app.
	written, connections, err := a.apps()
	if err != nil {
		return err
	}
	for _, cred := range a.p.Credentials {
		if err := a.credential(cred); err != nil {
			return fmt.Errorf("config/%s: %w", cred.Name, err)
		}
		written = append(written, cred.Name)
	}
	if a.o.Check {
		for _, name := range written {
			if err := a.check(name); err != nil {
				return fmt.Errorf("token/%s: %w", name, err)
			}
		}
	}
	if len(a.p.Apps) == 0 {
		a.say("done: %d credential(s) in %s/", len(a.p.Credentials), a.p.Mount)
	} else {
		a.say("done: %d credential(s), %d app(s) with %d connection(s) in %s/", len(a.p.Credentials), len(a.p.Apps), connections, a.p.Mount)
	}
	return nil
}

// register puts the binary into the catalog under its version, unless that
// version is already registered with the same sha256 and command.
func (a *applier) register() error {
	pl := a.p.Plugin
	cur, err := a.c.Sys().GetPluginWithContext(a.ctx, &api.GetPluginInput{Name: pl.Name, Type: api.PluginTypeSecrets, Version: pl.Version})
	if err != nil && !isStatus(err, http.StatusNotFound) {
		return err
	}
	what := "registered"
	if cur != nil && err == nil {
		if cur.SHA256 == pl.SHA256 && cur.Command == pl.Command {
			a.say("plugin %s %s: already registered (command %s, sha256 %s)", pl.Name, pl.Version, pl.Command, pl.SHA256)
			return nil
		}
		what = fmt.Sprintf("re-registered (was command %s, sha256 %s)", cur.Command, cur.SHA256)
	}
	if err := a.c.Sys().RegisterPluginWithContext(a.ctx, &api.RegisterPluginInput{
		Name:    pl.Name,
		Type:    api.PluginTypeSecrets,
		Command: pl.Command,
		SHA256:  pl.SHA256,
		Version: pl.Version,
	}); err != nil {
		return err
	}
	a.say("plugin %s %s: %s: command %s, sha256 %s", pl.Name, pl.Version, what, pl.Command, pl.SHA256)
	return nil
}

// mount enables the plugin, or moves an existing mount to the plan's plugin
// version. Credentials and cached tokens live in the mount's storage, so an
// upgrade keeps them.
func (a *applier) mount() error {
	name, version := DefaultPluginName, ""
	if a.p.Plugin != nil {
		name, version = a.p.Plugin.Name, a.p.Plugin.Version
	}
	mounts, err := a.c.Sys().ListMountsWithContext(a.ctx)
	if err != nil {
		return err
	}
	m, ok := mounts[a.p.Mount+"/"]
	if !ok {
		if err := a.c.Sys().MountWithContext(a.ctx, a.p.Mount, &api.MountInput{
			Type:        name,
			Description: a.p.Description,
			Config:      api.MountConfigInput{PluginVersion: version},
		}); err != nil {
			return err
		}
		a.say("mount %s/: enabled (plugin %s %s)", a.p.Mount, name, orUnversioned(version))
		return nil
	}
	if m.Type != name {
		return fmt.Errorf("already in use by a %q mount, not plugin %q; choose another mount in the file", m.Type, name)
	}
	if version == "" || m.PluginVersion == version {
		a.say("mount %s/: already enabled (plugin %s %s, running %s)", a.p.Mount, name, orUnversioned(m.PluginVersion), orUnversioned(m.RunningVersion))
		return nil
	}
	if _, err := a.c.Logical().WriteWithContext(a.ctx, "sys/mounts/"+a.p.Mount+"/tune", map[string]interface{}{"plugin_version": version}); err != nil {
		return fmt.Errorf("tuning plugin_version to %s: %w", version, err)
	}
	if _, err := a.c.Sys().ReloadPluginWithContext(a.ctx, &api.ReloadPluginInput{Mounts: []string{a.p.Mount}}); err != nil {
		return fmt.Errorf("plugin_version is now %s, but reloading the mount failed (run sys/plugins/reload/backend for it): %w", version, err)
	}
	if err := a.waitForMount(30 * time.Second); err != nil {
		return err
	}
	a.say("mount %s/: upgraded plugin %s %s -> %s and reloaded; credentials and cached tokens kept", a.p.Mount, name, orUnversioned(m.PluginVersion), version)
	return nil
}

// waitForMount polls until a reloaded mount answers again.
func (a *applier) waitForMount(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		_, err := a.c.Logical().ListWithContext(a.ctx, a.p.Mount+"/config")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the mount did not answer within %s of the reload: %w", limit, err)
		}
		select {
		case <-a.ctx.Done():
			return a.ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func orUnversioned(v string) string {
	if v == "" {
		return "(unversioned)"
	}
	return v
}

func (a *applier) policies() error {
	op, err := OperatorPolicy(a.p.Mount)
	if err != nil {
		return err
	}
	if err := a.policy(OperatorPolicyNameFor(a.p.Mount), op); err != nil {
		return err
	}
	for _, cred := range a.p.Credentials {
		rp, err := ReaderPolicy(a.p.Mount, cred.Name)
		if err != nil {
			return err
		}
		if err := a.policy(ReaderPolicyNameFor(a.p.Mount, cred.Name), rp); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) policy(name, rules string) error {
	cur, err := a.c.Sys().GetPolicyWithContext(a.ctx, name)
	if err != nil {
		return fmt.Errorf("policy %s: %w", name, err)
	}
	if cur == rules {
		a.say("policy %s: unchanged", name)
		return nil
	}
	if err := a.c.Sys().PutPolicyWithContext(a.ctx, name, rules); err != nil {
		return fmt.Errorf("policy %s: %w", name, err)
	}
	if cur == "" {
		a.say("policy %s: written", name)
	} else {
		a.say("policy %s: updated", name)
	}
	return nil
}

// apps writes every app and its connections. It returns the names of the
// connections it wrote, whose tokens -check reads, and how many the file
// lists.
func (a *applier) apps() ([]string, int, error) {
	var written []string
	listed := 0
	for _, app := range a.p.Apps {
		grant, err := a.app(app)
		if err != nil {
			return nil, 0, fmt.Errorf("apps/%s: %w", app.Name, err)
		}
		for _, conn := range app.Connections {
			ok, err := a.connection(conn, grant)
			if err != nil {
				return nil, 0, fmt.Errorf("config/%s: %w", conn.Name, err)
			}
			if ok {
				written = append(written, conn.Name)
			}
		}
		listed += len(app.Connections)
	}
	return written, listed, nil
}

// app writes apps/<name> and returns the grant type its connections use.
// As for credentials, a write carries only the file's fields and writing
// the same values again changes nothing (reported "unchanged"); a new
// client_secret reaches every connection at once, and the plugin keeps the
// previous one for the app's client_secret_overlap, which the output says.
func (a *applier) app(app App) (string, error) {
	path := a.p.Mount + "/apps/" + app.Name
	cur, err := a.c.Logical().ReadWithContext(a.ctx, path)
	if err != nil {
		return "", err
	}
	if _, err := a.c.Logical().WriteWithContext(a.ctx, path, app.Body); err != nil {
		return "", err
	}
	after, err := a.c.Logical().ReadWithContext(a.ctx, path)
	if err != nil {
		return "", err
	}
	if after == nil {
		return "", errors.New("written, but reading it back found nothing")
	}
	rotated := ""
	if cur != nil {
		was, _ := cur.Data["previous_client_secret_until"].(string)
		now, _ := after.Data["previous_client_secret_until"].(string)
		if now != "" && now != was {
			rotated = now
		}
	}
	a.say("apps/%s: %s: %s", app.Name, outcome(cur, app.Body, rotated == ""), describe(app.Shown))
	if rotated != "" {
		a.say("apps/%s: client_secret rotated for every connection; the previous one is still tried once on invalid_client until %s", app.Name, rotated)
	}
	grant, _ := after.Data["grant_type"].(string)
	return grant, nil
}

// outcome is what a write did, judged by the read before it: "created"
// where there was nothing, "unchanged" where the read already showed
// everything the write carried (and same, the caller's own check, holds),
// else "updated".
func outcome(cur *api.Secret, body map[string]interface{}, same bool) string {
	switch {
	case cur == nil:
		return "created"
	case same && sameAsRead(body, cur.Data) == "":
		return "unchanged"
	}
	return "updated"
}

// connection writes config/<app>/<account>, as credential does. A
// connection of a refresh-token app that the file gives no refresh_token
// and that Vault does not hold yet is not written: there is nothing to
// refresh with until the account is connected with authorize/ and
// exchange/, and the output says so. It reports whether it wrote.
func (a *applier) connection(conn Credential, grant string) (bool, error) {
	if g, known := model.GrantOf(grant); known && g.HoldsRefreshToken && conn.Body["refresh_token"] == nil {
		cur, err := a.c.Logical().ReadWithContext(a.ctx, a.p.Mount+"/config/"+conn.Name)
		if err != nil {
			return false, err
		}
		if cur == nil {
			a.say("config/%s: not connected yet, so not written: connect the account with authorize/%s and exchange/%s (or give refresh_token in the file), then run again",
				conn.Name, conn.Name, conn.Name)
			return false, nil
		}
	}
	return true, a.credential(conn)
}

// credential writes config/<name>. A write carries only the file's fields,
// and the plugin keeps fields a write leaves out, so fields removed from the
// file keep their values in Vault (set one to "" to return it to the
// preset's default). Writing the same values again keeps the cached token.
func (a *applier) credential(cred Credential) error {
	path := a.p.Mount + "/config/" + cred.Name
	cur, err := a.c.Logical().ReadWithContext(a.ctx, path)
	if err != nil {
		return err
	}
	body := make(map[string]interface{}, len(cred.Body))
	for k, v := range cred.Body {
		body[k] = v
	}
	shown := make(map[string]string, len(cred.Shown))
	for k, v := range cred.Shown {
		shown[k] = v
	}
	if _, ok := body["refresh_token"]; ok && cur != nil && !a.o.ReseedRefreshTokens {
		if set, _ := cur.Data["refresh_token_set"].(bool); set {
			delete(body, "refresh_token")
			shown["refresh_token"] = "<kept: already set, and the vendor may have rotated it; -reseed-refresh-tokens replaces it>"
		}
	}
	// Secrets are sent on every run, since a read cannot tell whether one
	// changed; the plugin keeps an entry a write leaves the same.
	if _, err := a.c.Logical().WriteWithContext(a.ctx, path, body); err != nil {
		return err
	}
	same := true
	if cur != nil {
		// A new secret drops the cached token: the one change a read
		// can see of a secret whose value changed.
		after, err := a.c.Logical().ReadWithContext(a.ctx, path)
		if err != nil {
			return err
		}
		same = after != nil && fmt.Sprint(after.Data["token_expires_at"]) == fmt.Sprint(cur.Data["token_expires_at"])
	}
	a.say("config/%s: %s: %s", cred.Name, outcome(cur, body, same), describe(shown))
	return nil
}

// describe lists the fields of a write for output, in name order.
func describe(shown map[string]string) string {
	keys := make([]string, 0, len(shown))
	for k := range shown {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+shown[k])
	}
	return strings.Join(parts, " ")
}

// check reads a token to prove the credential works, reports when it
// expires, and revokes the lease the read made (which does not revoke the
// token at the vendor: other readers share it).
func (a *applier) check(name string) error {
	s, err := a.c.Logical().ReadWithContext(a.ctx, a.p.Mount+"/token/"+name)
	if err != nil {
		return err
	}
	if s == nil {
		return errors.New("no answer")
	}
	if s.LeaseID != "" {
		_ = a.c.Sys().RevokeWithContext(a.ctx, s.LeaseID)
	}
	typ, _ := s.Data["token_type"].(string)
	exp, _ := s.Data["expires_at"].(string)
	scope, _ := s.Data["scope"].(string)
	a.say("token/%s: ok: token_type %s, expires_at %s, scope %q, lease %ds", name, typ, exp, scope, s.LeaseDuration)
	for _, w := range s.Warnings {
		a.say("token/%s: warning: %s", name, w)
	}
	return nil
}

func isStatus(err error, code int) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == code
}
