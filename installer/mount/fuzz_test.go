package mount

import (
	"path"
	"strings"
	"testing"
)

// FuzzEscapePath: escaping any path unescapes to the same clean path, and
// UnescapePath accepts only canonical escapings (a unit name read from a
// host is outside input).
func FuzzEscapePath(f *testing.F) {
	f.Add("/srv/scality/metalk8s-2.0.0", `srv-scality-metalk8s\x2d2.0.0`)
	f.Add("/", "-")
	f.Add("/.a/b c/ü", `\x2ea-b\x20c-\xc3\xbc`)
	f.Fuzz(func(t *testing.T, p, escaped string) {
		e := EscapePath(p)
		back, err := UnescapePath(e)
		if err != nil {
			t.Fatalf("UnescapePath(EscapePath(%q) = %q): %v", p, e, err)
		}
		if want := path.Clean("/" + p); back != want {
			t.Fatalf("round trip of %q gave %q, want %q", p, back, want)
		}
		if q, err := UnescapePath(escaped); err == nil && EscapePath(q) != escaped {
			t.Fatalf("UnescapePath(%q) = %q, which escapes to %q", escaped, q, EscapePath(q))
		}
	})
}

// FuzzParseMountInfo: no input panics, and what parses keeps its fields
// free of the separators the format uses.
func FuzzParseMountInfo(f *testing.F) {
	f.Add("44 26 0:39 / /srv/scality/metalk8s-2.0.0 ro,nosuid,nodev,relatime - fuse.metalk8s-iso /var/tmp/a\\040b.iso ro,user_id=0,group_id=0\n")
	f.Add("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n")
	f.Add("1 2 3 4\n")
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseMountInfo([]byte(s))
		if err != nil {
			return
		}
		for _, m := range ms {
			if strings.Contains(m.Options, " ") || m.Options == "" || m.FSType == "" || !strings.HasPrefix(m.MountPoint, "/") {
				t.Fatalf("bad parse %+v", m)
			}
		}
	})
}
