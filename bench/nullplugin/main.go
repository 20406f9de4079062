// Command nullplugin is the benchmark's null plugin: a Vault secrets plugin
// served exactly as vault-plugin-secrets-vendoroauth is (same SDK,
// plugin.ServeMultiplex, same TLS provider) that hands out a fixed secret
// of the same shape under a lease renewable up to its first end. See
// bench/nullbackend.
package main

import (
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/plugin"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/bench/internal/pprofenv"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/bench/nullbackend"
)

func main() {
	pprofenv.Serve()
	apiClientMeta := &api.PluginAPIClientMeta{}
	flags := apiClientMeta.FlagSet()
	if err := flags.Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	tlsProviderFunc := api.VaultPluginTLSProvider(apiClientMeta.GetTLSConfig())
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: nullbackend.Factory,
		TLSProviderFunc:    tlsProviderFunc,
	}); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
	os.Exit(1)
}
