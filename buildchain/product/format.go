package product

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// product.txt is a list of KEY=VALUE lines, read by MetalK8s's Salt
// modules, by Python scripts and by shells that source it. This file owns
// its grammar, so that every reader gets the same values and no shell
// runs anything:
//
//   - a line is blank (spaces and tabs), a comment (# after optional
//     blanks) or KEY=VALUE with no space around '=';
//   - no carriage return and no control character other than tab, anywhere:
//     a CRLF file would give a shell the value "1\r" where a parser sees "1";
//   - KEY is one of Keys, or ExtraPrefix followed by [A-Z0-9_]+. Keys such
//     as PATH, IFS, PS4, ENV or LD_PRELOAD change what a shell that
//     sourced the file does next (PS4='$(cmd)' runs cmd at the next
//     `set -x`), and the list of such names grows with every shell and
//     program, so only names no shell or program reads are let in;
//   - VALUE is plain (PlainValue: nothing a shell interprets), or
//     '...' without ', or "..." without ", $, ` or \ (shell expansion is
//     refused, not interpreted).

// Keys are the keys the grammar defines: the MetalK8s product.txt's and
// a Solution's (docs chapter 12.2.3).
var Keys = []string{
	"NAME", "VERSION", "SHORT_VERSION", "GIT", "DEVELOPMENT_RELEASE", "BUILD_TIMESTAMP",
	"BUILD_HOST",
	"REQUIRE_METALK8S", "ARCHIVE_LAYOUT_VERSION",
}

// ExtraPrefix starts every other key. No shell (bash, dash, ksh, zsh,
// BusyBox ash) and no common program gives meaning to a variable named so.
const ExtraPrefix = "X_"

var (
	extraKeyRE = regexp.MustCompile(`^X_[A-Z0-9_]+$`)
	// plainRE is what may stay unquoted: nothing a POSIX shell would
	// interpret.
	plainRE = regexp.MustCompile(`^[A-Za-z0-9._,:+@%/=-]*$`)
)

// Field is one KEY=VALUE line. Line is its line number when parsed.
type Field struct {
	Key, Value string
	Line       int
}

// Error is one problem of a product.txt, at a line (0: the whole file).
type Error struct {
	Line int
	Msg  string
}

func (e Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// Errors is every problem of a product.txt.
type Errors []Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// CheckKey returns why k may not be a key of product.txt, or nil.
func CheckKey(k string) error {
	for _, g := range Keys {
		if k == g {
			return nil
		}
	}
	if extraKeyRE.MatchString(k) {
		return nil
	}
	return fmt.Errorf("key %q is not one of %s, nor %s followed by [A-Z0-9_]: a shell sourcing the file must not see a variable it gives meaning to (PATH, IFS, PS4, ENV...)",
		k, strings.Join(Keys, ", "), ExtraPrefix)
}

// PlainValue reports whether v can be written without quotes.
func PlainValue(v string) bool { return plainRE.MatchString(v) }

// Quote writes v as a product.txt value: as is when plain, else in single
// quotes, in which a shell interprets nothing. A value holding a single
// quote goes in double quotes, which the grammar allows only without
// " $ ` \; a value that fits neither cannot be written.
func Quote(v string) (string, error) {
	if err := checkText(v); err != nil {
		return "", err
	}
	switch {
	case PlainValue(v):
		return v, nil
	case !strings.Contains(v, "'"):
		return "'" + v + "'", nil
	case !strings.ContainsAny(v, "\"$`\\"):
		return `"` + v + `"`, nil
	}
	return "", fmt.Errorf("value %q holds both ' and one of \" $ ` \\: product.txt cannot hold it", v)
}

// Encode writes fields as product.txt, in the order given.
func Encode(fields []Field) ([]byte, error) {
	var b strings.Builder
	seen := map[string]bool{}
	for _, f := range fields {
		if err := CheckKey(f.Key); err != nil {
			return nil, err
		}
		if seen[f.Key] {
			return nil, fmt.Errorf("%s is given twice", f.Key)
		}
		seen[f.Key] = true
		v, err := Quote(f.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Key, err)
		}
		b.WriteString(f.Key + "=" + v + "\n")
	}
	return []byte(b.String()), nil
}

// Parse reads product.txt's lines. It returns the fields it could read,
// in file order, and every problem of the format (as Errors), not just
// the first. What the keys must hold is the caller's to check.
func Parse(data []byte) ([]Field, error) {
	var fields []Field
	var errs Errors
	bad := func(line int, format string, args ...any) {
		errs = append(errs, Error{line, fmt.Sprintf(format, args...)})
	}
	if !utf8.Valid(data) {
		return nil, Errors{{0, "not UTF-8 (12.2.1 requires UTF-8)"}}
	}
	seen := map[string]int{}
	text := strings.TrimSuffix(string(data), "\n")
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		if j := strings.IndexFunc(line, isControl); j >= 0 {
			if line[j] == '\r' {
				bad(n, "carriage return: product.txt has LF line endings, which shells and parsers read alike")
			} else {
				bad(n, "control character %q", line[j])
			}
			continue
		}
		if t := strings.TrimLeft(line, " \t"); t == "" || t[0] == '#' {
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
		if err := CheckKey(k); err != nil {
			bad(n, "%v", err)
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
		fields = append(fields, Field{k, val, n})
	}
	if len(errs) > 0 {
		return fields, errs
	}
	return fields, nil
}

var keyRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

func isControl(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f }

// unquote reads a value: plain, "double-quoted" or 'single-quoted'.
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
		if !PlainValue(v) {
			return "", fmt.Errorf("%q must be quoted: it holds spaces or shell characters", v)
		}
		return v, nil
	}
}

func checkText(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("value %q is not UTF-8", s)
	}
	for _, r := range s {
		if isControl(r) || r == '\t' {
			return fmt.Errorf("control character %q in value", r)
		}
	}
	return nil
}
