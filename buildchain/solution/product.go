// Package solution builds, validates and inspects MetalK8s Solution
// archives: ISO images holding OCI images, an Operator and an optional UI,
// laid out as docs chapter 12.2 specifies. See docs/solutions.md.
package solution

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/metalk8s/buildchain/buildchain/distref"
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

// Render writes product.txt. REQUIRE_METALK8S is always double-quoted as in
// the documentation (it holds '>' and '<', which a shell sourcing the file
// would take as redirections); the other values are quoted only when needed.
func (p Product) Render() []byte {
	var b strings.Builder
	line := func(k, v string, force bool) {
		if force || !plainValueRE.MatchString(v) {
			v = `"` + v + `"`
		}
		fmt.Fprintf(&b, "%s=%s\n", k, v)
	}
	line("NAME", p.Name, false)
	line("VERSION", p.Version, false)
	line("REQUIRE_METALK8S", p.RequireMetalK8s, true)
	lv := p.LayoutVersion
	if lv == "" {
		lv = LayoutVersion
	}
	line("ARCHIVE_LAYOUT_VERSION", lv, false)
	if p.Git != "" {
		line("GIT", p.Git, false)
	}
	if p.BuildTimestamp != "" {
		line("BUILD_TIMESTAMP", p.BuildTimestamp, false)
	}
	keys := make([]string, 0, len(p.Extra))
	for k := range p.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		line(k, p.Extra[k], false)
	}
	return []byte(b.String())
}

var (
	keyRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	// plainValueRE is what may stay unquoted: nothing a POSIX shell would
	// interpret, since product.txt is also sourced by scripts.
	plainValueRE = regexp.MustCompile(`^[A-Za-z0-9._,:+@%/=-]*$`)
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
type ProductError struct {
	Line int
	Msg  string
}

func (e ProductError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// ProductErrors is every problem of a product.txt.
type ProductErrors []ProductError

func (es ProductErrors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// ParseProduct parses product.txt and checks it against 12.2.3: KEY=VALUE
// lines (blank lines and # comments allowed), values unquoted or in single
// or double quotes, NAME, VERSION, REQUIRE_METALK8S and
// ARCHIVE_LAYOUT_VERSION required. It returns what it could read and every
// problem (as ProductErrors), not just the first.
func ParseProduct(data []byte) (Product, error) {
	var p Product
	var errs ProductErrors
	bad := func(line int, format string, args ...any) {
		errs = append(errs, ProductError{line, fmt.Sprintf(format, args...)})
	}
	if !utf8.Valid(data) {
		bad(0, "not UTF-8 (12.2.1 requires UTF-8)")
		return p, errs
	}
	seen := map[string]int{}
	text := strings.TrimSuffix(string(data), "\n")
	for i, raw := range strings.Split(text, "\n") {
		n := i + 1
		line := strings.TrimSuffix(raw, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			bad(n, "want KEY=VALUE, got %q", line)
			continue
		}
		if !keyRE.MatchString(k) {
			bad(n, "invalid key %q: want [A-Z][A-Z0-9_]* with no space around '='", k)
			continue
		}
		val, err := unquote(v)
		if err != nil {
			bad(n, "%s: %v", k, err)
			continue
		}
		if prev, dup := seen[k]; dup {
			bad(n, "%s is already set on line %d", k, prev)
			continue
		}
		seen[k] = n
		switch k {
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
			if p.Extra == nil {
				p.Extra = map[string]string{}
			}
			p.Extra[k] = val
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

// unquote reads a value: plain, "double-quoted" or 'single-quoted'. Inside
// double quotes, characters a shell would expand ($ ` \) are refused rather
// than interpreted, so every reader (shell, Python, this package) agrees on
// the value.
func unquote(v string) (string, error) {
	switch {
	case strings.HasPrefix(v, `"`):
		if len(v) < 2 || !strings.HasSuffix(v, `"`) {
			return "", fmt.Errorf("unterminated double quote in %q", v)
		}
		in := v[1 : len(v)-1]
		if strings.ContainsAny(in, "\"$`\\") {
			return "", fmt.Errorf("%q: a double-quoted value may not hold \", $, ` or \\", v)
		}
		return in, checkText(in)
	case strings.HasPrefix(v, `'`):
		if len(v) < 2 || !strings.HasSuffix(v, `'`) {
			return "", fmt.Errorf("unterminated single quote in %q", v)
		}
		in := v[1 : len(v)-1]
		if strings.Contains(in, "'") {
			return "", fmt.Errorf("%q: a single-quoted value may not hold '", v)
		}
		return in, checkText(in)
	default:
		if !plainValueRE.MatchString(v) {
			return "", fmt.Errorf("%q must be quoted: it holds spaces or shell characters", v)
		}
		return v, nil
	}
}

func checkText(s string) error {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("control character %q in value", r)
		}
	}
	return nil
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
