package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Kernel is Debian's kernel (linux-image-amd64) with a busybox-static
// initramfs that can mount a CD-ROM, run under qemu-system-x86_64 with
// software emulation: the ISO reader the installer uses on real nodes.
type Kernel struct {
	Version string // e.g. 6.1.0-57-amd64
	Vmlinuz string
	Initrd  string // cached, see NeedKernel
	QEMU    string
}

// cdromModules are the modules the guest loads, with what modules.dep says
// they need: the PIIX IDE controller qemu's pc machine puts -cdrom on, the
// SCSI CD-ROM driver libata hands it to, and the ISO 9660 file system.
var cdromModules = []string{"ata_piix", "sr_mod", "isofs"}

// NeedKernel finds the kernel, qemu and busybox, and builds (or reuses) the
// initramfs under the user cache directory,
// metalk8s-buildchain/qemu/<kernel version>/. Missing pieces skip the test,
// or fail it when Required.
func NeedKernel(t testing.TB) *Kernel {
	t.Helper()
	qemu := Need(t, "qemu-system-x86_64")[0]
	missing := func(what string) {
		t.Helper()
		msg := what + " (Debian packages linux-image-amd64, qemu-system-x86 and busybox-static; `go run mage.go test` installs them)"
		if Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	busybox, err := staticBusybox()
	if err != nil {
		missing(err.Error())
	}
	version, vmlinuz := installedKernel()
	if version == "" {
		missing("no kernel in /boot with modules in /lib/modules")
	}
	modDir := filepath.Join("/lib/modules", version)
	mods, err := moduleOrder(modDir, cdromModules)
	if err != nil {
		missing(err.Error())
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	initrd, err := cachedInitrd(filepath.Join(base, "metalk8s-buildchain", "qemu", version), busybox, modDir, mods)
	if err != nil {
		t.Fatalf("building the initramfs: %v", err)
	}
	return &Kernel{Version: version, Vmlinuz: vmlinuz, Initrd: initrd, QEMU: qemu}
}

// staticBusybox returns a busybox with no program interpreter: the
// initramfs has no libc. Debian's busybox package is dynamic, its
// busybox-static one is not.
func staticBusybox() (string, error) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		dynamic := false
		for _, prog := range f.Progs {
			dynamic = dynamic || prog.Type == elf.PT_INTERP
		}
		f.Close()
		if !dynamic {
			return p, nil
		}
		return "", fmt.Errorf("%s is dynamically linked; the initramfs needs busybox-static", p)
	}
	return "", errors.New("busybox is not installed")
}

// installedKernel returns the newest kernel of /boot whose modules are
// installed.
func installedKernel() (version, vmlinuz string) {
	paths, _ := filepath.Glob("/boot/vmlinuz-*")
	sort.Strings(paths)
	for i := len(paths) - 1; i >= 0; i-- {
		v := strings.TrimPrefix(filepath.Base(paths[i]), "vmlinuz-")
		if _, err := os.Stat(filepath.Join("/lib/modules", v, "modules.dep")); err == nil {
			if f, err := os.Open(paths[i]); err == nil { // readable
				f.Close()
				return v, paths[i]
			}
		}
	}
	return "", ""
}

// moduleOrder returns the module files (relative to modDir) to insmod, in
// an order where each comes after what it needs. modules.dep lists, for
// every module, all it needs, transitively, the deepest last.
func moduleOrder(modDir string, names []string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	deps := map[string][]string{}
	byName := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		base := filepath.Base(mod)
		byName[strings.ReplaceAll(base[:strings.Index(base, ".ko")], "-", "_")] = mod
	}
	var order []string
	seen := map[string]bool{}
	var add func(mod string)
	add = func(mod string) {
		if seen[mod] {
			return
		}
		seen[mod] = true
		d := deps[mod]
		for i := len(d) - 1; i >= 0; i-- {
			add(d[i])
		}
		order = append(order, mod)
	}
	for _, n := range names {
		mod, ok := byName[n]
		if !ok {
			// Built into the kernel: nothing to load.
			if builtin, _ := os.ReadFile(filepath.Join(modDir, "modules.builtin")); bytes.Contains(builtin, []byte("/"+n+".ko")) {
				continue
			}
			return nil, fmt.Errorf("module %s is neither in %s/modules.dep nor built in", n, modDir)
		}
		add(mod)
	}
	for _, m := range order {
		if !strings.HasSuffix(m, ".ko") {
			// busybox insmod reads plain ELF only.
			return nil, fmt.Errorf("module %s is compressed; the test initramfs needs uncompressed modules", m)
		}
	}
	return order, nil
}

// initScript is the guest's /init. It loads the modules, waits for the
// CD-ROM, and for each mount option set on the command line (guest_mounts=
// "ro;ro,norock") mounts it and lists every entry on ttyS1, a serial port
// that carries nothing else: "S <hex st_mode> <size> <nlink> ./<path>" for
// every entry, "H <sha256>  ./<path>" for files and "L <hex target>
// ./<path>" for symlinks. Paths come last, so they may hold spaces; a
// newline in a name makes a line the parser rejects.
const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
out=/dev/ttyS1
say() { echo "$@" > $out; }
fail() { say "=FAIL $*"; poweroff -f; }
for m in $(cat /modules); do insmod /lib/modules/$m || fail "insmod $m"; done
n=0
while [ ! -b /dev/sr0 ]; do
	n=$((n+1)); [ $n -gt 600 ] && fail "no /dev/sr0"
	sleep 0.1
done
opts=$(sed -n 's/.*guest_mounts=\([^ ]*\).*/\1/p' /proc/cmdline)
IFS=';'
for o in $opts; do
	unset IFS
	mount -t iso9660 -o "$o" /dev/sr0 /mnt || fail "mount -o $o"
	say "=MOUNT $o"
	cd /mnt
	# Batches, not a process per file: under TCG each exec costs.
	find . -mindepth 1 -exec stat -c 'S %f %s %h %n' {} + > $out
	find . -type f -exec sha256sum {} + | sed 's/^/H /' > $out
	find . -type l | while IFS= read -r p; do
		x=$(printf %s "$(readlink "$p")" | od -An -tx1 -v | tr -d ' \n')
		say "L ${x:--} $p"
	done
	cd /
	umount /mnt || fail "umount -o $o"
	say "=END $o"
	IFS=';'
done
say "=DONE"
poweroff -f
`

// cachedInitrd returns the initramfs for these inputs, building it once:
// its name is a digest of the script and of the identity of each file it
// holds, so a changed busybox or kernel package gets a new one.
func cachedInitrd(dir, busybox, modDir string, mods []string) (string, error) {
	return cachedBase(dir, initScript, busybox, modDir, mods)
}

// cachedBase is cachedInitrd for any /init script: the guest API's base
// image has its own.
func cachedBase(dir, script, busybox, modDir string, mods []string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00", script)
	for _, p := range append([]string{busybox}, prefixAll(modDir, mods)...) {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d %d\x00", p, fi.Size(), fi.ModTime().UnixNano())
	}
	path := filepath.Join(dir, "initrd-"+hex.EncodeToString(h.Sum(nil))[:16]+".cpio")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	c := &cpioWriter{w: &buf}
	for _, d := range []string{"bin", "dev", "proc", "sys", "mnt", "lib", "lib/modules"} {
		c.Dir(d)
	}
	// The kernel opens /dev/console for init before devtmpfs is mounted.
	c.CharDev("dev/console", 5, 1)
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return "", err
	}
	c.File("bin/busybox", 0o755, bb)
	c.File("init", 0o755, []byte(script))
	var names []string
	for _, m := range mods {
		data, err := os.ReadFile(filepath.Join(modDir, m))
		if err != nil {
			return "", err
		}
		c.File("lib/modules/"+filepath.Base(m), 0o644, data)
		names = append(names, filepath.Base(m))
	}
	c.File("modules", 0o644, []byte(strings.Join(names, "\n")+"\n"))
	if err := c.Close(); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".initrd-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(tmp.Name(), path)
}

func prefixAll(dir string, rel []string) []string {
	out := make([]string, len(rel))
	for i, r := range rel {
		out[i] = filepath.Join(dir, r)
	}
	return out
}

// GuestEntry is one entry of a mounted ISO as the guest kernel shows it.
type GuestEntry struct {
	Path   string      // slash-separated, relative to the mount point
	Type   byte        // 'f', 'd' or 'l'
	Perm   fs.FileMode // permission bits only
	Size   int64
	Nlink  int
	SHA256 string // regular files
	Target string // symlinks
}

// GuestListing is what one mount showed.
type GuestListing struct {
	Options string // the mount options, e.g. "ro,norock"
	Entries map[string]GuestEntry
}

// ListISO boots the kernel with iso attached as a CD-ROM, mounts it once
// for each entry of mountOptions (e.g. "ro", then "ro,norock" for the Joliet
// tree only) and returns what each mount showed, plus the serial console's
// output for failure messages. ctx bounds the whole run.
func (k *Kernel) ListISO(ctx context.Context, iso string, mountOptions ...string) ([]GuestListing, string, error) {
	for _, o := range mountOptions {
		if o == "" || strings.ContainsAny(o, "; \"'\\") {
			return nil, "", fmt.Errorf("mount options %q: want a non-empty list without ; spaces or quotes", o)
		}
	}
	dir, err := os.MkdirTemp("", "metalk8s-qemu-*")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(dir)
	outPath := filepath.Join(dir, "ttyS1")
	abs, err := filepath.Abs(iso)
	if err != nil {
		return nil, "", err
	}
	if strings.Contains(abs, ",") {
		return nil, "", fmt.Errorf("%s: qemu's -drive cannot take a path with a comma", abs)
	}
	cmd := exec.CommandContext(ctx, k.QEMU,
		"-accel", "tcg", "-nographic", "-no-reboot", "-m", "512",
		"-monitor", "none", "-nic", "none",
		"-serial", "stdio", "-serial", "file:"+outPath,
		"-kernel", k.Vmlinuz, "-initrd", k.Initrd,
		// panic=-1: a failing init reboots at once, and -no-reboot makes
		// that an exit instead of a hang until ctx ends.
		"-append", "console=ttyS0 panic=-1 guest_mounts="+strings.Join(mountOptions, ";"),
		"-drive", "file="+abs+",media=cdrom,if=ide,readonly=on",
	)
	var console logBuffer
	cmd.Stdout, cmd.Stderr = &console, &console
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	out, err := os.ReadFile(outPath)
	if err != nil {
		return nil, console.String(), fmt.Errorf("qemu: %v; no guest output: %v", runErr, err)
	}
	listings, err := parseGuestListing(out, mountOptions)
	if err != nil {
		if runErr != nil {
			err = fmt.Errorf("qemu: %v: %w", runErr, err)
		}
		return nil, console.String(), err
	}
	return listings, console.String(), nil
}

// parseGuestListing reads what initScript wrote on ttyS1.
func parseGuestListing(out []byte, mountOptions []string) ([]GuestListing, error) {
	var listings []GuestListing
	var cur *GuestListing
	done := false
	for n, line := range strings.Split(strings.ReplaceAll(string(out), "\r", ""), "\n") {
		where := fmt.Sprintf("guest output line %d", n+1)
		switch {
		case line == "":
		case strings.HasPrefix(line, "=FAIL "):
			return nil, fmt.Errorf("guest: %s", line[len("=FAIL "):])
		case strings.HasPrefix(line, "=MOUNT "):
			listings = append(listings, GuestListing{Options: line[len("=MOUNT "):], Entries: map[string]GuestEntry{}})
			cur = &listings[len(listings)-1]
		case strings.HasPrefix(line, "=END "):
			if cur == nil {
				return nil, fmt.Errorf("%s: %q outside a listing", where, line)
			}
			for p, e := range cur.Entries {
				if e.Type == 0 {
					return nil, fmt.Errorf("%s: %s was hashed or read as a link but not listed", where, p)
				}
				if e.Type == 'f' && e.SHA256 == "" {
					return nil, fmt.Errorf("%s: file %s has no sha256", where, p)
				}
			}
			cur = nil
		case line == "=DONE":
			done = true
		case cur == nil:
			return nil, fmt.Errorf("%s: %q outside a listing", where, line)
		default:
			if err := cur.add(line); err != nil {
				return nil, fmt.Errorf("%s: %v", where, err)
			}
		}
	}
	if !done || cur != nil || len(listings) != len(mountOptions) {
		return nil, fmt.Errorf("guest output is incomplete (%d of %d listings, finished: %v)", len(listings), len(mountOptions), done)
	}
	return listings, nil
}

func (l *GuestListing) add(line string) error {
	bad := func(err error) error { return fmt.Errorf("malformed entry %q: %v", line, err) }
	f := strings.SplitN(line, " ", 5)
	rel := func(p string) (string, error) {
		if !strings.HasPrefix(p, "./") || len(p) < 3 {
			return "", errors.New("path not under ./")
		}
		return p[2:], nil
	}
	switch {
	case f[0] == "S" && len(f) == 5:
		mode, err1 := strconv.ParseUint(f[1], 16, 32)
		size, err2 := strconv.ParseInt(f[2], 10, 64)
		nlink, err3 := strconv.Atoi(f[3])
		p, err4 := rel(f[4])
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return bad(err)
		}
		e := l.Entries[p]
		switch mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			e.Type = 'f'
		case syscall.S_IFDIR:
			e.Type = 'd'
		case syscall.S_IFLNK:
			e.Type = 'l'
		default:
			return bad(fmt.Errorf("file type %o", mode&syscall.S_IFMT))
		}
		e.Path, e.Perm, e.Size, e.Nlink = p, fs.FileMode(mode&0o777), size, nlink
		l.Entries[p] = e
	case f[0] == "H" && len(f) >= 3:
		// sha256sum separates the digest and the name with two spaces.
		sum, name, ok := strings.Cut(line[2:], "  ")
		p, err := rel(name)
		if !ok || len(sum) != 64 || err != nil {
			return bad(err)
		}
		e := l.Entries[p]
		e.SHA256 = sum
		l.Entries[p] = e
	case f[0] == "L" && len(f) >= 3:
		target, err1 := hex.DecodeString(strings.TrimPrefix(f[1], "-"))
		p, err2 := rel(line[len("L ")+len(f[1])+1:])
		if err := errors.Join(err1, err2); err != nil {
			return bad(err)
		}
		e := l.Entries[p]
		e.Target = string(target)
		l.Entries[p] = e
	default:
		return bad(errors.New("unknown line"))
	}
	return nil
}
