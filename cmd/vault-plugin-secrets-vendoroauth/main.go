// Command vault-plugin-secrets-vendoroauth serves the vendoroauth secrets
// engine to Vault. Run by hand with --version it prints the version it
// reports to Vault, the one `vault plugin register -version=` must name.
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/plugin"

	vendoroauth "github.com/vendoroauth/vault-plugin-secrets-vendoroauth"
)

// version is stamped at build time (-ldflags "-X main.version=v1.2.3") and
// reported to Vault, which checks it against the registered version.
var version = "v0.0.0-dev"

func main() {
	// Vault starts the plugin with its own flags, never this one; a person
	// asks which version to register.
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println(version)
		return
	}
	apiClientMeta := &api.PluginAPIClientMeta{}
	flags := apiClientMeta.FlagSet()
	if err := flags.Parse(os.Args[1:]); err != nil {
		fatal(err)
	}
	tlsConfig := apiClientMeta.GetTLSConfig()
	tlsProviderFunc := api.VaultPluginTLSProvider(tlsConfig)

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
