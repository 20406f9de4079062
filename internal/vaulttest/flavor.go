package vaulttest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// Flavor is which server a binary is: HashiCorp Vault or OpenBao. They
// share the HTTP API, the plugin protocol and most of the CLI, but differ
// in a few places the tests meet (audit devices, standbys).
type Flavor string

const (
	// FlavorVault is HashiCorp Vault.
	FlavorVault Flavor = "vault"
	// FlavorOpenBao is OpenBao, the Linux Foundation fork of Vault.
	FlavorOpenBao Flavor = "openbao"
)

// ServerInfo is what `<bin> version` says about the server binary the tests
// run against.
type ServerInfo struct {
	// Bin is the binary's path (see VaultBin).
	Bin string
	// Flavor is FlavorVault or FlavorOpenBao.
	Flavor Flavor
	// Version is its first output line, e.g. "OpenBao v2.6.2 (dd9c19c…)".
	Version string
}

var (
	serverMu   sync.Mutex
	serverInfo = map[string]ServerInfo{}
)

// Server runs `<bin> version` on the binary VaultBin picks, once per
// binary, and reports which server it is.
func Server() (ServerInfo, error) {
	bin, err := VaultBin()
	if err != nil {
		return ServerInfo{}, err
	}
	serverMu.Lock()
	defer serverMu.Unlock()
	if si, ok := serverInfo[bin]; ok {
		return si, nil
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return ServerInfo{}, fmt.Errorf("%s version: %w", bin, err)
	}
	si, err := parseVersion(string(out))
	if err != nil {
		return ServerInfo{}, fmt.Errorf("%s version: %w", bin, err)
	}
	si.Bin = bin
	serverInfo[bin] = si
	return si, nil
}

// parseVersion reads `<bin> version` output: "Vault v1.21.0, built …" or
// "OpenBao v2.6.2 (<commit>)".
func parseVersion(out string) (ServerInfo, error) {
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	si := ServerInfo{Version: line}
	switch {
	case strings.HasPrefix(line, "OpenBao v"):
		si.Flavor = FlavorOpenBao
	case strings.HasPrefix(line, "Vault v"):
		si.Flavor = FlavorVault
	default:
		return ServerInfo{}, fmt.Errorf("printed %q: neither Vault nor OpenBao", line)
	}
	return si, nil
}

// ServerFlavor returns the flavor of the server binary the tests use.
func ServerFlavor() (Flavor, error) {
	si, err := Server()
	return si.Flavor, err
}

// IsOpenBao reports whether the tests run against OpenBao. It panics if
// the binary cannot be run, which Start would have reported already.
func IsOpenBao() bool {
	f, err := ServerFlavor()
	if err != nil {
		panic(err)
	}
	return f == FlavorOpenBao
}

// TB is the part of testing.TB that SkipOn uses (this package is also
// linked into the benchmark tool, which should not pull in testing).
type TB interface {
	Helper()
	Fatal(args ...any)
	Skipf(format string, args ...any)
}

// SkipOn skips the test when the server is of flavor f, saying why: for
// tests of behaviour that one server does not have.
func SkipOn(t TB, f Flavor, why string) {
	t.Helper()
	si, err := Server()
	if err != nil {
		t.Fatal(err)
	}
	if si.Flavor == f {
		t.Skipf("not on %s (%s): %s", f, si.Version, why)
	}
}

// CLIEnv returns the process environment with each of the CLI's variables
// in kv (pairs of a name without its prefix and a value: "ADDR", addr,
// "TOKEN", token) set under Vault's name and OpenBao's: bao reads BAO_ADDR
// before VAULT_ADDR, so a BAO_ADDR in the caller's shell would otherwise
// send a test's bao commands elsewhere.
func CLIEnv(kv ...string) []string {
	env := os.Environ()
	for i := 0; i+1 < len(kv); i += 2 {
		env = append(env, "VAULT_"+kv[i]+"="+kv[i+1], "BAO_"+kv[i]+"="+kv[i+1])
	}
	return env
}
