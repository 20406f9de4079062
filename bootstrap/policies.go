package bootstrap

import (
	_ "embed"
	"fmt"
	"regexp"
	"strings"
)

// The policy files are the single source: the bootstrap tool, Terraform
// and the end-to-end tests all use these files.
var (
	//go:embed policies/vendoroauth-operator.hcl
	operatorPolicy string
	//go:embed policies/vendoroauth-reader.hcl.tmpl
	readerPolicyTemplate string
)

// DefaultMount is the path the policy files are written for.
const DefaultMount = "vendoroauth"

// OperatorPolicyName is the name the operator policy of the default
// mount is written under.
const OperatorPolicyName = DefaultMount + "-operator"

// OperatorPolicyNameFor is the name of the operator policy of the plugin
// mounted at mount: "<mount>-operator", with each "/" of a nested mount
// path written "-". Policies are Vault-wide while their paths name one
// mount, so the name carries the mount: bootstrapping a second mount must
// not overwrite the first one's policy. For the default mount it is the
// name the files and the README use, vendoroauth-operator.
func OperatorPolicyNameFor(mount string) string { return policyPrefix(mount) + "-operator" }

// ReaderPolicyName is the name the reader policy for credential name of
// the default mount is written under.
func ReaderPolicyName(name string) string { return ReaderPolicyNameFor(DefaultMount, name) }

// ReaderPolicyNameFor is the name of the reader policy for credential name
// of the plugin mounted at mount: "<mount>-reader-<name>"
// (vendoroauth-reader-<name> for the default mount).
func ReaderPolicyNameFor(mount, name string) string { return policyPrefix(mount) + "-reader-" + name }

// policyPrefix is mount as the start of a policy name. Vault lowercases
// policy names, so it is lowercased here too, and what the tool prints is
// the name Vault shows.
func policyPrefix(mount string) string {
	return strings.ToLower(strings.ReplaceAll(strings.Trim(mount, "/"), "/", "-"))
}

// namePattern is what the plugin accepts as a credential name
// (framework.GenericNameRegex). Such a name has no glob characters, so it
// is safe to put into a policy path.
var namePattern = regexp.MustCompile(`^\w(?:[\w.-]*\w)?$`)

// mountPattern is a mount path without leading or trailing slashes.
var mountPattern = regexp.MustCompile(`^[\w.-]+(?:/[\w.-]+)*$`)

// OperatorPolicy returns the operator policy for the plugin mounted at mount.
func OperatorPolicy(mount string) (string, error) {
	if !mountPattern.MatchString(mount) {
		return "", fmt.Errorf("mount %q is not a plain mount path", mount)
	}
	return remount(operatorPolicy, mount), nil
}

// ReaderPolicy returns the policy that may read only token/<name> of the
// plugin mounted at mount.
func ReaderPolicy(mount, name string) (string, error) {
	if !mountPattern.MatchString(mount) {
		return "", fmt.Errorf("mount %q is not a plain mount path", mount)
	}
	if !namePattern.MatchString(name) {
		return "", fmt.Errorf("credential name %q: use letters, digits, '_', '-' and '.', starting and ending with a letter or digit", name)
	}
	return remount(strings.ReplaceAll(readerPolicyTemplate, "${NAME}", name), mount), nil
}

// remount points the policy's paths at mount instead of vendoroauth/.
func remount(policy, mount string) string {
	if mount == DefaultMount {
		return policy
	}
	return strings.ReplaceAll(policy, `path "`+DefaultMount+`/`, `path "`+mount+`/`)
}
