// Package evr compares RPM versions with the semantics of rpm's rpmvercmp
// and decides whether a provide satisfies a versioned requirement the way
// rpm's rpmdsCompare does. The depsolver and the repodata reader both rely
// on it, and it is checked against rpm itself in the tests.
package evr

import (
	"strconv"
	"strings"
)

// Compare returns -1, 0 or 1 as a is older than, equal to or newer than b,
// following rpmvercmp: alternating runs of digits and letters, numbers
// compared numerically and beating letters, '~' sorting before anything
// (even the end), '^' sorting after the end but before anything else.
func Compare(a, b string) int {
	if a == b {
		return 0
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for i < len(a) && !isAlnum(a[i]) && a[i] != '~' && a[i] != '^' {
			i++
		}
		for j < len(b) && !isAlnum(b[j]) && b[j] != '~' && b[j] != '^' {
			j++
		}
		// A tilde sorts before everything, including the end of the string.
		if at(a, i) == '~' || at(b, j) == '~' {
			if at(a, i) != '~' {
				return 1
			}
			if at(b, j) != '~' {
				return -1
			}
			i++
			j++
			continue
		}
		// A caret sorts after the end of the string but before anything else.
		if at(a, i) == '^' || at(b, j) == '^' {
			if i >= len(a) {
				return -1
			}
			if j >= len(b) {
				return 1
			}
			if a[i] != '^' {
				return 1
			}
			if b[j] != '^' {
				return -1
			}
			i++
			j++
			continue
		}
		if i >= len(a) || j >= len(b) {
			break
		}
		si, sj := i, j
		num := isDigit(a[i])
		if num {
			for si < len(a) && isDigit(a[si]) {
				si++
			}
			for sj < len(b) && isDigit(b[sj]) {
				sj++
			}
		} else {
			for si < len(a) && isAlpha(a[si]) {
				si++
			}
			for sj < len(b) && isAlpha(b[sj]) {
				sj++
			}
		}
		// b's segment is of the other kind: numbers are newer than letters.
		if sj == j {
			if num {
				return 1
			}
			return -1
		}
		x, y := a[i:si], b[j:sj]
		if num {
			x = strings.TrimLeft(x, "0")
			y = strings.TrimLeft(y, "0")
			if len(x) != len(y) {
				if len(x) > len(y) {
					return 1
				}
				return -1
			}
		}
		if c := strings.Compare(x, y); c != 0 {
			return c
		}
		i, j = si, sj
	}
	if i >= len(a) && j >= len(b) {
		return 0
	}
	if i < len(a) {
		return 1
	}
	return -1
}

func at(s string, i int) byte {
	if i < len(s) {
		return s[i]
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }

// EVR is an epoch, version and release. An empty Epoch means none was
// given, which compares as 0.
type EVR struct {
	Epoch, Version, Release string
}

// Parse splits "[E:]V[-R]" as rpm does: the epoch is the leading digits
// before a colon, the release follows the last dash.
func Parse(s string) EVR {
	var e EVR
	k := 0
	for k < len(s) && isDigit(s[k]) {
		k++
	}
	rest := s
	if k < len(s) && s[k] == ':' {
		e.Epoch = s[:k]
		if e.Epoch == "" {
			e.Epoch = "0"
		}
		rest = s[k+1:]
	}
	if d := strings.LastIndexByte(rest, '-'); d >= 0 {
		e.Version, e.Release = rest[:d], rest[d+1:]
	} else {
		e.Version = rest
	}
	return e
}

// String formats e as [E:]V[-R], leaving out a zero or empty epoch.
func (e EVR) String() string {
	s := e.Version
	if e.Epoch != "" && e.Epoch != "0" {
		s = e.Epoch + ":" + s
	}
	if e.Release != "" {
		s += "-" + e.Release
	}
	return s
}

// Cmp orders two EVRs as rpm orders packages (rpmverCmp): a missing epoch
// is 0 and a missing release is older than any release.
func Cmp(a, b EVR) int {
	ea, eb := a.Epoch, b.Epoch
	if ea == "" {
		ea = "0"
	}
	if eb == "" {
		eb = "0"
	}
	if c := Compare(ea, eb); c != 0 {
		return c
	}
	if c := Compare(a.Version, b.Version); c != 0 {
		return c
	}
	return Compare(a.Release, b.Release)
}

// Flags are the comparison bits of a dependency (RPMSENSE_LESS, _GREATER, _EQUAL).
type Flags uint8

const (
	LT Flags = 2
	GT Flags = 4
	EQ Flags = 8
	LE       = LT | EQ
	GE       = GT | EQ
)

// ParseFlags reads the createrepo spelling (EQ, LT, GT, LE, GE); an empty
// string is an unversioned dependency.
func ParseFlags(s string) (Flags, bool) {
	switch s {
	case "":
		return 0, true
	case "EQ":
		return EQ, true
	case "LT":
		return LT, true
	case "GT":
		return GT, true
	case "LE":
		return LE, true
	case "GE":
		return GE, true
	}
	return 0, false
}

// String is the createrepo spelling of f, or "" for no comparison.
func (f Flags) String() string {
	switch f & (LT | GT | EQ) {
	case EQ:
		return "EQ"
	case LT:
		return "LT"
	case GT:
		return "GT"
	case LE:
		return "LE"
	case GE:
		return "GE"
	}
	return ""
}

// Op is the operator as written in a spec file.
func (f Flags) Op() string {
	switch f & (LT | GT | EQ) {
	case EQ:
		return "="
	case LT:
		return "<"
	case GT:
		return ">"
	case LE:
		return "<="
	case GE:
		return ">="
	}
	return ""
}

// Overlaps reports whether the ranges "f1 v1" and "f2 v2" intersect: it is
// how rpm decides that a provide satisfies a requirement (rpmverOverlap).
// An unversioned side always overlaps, and so does a side without a
// release whose operator includes equality ("foo >= 1.2" matches 1.2-5).
func Overlaps(f1 Flags, v1 EVR, f2 Flags, v2 EVR) bool {
	f1 &= LT | GT | EQ
	f2 &= LT | GT | EQ
	if f1 == 0 || f2 == 0 || v1.Version == "" && v1.Epoch == "" || v2.Version == "" && v2.Epoch == "" {
		return true
	}
	c := 0
	switch {
	case v1.Epoch != "" && v2.Epoch != "":
		c = Compare(v1.Epoch, v2.Epoch)
	case v1.EpochInt() > 0:
		c = 1
	case v2.EpochInt() > 0:
		c = -1
	}
	if c == 0 {
		c = Compare(v1.Version, v2.Version)
		if c == 0 {
			if v1.Release != "" && v2.Release != "" {
				c = Compare(v1.Release, v2.Release)
			} else if v1.Release != "" && f2&EQ != 0 || v2.Release != "" && f1&EQ != 0 {
				return true
			}
		}
	}
	switch {
	case c < 0:
		return f1&GT != 0 || f2&LT != 0
	case c > 0:
		return f1&LT != 0 || f2&GT != 0
	default:
		return f1&EQ != 0 && f2&EQ != 0 || f1&LT != 0 && f2&LT != 0 || f1&GT != 0 && f2&GT != 0
	}
}

// EpochInt returns the numeric epoch, 0 when absent or malformed.
func (e EVR) EpochInt() int {
	n, _ := strconv.Atoi(e.Epoch)
	return n
}
