package config

import (
	"fmt"
	"regexp"
	"strings"
)

// The defaults of chapter 9.3 of the MetalK8s 2.0 documentation.
const (
	DefaultVagrantProvider = "virtualbox"
	DefaultVagrantUpArgs   = "--provision --no-destroy-on-error --parallel --provider $VAGRANT_PROVIDER"
)

var (
	vagrantNameRE     = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	vagrantSnapshotRE = regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_.-]*$`)
	// Arguments reach vagrant as a list, never through a shell; refusing
	// what a shell would interpret keeps a .env written for doit.sh (which
	// did go through one) from silently meaning something else here.
	vagrantArgRE  = regexp.MustCompile(`^[A-Za-z0-9_.,:=/+@%-]+$`)
	providerVarRE = regexp.MustCompile(`\$\{VAGRANT_PROVIDER\}|\$VAGRANT_PROVIDER\b`)
)

// VagrantArgs splits VAGRANT_UP_ARGS on blanks and replaces $VAGRANT_PROVIDER
// and ${VAGRANT_PROVIDER} with provider. Any other shell syntax (quotes,
// other variables, ;, |, &, globs, redirections) is an error naming the word.
func VagrantArgs(s, provider string) ([]string, error) {
	var out []string
	for _, w := range strings.Fields(s) {
		w = providerVarRE.ReplaceAllLiteralString(w, provider)
		if !vagrantArgRE.MatchString(w) {
			return nil, fmt.Errorf("argument %q: only letters, digits and _.,:=/+@%%- are allowed (the arguments are not run through a shell)", w)
		}
		out = append(out, w)
	}
	return out, nil
}
