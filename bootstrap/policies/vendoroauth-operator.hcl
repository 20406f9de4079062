# vendoroauth-operator: for the people (or the pipeline) who manage vendor
# credentials in the vendoroauth/ mount.
#
# They may store, change, read (settings and status; secrets are write-only
# and never returned), delete and list credentials, and read a token to
# check that a credential works. Nothing else: not the mount's tuning, not
# the plugin catalog, not other mounts.
#
#   vault policy write vendoroauth-operator bootstrap/policies/vendoroauth-operator.hcl
#
# Mounted somewhere else? Replace "vendoroauth/" in both paths.

# config/<name> and LIST config/ (Vault checks a LIST of config against
# "vendoroauth/config/", which this glob matches too).
path "vendoroauth/config/*" {
  capabilities = ["create", "update", "read", "delete", "list"]
}

path "vendoroauth/token/*" {
  capabilities = ["read"]
}
