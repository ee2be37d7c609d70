package distref

import (
	"errors"
	"fmt"
	"strings"
)

// The Check functions are the Valid ones with an error that says what is
// wrong, for input whose author has to fix it (a directory name, a
// manifest). Their messages quote the offending value.

// CheckName checks a repository name, naming the first bad component.
func CheckName(name string) error {
	if name == "" {
		return errors.New("repository name is empty")
	}
	if len(name) > MaxNameLength {
		return fmt.Errorf("repository name is %d characters long, more than %d", len(name), MaxNameLength)
	}
	for _, c := range strings.Split(name, "/") {
		if !ValidComponent(c) {
			return fmt.Errorf("repository name %q: component %q does not match [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*", name, c)
		}
	}
	return nil
}

// CheckTag checks a tag.
func CheckTag(tag string) error {
	if !ValidTag(tag) {
		return fmt.Errorf("tag %q does not match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", tag)
	}
	return nil
}

// CheckDigest checks a digest: "sha256:" and 64 lower-case hex digits,
// the only form the dir: layout can name a file by.
func CheckDigest(d string) error {
	if ValidDigest(d) {
		return nil
	}
	alg, hex, ok := strings.Cut(d, ":")
	switch {
	case !ok:
		return fmt.Errorf("digest %q is not sha256:<64 lower-case hex digits> (no algorithm)", d)
	case alg != "sha256":
		return fmt.Errorf("digest %q is not sha256:<64 lower-case hex digits> (algorithm %q)", d, alg)
	case len(hex) != 64:
		return fmt.Errorf("digest %q is not sha256:<64 lower-case hex digits> (wrong number of hex digits: %d)", d, len(hex))
	}
	return fmt.Errorf("digest %q is not sha256:<64 lower-case hex digits>", d)
}
