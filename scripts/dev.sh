#!/usr/bin/env bash
# The development environment behind `make dev`: builds the plugin and the
# vendor stand-in, starts a Vault dev server on loopback, registers the
# plugin by sha256 and version, enables it at vendoroauth/, configures one
# demo credential per vendor against the stand-in, and prints a token for
# each. It then adds a partner's Penbox app and connects three accounts to
# it through the full authorization-code flow (authorize, the stand-in's
# consent, exchange). The servers keep running; `scripts/dev.sh stop` ends
# them.
# VAULT_BIN may point at OpenBao's `bao` instead of `vault`.
set -euo pipefail
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

wait_for() { # what, seconds, command...
  local what="$1" secs="$2"; shift 2
  for _ in $(seq $((secs * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "dev: $what did not come up within ${secs}s; see $DEV_DIR/*.log" >&2
  return 1
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
  VAULT_BIN="$("$ROOT/scripts/vault.sh")"
  # What to call the server and its CLI in what this prints.
  local server=Vault cli=vault addr_var=VAULT_ADDR token_var=VAULT_TOKEN
  if "$VAULT_BIN" version 2>/dev/null | grep -q '^OpenBao '; then
    server=OpenBao cli=bao addr_var=BAO_ADDR token_var=BAO_TOKEN
  fi
  echo "dev: building the plugin ($VERSION) and the vendor stand-in"
  (cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=$VERSION" -o "$DEV_DIR/plugins/$PLUGIN" "./cmd/$PLUGIN")
  (cd "$ROOT" && go build -o "$DEV_DIR/vendor-standin" ./cmd/vendor-standin)

  rm -f "$DEV_DIR/standin.addr"
  setsid "$DEV_DIR/vendor-standin" -listen 127.0.0.1:0 -demo -addr-file "$DEV_DIR/standin.addr" \
    >"$DEV_DIR/standin.log" 2>&1 </dev/null &
  echo $! >"$DEV_DIR/standin.pid"
  wait_for "the vendor stand-in" 10 test -s "$DEV_DIR/standin.addr"
  STANDIN="$(cat "$DEV_DIR/standin.addr")"

  printf 'plugin_directory = "%s"\ndisable_mlock = true\n' "$DEV_DIR/plugins" >"$DEV_DIR/vault.hcl"
  setsid "$VAULT_BIN" server -dev -dev-root-token-id=root -dev-no-store-token \
    -dev-listen-address="127.0.0.1:$VAULT_PORT" -config="$DEV_DIR/vault.hcl" \
    >"$DEV_DIR/vault.log" 2>&1 </dev/null &
  echo $! >"$DEV_DIR/vault.pid"
  wait_for "$server on $VAULT_ADDR (is the port taken? set VAULT_PORT)" 60 "$VAULT_BIN" status

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
    token_url="$STANDIN/penbox/token" client_id=penbox-demo-client \
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

  for name in penbox-demo eshopbox-demo officernd-demo boldpenguin-demo "$PARTNER_APP/acme"; do
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

Logs are in $DEV_DIR. Stop everything with: make dev-stop
MSG
}

case "${1:-start}" in
  start) start ;;
  stop) stop; echo "dev: stopped" ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
