// Package solution builds, validates and inspects MetalK8s Solution
// archives: ISO images holding OCI images, an Operator and an optional UI,
// laid out as docs chapter 12.2 specifies. See docs/solutions.md.
package solution

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/metalk8s/buildchain/buildchain/distref"
	"github.com/metalk8s/buildchain/buildchain/product"
)

// LayoutVersion is the only ARCHIVE_LAYOUT_VERSION this package knows (12.2.3).
const LayoutVersion = "1"

// TimestampLayout is BUILD_TIMESTAMP's format: `date +%Y-%m-%dT%H:%M:%SZ`.
const TimestampLayout = "2006-01-02T15:04:05Z"

// Product is the content of a Solution's product.txt.
type Product struct {
	Name            string `json:"name"`             // NAME, e.g. "example-solution" or "Example"
	Version         string `json:"version"`          // VERSION, e.g. "1.0.0-dev"
	RequireMetalK8s string `json:"require_metalk8s"` // REQUIRE_METALK8S, a constraint such as ">=2.0"
	LayoutVersion   string `json:"archive_layout_version"`
	Git             string `json:"git,omitempty"`             // GIT, optional
	BuildTimestamp  string `json:"build_timestamp,omitempty"` // BUILD_TIMESTAMP, optional, TimestampLayout
	// Extra holds any other KEY=VALUE lines, which the format tolerates.
	Extra map[string]string `json:"extra,omitempty"`
}

// ID is the archive's machine identifier: MetalK8s derives the repository
// name and the mount point /srv/scality/<ID> from it (12.2.4). The name is
// lower-cased and spaces become dashes, as MetalK8s's Salt modules do, so
// that a display name such as "Example" still gives a valid registry name.
func (p Product) ID() string { return MachineName(p.Name) + "-" + p.Version }

// VolumeID is the volume identifier the archive must carry (12.2.1).
func (p Product) VolumeID() string { return p.Name + " " + p.Version }

// MachineName is NAME lower-cased with spaces turned into dashes.
func MachineName(name string) string { return strings.ToLower(strings.ReplaceAll(name, " ", "-")) }

// Render writes product.txt in the format package product owns: values
// plain when nothing in them means anything to a shell, else in single
// quotes (so REQUIRE_METALK8S, which holds '>' or '<', always is).
// Extra keys must start with product.ExtraPrefix.
func (p Product) Render() ([]byte, error) {
	lv := p.LayoutVersion
	if lv == "" {
		lv = LayoutVersion
	}
	fields := []product.Field{
		{Key: "NAME", Value: p.Name},
		{Key: "VERSION", Value: p.Version},
		{Key: "REQUIRE_METALK8S", Value: p.RequireMetalK8s},
		{Key: "ARCHIVE_LAYOUT_VERSION", Value: lv},
	}
	if p.Git != "" {
		fields = append(fields, product.Field{Key: "GIT", Value: p.Git})
	}
	if p.BuildTimestamp != "" {
		fields = append(fields, product.Field{Key: "BUILD_TIMESTAMP", Value: p.BuildTimestamp})
	}
	keys := make([]string, 0, len(p.Extra))
	for k := range p.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fields = append(fields, product.Field{Key: k, Value: p.Extra[k]})
	}
	return product.Encode(fields)
}

var (
	// nameRE: a display name; MachineName of it must be a repository name
	// component (checked separately).
	nameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9 ._-]*[A-Za-z0-9])?$`)
	// versionRE is SemVer without build metadata, with a lower-case
	// pre-release: the version becomes part of a repository name
	// (<name>-<version>) and of the volume ID, where '+' and upper case are
	// not allowed.
	versionRE = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9a-z]+([.-][0-9a-z]+)*)?$`)
)

// ProductError is one problem found in a product.txt, at a line (0: the
// whole file).
type ProductError = product.Error

// ProductErrors is every problem of a product.txt.
type ProductErrors = product.Errors

// ParseProduct parses product.txt (the grammar of package product) and
// checks it against 12.2.3: NAME, VERSION, REQUIRE_METALK8S and
// ARCHIVE_LAYOUT_VERSION required, each value valid. It returns what it
// could read and every problem (as ProductErrors), not just the first.
func ParseProduct(data []byte) (Product, error) {
	var p Product
	fields, err := product.Parse(data)
	var errs ProductErrors
	if err != nil && !errors.As(err, &errs) {
		return p, ProductErrors{{Msg: err.Error()}}
	}
	if len(errs) == 1 && errs[0].Line == 0 {
		return p, errs // not UTF-8: nothing was read
	}
	bad := func(line int, format string, args ...any) {
		errs = append(errs, ProductError{Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	seen := map[string]int{}
	for _, f := range fields {
		n, val := f.Line, f.Value
		seen[f.Key] = n
		switch f.Key {
		case "NAME":
			p.Name = val
			if msg := checkName(val); msg != "" {
				bad(n, "NAME %q: %s", val, msg)
			}
		case "VERSION":
			p.Version = val
			if !versionRE.MatchString(val) {
				bad(n, "VERSION %q is not a version: want MAJOR.MINOR.PATCH with an optional lower-case pre-release (1.0.0, 1.0.0-dev)", val)
			}
		case "REQUIRE_METALK8S":
			p.RequireMetalK8s = val
			if _, err := ParseConstraint(val); err != nil {
				bad(n, "REQUIRE_METALK8S %q: %v", val, err)
			}
		case "ARCHIVE_LAYOUT_VERSION":
			p.LayoutVersion = val
			if val != LayoutVersion {
				bad(n, "ARCHIVE_LAYOUT_VERSION %q: only %s is defined", val, LayoutVersion)
			}
		case "GIT":
			p.Git = val
		case "BUILD_TIMESTAMP":
			p.BuildTimestamp = val
			if _, err := time.Parse(TimestampLayout, val); err != nil {
				bad(n, "BUILD_TIMESTAMP %q: want %s (date +%%Y-%%m-%%dT%%H:%%M:%%SZ)", val, TimestampLayout)
			}
		default:
			// SHORT_VERSION and the like of MetalK8s's own product.txt,
			// and X_ keys: kept, not checked.
			if p.Extra == nil {
				p.Extra = map[string]string{}
			}
			p.Extra[f.Key] = val
		}
	}
	for _, k := range []string{"NAME", "VERSION", "REQUIRE_METALK8S", "ARCHIVE_LAYOUT_VERSION"} {
		if _, ok := seen[k]; !ok {
			bad(0, "%s is missing", k)
		}
	}
	if _, ok1 := seen["NAME"]; ok1 && p.Name != "" && p.Version != "" {
		if msg := checkVolumeID(p.VolumeID()); msg != "" {
			bad(seen["NAME"], "NAME and VERSION give the volume ID %q, which %s", p.VolumeID(), msg)
		}
	}
	if len(errs) > 0 {
		return p, errs
	}
	return p, nil
}

// checkName returns why name is not a valid NAME, or "".
func checkName(name string) string {
	if !nameRE.MatchString(name) {
		return "want letters, digits, spaces, '.', '_' and '-', starting and ending with a letter or digit"
	}
	if !distref.ValidComponent(MachineName(name)) {
		return fmt.Sprintf("its machine name %q is not a valid registry repository name component", MachineName(name))
	}
	return ""
}

// checkVolumeID returns why id cannot be an ISO 9660 volume identifier.
func checkVolumeID(id string) string {
	if len(id) > 32 {
		return fmt.Sprintf("is %d characters long; ISO 9660 allows 32", len(id))
	}
	return ""
}

// CheckNameVersion validates a NAME and VERSION pair as ParseProduct does,
// for the build, which starts from solution.yaml.
func CheckNameVersion(name, version string) error {
	if msg := checkName(name); msg != "" {
		return fmt.Errorf("name %q: %s", name, msg)
	}
	if !versionRE.MatchString(version) {
		return fmt.Errorf("version %q is not a version: want MAJOR.MINOR.PATCH with an optional lower-case pre-release", version)
	}
	if msg := checkVolumeID(name + " " + version); msg != "" {
		return fmt.Errorf("volume ID %q %s", name+" "+version, msg)
	}
	return nil
}

// Constraint is a REQUIRE_METALK8S version constraint: clauses joined by
// commas, all of which must hold, as in ">=2.0,<3.0".
type Constraint []Clause

// Clause is one comparison.
type Clause struct {
	Op      string // one of >=, <=, >, <, ==, !=, ~=
	Version []int  // release numbers, 1 to 3 of them
	Suffix  string // pre-release, e.g. "-dev", or ""
	Star    bool   // "==2.0.*": any version with that prefix
}

var (
	clauseRE = regexp.MustCompile(`^(>=|<=|==|!=|~=|>|<)?\s*((?:0|[1-9][0-9]{0,5})(?:\.(?:0|[1-9][0-9]{0,5})){0,2})(\.\*|-[0-9a-z]+(?:[.-][0-9a-z]+)*)?$`)
)

// ParseConstraint parses a REQUIRE_METALK8S value. A clause without an
// operator means ==. "~=X.Y" means >=X.Y and ==X.* (PEP 440), and needs at
// least two numbers. ".*" is only allowed with == and !=.
func ParseConstraint(s string) (Constraint, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty version constraint")
	}
	var c Constraint
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		m := clauseRE.FindStringSubmatch(part)
		if m == nil {
			return nil, fmt.Errorf("%q is not a version clause: want OP VERSION with OP one of >= <= > < == != ~=, e.g. >=2.0", part)
		}
		cl := Clause{Op: m[1]}
		if cl.Op == "" {
			cl.Op = "=="
		}
		for _, n := range strings.Split(m[2], ".") {
			v, _ := strconv.Atoi(n)
			cl.Version = append(cl.Version, v)
		}
		switch {
		case m[3] == ".*":
			if cl.Op != "==" && cl.Op != "!=" {
				return nil, fmt.Errorf("%q: '.*' only goes with == or !=", part)
			}
			cl.Star = true
		case m[3] != "":
			cl.Suffix = m[3]
		}
		if cl.Op == "~=" && len(cl.Version) < 2 {
			return nil, fmt.Errorf("%q: ~= needs at least MAJOR.MINOR", part)
		}
		c = append(c, cl)
	}
	return c, nil
}

// Allows reports whether version (MAJOR.MINOR.PATCH[-suffix]) satisfies
// every clause. Missing numbers count as 0; a pre-release sorts before its
// release.
func (c Constraint) Allows(version string) bool {
	m := versionRE.FindStringSubmatch(version)
	if m == nil {
		return false
	}
	v := make([]int, 3)
	for i := range v {
		v[i], _ = strconv.Atoi(m[i+1])
	}
	suffix := m[4]
	for _, cl := range c {
		if !cl.allows(v, suffix) {
			return false
		}
	}
	return true
}

func (cl Clause) allows(v []int, suffix string) bool {
	want := make([]int, 3)
	copy(want, cl.Version)
	if cl.Star {
		prefix := true
		for i, n := range cl.Version {
			prefix = prefix && v[i] == n
		}
		return prefix == (cl.Op == "==")
	}
	cmp := compareVersions(v, suffix, want, cl.Suffix)
	switch cl.Op {
	case ">=":
		return cmp >= 0
	case "<=":
		return cmp <= 0
	case ">":
		return cmp > 0
	case "<":
		return cmp < 0
	case "!=":
		return cmp != 0
	case "~=":
		// ~=X.Y.Z: >=X.Y.Z and the same X.Y; ~=X.Y: >=X.Y and the same X.
		for i := 0; i < len(cl.Version)-1; i++ {
			if v[i] != cl.Version[i] {
				return false
			}
		}
		return cmp >= 0
	default:
		return cmp == 0
	}
}

func compareVersions(a []int, as string, b []int, bs string) int {
	for i := range 3 {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	switch {
	case as == bs:
		return 0
	case as == "":
		return 1
	case bs == "":
		return -1
	case as < bs:
		return -1
	default:
		return 1
	}
}
