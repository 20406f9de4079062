# The vendoroauth plugin in an existing Vault, with Terraform (1.10 or
# later) or OpenTofu (1.11 or later): registered in the catalog, enabled at
# vendoroauth/, one credential per vendor, the operator policy and a reader
# policy per credential, and an access token read the way a configuration
# should consume one: through an ephemeral resource, never stored.
#
#   export VAULT_ADDR=https://vault.example.com VAULT_TOKEN=…     # the provider reads these
#   export TF_VAR_officernd_client_secret=… TF_VAR_boldpenguin_client_secret=… \
#          TF_VAR_boldpenguin_api_key=… TF_VAR_eshopbox_client_secret=… \
#          TF_VAR_eshopbox_refresh_token=… TF_VAR_penbox_client_secret=… \
#          TF_VAR_penbox_refresh_token=…
#   terraform init && terraform apply -var plugin_sha256=$(sha256sum vault-plugin-secrets-vendoroauth | cut -d' ' -f1)
#
# Secrets come in as sensitive variables (from TF_VAR_* or a secret store),
# never as literals here. What Terraform keeps in its state: every
# attribute of every resource, so the client secrets, API key and refresh
# tokens written by the vault_generic_endpoint resources (data_json), the
# policies, and the plugin's sha256; keep the state in an encrypted backend
# with restricted access. Not the access token: ephemeral resources are
# never written to state or plan files. The plugin never returns secrets,
# so reads are disabled on the config resources; Terraform writes them
# only when this file changes.
#
# Upgrading the plugin: copy the new binary into Vault's plugin_directory
# under a new file name, change plugin_version, plugin_command and
# plugin_sha256, apply, then reload the mount once:
#   vault write sys/plugins/reload/backend mounts=vendoroauth
# Credentials and cached tokens live in the mount's storage and are kept.

terraform {
  # Ephemeral resources: Terraform 1.10, OpenTofu 1.11.
  required_version = ">= 1.10"
  required_providers {
    vault = {
      source = "hashicorp/vault"
      # vault_plugin and vault_mount's plugin_version are in every 5.x.
      version = ">= 5.0"
    }
  }
}

provider "vault" {}

variable "plugin_version" {
  description = "Version the plugin binary was built with (its git tag)."
  type        = string
  default     = "v0.1.0"
}

variable "plugin_command" {
  description = "The binary's file name in Vault's plugin_directory."
  type        = string
  default     = "vault-plugin-secrets-vendoroauth"
}

variable "plugin_sha256" {
  description = "sha256 of the plugin binary (the release's SHA256SUMS)."
  type        = string
}

variable "mount" {
  description = "Where the plugin is enabled; the policies' paths and names follow it (<mount>-operator, <mount>-reader-<name>)."
  type        = string
  default     = "vendoroauth"
}

variable "token_urls" {
  description = "Token endpoints to use instead of the presets' (credential name => URL), such as a vendor's sandbox; empty for the vendors' own."
  type        = map(string)
  default     = {}
}

variable "officernd_client_id" {
  type    = string
  default = "your-officernd-client-id"
}

variable "officernd_client_secret" {
  type      = string
  sensitive = true
}

variable "boldpenguin_client_id" {
  type    = string
  default = "your-boldpenguin-client-id"
}

variable "boldpenguin_client_secret" {
  type      = string
  sensitive = true
}

variable "boldpenguin_api_key" {
  type      = string
  sensitive = true
}

variable "eshopbox_client_id" {
  type    = string
  default = "your-eshopbox-client-id"
}

variable "eshopbox_client_secret" {
  type      = string
  sensitive = true
}

variable "eshopbox_refresh_token" {
  type      = string
  sensitive = true
}

variable "penbox_client_id" {
  type    = string
  default = "your-penbox-client-id"
}

variable "penbox_client_secret" {
  type      = string
  sensitive = true
}

variable "penbox_refresh_token" {
  description = "Only the first refresh token: Penbox rotates it and the plugin keeps the new one."
  type        = string
  sensitive   = true
}

locals {
  mount = var.mount
  # The policy files in ../policies are written for vendoroauth/; their
  # paths are moved to the mount, as the bootstrap tool does.
  policy_paths = "path \"${local.mount}/"
  # A credential's token_url, where var.token_urls gives one.
  token_url = { for name, url in var.token_urls : name => { token_url = url } }
  credentials = toset(["officernd", "boldpenguin", "eshopbox", "penbox"])
}

resource "vault_plugin" "vendoroauth" {
  type    = "secret"
  name    = "vendoroauth"
  command = var.plugin_command
  version = var.plugin_version
  sha256  = var.plugin_sha256
}

resource "vault_mount" "vendoroauth" {
  path           = local.mount
  type           = vault_plugin.vendoroauth.name
  plugin_version = vault_plugin.vendoroauth.version
  description    = "OAuth2 access tokens for SaaS vendors"
}

resource "vault_generic_endpoint" "officernd" {
  path         = "${vault_mount.vendoroauth.path}/config/officernd"
  disable_read = true
  data_json = jsonencode(merge(lookup(local.token_url, "officernd", {}), {
    provider      = "officernd"
    client_id     = var.officernd_client_id
    client_secret = var.officernd_client_secret
    scopes        = ["officernd.api.read", "officernd.api.write"]
  }))
}

resource "vault_generic_endpoint" "boldpenguin" {
  path         = "${vault_mount.vendoroauth.path}/config/boldpenguin"
  disable_read = true
  data_json = jsonencode(merge(lookup(local.token_url, "boldpenguin", {}), {
    provider      = "boldpenguin"
    environment   = "production"
    client_id     = var.boldpenguin_client_id
    client_secret = var.boldpenguin_client_secret
    api_key       = var.boldpenguin_api_key
  }))
}

resource "vault_generic_endpoint" "eshopbox" {
  path         = "${vault_mount.vendoroauth.path}/config/eshopbox"
  disable_read = true
  data_json = jsonencode(merge(lookup(local.token_url, "eshopbox", {}), {
    provider      = "eshopbox"
    client_id     = var.eshopbox_client_id
    client_secret = var.eshopbox_client_secret
    refresh_token = var.eshopbox_refresh_token
  }))
}

# Penbox rotates refresh tokens: after the first token request the one in
# var.penbox_refresh_token is dead and the plugin holds its successor.
# Writing this resource again would put the dead one back, so Terraform
# writes it once and then leaves it alone. To change a setting, use
# `vault write vendoroauth/config/penbox <field>=…` (fields left out are
# kept); to start over with a new refresh token, taint this resource.
resource "vault_generic_endpoint" "penbox" {
  path         = "${vault_mount.vendoroauth.path}/config/penbox"
  disable_read = true
  data_json = jsonencode(merge(lookup(local.token_url, "penbox", {}), {
    provider      = "penbox"
    client_id     = var.penbox_client_id
    client_secret = var.penbox_client_secret
    refresh_token = var.penbox_refresh_token
  }))
  lifecycle {
    ignore_changes = [data_json]
  }
}

# Named by mount, as the bootstrap tool names them: a second mount's
# policies do not overwrite the first one's.
resource "vault_policy" "operator" {
  name   = "${replace(local.mount, "/", "-")}-operator"
  policy = replace(file("${path.module}/../policies/vendoroauth-operator.hcl"), "path \"vendoroauth/", local.policy_paths)
}

# One reader policy per credential: each may read only its own token.
resource "vault_policy" "reader" {
  for_each = local.credentials
  name     = "${replace(local.mount, "/", "-")}-reader-${each.key}"
  policy = replace(templatefile("${path.module}/../policies/vendoroauth-reader.hcl.tmpl", { NAME = each.key }),
  "path \"vendoroauth/", local.policy_paths)
}

output "reader_policies" {
  value = { for name, p in vault_policy.reader : name => p.name }
}

# Reading an access token in Terraform: an ephemeral resource is read on
# every plan and apply and never written to the state or a plan file, so a
# short-lived token is not stored. Use it where ephemeral values may go: a
# provider block (for example the vendor's own provider's token argument),
# another ephemeral resource, or a write-only argument:
#
#   provider "officernd" { token = ephemeral.vault_generic_secret.officernd_token.data["access_token"] }
ephemeral "vault_generic_secret" "officernd_token" {
  path = "${vault_mount.vendoroauth.path}/token/officernd"
}
