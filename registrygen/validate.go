package registrygen

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/metalk8s/buildchain/buildchain/distref"
)

// Names, tags and digests follow the distribution grammar, which distref
// owns. Every character it allows is safe in an nginx config word, in a
// single-quoted JSON string and in a URI, which is what lets the generator
// emit them unquoted. Only sha256 digests exist: the dir: layout names blobs
// by the hex of their sha256.
//
// On top of the grammar, registrygen's own policy refuses:
//   - ".." anywhere in a tag (ValidateTag, below);
//   - a name whose last component is an API word (manifests, blobs, tags,
//     referrers) under another served name, which would shadow that name's
//     routes (checked in nginx.go, where all the names are known).

// MaxNameLength is the longest repository name (prefix included) accepted.
const MaxNameLength = distref.MaxNameLength

// ValidateName checks a repository name against the distribution grammar.
func ValidateName(name string) error { return distref.CheckName(name) }

// ValidateTag checks a tag against the distribution grammar, and refuses
// ".." anywhere in it: the grammar allows "1..2", which is harmless in a
// URI or a path segment, but a config that never holds ".." is easier to
// audit than one that holds it only where it is harmless.
func ValidateTag(tag string) error {
	if err := distref.CheckTag(tag); err != nil {
		return err
	}
	if strings.Contains(tag, "..") {
		return fmt.Errorf("tag %q contains \"..\", which registrygen refuses", tag)
	}
	return nil
}

// ValidateDigest checks a digest; only "sha256:" and 64 lower-case hex
// digits are accepted (see above).
func ValidateDigest(d string) error { return distref.CheckDigest(d) }

// placeholderRE is a Jinja expression naming one variable, the only template
// syntax accepted in a prefix or server root (docs 12.2.4 uses
// '{{ repository }}' and '{{ registry_root }}'). Filters, statements and
// comments are refused: the config must stay a plain substitution template.
var placeholderRE = regexp.MustCompile(`\{\{ ?[A-Za-z_][A-Za-z0-9_]* ?\}\}`)

// IsTemplate reports whether s holds a Jinja placeholder.
func IsTemplate(s string) bool { return strings.Contains(s, "{{") }

// NormalizePrefix turns a --name-prefix value into the string put in front
// of every repository name: slashes trimmed, then one "/" appended unless
// empty (as static-container-registry does). A prefix must be a valid
// repository name once each placeholder is replaced by a valid component.
func NormalizePrefix(prefix string) (string, error) {
	p := strings.Trim(prefix, "/")
	if p == "" {
		return "", nil
	}
	probe := placeholderRE.ReplaceAllString(p, "x")
	if strings.ContainsAny(probe, "{}") {
		return "", fmt.Errorf("name prefix %q: only {{ variable }} placeholders are allowed", prefix)
	}
	if err := ValidateName(probe); err != nil {
		return "", fmt.Errorf("name prefix %q: %w", prefix, err)
	}
	return p + "/", nil
}

var (
	nginxVarRE    = regexp.MustCompile(`^\$[A-Za-z_][A-Za-z0-9_]*`)
	pathSegmentRE = regexp.MustCompile(`^[A-Za-z0-9_.+@,=:~-]+$`)
)

// NormalizeServerRoot checks a --server-root value: an absolute path, or an
// nginx variable ($name) or a Jinja placeholder ({{ name }}) optionally
// followed by a path, every segment made of [A-Za-z0-9_.+@,=:~-], none
// "." and none holding "..". Thus no quote, brace, ";", "$", "#", whitespace or newline can
// reach the config through it except the leading variable or placeholder.
// A trailing "/" is dropped.
func NormalizeServerRoot(root string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("server root %q: %s", root, why)
	}
	var head, rest string
	switch {
	case strings.HasPrefix(root, "/"):
		rest = root
	case strings.HasPrefix(root, "$"):
		head = nginxVarRE.FindString(root)
		if head == "" {
			return bad("an nginx variable is $ followed by [A-Za-z_][A-Za-z0-9_]*")
		}
		rest = root[len(head):]
	case strings.HasPrefix(root, "{{"):
		loc := placeholderRE.FindStringIndex(root)
		if loc == nil || loc[0] != 0 {
			return bad("a template must start with a {{ variable }} placeholder")
		}
		head, rest = root[:loc[1]], root[loc[1]:]
	default:
		return bad("must be an absolute path, an nginx $variable or a {{ variable }} placeholder")
	}
	if rest != "" && !strings.HasPrefix(rest, "/") {
		return bad("the path after the variable must start with /")
	}
	rest = strings.TrimSuffix(rest, "/")
	if rest == "" {
		if head == "" {
			return "/", nil
		}
		return head, nil
	}
	for _, seg := range strings.Split(rest[1:], "/") {
		switch {
		case seg == "":
			return bad("empty path segment (//)")
		case seg == "." || strings.Contains(seg, ".."):
			return bad(fmt.Sprintf("path segment %q: \".\" segments and \"..\" are not allowed", seg))
		case !pathSegmentRE.MatchString(seg):
			return bad(fmt.Sprintf("path segment %q has a character outside [A-Za-z0-9_.+@,=:~-]", seg))
		}
	}
	return head + rest, nil
}
