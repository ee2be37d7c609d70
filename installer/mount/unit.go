package mount

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/metalk8s/buildchain/installer/change"
)

// UnitDir is where the installer writes systemd units, as an
// administrator's own units go (not /lib/systemd, which packages own).
const UnitDir = "/etc/systemd/system"

// EscapePath is `systemd-escape --path`: the name a mount unit for p must
// have (without ".mount"). systemd refuses a mount unit whose name does not
// match its Where=, so this must be exact.
func EscapePath(p string) string {
	p = path.Clean("/" + p)
	if p == "/" {
		return "-"
	}
	p = strings.TrimPrefix(p, "/")
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			b.WriteByte('-')
		case c == '.' && i == 0:
			fmt.Fprintf(&b, `\x%02x`, c)
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == ':', c == '_', c == '.':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String()
}

// UnescapePath is `systemd-escape --unescape --path`. It fails on a name
// EscapePath cannot have produced, so a unit name read back from a host
// is never taken for a path it does not name.
func UnescapePath(s string) (string, error) {
	if s == "-" {
		return "/", nil
	}
	if s == "" || strings.HasPrefix(s, "-") || strings.HasSuffix(s, "-") || strings.Contains(s, "--") {
		return "", fmt.Errorf("%q is not an escaped path", s)
	}
	var b strings.Builder
	b.WriteByte('/')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-':
			b.WriteByte('/')
		case c == '\\':
			if i+3 >= len(s) || s[i+1] != 'x' || !isLowerHex(s[i+2]) || !isLowerHex(s[i+3]) {
				return "", fmt.Errorf("%q: bad escape at offset %d", s, i)
			}
			v, _ := strconv.ParseUint(s[i+2:i+4], 16, 8)
			b.WriteByte(byte(v))
			i += 3
		default:
			b.WriteByte(c)
		}
	}
	p := b.String()
	if EscapePath(p) != s {
		return "", fmt.Errorf("%q is not the canonical escaping of %q", s, p)
	}
	return p, nil
}

func isLowerHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

// MountUnitName is the mount unit systemd requires for the mount point.
func MountUnitName(target string) string { return EscapePath(target) + ".mount" }

// ServiceUnitName is the service that serves a FUSE mount of target: a
// FUSE mount needs its server process, which a .mount unit cannot run
// without a mount.fuse helper for the type.
func ServiceUnitName(target string) string { return "metalk8s-fuse-" + EscapePath(target) + ".service" }

// unitValue makes a path safe as a unit setting's value: systemd expands
// %-specifiers there and trims surrounding white space; control characters
// would end the line.
func unitValue(field, p string) (string, error) {
	if p != strings.TrimSpace(p) || strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) || strings.Contains(p, `\`) {
		return "", fmt.Errorf("%s %q cannot be written in a systemd unit (surrounding spaces, a backslash or a control character)", field, p)
	}
	return strings.ReplaceAll(p, "%", "%%"), nil
}

// execArg quotes one ExecStart= argument: double quotes keep spaces, and
// systemd expands both %-specifiers and $VARIABLES in command lines.
func execArg(field, p string) (string, error) {
	v, err := unitValue(field, p)
	if err != nil {
		return "", err
	}
	v = strings.ReplaceAll(v, "$", "$$")
	v = strings.ReplaceAll(v, `"`, `\"`)
	return `"` + v + `"`, nil
}

// UnitOptions says what a persisted mount runs.
type UnitOptions struct {
	// Installer is the installer binary a FUSE service runs (the node's
	// path, e.g. /usr/bin/metalk8s-installer).
	Installer string
	// Fuseiso is fuseiso's path for a fuseiso service (default
	// /usr/bin/fuseiso), Fusermount fusermount's (default /usr/bin/fusermount).
	Fuseiso, Fusermount string
}

// Unit renders the unit that mounts source at target (node paths) by
// method at boot, and returns its file name. Kernel and directory mounts
// are .mount units, FUSE mounts services running their server.
func Unit(source, target string, method Method, isBlockDevice bool, o UnitOptions) (name string, text []byte, err error) {
	if err := checkTarget(target); err != nil {
		return "", nil, err
	}
	what, err := unitValue("source", source)
	if err != nil {
		return "", nil, err
	}
	var b strings.Builder
	b.WriteString("# Written by metalk8s-installer: mounts a MetalK8s archive at boot (MetalK8s #1235).\n")
	b.WriteString("[Unit]\n")
	fmt.Fprintf(&b, "Description=MetalK8s archive %s\n", what)
	if d := filepath.Dir(what); !isBlockDevice && !strings.Contains(d, " ") {
		// The archive may sit on a file system mounted late (a data disk).
		// The setting is a space-separated list, so a directory with a
		// space in its name is left to the default ordering.
		fmt.Fprintf(&b, "RequiresMountsFor=%s\n", d)
	}
	switch method {
	case Kernel, Dir:
		name = MountUnitName(target)
		typ, opts := "iso9660", "ro,loop"
		if isBlockDevice {
			opts = "ro"
		}
		if method == Dir {
			typ, opts = "none", "bind,ro"
		}
		b.WriteString("\n[Mount]\n")
		fmt.Fprintf(&b, "What=%s\nWhere=%s\nType=%s\nOptions=%s\n", what, target, typ, opts)
		b.WriteString("\n[Install]\nWantedBy=local-fs.target\n")
	case FUSE, FuseISO:
		name = ServiceUnitName(target)
		var argv []string
		if method == FUSE {
			if o.Installer == "" {
				return "", nil, errors.New("a FUSE mount unit needs the installer's path")
			}
			argv = []string{o.Installer, ServeFUSECommand, source, target}
		} else {
			fi := o.Fuseiso
			if fi == "" {
				fi = "/usr/bin/fuseiso"
			}
			argv = append([]string{fi}, fuseisoArgs(source, target, true)...)
		}
		var quoted []string
		for i, a := range argv {
			q, err := execArg(fmt.Sprintf("ExecStart argument %d", i), a)
			if err != nil {
				return "", nil, err
			}
			quoted = append(quoted, q)
		}
		fm := o.Fusermount
		if fm == "" {
			fm = "/usr/bin/fusermount"
		}
		b.WriteString("After=local-fs.target\n")
		// The repository service reads the mount: start it after.
		b.WriteString("Before=metalk8s-repositories.service\n")
		// The installer's server says when it has mounted (sd_notify);
		// fuseiso forks once mounted.
		if method == FUSE {
			b.WriteString("\n[Service]\nType=notify\n")
		} else {
			b.WriteString("\n[Service]\nType=forking\n")
		}
		fmt.Fprintf(&b, "ExecStart=%s\n", strings.Join(quoted, " "))
		// A stop left by a killed server would leave "Transport endpoint
		// is not connected" at the mount point: clear it.
		fmt.Fprintf(&b, "ExecStopPost=-%s -u -z %s\n", fm, target)
		b.WriteString("Restart=on-failure\n")
		b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
	default:
		return "", nil, fmt.Errorf("no unit for mount method %q", method)
	}
	return name, []byte(b.String()), nil
}

// wantsDir is the .wants directory of the target the unit is enabled in.
func wantsDir(name string) string {
	if strings.HasSuffix(name, ".mount") {
		return path.Join(UnitDir, "local-fs.target.wants")
	}
	return path.Join(UnitDir, "multi-user.target.wants")
}

// Persist writes and enables the unit that mounts source at target by
// method at boot, through tx, and removes the unit of any other method
// for the same target (an archive that moved from FUSE to the kernel).
func Persist(tx *change.Tx, source, target string, method Method, isBlockDevice bool, o UnitOptions) error {
	name, text, err := Unit(source, target, method, isBlockDevice, o)
	if err != nil {
		return err
	}
	for _, other := range []string{MountUnitName(target), ServiceUnitName(target)} {
		if other != name {
			if err := removeUnit(tx, other); err != nil {
				return err
			}
		}
	}
	if _, err := tx.WriteFile(path.Join(UnitDir, name), text, 0o644); err != nil {
		return err
	}
	if err := symlink(tx, path.Join(wantsDir(name), name), path.Join(UnitDir, name)); err != nil {
		return err
	}
	return daemonReload(tx)
}

// Unpersist removes every unit Persist may have written for target.
func Unpersist(tx *change.Tx, target string) error {
	for _, n := range []string{MountUnitName(target), ServiceUnitName(target)} {
		if err := removeUnit(tx, n); err != nil {
			return err
		}
	}
	return daemonReload(tx)
}

func removeUnit(tx *change.Tx, name string) error {
	link := tx.Path(path.Join(wantsDir(name), name))
	if _, err := os.Lstat(link); err == nil {
		old, err := os.Readlink(link)
		if err != nil {
			return err
		}
		tx.Record(change.Removed, "symlink "+path.Join(wantsDir(name), name))
		if !tx.DryRun {
			if err := os.Remove(link); err != nil {
				return err
			}
			tx.OnRollback(func() error { return os.Symlink(old, link) })
		}
	}
	_, err := tx.Remove(path.Join(UnitDir, name))
	return err
}

// symlink makes hostPath a symbolic link to target (what `systemctl
// enable` does), through tx: unchanged when it already is.
func symlink(tx *change.Tx, hostPath, target string) error {
	p := tx.Path(hostPath)
	old, err := os.Readlink(p)
	switch {
	case err == nil && old == target:
		tx.Record(change.Unchanged, "symlink "+hostPath)
		return nil
	case err == nil:
		tx.Record(change.Changed, "symlink "+hostPath)
	case errors.Is(err, os.ErrNotExist):
		tx.Record(change.Added, "symlink "+hostPath)
	default:
		return fmt.Errorf("%s exists and is not a symbolic link: %w", hostPath, err)
	}
	if tx.DryRun {
		return nil
	}
	if err := tx.MkdirAll(path.Dir(hostPath)); err != nil {
		return err
	}
	// A link made beside and renamed over replaces an old one atomically.
	tmp := p + ".tmp-metalk8s"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	tx.OnRollback(func() error {
		if old != "" {
			os.Remove(p)
			return os.Symlink(old, p)
		}
		return os.Remove(p)
	})
	return nil
}

// daemonReload tells a running systemd about changed units; only on the
// host itself (not behind --root) and only when systemd is PID 1.
func daemonReload(tx *change.Tx) error {
	if tx.DryRun || (tx.Root != "" && tx.Root != "/") {
		return nil
	}
	if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return nil
	}
	if out, err := exec.Command("systemctl", "daemon-reload").CombinedOutput(); err != nil {
		return fmt.Errorf("systemctl daemon-reload: %v: %s", err, out)
	}
	return nil
}
