package evr

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/internal/testenv"
)

var cases = []struct {
	a, b string
	want int
}{
	{"1.0", "1.0", 0}, {"1.0", "2.0", -1}, {"2.0", "1.0", 1},
	{"2.0.1", "2.0.1", 0}, {"2.0", "2.0.1", -1}, {"2.0.1a", "2.0.1", 1},
	{"5.5p1", "5.5p2", -1}, {"5.5p10", "5.5p1", 1}, {"10xyz", "10.1xyz", -1},
	{"xyz10", "xyz10.1", -1}, {"xyz.4", "8", -1}, {"1b.fc17", "1.fc17", -1},
	{"1.0~rc1", "1.0", -1}, {"1.0~rc1", "1.0~rc2", -1}, {"1.0~rc1~git", "1.0~rc1", -1},
	{"1.0^", "1.0", 1}, {"1.0^git1", "1.0^git2", -1}, {"1.0^git1", "1.01", -1},
	{"1.0^20160101", "1.0.1", -1}, {"1.0~rc1^git1", "1.0~rc1", 1},
	{"010", "10", 0}, {"a", "1", -1}, {"1.12.10", "1.12.9", 1}, {"2.99", "2.107", -1},
	{"1.2.4-1.el7", "1.2.4-1.el7_6", -1}, {"", "", 0}, {"", "1", -1}, {"+", "_", 0},
}

func TestCompareTable(t *testing.T) {
	for _, c := range cases {
		if got := Compare(c.a, c.b); got != c.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

// TestCompareAgainstRPM asks rpm's own rpmvercmp (through its Lua
// interpreter) about the table and a grid of generated versions.
func TestCompareAgainstRPM(t *testing.T) {
	rpm := testenv.Need(t, "rpm")[0]
	parts := []string{"1", "1.0", "1.0a", "1.0~b", "1.0^c", "01.0", "1.a", "a1", "1_0", "1.0.0", "2", "10", "1.0~", "1.0^", "1~~", "z", "1.0-2", "1:0.5", "2:1-1", "0:1.0-2"}
	var pairs [][2]string
	// rpm.vercmp parses both sides as [E:]V[-R] and refuses empty
	// versions, so it is compared with Cmp(Parse(a), Parse(b)).
	for _, c := range cases {
		if c.a != "" && c.b != "" {
			pairs = append(pairs, [2]string{c.a, c.b})
		}
	}
	for _, a := range parts {
		for _, b := range parts {
			pairs = append(pairs, [2]string{a, b})
		}
	}
	var lua strings.Builder
	for _, p := range pairs {
		fmt.Fprintf(&lua, "print(rpm.vercmp(%q, %q) .. \" \") ", p[0], p[1])
	}
	out, err := exec.Command(rpm, "--eval", "%{lua: "+lua.String()+"}").CombinedOutput()
	if err != nil {
		t.Fatalf("rpm --eval: %v\n%s", err, out)
	}
	lines := strings.Fields(string(bytes.TrimSpace(out)))
	if len(lines) != len(pairs) {
		t.Fatalf("rpm printed %d results for %d pairs:\n%s", len(lines), len(pairs), out)
	}
	for i, p := range pairs {
		want := lines[i]
		if got := fmt.Sprint(Cmp(Parse(p[0]), Parse(p[1]))); got != want {
			t.Errorf("Cmp(%q, %q) = %s, rpm says %s", p[0], p[1], got, want)
		}
	}
}

func TestParse(t *testing.T) {
	for in, want := range map[string]EVR{
		"1.0":          {"", "1.0", ""},
		"1.0-1.el7":    {"", "1.0", "1.el7"},
		"2:1.0-1":      {"2", "1.0", "1"},
		":1.0":         {"0", "1.0", ""},
		"1.0-rc-1":     {"", "1.0-rc", "1"},
		"a:1":          {"", "a:1", ""},
		"0:2.99-1.el7": {"0", "2.99", "1.el7"},
	} {
		if got := Parse(in); got != want {
			t.Errorf("Parse(%q) = %+v, want %+v", in, got, want)
		}
	}
}

func TestOverlaps(t *testing.T) {
	p := Parse
	for _, c := range []struct {
		f1   Flags
		v1   string
		f2   Flags
		v2   string
		want bool
	}{
		{EQ, "1.2-1", GE, "1.0", true},
		{EQ, "1.2-1", GE, "1.3", false},
		{EQ, "1.2-1", EQ, "1.2", true}, // release not compared when absent
		{EQ, "1.2-1", EQ, "1.2-2", false},
		{EQ, "1:1.0", GE, "2.0", true}, // epoch wins
		{EQ, "1.0", LT, "1.0", false},
		{LE, "1.0", LT, "1.0", true},
		{0, "", GE, "5", true},
		{EQ, "3", 0, "", true},
		{GT, "1", LT, "1", false},
	} {
		if got := Overlaps(c.f1, p(c.v1), c.f2, p(c.v2)); got != c.want {
			t.Errorf("Overlaps(%s %s, %s %s) = %v, want %v", c.f1, c.v1, c.f2, c.v2, got, c.want)
		}
	}
}

// FuzzCompare checks the properties every total order has: antisymmetry
// and reflexivity, on arbitrary strings.
func FuzzCompare(f *testing.F) {
	for _, c := range cases {
		f.Add(c.a, c.b)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		x, y := Compare(a, b), Compare(b, a)
		if x != -y {
			t.Fatalf("Compare(%q,%q)=%d but Compare(%q,%q)=%d", a, b, x, b, a, y)
		}
		if Compare(a, a) != 0 {
			t.Fatalf("Compare(%q,%q) != 0", a, a)
		}
		e, g := Parse(a), Parse(b)
		if Cmp(e, e) != 0 {
			t.Fatalf("Cmp(%v) with itself != 0", e)
		}
		if x, y := Cmp(e, g), Cmp(g, e); x != -y {
			t.Fatalf("Cmp(%v,%v)=%d but Cmp(%v,%v)=%d", e, g, x, g, e, y)
		}
		// Whether two ranges intersect cannot depend on which is asked first.
		for _, f1 := range []Flags{0, EQ, LT, GE} {
			for _, f2 := range []Flags{EQ, LE, GT} {
				if Overlaps(f1, e, f2, g) != Overlaps(f2, g, f1, e) {
					t.Fatalf("Overlaps(%v %v, %v %v) is not symmetric", f1, e, f2, g)
				}
			}
		}
	})
}
