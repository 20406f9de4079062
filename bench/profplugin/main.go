// Command profplugin is vault-plugin-secrets-vendoroauth with a pprof
// listener (bench/internal/pprofenv), so the benchmark can take CPU
// profiles of the plugin process while Vault drives it. The benchmark's
// headline numbers come from the real plugin binary, not this one.
package main

import (
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/plugin"

	vendoroauth "github.com/vendoroauth/vault-plugin-secrets-vendoroauth"
	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/bench/internal/pprofenv"
)

// version is stamped at build time, as for the real plugin.
var version = "v0.0.0-prof"

func main() {
	pprofenv.Serve()
	apiClientMeta := &api.PluginAPIClientMeta{}
	flags := apiClientMeta.FlagSet()
	if err := flags.Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	tlsProviderFunc := api.VaultPluginTLSProvider(apiClientMeta.GetTLSConfig())
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: vendoroauth.Factory(version),
		TLSProviderFunc:    tlsProviderFunc,
	}); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	hclog.New(&hclog.LoggerOptions{}).Error("plugin shutting down", "error", err)
	os.Exit(1)
}
