package model

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// An app's webhooks: notify_url is where its feed's events go, notify_secret
// signs them (Standard Webhooks, HMAC-SHA256). The secret is bound, when it
// is written, to the notify_url it was written with (NotifyBound), as every
// other secret is bound to where it was written for: a writer who may
// change notify_url but does not know the secret cannot have deliveries,
// signed with it, sent to a host of their choosing.

// WebhookSecretPrefix starts a Standard Webhooks signing secret.
const WebhookSecretPrefix = "whsec_"

// Bounds of a signing secret's key, in bytes, as the Standard Webhooks
// specification asks.
const (
	minWebhookKey = 24
	maxWebhookKey = 64
)

// NotifyRef names the notify secret in a binding check.
const NotifyRef = "notify_secret"

// validateNotify checks an app's webhook settings.
func (a *App) validateNotify() error {
	if a.NotifyURL != "" {
		if err := validateURL("notify_url", a.NotifyURL); err != nil {
			return err
		}
	}
	switch {
	case a.NotifyURL != "" && a.NotifySecret == "":
		return fmt.Errorf("notify_url needs notify_secret, the Standard Webhooks secret the receiver verifies signatures with (whsec_ followed by 24 to 64 random bytes in base64)")
	case a.NotifyURL == "" && a.NotifySecret != "":
		return fmt.Errorf("notify_secret is set without notify_url: give notify_url, or set notify_secret=\"\" too")
	}
	if a.NotifySecret != "" {
		return ValidateWebhookSecret(a.NotifySecret)
	}
	return nil
}

// ValidateWebhookSecret checks a Standard Webhooks signing secret: whsec_
// and the base64 of 24 to 64 bytes. It never quotes the secret.
func ValidateWebhookSecret(secret string) error {
	raw, ok := strings.CutPrefix(secret, WebhookSecretPrefix)
	if !ok {
		return fmt.Errorf("notify_secret must start with %s and hold 24 to 64 random bytes in base64 (for example whsec_$(openssl rand -base64 32))", WebhookSecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return fmt.Errorf("notify_secret: what follows %s is not standard base64", WebhookSecretPrefix)
	}
	if len(key) < minWebhookKey || len(key) > maxWebhookKey {
		return fmt.Errorf("notify_secret holds %d bytes; the Standard Webhooks specification asks for 24 to 64", len(key))
	}
	return nil
}

// NotifyDestination is where a notify secret written with notify_url may
// sign deliveries: that URL, answered by a server the system's CAs vouch
// for, with no extra headers.
func NotifyDestination(notifyURL string) Destination {
	return Destination{Endpoints: []string{notifyURL}, Trust: SystemTrust}
}

// BindNotify binds the app's notify secret to its notify_url, after a write
// that gave the secret.
func (a *App) BindNotify() {
	if a.NotifySecret == "" {
		a.NotifyBound = nil
		return
	}
	d := NotifyDestination(a.NotifyURL)
	a.NotifyBound = &d
}

// AppDestinationChanges lists the fields held by the app itself (not its
// client's Config) that decide where its secrets go and differ between a
// and o, as "field=new (was old)", from the rows' roles: today notify_url.
func (a *App) AppDestinationChanges(o *App) []string {
	var out []string
	for _, f := range fields {
		if f.Holder != InApp || !f.Decides() || f.Equal(a, o) {
			continue
		}
		out = append(out, fmt.Sprintf("%s=%s (was %s)", f.Name, displayValue(f.Value(o)), displayValue(f.Value(a))))
	}
	return out
}

// AppSecretsSet names the secrets held by the app itself (not its client's
// Config) that hold a value: today notify_secret.
func (a *App) AppSecretsSet() []string {
	var out []string
	for _, f := range fields {
		if f.Holder == InApp && f.Secret && f.IsSet(a) {
			out = append(out, f.Name)
		}
	}
	return out
}

// displayValue shows a field's value in a message; a URL without its
// query or user info.
func displayValue(v any) string {
	s, ok := v.(string)
	if !ok {
		return fmt.Sprint(v)
	}
	if s == "" {
		return `""`
	}
	if strings.Contains(s, "://") {
		return DisplayURL(s)
	}
	return s
}

// ValidateNotifyURL accepts https URLs, and http only on a loopback host,
// without credentials or a fragment: the rule of token endpoints.
func ValidateNotifyURL(raw string) error { return validateURL("notify_url", raw) }
