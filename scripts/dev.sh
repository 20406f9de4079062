#!/usr/bin/env bash
# The development environment behind `make dev`: builds the plugin and the
# vendor stand-in, starts a Vault dev server on loopback, registers the
# plugin by sha256 and version, enables it at vendoroauth/, configures one
# demo credential per vendor against the stand-in, and prints a token for
# each. It then adds a partner's Penbox app and connects three accounts to
# it through the full authorization-code flow (authorize, the stand-in's
# consent, exchange). The stand-in also serves a strict standards
# authorization server, and one demo credential per feature that needs
# more than a client secret is configured against it: discovery
# (discovery-demo), revocation on delete (revoke-demo), the device flow
# (device-demo), private_key_jwt with the JWKS fetched from Vault
# (pkjwt-demo) and mutual TLS with a private CA (mtls-demo); its URLs, CA
# and the demo client certificate are in $DEV_DIR/authserver/. The servers
# keep running; `scripts/dev.sh stop` ends them.
# VAULT_BIN may point at OpenBao's `bao` instead of `vault`.
# -E: the ERR trap that stops a failed start holds inside functions too.
set -Eeuo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEV_DIR="${DEV_DIR:-$ROOT/.dev}"
VAULT_PORT="${VAULT_PORT:-8200}"
VERSION="${VERSION:-v0.1.0-dev}"
PLUGIN=vault-plugin-secrets-vendoroauth
export VAULT_ADDR="http://127.0.0.1:$VAULT_PORT"
export VAULT_TOKEN=root
# bao prefers these to VAULT_ADDR and VAULT_TOKEN: a BAO_ADDR from the
# caller's shell must not send the demo's commands elsewhere.
export BAO_ADDR="$VAULT_ADDR" BAO_TOKEN="$VAULT_TOKEN"

stop() {
  for svc in vault standin; do
    local pidfile="$DEV_DIR/$svc.pid"
    if [[ -f "$pidfile" ]]; then
      local pid
      pid="$(cat "$pidfile")"
      # Vault runs in its own process group with its plugin processes.
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      rm -f "$pidfile"
    fi
  done
}

# wait_for WHAT SECONDS PIDFILE LOG COMMAND... polls COMMAND until it
# succeeds; it fails at once, with the end of LOG, when the process in
# PIDFILE has died (a taken port ends Vault within a second).
wait_for() {
  local what="$1" secs="$2" pidfile="$3" log="$4"; shift 4
  echo "dev: waiting for $what (up to ${secs}s)"
  for _ in $(seq $((secs * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "dev: gave up waiting for $what: the process exited; the end of $log:" >&2
      tail -n 15 "$log" | sed 's/^/  /' >&2
      return 1
    fi
    sleep 0.1
  done
  echo "dev: $what did not come up within ${secs}s; see $log" >&2
  return 1
}

dev_vault_up() { grep -q 'server started' "$DEV_DIR/vault.log" && "$VAULT_BIN" status; }

# failed stops what start started, so a failed start leaves nothing
# running on its ports.
failed() {
  echo "dev: start failed; stopping what it started" >&2
  stop
}

# The partner callback the demo app allows, registered for the stand-in's
# Penbox demo client (cmd/vendor-standin: demoPenboxRedirectURI). Nothing
# listens there: connect reads the redirect without following it.
PARTNER_APP=penbox-partner
PARTNER_CALLBACK=http://127.0.0.1/partner/penbox/callback

# query_param NAME URL prints the raw (still URL-encoded) value of NAME in
# URL's query string.
query_param() {
  local kv kvs
  IFS='&' read -ra kvs <<<"${2#*\?}"
  for kv in "${kvs[@]}"; do
    if [[ "${kv%%=*}" == "$1" ]]; then printf '%s' "${kv#*=}"; return 0; fi
  done
}

# connect ACCOUNT CUSTOMER_ID connects one account to the partner app as the
# partner's web backend and its user's browser would: authorize/ returns the
# vendor's URL; the "browser" (curl, not following the redirect) gets the
# stand-in's consent, a 302 to the callback with code and state; exchange/
# trades them for tokens and creates the connection. It prints one line.
connect() {
  local name="$PARTNER_APP/$1" url answer location code state expires
  url="$("$VAULT_BIN" write -field=url "vendoroauth/authorize/$name" \
    redirect_uri="$PARTNER_CALLBACK" metadata="customer_id=$2")"
  answer="$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' "$url")"
  location="${answer#* }"
  if [[ "${answer%% *}" != 302 || "$location" != "$PARTNER_CALLBACK?"* ]]; then
    echo "dev: the stand-in did not send $name's consent to $PARTNER_CALLBACK: HTTP $answer" >&2
    return 1
  fi
  code="$(query_param code "$location")"
  state="$(query_param state "$location")"
  if [[ -z "$code" || "$state" != "$(query_param state "$url")" ]]; then
    echo "dev: the stand-in's redirect for $name has no code, or not the state Vault issued: $location" >&2
    return 1
  fi
  # The code arrives URL-encoded, as in a browser's address bar; the
  # plugin decodes it.
  expires="$("$VAULT_BIN" write -field=expires_at "vendoroauth/exchange/$name" code="$code" state="$state")"
  printf '  %-24s customer_id=%s, first token expires %s\n' "$name" "$2" "$expires"
}

start() {
  stop
  mkdir -p "$DEV_DIR/plugins"
  echo "dev: finding a Vault binary (scripts/vault.sh; a first build takes 10-15 minutes and says so)"
  VAULT_BIN="$("$ROOT/scripts/vault.sh")"
  trap failed ERR
  # What to call the server and its CLI in what this prints.
  local server=Vault cli=vault addr_var=VAULT_ADDR token_var=VAULT_TOKEN
  if "$VAULT_BIN" version 2>/dev/null | grep -q '^OpenBao '; then
    server=OpenBao cli=bao addr_var=BAO_ADDR token_var=BAO_TOKEN
  fi
  echo "dev: building the plugin ($VERSION) and the vendor stand-in"
  (cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=$VERSION" -o "$DEV_DIR/plugins/$PLUGIN" "./cmd/$PLUGIN")
  (cd "$ROOT" && go build -o "$DEV_DIR/vendor-standin" ./cmd/vendor-standin)

  rm -rf "$DEV_DIR/standin.addr" "$DEV_DIR/authserver"
  setsid "$DEV_DIR/vendor-standin" -listen 127.0.0.1:0 -demo -addr-file "$DEV_DIR/standin.addr" \
    -authserver-dir "$DEV_DIR/authserver" -vault-addr "$VAULT_ADDR" -mount vendoroauth \
    >"$DEV_DIR/standin.log" 2>&1 </dev/null &
  echo $! >"$DEV_DIR/standin.pid"
  wait_for "the vendor stand-in" 10 "$DEV_DIR/standin.pid" "$DEV_DIR/standin.log" test -s "$DEV_DIR/standin.addr"
  STANDIN="$(cat "$DEV_DIR/standin.addr")"

  printf 'plugin_directory = "%s"\ndisable_mlock = true\n' "$DEV_DIR/plugins" >"$DEV_DIR/vault.hcl"
  setsid "$VAULT_BIN" server -dev -dev-root-token-id=root -dev-no-store-token \
    -dev-listen-address="127.0.0.1:$VAULT_PORT" -config="$DEV_DIR/vault.hcl" \
    >"$DEV_DIR/vault.log" 2>&1 </dev/null &
  echo $! >"$DEV_DIR/vault.pid"
  # "server started" is this server's own log line: `status` alone would
  # also answer for another server that holds the port.
  wait_for "$server to start on $VAULT_ADDR (set VAULT_PORT to move it)" 60 "$DEV_DIR/vault.pid" "$DEV_DIR/vault.log" \
    dev_vault_up

  local sha
  sha="$(sha256sum "$DEV_DIR/plugins/$PLUGIN" | cut -d' ' -f1)"
  "$VAULT_BIN" plugin register -sha256="$sha" -version="$VERSION" -command="$PLUGIN" secret vendoroauth
  "$VAULT_BIN" secrets enable -path=vendoroauth -plugin-version="$VERSION" vendoroauth

  # The demo credentials are the stand-in's fixed -demo clients. Real
  # vendors need only provider= and the credentials: token_url here points
  # the presets at the stand-in instead of the vendor.
  "$VAULT_BIN" write vendoroauth/config/officernd-demo provider=officernd \
    token_url="$STANDIN/officernd/oauth/token" client_id=officernd-demo-client \
    client_secret=officernd-demo-secret scopes=officernd.api.read,officernd.api.write
  "$VAULT_BIN" write vendoroauth/config/boldpenguin-demo provider=boldpenguin environment=staging \
    token_url="$STANDIN/boldpenguin/auth/token" client_id=boldpenguin-demo-client \
    client_secret=boldpenguin-demo-secret api_key=boldpenguin-demo-api-key
  "$VAULT_BIN" write vendoroauth/config/eshopbox-demo provider=eshopbox \
    token_url="$STANDIN/eshopbox/api/v1/generateToken" client_id=eshopbox-demo-client \
    client_secret=eshopbox-demo-secret refresh_token=eshopbox-demo-refresh-token
  "$VAULT_BIN" write vendoroauth/config/penbox-demo provider=penbox \
    token_url="$STANDIN/penbox/token" authorize_url="$STANDIN/penbox/authorize" client_id=penbox-demo-client \
    client_secret=penbox-demo-secret refresh_token=penbox-demo-refresh-token

  # A partner's Penbox app: the OAuth client once, with the callbacks its
  # connections may use; PKCE is on by default. Each connection holds one
  # account's refresh token, never the client secret.
  "$VAULT_BIN" write "vendoroauth/apps/$PARTNER_APP" provider=penbox \
    token_url="$STANDIN/penbox/token" authorize_url="$STANDIN/penbox/authorize" \
    client_id=penbox-demo-client client_secret=penbox-demo-secret \
    allowed_redirect_uris="$PARTNER_CALLBACK"
  echo "dev: connecting three accounts to $PARTNER_APP (authorize -> stand-in consent -> exchange):"
  connect acme c-1001
  connect globex c-1002
  connect initech c-1003

  any_vendor_demos

  for name in penbox-demo eshopbox-demo officernd-demo boldpenguin-demo "$PARTNER_APP/acme" \
    discovery-demo revoke-demo pkjwt-demo mtls-demo; do
    echo
    echo "\$ $cli read vendoroauth/token/$name"
    "$VAULT_BIN" read "vendoroauth/token/$name"
  done

  cat <<MSG

$server is running at $VAULT_ADDR (root token: root); the vendor stand-in at $STANDIN.
Use it from this shell:

  export $addr_var=$VAULT_ADDR $token_var=root
  alias $cli=$VAULT_BIN   # if $cli is not on your PATH
  $cli read vendoroauth/config/officernd-demo

The partner app $PARTNER_APP has three connected accounts (acme, globex, initech):

  $cli read vendoroauth/token/$PARTNER_APP/globex     # one account's access token
  $cli list vendoroauth/config/$PARTNER_APP/          # its connections
  $cli read vendoroauth/config/$PARTNER_APP/ list=true after=acme limit=2   # one page of them
  $cli read vendoroauth/config/$PARTNER_APP/globex    # one connection: app, metadata, health
  $cli read vendoroauth/status/$PARTNER_APP           # the app's connections by state
  $cli read vendoroauth/apps/$PARTNER_APP             # the client; secrets shown only as set

Connect another account (the stand-in consents at once):

  $cli write -field=url vendoroauth/authorize/$PARTNER_APP/hooli redirect_uri=$PARTNER_CALLBACK
  curl -s -o /dev/null -w '%{redirect_url}\n' '<the url>'   # $PARTNER_CALLBACK?code=...&state=...
  $cli write vendoroauth/exchange/$PARTNER_APP/hooli code='<code>' state='<state>'

The strict authorization server (issuer $(cat "$DEV_DIR/authserver/issuer")) serves
discovery-demo, revoke-demo, device-demo, pkjwt-demo and mtls-demo; the
README's "Any OAuth2 vendor" section runs each (export AUTH=$DEV_DIR/authserver).

Logs are in $DEV_DIR. Stop everything with: make dev-stop
MSG
  trap - ERR
}

# any_vendor_demos configures one credential per feature of the generic
# provider against the stand-in's strict authorization server.
any_vendor_demos() {
  local auth="$DEV_DIR/authserver" issuer
  issuer="$(cat "$auth/issuer")"
  echo "dev: configuring the any-vendor demos against the authorization server at $issuer"
  # Discovery: issuer= fills token_url, revocation_url and
  # device_authorization_url from its metadata.
  "$VAULT_BIN" write vendoroauth/config/discovery-demo issuer="$issuer" \
    client_id=discovery-demo-client client_secret=discovery-demo-secret
  # Revocation: deleting this credential revokes its refresh token at the
  # discovered revocation endpoint.
  "$VAULT_BIN" write vendoroauth/config/revoke-demo issuer="$issuer" grant_type=refresh_token \
    client_id=revoke-demo-client client_secret=revoke-demo-secret refresh_token=@"$auth/revoke-demo-refresh-token"
  # The device flow: a public client; README's "Device flow" connects it.
  "$VAULT_BIN" write vendoroauth/config/device-demo issuer="$issuer" grant_type=refresh_token \
    client_id=device-demo-client auth_style=none
  # private_key_jwt: a key born in Vault signs the assertions; the stand-in
  # fetches the public key from Vault's unauthenticated jwks path.
  "$VAULT_BIN" write vendoroauth/config/pkjwt-demo token_url="$issuer/token" \
    client_id=pkjwt-demo-client auth_style=private_key_jwt
  # A rotation is staged where the plugin stages them (activate_after
  # exists): activate_after=0 signs with the new key at once, as the demo
  # wants. Older plugins sign with a new key at once and know no such field.
  local now=()
  if "$VAULT_BIN" path-help vendoroauth/rotate-key/x 2>/dev/null | grep -q activate_after; then
    now=(activate_after=0)
  fi
  "$VAULT_BIN" write -f vendoroauth/rotate-key/pkjwt-demo "${now[@]}" >/dev/null
  # Mutual TLS: the token endpoint's certificate is from a private CA
  # (ca_bundle), and the client authenticates with its certificate.
  "$VAULT_BIN" write vendoroauth/config/mtls-demo token_url="$(cat "$auth/mtls-token-url")" \
    client_id=mtls-demo-client auth_style=tls_client_auth ca_bundle=@"$auth/server-ca.pem" \
    tls_client_certificate=@"$auth/mtls-client.pem" tls_client_key=@"$auth/mtls-client-key.pem"
}

case "${1:-start}" in
  start) start ;;
  stop) stop; echo "dev: stopped" ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
