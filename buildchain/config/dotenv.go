package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/metalk8s/buildchain/buildchain/distref"
)

// Entry is one KEY=VALUE assignment of a .env file.
type Entry struct {
	Key   string
	Value string
	Line  int
}

var keyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseDotEnv parses the .env format: KEY=VALUE lines, an optional leading
// `export`, `#` comments, blank lines, and single- or double-quoted values.
// Single quotes are literal; double quotes understand \" \\ \n \t and \$.
// Unquoted values end at a ` #` comment and are trimmed. Every error names
// name:line, and unknown keys are errors so that a typo never goes unseen.
func ParseDotEnv(name string, data []byte) ([]Entry, error) {
	known := map[string]bool{}
	for _, k := range Keys {
		known[k.Name] = true
	}
	var out []Entry
	seen := map[string]int{}
	for i, raw := range strings.Split(string(data), "\n") {
		line := i + 1
		errf := func(format string, a ...any) error {
			return fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, a...))
		}
		s := strings.TrimRight(raw, "\r")
		s = strings.TrimSpace(s)
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(s, "export"); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "\t")) {
			s = strings.TrimSpace(rest)
		}
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return nil, errf("want KEY=VALUE, got %q", s)
		}
		k = strings.TrimSpace(k)
		if !keyRE.MatchString(k) {
			return nil, errf("invalid key %q", k)
		}
		if !known[k] {
			return nil, errf("unknown key %q (see .env.example for the keys)", k)
		}
		val, err := parseValue(strings.TrimSpace(v))
		if err != nil {
			return nil, errf("%s: %v", k, err)
		}
		if prev, dup := seen[k]; dup {
			return nil, errf("%s is already set on line %d", k, prev)
		}
		seen[k] = line
		out = append(out, Entry{Key: k, Value: val, Line: line})
	}
	return out, nil
}

func parseValue(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	var val, rest string
	switch v[0] {
	case '\'':
		end := strings.IndexByte(v[1:], '\'')
		if end < 0 {
			return "", fmt.Errorf("unterminated single quote")
		}
		val, rest = v[1:1+end], v[2+end:]
	case '"':
		var b strings.Builder
		i := 1
		closed := false
		for ; i < len(v); i++ {
			c := v[i]
			if c == '"' {
				closed = true
				i++
				break
			}
			if c == '\\' && i+1 < len(v) {
				i++
				switch v[i] {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case '"', '\\', '$':
					b.WriteByte(v[i])
				default:
					return "", fmt.Errorf("unknown escape \\%c", v[i])
				}
				continue
			}
			b.WriteByte(c)
		}
		if !closed {
			return "", fmt.Errorf("unterminated double quote")
		}
		val, rest = b.String(), v[i:]
	default:
		if j := strings.Index(v, " #"); j >= 0 {
			v = v[:j]
		} else if j := strings.Index(v, "\t#"); j >= 0 {
			v = v[:j]
		}
		v = strings.TrimSpace(v)
		if strings.ContainsAny(v, "\"'") {
			return "", fmt.Errorf("quote inside an unquoted value %q", v)
		}
		return v, nil
	}
	rest = strings.TrimSpace(rest)
	if rest != "" && !strings.HasPrefix(rest, "#") {
		return "", fmt.Errorf("unexpected %q after the quoted value", rest)
	}
	return val, nil
}

var (
	repoNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	platformRE = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$`)
)

func checkHost(h string) error {
	if !distref.ValidHost(h) {
		return fmt.Errorf("%q is not a registry host[:port]", h)
	}
	return nil
}

// checkHostPath accepts host[:port] optionally followed by a repository
// path prefix, e.g. 127.0.0.1:5000/mirror.
func checkHostPath(s string) error {
	host, path, _ := strings.Cut(s, "/")
	if err := checkHost(host); err != nil {
		return err
	}
	if path == "" {
		return nil
	}
	for _, c := range strings.Split(path, "/") {
		if !distref.ValidComponent(c) {
			return fmt.Errorf("%q: path component %q is not a valid repository name component", s, c)
		}
	}
	return nil
}

func checkRepoName(s string) error {
	if !repoNameRE.MatchString(s) {
		return fmt.Errorf("%q is not a repository name", s)
	}
	return nil
}

// CheckRepoURL accepts the URLs a package repository or key may live at:
// http(s) with a host, or file with a path.
func CheckRepoURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return fmt.Errorf("%q has no host", s)
		}
	case "file":
		if u.Path == "" {
			return fmt.Errorf("%q has no path", s)
		}
	default:
		return fmt.Errorf("%q: want an http, https or file URL", s)
	}
	return nil
}

func checkPlatform(p string) error {
	if !platformRE.MatchString(p) {
		return fmt.Errorf("%q is not os/arch[/variant]", p)
	}
	return nil
}
