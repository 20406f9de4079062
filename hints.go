package vendoroauth

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/model"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/backend/tokenclient"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/providers"
)

// The words a user reads about a failure, with the next step spelled out
// against the mount the request came through (a plugin mounted at
// oauth/prod/ must not tell its users to write to vendoroauth/). backend
// returns typed errors with the facts; this file turns them into advice.

// mountOf is the request's mount path with its trailing slash, for
// commands in messages.
func mountOf(req *logical.Request) string {
	if req == nil || req.MountPoint == "" {
		return "vendoroauth/"
	}
	return req.MountPoint
}

// describe is err's message with what to do about it, naming paths under
// mount.
func describe(mount string, err error) string {
	var (
		gerr *backend.GrantError
		berr *backend.BackoffError
		rerr *backend.ReauthError
		serr *backend.StaticExpiredError
		uerr *backend.UnknownOutcomeError
		cerr *backend.ConfigError
		terr *backend.StateError
		kerr *backend.ShortTokenError
		herr *backend.HeldError
		xerr *backend.StaticRefreshError
		lerr *backend.LeaseEndedError
		aerr *backend.AppError
	)
	var ierr *backend.InputError
	switch {
	case errors.As(err, &ierr):
		return strings.ReplaceAll(ierr.Msg, backend.MountPlaceholder, mount)
	case errors.As(err, &berr):
		return fmt.Sprintf("%s (not calling the vendor again before %s)", describe(mount, berr.Last), berr.RetryAt.UTC().Format(time.RFC3339))
	case errors.As(err, &rerr):
		return rerr.Error() + "; to fix: " + reauthHint(mount, rerr)
	case errors.As(err, &serr):
		return fmt.Sprintf("%s; to mint a new one: %s (vault write %sconfig/%s access_token=... ttl=...)", serr.Error(), serr.Hint, mount, serr.Name)
	case errors.As(err, &xerr):
		return xerr.Error()
	case errors.As(err, &uerr):
		return fmt.Sprintf("%s: run vault write -f %srefresh/%s to try once, or write a new refresh_token to %sconfig/%s", uerr.Error(), mount, uerr.Name, mount, uerr.Name)
	case errors.As(err, &aerr):
		return fmt.Sprintf("%s; create it with vault write %sapps/%s ..., or delete the connection", aerr.Error(), mount, aerr.App)
	case errors.As(err, &cerr):
		return fmt.Sprintf("%s; fix it with vault write %sconfig/%s", cerr.Error(), mount, cerr.Name)
	case errors.As(err, &terr):
		return fmt.Sprintf("%s; start again with vault write %sauthorize/%s", terr.Error(), mount, terr.Name)
	case errors.As(err, &kerr):
		return fmt.Sprintf("%s; lower expiry_skew in %sconfig/%s", kerr.Error(), mount, kerr.Name)
	case errors.As(err, &herr):
		return herr.Error()
	case errors.As(err, &lerr):
		return fmt.Sprintf("%s; read %stoken/%s again for the current one", lerr.Error(), mount, lerr.Name)
	case errors.As(err, &gerr):
		if h := grantHint(mount, gerr); h != "" {
			return gerr.Error() + "; to fix: " + h
		}
		return gerr.Error()
	case backend.IsNotFound(err):
		return "no such credential"
	}
	return err.Error()
}

// reauthHint says how to give a credential a live refresh token again:
// each flow it has, then a refresh token written by hand.
func reauthHint(mount string, e *backend.ReauthError) string {
	var ways []string
	if e.CanConnect {
		ways = append(ways, fmt.Sprintf("connect the account again: vault write %[1]sauthorize/%[2]s redirect_uri=<your callback>, have the user consent, then vault write %[1]sexchange/%[2]s code=<code> state=<state>", mount, e.Name))
	}
	if e.CanDevice {
		verb := "connect the account again"
		if e.CanConnect {
			verb = "or"
		}
		ways = append(ways, fmt.Sprintf("%[3]s with the device flow: vault write -f %[1]sdevice/%[2]s, show the user its user_code and verification_uri, and read %[1]sdevice/%[2]s until its status is approved", mount, e.Name, verb))
	}
	hand := fmt.Sprintf("write a new refresh_token to %sconfig/%s", mount, e.Name)
	if len(ways) == 0 {
		return hand
	}
	return strings.Join(ways, "; ") + "; or " + hand
}

// grantHint says what to fix for a failed grant: the preset's own advice
// first, then advice that holds for any OAuth2 server. The client's
// settings of a connection are its app's: those hints name apps/<app>.
func grantHint(mount string, e *backend.GrantError) string {
	cfg := mount + "config/" + e.Name
	client := cfg
	if e.App != "" {
		client = mount + "apps/" + e.App
	}
	grant, _ := model.GrantOf(e.Grant)
	if grant != nil && grant.RefusalMeans == model.RefusalCode {
		if errors.Is(e.Err, backend.ErrNoRefreshToken) {
			return "ask for the offline_access scope (or the vendor's equivalent) in " + mount + "authorize/" + e.Name
		}
		return "a code works once and only for the redirect_uri it was issued for; if the user already connected or the code is old, start again with " + mount + "authorize/" + e.Name
	}
	field := e.URLField()
	var ve *tokenclient.Error
	if !errors.As(e.Err, &ve) {
		var re *tokenclient.ResponseError
		if errors.As(e.Err, &re) {
			return "check that " + field + " in " + client + " points at the vendor's endpoint"
		}
		var te *tokenclient.TransportError
		if errors.As(e.Err, &te) && e.IsClientError() {
			return "fix ca_bundle, tls_client_certificate or tls_client_key in " + client + " (write the certificate and key together)"
		}
		if errors.As(e.Err, &te) {
			return "check that " + field + " in " + client + " is reachable from the Vault server; the plugin will try again on the next read"
		}
		return ""
	}
	auth := clientAuthHint(mount, client, e)
	// A preset's advice on the client's authentication assumes it sends
	// its secret as the preset does (basic or body): for one that signs an
	// assertion or presents a certificate, the advice about that comes
	// first.
	about := ve.Code == "invalid_client" || ve.StatusCode == http.StatusUnauthorized
	if e.Preset != nil && !(about && !presetAuth(e.AuthStyle)) {
		if h := e.Preset.Hint(ve.Code, ve.StatusCode); h != "" {
			return h
		}
	}
	if h := codeHint(cfg, client, auth, e.Grant, grant, ve.Code); h != "" || ve.Code != "" {
		return h
	}
	return statusHint(client, field, auth, ve.StatusCode)
}

// presetAuth reports whether a client with authStyle sends its secret as
// presets do, in Basic or the body ("" is the preset's own).
func presetAuth(authStyle string) bool {
	return authStyle == "" || authStyle == providers.AuthBasic || authStyle == providers.AuthBody
}

// clientAuthHint is what to check when the vendor refused the client's
// authentication, as the client authenticates: following advice about a
// secret would drop a key's or a certificate's authentication.
func clientAuthHint(mount, client string, e *backend.GrantError) string {
	keys, rotate := mount+"jwks/"+e.Name, mount+"rotate-key/"+e.Name
	if e.App != "" {
		keys, rotate = mount+"apps/"+e.App+"/jwks", mount+"apps/"+e.App+"/rotate-key"
	}
	switch e.AuthStyle {
	case model.AuthPrivateKeyJWT:
		return "the vendor did not accept the client's signed assertion: check client_id in " + client +
			", that the vendor has the client's public key (registered from the public_key rotate-key or import-key printed, or fetched from /v1/" + keys +
			"), that assertion_audience is what the vendor expects (the token endpoint unless it says otherwise), and that a key just made is signing (a key signs after activate_after; vault write " + rotate + " activate_staged=true signs now)"
	case model.AuthClientSecretJWT:
		return "the vendor did not accept the client's assertion signed with its secret: check client_id and client_secret in " + client +
			", and that assertion_audience is what the vendor expects (the token endpoint unless it says otherwise)"
	case model.AuthTLSClient, model.AuthSelfSignedTLSClient:
		return "the vendor did not accept the client's certificate: check client_id, tls_client_certificate and tls_client_key in " + client +
			" against what the vendor registered (the certificate's subject for tls_client_auth, the certificate itself for self_signed_tls_client_auth); a vendor with a separate mutual-TLS token endpoint publishes it in its metadata (mtls_endpoint_aliases), used when issuer is set, or set token_url to it"
	case model.AuthNone:
		return "the vendor wants this client to authenticate: set auth_style in " + client + " to the way the client is registered there, with its secret or key"
	}
	return "check client_id and client_secret in " + client + "; if they are right, try auth_style=body or basic_encoding=raw"
}

// codeHint is the advice for a vendor's error code: cfg is where the
// credential's refresh token is written, client where its client settings
// are (the app's, for a connection), auth what to check of the client's
// authentication.
func codeHint(cfg, client, auth, grant string, g *model.Grant, code string) string {
	switch code {
	case "invalid_client":
		return auth
	case "invalid_grant":
		if g != nil && g.RefusalMeans == model.RefusalReauth {
			return "the refresh token was refused (expired, revoked or already used): write a new refresh_token to " + cfg
		}
		return "the server refused the grant: check client_id, client_secret and scopes in " + client
	case "invalid_scope":
		return "remove the scopes the client is not allowed from " + cfg + ", or grant them at the vendor"
	case "unauthorized_client":
		return "the client is not allowed grant_type=" + grant + " at the vendor: check grant_type in " + client
	case "unsupported_grant_type":
		return "the server does not take grant_type=" + grant + " as sent: check grant_type and grant_type_in_query in " + client
	case "invalid_request":
		return "check auth_style, body_format, grant_type_in_query, extra_params and extra_headers in " + client + " against the vendor's docs"
	}
	return ""
}

// statusHint is the advice for an answer with no error code; field names
// the URL the request went to, auth what to check of the client's
// authentication.
func statusHint(client, field, auth string, status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "the vendor refused the client's authentication: " + auth + "; api_key and extra_headers in " + client + " go with every request too"
	case status == http.StatusForbidden:
		return "the vendor refused the client's credentials or headers: check api_key and extra_headers in " + client + ", and " + auth
	case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
		return "check " + field + " in " + client
	case status == http.StatusTooManyRequests:
		return "the vendor is rate-limiting token requests; reads will succeed again after it allows"
	case status >= 500:
		return "the vendor's token endpoint is failing; reads will try again"
	case status >= 300 && status < 400:
		return "set " + field + " in " + client + " to the endpoint the vendor redirects to, if you trust it"
	}
	return ""
}

// tokenError turns a failure to get a token into what Vault returns: the
// operator's mistakes as 400s that say what to fix, the vendor's failures
// as 502s, and our own as errors.
func tokenError(mount, name string, err error) (*logical.Response, error) {
	var (
		gerr *backend.GrantError
		cerr *backend.ConfigError
		ierr *backend.InputError
		rerr *backend.ReauthError
		serr *backend.StaticExpiredError
		xerr *backend.StaticRefreshError
		terr *backend.StateError
		uerr *backend.UnknownOutcomeError
		kerr *backend.ShortTokenError
		lerr *backend.LeaseEndedError
	)
	msg := describe(mount, err)
	switch {
	case errors.As(err, &ierr), errors.As(err, &rerr), errors.As(err, &serr), errors.As(err, &xerr), errors.As(err, &terr), errors.As(err, &cerr), errors.As(err, &lerr):
		return logical.ErrorResponse(msg), nil
	case errors.As(err, &uerr), errors.As(err, &kerr):
		return nil, logical.CodedError(http.StatusBadGateway, msg)
	case errors.Is(err, logical.ErrReadOnly):
		return nil, err
	case backend.IsNotFound(err):
		return nil, logical.CodedError(http.StatusNotFound, notFound(mount, name, err))
	case errors.As(err, &gerr) && gerr.IsRateLimited():
		return nil, fmt.Errorf("%s: %w", msg, logical.ErrUpstreamRateLimited)
	case errors.As(err, &gerr) && gerr.IsClientError():
		return logical.ErrorResponse(msg), nil
	case errors.As(err, &gerr):
		return nil, logical.CodedError(http.StatusBadGateway, msg)
	}
	return nil, err
}

// notFound says that name does not exist and how to make it: a
// connection needs its app first, and is made by connecting the account.
func notFound(mount, name string, err error) string {
	var nf *backend.NotFoundError
	switch {
	case !errors.As(err, &nf):
		return fmt.Sprintf("no credential named %q; write it first with vault write %sconfig/%s", name, mount, name)
	case nf.AppMissing:
		return fmt.Sprintf("no credential named %q, and there is no app %q; create the app first with vault write %sapps/%s provider=... client_id=... client_secret=..., then connect the account with vault write %sauthorize/%s redirect_uri=<your callback>",
			name, nf.App, mount, nf.App, mount, name)
	}
	return fmt.Sprintf("app %q has no connection %q; connect the account with vault write %sauthorize/%s redirect_uri=<your callback> (then exchange/%s), or write its refresh token with vault write %sconfig/%s refresh_token=...",
		nf.App, name, mount, name, name, mount, name)
}

// resultWarnings are the warnings on a token: served after a refresh
// failed, or got with the app's previous client secret.
func resultWarnings(mount string, res *backend.Result) []string {
	var out []string
	if res.Stale != nil {
		out = append(out, fmt.Sprintf("%s; serving the cached token, which expires at %s", describe(mount, res.Stale), res.Token.ExpiresAt.UTC().Format(time.RFC3339)))
	}
	if names := res.Token.OmittedFields; len(names) > 0 {
		out = append(out, fmt.Sprintf("the vendor's answer had %s larger than %d KiB, which the plugin does not keep; the vendor sends it only with a token, and it is not in this answer", strings.Join(names, ", "), tokenclient.MaxResponseFieldBytes>>10))
	}
	if res.UsedPreviousSecret {
		out = append(out, fmt.Sprintf("the vendor refused the app's client_secret and accepted its previous one, which is kept until %s: set the new secret at the vendor before then", res.PreviousUntil.UTC().Format(time.RFC3339)))
	}
	return out
}

// discoveryChanged says what an app's issuer now names that the app does
// not use, and how to adopt it; "" when nothing changed.
func discoveryChanged(mount, app string, c *model.Config) string {
	if c.Discovered == nil || len(c.Discovered.Changed) == 0 {
		return ""
	}
	again := ""
	if secrets := c.SecretsSet(); len(secrets) > 0 {
		again = " " + strings.Join(secrets, "=... ") + "=..."
	}
	return fmt.Sprintf("the metadata of issuer %s now names other endpoints: %s; the app keeps using the ones it had, and sends no secret to the new ones. If the vendor moved them, adopt them with vault write %sapps/%s issuer=%s%s",
		c.Issuer, strings.Join(c.Discovered.Changed, ", "), mount, app, c.Issuer, again)
}
