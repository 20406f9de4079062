# Vault Agent that keeps a vendor's access token in a file for an app.
#
#   cd bootstrap/agent && vault agent -config=agent.hcl
#
# Relative paths below are relative to the directory Agent runs in. The
# files it needs there: token.ctmpl (next to this file) and, for the
# token_file method, a Vault token with the reader policy:
#
#   vault policy write vendoroauth-reader-officernd-demo - <<EOF
#   path "vendoroauth/token/officernd-demo" { capabilities = ["read"] }
#   EOF
#   vault token create -policy=vendoroauth-reader-officernd-demo -period=24h -field=token > vault-token
#
# (bootstrap/policies/vendoroauth-reader.hcl.tmpl is that policy for any
# name; the bootstrap tool writes one per credential with "policies": true.)
#
# How the token stays fresh: the plugin gives each read a non-renewable
# lease that ends expiry_skew before the vendor's expiry. Agent re-reads a
# non-renewable secret at 85-95% of its lease and renders the answer; the
# plugin then hands out a new token rather than the last sliver of the old
# one, so the file always holds a token with life left in it.

# Vault's address; VAULT_ADDR or -address override it.
vault {
  address = "http://127.0.0.1:8200"
  # ca_cert = "/etc/vault/ca.pem"
}

auto_auth {
  # For trying it out (and make dev): a token in a file. Agent renews it
  # while it can; a periodic token (-period) can be renewed forever.
  method "token_file" {
    config = {
      token_file_path = "./vault-token"
    }
  }

  # For production, AppRole instead: delete the token_file method above and
  # uncomment this. Create the role with the reader policy:
  #
  #   vault auth enable approle
  #   vault write auth/approle/role/officernd-demo-agent \
  #       token_policies=vendoroauth-reader-officernd-demo token_ttl=1h token_max_ttl=24h
  #   vault read -field=role_id auth/approle/role/officernd-demo-agent/role-id > role-id
  #   vault write -f -field=secret_id auth/approle/role/officernd-demo-agent/secret-id > secret-id
  #
  # method "approle" {
  #   config = {
  #     role_id_file_path                   = "./role-id"
  #     secret_id_file_path                 = "./secret-id"
  #     remove_secret_id_file_after_reading = true
  #   }
  # }
}

template_config {
  # Stop (so the service manager restarts Agent and someone notices) rather
  # than keep serving a file that can no longer be refreshed.
  exit_on_retry_failure = true
}

# The access token, alone, in a file only the app's user can read. Point
# the app at this file and have it re-read the file for each request (or on
# change): the token in it is replaced before it expires.
template {
  source      = "./token.ctmpl"
  destination = "./officernd-demo.token"
  perms       = "0600"
  # command = "systemctl reload my-app"   # if the app reads it only at start
}
