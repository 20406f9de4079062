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

// OperatorPolicyName is the name the operator policy is written under.
const OperatorPolicyName = "vendoroauth-operator"

// ReaderPolicyName is the name the reader policy for credential name is
// written under.
func ReaderPolicyName(name string) string { return "vendoroauth-reader-" + name }

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
