# Vault Agent that keeps a vendor's access token in a file for an app.
#
#   cd bootstrap/agent && vault agent -config=agent.hcl
#
# Relative paths below are relative to the directory Agent runs in. The
# files it needs there: token.ctmpl (next to this file) and, for the
# token_file method, a Vault token with the reader policy, in a file only
# Agent's user can read (git ignores vault-token here; in production keep
# it outside any checkout):
#
#   sed 's/${NAME}/officernd-demo/g' ../policies/vendoroauth-reader.hcl.tmpl \
#     | vault policy write vendoroauth-reader-officernd-demo -
#   (umask 077; vault token create -policy=vendoroauth-reader-officernd-demo -period=24h -field=token > vault-token)
#
# (The bootstrap tool writes one reader policy per credential with
# "policies": true.)
#
# How the token stays fresh: the plugin gives each read a renewable lease
# that ends at the token's hand-out end (its expiry less expiry_skew and a
# margin of 3% of its life), renewable up to that end and never beyond.
# Agent renews the lease (at once, then after about two thirds of it) and
# reads again when a renewal no longer extends it: a read before the
# hand-out end gets the same token under a shorter lease, the first read
# after it gets the next token, so the file is replaced before the token in
# it expires. Use tokens that live 40 s or more (bootstrap/README.md says
# why). After `vault write -f vendoroauth/refresh/<name>` the file keeps the
# old token until its lease ends: restart Agent to render it anew.

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
