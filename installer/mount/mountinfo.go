package mount

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Info is one line of /proc/self/mountinfo (proc(5)).
type Info struct {
	Root       string // the directory of the source file system mounted here (a bind mount's source)
	MountPoint string
	Options    string // per-mount options ("ro,relatime")
	FSType     string // "iso9660", "fuse.metalk8s-iso", "fuse"
	Source     string // device, or a FUSE server's fsname
}

// ParseMountInfo parses mountinfo text. The kernel escapes space, tab,
// newline and backslash in paths as \ooo; those are undone.
func ParseMountInfo(data []byte) ([]Info, error) {
	var out []Info
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		f := strings.Split(line, " ")
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 10 || sep < 0 || sep+2 >= len(f) {
			return nil, fmt.Errorf("mountinfo line %d: %d fields, no \" - \" separator followed by type and source: %q", n, len(f), line)
		}
		var in Info
		var err error
		for _, x := range []struct {
			dst *string
			raw string
		}{{&in.Root, f[3]}, {&in.MountPoint, f[4]}, {&in.FSType, f[sep+1]}, {&in.Source, f[sep+2]}} {
			if *x.dst, err = unescapeOctal(x.raw); err != nil {
				return nil, fmt.Errorf("mountinfo line %d: %w", n, err)
			}
		}
		in.Options = f[5]
		if !strings.HasPrefix(in.MountPoint, "/") || in.Root == "" || in.FSType == "" || in.Options == "" {
			return nil, fmt.Errorf("mountinfo line %d: empty root, type or options, or a relative mount point: %q", n, line)
		}
		out = append(out, in)
	}
	return out, sc.Err()
}

func unescapeOctal(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+4 > len(s) {
			return "", fmt.Errorf("%q: truncated escape", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return "", fmt.Errorf("%q: bad escape %q", s, s[i:i+4])
		}
		b.WriteByte(byte(v))
		i += 3
	}
	return b.String(), nil
}

// At returns the topmost mount at the real path mountPoint, or nil.
func At(mountPoint string) (*Info, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	ms, err := ParseMountInfo(data)
	if err != nil {
		return nil, err
	}
	var found *Info
	for i := range ms {
		if ms[i].MountPoint == mountPoint {
			found = &ms[i] // later lines are mounted over earlier ones
		}
	}
	return found, nil
}
