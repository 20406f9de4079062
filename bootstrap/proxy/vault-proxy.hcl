# Vault Proxy in front of Vault, caching vendoroauth tokens for the apps on
# this host: apps read http://127.0.0.1:8100/v1/vendoroauth/token/<name>
# without a Vault token of their own, and repeated reads of a token are
# answered from the proxy's memory without a round trip to Vault.
#
#   cd bootstrap/proxy && vault proxy -config=vault-proxy.hcl
#   curl -s http://127.0.0.1:8100/v1/vendoroauth/token/officernd-demo
#
# (`bao proxy -config=vault-proxy.hcl` with OpenBao.) Relative paths below
# are relative to the directory the proxy runs in. It needs there a Vault
# token with the reader policy of every credential the apps may read (see
# bootstrap/policies/vendoroauth-reader.hcl.tmpl; the default policy, which
# Vault attaches to every token, lets it renew leases):
#
#   vault token create -policy=vendoroauth-reader-officernd-demo -period=24h -field=token > vault-token
#
# Why the cache is correct for these tokens: the plugin gives every read a
# lease that ends at the token's hand-out end (its expiry minus expiry_skew
# minus 3% of its life), renewable up to that end and never beyond. The
# proxy keeps a leased response only while it can renew the lease, and
# drops it when a renewal no longer extends it (at about 70% of what was
# left of the lease) or fails; so it never serves a token past the end of
# its lease, and the read after the hand-out end reaches Vault and gets the
# next token. A cached answer is the response as Vault gave it: its
# lease_duration is as it was at that first read (the proxy marks it
# X-Cache: HIT and adds an Age header saying how many seconds ago). Non-renewable answers (a stale token
# served with a warning after a vendor failure) are passed through, never
# cached.
#
# Anyone who can reach the listener reads with the proxy's token, so keep
# it on loopback (or a unix socket) and give that token only the reader
# policies of this host's apps.

# Vault's address; VAULT_ADDR or -address override it.
vault {
  address = "http://127.0.0.1:8200"
  # ca_cert = "/etc/vault/ca.pem"
}

auto_auth {
  # For trying it out (and make dev): a token in a file. The proxy renews
  # it while it can; a periodic token (-period) can be renewed forever.
  # For production use AppRole, as in bootstrap/agent/agent.hcl.
  method "token_file" {
    config = {
      token_file_path = "./vault-token"
    }
  }
}

# Requests that carry no X-Vault-Token use the auto-auth token. Only leases
# obtained with a token the proxy manages (this one) are cached: a request
# with a token of its own passes through uncached.
api_proxy {
  use_auto_auth_token = true
}

# The lease cache: leased, renewable responses are kept in memory and
# answered locally until their lease stops being renewable.
cache {
}

listener "tcp" {
  address     = "127.0.0.1:8100"
  tls_disable = true
}
