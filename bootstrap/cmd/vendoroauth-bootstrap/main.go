// Command vendoroauth-bootstrap registers, enables and configures the
// vendoroauth plugin in an existing Vault from a declarative file:
//
//	VAULT_ADDR=https://vault.example.com VAULT_TOKEN=… \
//	OFFICERND_CLIENT_SECRET=… vendoroauth-bootstrap credentials.json
//
// Vault's address, token, namespace and TLS settings come from the usual
// VAULT_* environment variables (the token from ~/.vault-token after
// `vault login` if VAULT_TOKEN is unset). Secrets come from the environment
// variables and files the declarative file names, never from the command
// line. Running it again with the same file changes nothing that is already
// right; see bootstrap/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hashicorp/vault/api"

	"github.com/vendoroauth/vault-plugin-secrets-vendoroauth/bootstrap"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vendoroauth-bootstrap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	reseed := fs.Bool("reseed-refresh-tokens", false, "write refresh_token even to credentials that already hold one (replaces a token the vendor may have rotated)")
	check := fs.Bool("check", false, "after writing, read each credential's token and report its expiry (never the token)")
	fs.Usage = func() {
		say(stderr, "usage: vendoroauth-bootstrap [-check] [-reseed-refresh-tokens] FILE.json")
		say(stderr, "Registers, enables and configures the vendoroauth plugin in the Vault at $VAULT_ADDR.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}

	plan, err := bootstrap.Load(fs.Arg(0), os.LookupEnv)
	if err != nil {
		say(stderr, "vendoroauth-bootstrap:", err)
		return 1
	}
	conf := api.DefaultConfig()
	if conf.Error != nil {
		say(stderr, "vendoroauth-bootstrap: Vault client settings:", conf.Error)
		return 1
	}
	client, err := api.NewClient(conf)
	if err != nil {
		say(stderr, "vendoroauth-bootstrap: Vault client:", err)
		return 1
	}
	if client.Token() == "" {
		tok, err := tokenFromHelperFile()
		if err != nil || tok == "" {
			say(stderr, "vendoroauth-bootstrap: no Vault token: set VAULT_TOKEN or run `vault login`")
			return 1
		}
		client.SetToken(tok)
	}
	if err := plan.RefuseVaultToken(client.Token()); err != nil {
		say(stderr, "vendoroauth-bootstrap:", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	say(stdout, fmt.Sprintf("vault %s: applying %s", client.Address(), fs.Arg(0)))
	if err := bootstrap.Apply(ctx, client, plan, bootstrap.Options{
		ReseedRefreshTokens: *reseed,
		Check:               *check,
		Out:                 stdout,
	}); err != nil {
		say(stderr, "vendoroauth-bootstrap:", err)
		return 1
	}
	return 0
}

// say prints one line of the command's own messages. If its stdout or
// stderr cannot be written there is nowhere to report that, and the exit
// status says how the run went regardless.
func say(w io.Writer, args ...any) {
	_, _ = fmt.Fprintln(w, args...)
}

// tokenFromHelperFile reads the token `vault login` leaves behind.
func tokenFromHelperFile() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(home, ".vault-token"))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
