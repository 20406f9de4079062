# The vendoroauth plugin in an existing Vault, with Terraform: registered in
# the catalog, enabled at vendoroauth/, one credential per vendor, the
# operator policy and a reader policy per credential.
#
#   export VAULT_ADDR=https://vault.example.com VAULT_TOKEN=…     # the provider reads these
#   export TF_VAR_officernd_client_secret=… TF_VAR_boldpenguin_client_secret=… \
#          TF_VAR_boldpenguin_api_key=… TF_VAR_eshopbox_client_secret=… \
#          TF_VAR_eshopbox_refresh_token=… TF_VAR_penbox_client_secret=… \
#          TF_VAR_penbox_refresh_token=…
#   terraform init && terraform apply -var plugin_sha256=$(sha256sum vault-plugin-secrets-vendoroauth | cut -d' ' -f1)
#
# Secrets come in as sensitive variables (from TF_VAR_* or a secret store),
# never as literals here. Terraform keeps what it writes in its state,
# secrets included: keep the state in an encrypted backend with restricted
# access. The plugin never returns secrets, so reads are disabled on the
# config resources; Terraform writes them only when this file changes.
#
# Upgrading the plugin: copy the new binary into Vault's plugin_directory
# under a new file name, change plugin_version, plugin_command and
# plugin_sha256, apply, then reload the mount once:
#   vault write sys/plugins/reload/backend mounts=vendoroauth
# Credentials and cached tokens live in the mount's storage and are kept.

terraform {
  required_version = ">= 1.5"
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

# The policy files in ../policies assume this mount path.
locals {
  mount = "vendoroauth"
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
  data_json = jsonencode({
    provider      = "officernd"
    client_id     = var.officernd_client_id
    client_secret = var.officernd_client_secret
    scopes        = ["officernd.api.read", "officernd.api.write"]
  })
}

resource "vault_generic_endpoint" "boldpenguin" {
  path         = "${vault_mount.vendoroauth.path}/config/boldpenguin"
  disable_read = true
  data_json = jsonencode({
    provider      = "boldpenguin"
    environment   = "production"
    client_id     = var.boldpenguin_client_id
    client_secret = var.boldpenguin_client_secret
    api_key       = var.boldpenguin_api_key
  })
}

resource "vault_generic_endpoint" "eshopbox" {
  path         = "${vault_mount.vendoroauth.path}/config/eshopbox"
  disable_read = true
  data_json = jsonencode({
    provider      = "eshopbox"
    client_id     = var.eshopbox_client_id
    client_secret = var.eshopbox_client_secret
    refresh_token = var.eshopbox_refresh_token
  })
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
  data_json = jsonencode({
    provider      = "penbox"
    client_id     = var.penbox_client_id
    client_secret = var.penbox_client_secret
    refresh_token = var.penbox_refresh_token
  })
  lifecycle {
    ignore_changes = [data_json]
  }
}

resource "vault_policy" "operator" {
  name   = "vendoroauth-operator"
  policy = file("${path.module}/../policies/vendoroauth-operator.hcl")
}

# One reader policy per credential: each may read only its own token.
resource "vault_policy" "reader" {
  for_each = toset(["officernd", "boldpenguin", "eshopbox", "penbox"])
  name     = "vendoroauth-reader-${each.key}"
  policy   = templatefile("${path.module}/../policies/vendoroauth-reader.hcl.tmpl", { NAME = each.key })
}

output "reader_policies" {
  value = { for name, p in vault_policy.reader : name => p.name }
}
