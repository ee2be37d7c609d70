// Package product holds the identity of the MetalK8s build (the version of
// the VERSION file and the product.txt written at the root of the ISO) and
// owns the product.txt format, which Solution archives share (format.go).
package product

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// Version is the product version, as MetalK8s's VERSION file spells it.
type Version struct {
	Major, Minor, Patch string
	Suffix              string // e.g. "-dev", "-rc1" or empty
}

// String is the full version, e.g. 2.0.0-dev.
func (v Version) String() string { return v.Major + "." + v.Minor + "." + v.Patch + v.Suffix }

// Short is MAJOR.MINOR.
func (v Version) Short() string { return v.Major + "." + v.Minor }

// Development reports whether this is not a release build.
func (v Version) Development() bool { return v.Suffix != "" }

var (
	numberRE = regexp.MustCompile(`^(0|[1-9][0-9]{0,5})$`)
	suffixRE = regexp.MustCompile(`^(-[a-z0-9]+(\.[a-z0-9]+)*)?$`)
)

// ParseVersion reads the VERSION file format: VERSION_MAJOR, _MINOR, _PATCH
// and _SUFFIX assignments, one a line. Errors name file:line.
func ParseVersion(file string, data []byte) (Version, error) {
	var v Version
	fields := map[string]*string{"VERSION_MAJOR": &v.Major, "VERSION_MINOR": &v.Minor, "VERSION_PATCH": &v.Patch, "VERSION_SUFFIX": &v.Suffix}
	seen := map[string]bool{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, val, ok := strings.Cut(line, "=")
		dst := fields[strings.TrimSpace(k)]
		if !ok || dst == nil {
			return v, fmt.Errorf("%s:%d: want VERSION_{MAJOR,MINOR,PATCH,SUFFIX}=VALUE, got %q", file, i+1, line)
		}
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		if seen[k] {
			return v, fmt.Errorf("%s:%d: %s is set twice", file, i+1, k)
		}
		seen[k] = true
		re := numberRE
		if k == "VERSION_SUFFIX" {
			re = suffixRE
		}
		if !re.MatchString(val) {
			return v, fmt.Errorf("%s:%d: %s: invalid value %q", file, i+1, k, val)
		}
		*dst = val
	}
	for _, k := range []string{"VERSION_MAJOR", "VERSION_MINOR", "VERSION_PATCH"} {
		if !seen[k] {
			return v, fmt.Errorf("%s: %s is missing", file, k)
		}
	}
	return v, nil
}

// ReadVersion reads a VERSION file.
func ReadVersion(path string) (Version, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Version{}, err
	}
	return ParseVersion(path, data)
}

// Info is what product.txt says about a build.
type Info struct {
	Name    string
	Version Version
	Git     string    // `git describe` of the checkout, or empty
	Built   time.Time // from SOURCE_DATE_EPOCH, never the wall clock
	// Host is the build host's name (BUILD_HOST, by default the machine's
	// host name): the one fact of product.txt that differs between two
	// machines given the same inputs, which is why it can be set.
	Host string
}

// ProductTxt renders product.txt. Besides the build host, only
// build-independent facts go in, so that the same inputs give the same
// bytes. It fails only for a name, git description or host name that
// product.txt cannot hold.
func (i Info) ProductTxt() ([]byte, error) {
	dev := "0"
	if i.Version.Development() {
		dev = "1"
	}
	return Encode([]Field{
		{Key: "NAME", Value: i.Name},
		{Key: "VERSION", Value: i.Version.String()},
		{Key: "SHORT_VERSION", Value: i.Version.Short()},
		{Key: "GIT", Value: i.Git},
		{Key: "DEVELOPMENT_RELEASE", Value: dev},
		{Key: "BUILD_TIMESTAMP", Value: i.Built.UTC().Format(time.RFC3339)},
		{Key: "BUILD_HOST", Value: i.Host},
	})
}

// GitDescribe describes the checkout at root, marking local changes, or
// returns "" outside git.
func GitDescribe(root string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--always", "--long", "--dirty", "--tags").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
