package testenv

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Guest is what a test puts in a virtual machine booted from the Kernel:
// CD-ROM drives, files and programs copied from the host, a job script,
// and TCP ports the host reaches through qemu's user-mode network bound to
// 127.0.0.1. See docs/installer-kernel-test.md.
type Guest struct {
	// ISOs are attached as CD-ROM drives (SCSI targets of a virtio-scsi
	// controller, at most 16). ISOs[i] is /dev/cdrom<i> in the guest,
	// whatever /dev/srN the kernel named it.
	ISOs []string
	// Files maps an absolute guest path to a host file, copied with its
	// permission bits (symlinks are followed).
	Files map[string]string
	// Contents maps an absolute guest path to the bytes it holds (0644).
	Contents map[string]string
	// Programs are host programs (absolute paths, or names looked up in
	// PATH) copied at their host path with their ELF interpreter and every
	// shared library they need, found as ld.so finds them. The guest's
	// LD_LIBRARY_PATH lists the directories they came from.
	Programs []string
	// Init is the job: a script run by busybox sh once the drives and the
	// network are up, with stdout and stderr on the job log (Output). When
	// it exits the guest stays up, with whatever it started in the
	// background, until Stop.
	Init string
	// Forward lists the guest TCP ports the host reaches through
	// 127.0.0.1 (VM.Addr). With none the guest has no network card.
	Forward []int
	// Modules are kernel modules to load after the CD-ROM and network
	// ones, with what modules.dep says they need.
	Modules []string
	// MemoryMB defaults to 512.
	MemoryMB int
}

// guestModules are loaded in every guest: the CD-ROM stack, and the
// e1000 network card, one module with no dependencies, which qemu's pc
// machine emulates by default. af_packet (for udhcpc) is built in.
var guestModules = []string{"virtio_pci", "virtio_scsi", "sr_mod", "isofs", "e1000"}

// The guest network is qemu's user-mode one; the address is its default.
const (
	guestIP      = "10.0.2.15"
	guestGateway = "10.0.2.2"
)

// guestInit is the /init of the guest API's cached base image. Messages
// for the host go to ttyS1, the job log, as lines starting with "=":
// "=BOOTED", "=EXIT <status>" when the job ends, "=FAIL <why>" (then it
// powers off), "=POWEROFF". It reads commands from ttyS0 (qemu's stdin):
// "poweroff", and the lines of VM.Exec. Everything per test (the job, /guest/env, the files) comes
// from the second cpio archive appended to the cached one.
const guestInit = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp /run /var/tmp /var/log /etc /root
chmod 1777 /tmp /var/tmp
log=/dev/ttyS1
say() { echo "=$*" > $log; }
fail() { say "FAIL $*"; sync; poweroff -f; }
# Workers of services started as root drop to nobody (nginx's user).
[ -e /etc/passwd ] || printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > /etc/passwd
[ -e /etc/group ] || printf 'root:x:0:\nnogroup:x:65534:\n' > /etc/group
[ -e /etc/nsswitch.conf ] || printf 'passwd: files\ngroup: files\nhosts: files\n' > /etc/nsswitch.conf
[ -e /etc/hosts ] || printf '127.0.0.1 localhost\n' > /etc/hosts
GUEST_CDROMS=0 GUEST_NET=
. /guest/env || fail "no /guest/env"
for m in $(cat /modules); do insmod /lib/modules/$m || fail "insmod $m"; done
# ISOs[i] is SCSI target i of the one virtio-scsi controller.
n=0
while :; do
	found=0
	for d in /sys/block/sr*; do
		[ -e "$d/device" ] || continue
		set -- $(basename "$(readlink "$d/device")" | tr ':' ' ')
		i=$3
		[ -e /dev/cdrom$i ] || ln -s "$(basename "$d")" /dev/cdrom$i
	done
	i=0
	while [ $i -lt $GUEST_CDROMS ]; do
		[ -b /dev/cdrom$i ] && found=$((found+1))
		i=$((i+1))
	done
	[ $found -eq $GUEST_CDROMS ] && break
	n=$((n+1)); [ $n -gt 1200 ] && fail "only $found of $GUEST_CDROMS CD-ROM drives appeared"
	sleep 0.1
done
ip link set lo up || fail "lo"
if [ -n "$GUEST_NET" ]; then
	n=0
	while [ ! -e /sys/class/net/eth0 ]; do
		n=$((n+1)); [ $n -gt 1200 ] && fail "no eth0"
		sleep 0.1
	done
	ip addr add GUEST_IP/24 dev eth0 && ip link set eth0 up && ip route add default via GUEST_GATEWAY || fail "eth0"
	# qemu learns the guest's MAC address from its ARP traffic; until then
	# the first forwarded connection waits for ARP and SYN retries
	# (seconds under emulation). Frames sent before the card reports its
	# link are lost, so wait for it, then for the gateway's answer.
	n=0
	until [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" = 1 ]; do
		n=$((n+1)); [ $n -gt 1200 ] && fail "eth0 has no link"
		sleep 0.1
	done
	arping -q -f -w 30 -I eth0 GUEST_GATEWAY || fail "no ARP answer from GUEST_GATEWAY"
fi
# Commands from the host: "put ID B64" appends a line of a script,
# "run ID" runs it and reports on ttyS2, one at a time. Lines that come
# before the loop reads wait in the tty's buffers.
stty -echo < /dev/ttyS0
mkdir -p /run/guest-exec
say BOOTED
( cd /root && HOME=/root sh /guest/job < /dev/null > $log 2>&1; say "EXIT $?" ) &
while read -r cmd id arg; do
	case "$cmd" in
	poweroff) break;;
	put) echo "$arg" >> /run/guest-exec/$id.b64;;
	run)
		f=/run/guest-exec/$id
		base64 -d $f.b64 > $f.sh
		( cd /root && HOME=/root sh $f.sh ) < /dev/null > $f.out 2>&1
		rc=$?
		{ echo "=BEGIN $id"; base64 $f.out; echo "=END $id $rc"; } > /dev/ttyS2
		rm -f $f.b64 $f.sh $f.out;;
	esac
done < /dev/ttyS0
sync
say POWEROFF
poweroff -f
`

// VM is a running guest. Its qemu is killed when the test ends.
type VM struct {
	Started time.Time
	// Ports maps each Guest.Forward port to its host port on 127.0.0.1.
	Ports map[int]int

	t       testing.TB
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	jobLog  string
	execLog string
	execMu  sync.Mutex
	execN   int
	console *logBuffer
	exited  chan struct{}
	err     error // qemu's exit, once exited is closed
	once    sync.Once
}

// Boot builds the guest's initramfs (the cached base plus an archive of
// g's files, in t.TempDir) and starts qemu. It returns at once; WaitFor
// tells when the job is ready.
func (k *Kernel) Boot(t testing.TB, g Guest) *VM {
	t.Helper()
	if len(g.ISOs) > 16 {
		t.Fatalf("Guest.ISOs: %d drives; 16 at most", len(g.ISOs))
	}
	dir := t.TempDir()
	initrd, err := k.guestInitrd(dir, g)
	if err != nil {
		t.Fatalf("building the guest initramfs: %v", err)
	}
	mem := g.MemoryMB
	if mem == 0 {
		mem = 512
	}
	args := []string{
		"-accel", "tcg", "-nographic", "-no-reboot", "-m", strconv.Itoa(mem),
		"-monitor", "none",
		"-serial", "stdio", "-serial", "file:" + filepath.Join(dir, "job.log"),
		"-serial", "file:" + filepath.Join(dir, "exec.log"),
		"-kernel", k.guestKernel(t), "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 loglevel=4",
	}
	if len(g.ISOs) > 0 {
		args = append(args, "-device", "virtio-scsi-pci,id=scsi0")
	}
	for i, iso := range g.ISOs {
		abs, err := filepath.Abs(iso)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(abs, ",") {
			t.Fatalf("Guest.ISOs[%d]: %s: qemu's -drive cannot take a path with a comma", i, abs)
		}
		if _, err := os.Stat(abs); err != nil {
			t.Fatalf("Guest.ISOs[%d]: %v", i, err)
		}
		args = append(args,
			"-drive", fmt.Sprintf("file=%s,if=none,id=cd%d,media=cdrom,readonly=on", abs, i),
			"-device", fmt.Sprintf("scsi-cd,drive=cd%d,bus=scsi0.0,channel=0,scsi-id=%d,lun=0", i, i))
	}
	// A port FreePort found free may be taken before qemu binds it:
	// qemu then fails at once, and another set of ports is tried.
	for attempt := 1; ; attempt++ {
		vm, err := k.start(t, dir, args, g.Forward)
		if err == nil {
			return vm
		}
		if attempt == 3 || !strings.Contains(err.Error(), "forwarding rule") {
			t.Fatal(err)
		}
		t.Logf("retrying with other ports: %v", err)
	}
}

func (k *Kernel) start(t testing.TB, dir string, args []string, forward []int) (*VM, error) {
	t.Helper()
	vm := &VM{Ports: map[int]int{}, t: t, jobLog: filepath.Join(dir, "job.log"), execLog: filepath.Join(dir, "exec.log"), console: &logBuffer{}, exited: make(chan struct{})}
	if len(forward) == 0 {
		args = append(args, "-nic", "none")
	} else {
		// restrict=on: the guest reaches nothing outside; host
		// forwarding rules still work.
		netdev := "user,id=n0,restrict=on"
		for _, g := range forward {
			if g <= 0 || g > 65535 {
				return nil, fmt.Errorf("Guest.Forward: port %d", g)
			}
			if _, dup := vm.Ports[g]; dup {
				return nil, fmt.Errorf("Guest.Forward: port %d listed twice", g)
			}
			h := FreePort(t)
			vm.Ports[g] = h
			netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", h, g)
		}
		args = append(args, "-netdev", netdev, "-device", "e1000,netdev=n0,romfile=")
	}
	os.Remove(vm.jobLog)
	os.Remove(vm.execLog)
	cmd := exec.Command(k.QEMU, args...)
	cmd.Stdout, cmd.Stderr = vm.console, vm.console
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	// Its own process group, killed whole when the test ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	vm.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %v", k.QEMU, err)
	}
	vm.cmd, vm.stdin = cmd, stdin
	go func() {
		vm.err = cmd.Wait()
		close(vm.exited)
	}()
	t.Cleanup(vm.kill)
	// Until qemu holds every forwarded port, a failure to bind one is
	// still to come. Binding is the only check that makes no connection
	// the guest would see.
	for deadline := time.Now().Add(2 * time.Minute); len(vm.Ports) > 0 && time.Now().Before(deadline); {
		select {
		case <-vm.exited:
			return nil, fmt.Errorf("qemu exited at start: %v\n%s", vm.err, vm.console)
		case <-time.After(20 * time.Millisecond):
		}
		free := false
		for _, h := range vm.Ports {
			if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", h)); err == nil {
				l.Close()
				free = true
			}
		}
		if !free {
			break
		}
	}
	return vm, nil
}

// kill ends qemu at once; it is the test's cleanup.
func (vm *VM) kill() {
	vm.once.Do(func() { vm.stdin.Close() })
	select {
	case <-vm.exited:
		return
	default:
	}
	syscall.Kill(-vm.cmd.Process.Pid, syscall.SIGKILL)
	<-vm.exited
}

// Addr is "127.0.0.1:PORT", where the host reaches guestPort.
func (vm *VM) Addr(guestPort int) string {
	h, ok := vm.Ports[guestPort]
	if !ok {
		vm.t.Fatalf("guest port %d is not in Guest.Forward", guestPort)
	}
	return fmt.Sprintf("127.0.0.1:%d", h)
}

// Output is the job log so far: the job's stdout and stderr, and the
// init's "=" lines.
func (vm *VM) Output() string {
	b, _ := os.ReadFile(vm.jobLog)
	return strings.ReplaceAll(string(b), "\r", "")
}

// Console is qemu's output so far: the kernel's console and qemu's errors.
func (vm *VM) Console() string { return vm.console.String() }

// Logs formats the job log and the console for a failure message.
func (vm *VM) Logs() string {
	return "job log:\n" + vm.Output() + "\nconsole:\n" + vm.Console()
}

// WaitFor waits until the job log holds line (whole, e.g. "SERVING"). It
// fails when the job exits or the guest stops first, or when ctx ends.
func (vm *VM) WaitFor(ctx context.Context, line string) error {
	_, err := vm.wait(ctx, line)
	return err
}

// WaitExit waits until the job exits and returns its exit status.
func (vm *VM) WaitExit(ctx context.Context) (int, error) {
	return vm.wait(ctx, "")
}

// wait scans the job log for want, or for the job's exit when want is "".
func (vm *VM) wait(ctx context.Context, want string) (int, error) {
	for {
		// Read the log before checking for qemu's exit, so that the last
		// lines of a guest that just powered off are seen.
		exited := false
		select {
		case <-vm.exited:
			exited = true
		default:
		}
		for _, l := range strings.Split(vm.Output(), "\n") {
			switch {
			case want != "" && l == want:
				return 0, nil
			case strings.HasPrefix(l, "=FAIL "):
				return -1, fmt.Errorf("guest init failed: %s\n%s", l[len("=FAIL "):], vm.Logs())
			case strings.HasPrefix(l, "=EXIT "):
				status, err := strconv.Atoi(l[len("=EXIT "):])
				if err != nil {
					return -1, fmt.Errorf("guest: malformed %q", l)
				}
				if want == "" {
					return status, nil
				}
				return status, fmt.Errorf("the guest job exited (status %d) before printing %q\n%s", status, want, vm.Logs())
			}
		}
		if exited {
			return -1, fmt.Errorf("qemu exited (%v) before the guest job printed %q\n%s", vm.err, want, vm.Logs())
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("waiting for %q in the guest job log: %w\n%s", want, ctx.Err(), vm.Logs())
		case <-vm.exited:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Exec runs script with busybox sh in the guest, as root in /root, while
// the job and what it started keep running, and returns its stdout and
// stderr and its exit status. Calls run one at a time, once the guest
// has booted; a running script holds up the next ones, and Stop.
func (vm *VM) Exec(ctx context.Context, script string) (string, int, error) {
	vm.execMu.Lock()
	defer vm.execMu.Unlock()
	if err := vm.WaitFor(ctx, "=BOOTED"); err != nil {
		return "", -1, err
	}
	vm.execN++
	id := strconv.Itoa(vm.execN)
	// Lines stay far below the 4095 bytes a tty's canonical mode reads.
	enc := base64.StdEncoding.EncodeToString([]byte(script))
	var cmds strings.Builder
	for len(enc) > 0 {
		n := min(len(enc), 1024)
		fmt.Fprintf(&cmds, "put %s %s\n", id, enc[:n])
		enc = enc[n:]
	}
	fmt.Fprintf(&cmds, "run %s\n", id)
	if _, err := io.WriteString(vm.stdin, cmds.String()); err != nil {
		return "", -1, fmt.Errorf("sending a command to the guest: %v", err)
	}
	begin, end := "=BEGIN "+id, "=END "+id+" "
	for {
		b, _ := os.ReadFile(vm.execLog)
		lines := strings.Split(strings.ReplaceAll(string(b), "\r", ""), "\n")
		start := -1
		for i, l := range lines {
			switch {
			case l == begin:
				start = i + 1
			case start >= 0 && strings.HasPrefix(l, end):
				status, err1 := strconv.Atoi(l[len(end):])
				out, err2 := base64.StdEncoding.DecodeString(strings.Join(lines[start:i], ""))
				if err := errors.Join(err1, err2); err != nil {
					return "", -1, fmt.Errorf("guest: malformed result of command %s: %v", id, err)
				}
				return string(out), status, nil
			}
		}
		select {
		case <-vm.exited:
			return "", -1, fmt.Errorf("qemu exited (%v) while the guest ran a command\n%s", vm.err, vm.Logs())
		case <-ctx.Done():
			return "", -1, fmt.Errorf("running a command in the guest: %w\n%s", ctx.Err(), vm.Logs())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop asks the guest to power off and waits for qemu to exit; past ctx it
// kills qemu and says so.
func (vm *VM) Stop(ctx context.Context) error {
	var werr error
	vm.once.Do(func() {
		_, werr = io.WriteString(vm.stdin, "poweroff\n")
		vm.stdin.Close()
	})
	select {
	case <-vm.exited:
	case <-ctx.Done():
		vm.kill()
		return fmt.Errorf("the guest did not power off: %w\n%s", ctx.Err(), vm.Logs())
	}
	if werr != nil {
		return fmt.Errorf("asking the guest to power off: %v\n%s", werr, vm.Logs())
	}
	if vm.err != nil {
		return fmt.Errorf("qemu: %v\n%s", vm.err, vm.Logs())
	}
	if !strings.Contains(vm.Output(), "\n=POWEROFF\n") {
		return fmt.Errorf("qemu exited, but the guest did not power off cleanly\n%s", vm.Logs())
	}
	return nil
}

// guestKernel is the uncompressed kernel when it can be had (see
// pvhKernel), else the bzImage.
func (k *Kernel) guestKernel(t testing.TB) string {
	if os.Getenv("METALK8S_QEMU_BZIMAGE") == "1" {
		return k.Vmlinuz
	}
	p, err := pvhKernel(filepath.Join(qemuCacheDir(), k.Version), k.Vmlinuz)
	if err != nil {
		t.Logf("booting the compressed kernel: %v", err)
		return k.Vmlinuz
	}
	return p
}

func qemuCacheDir() string {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return filepath.Join(cache, "metalk8s-buildchain", "qemu")
}

// guestInitrd writes dir/initrd: the cached base image for the guest's
// modules, then an archive of what g adds. The kernel unpacks
// concatenated cpio archives in order, so the second adds to the first.
func (k *Kernel) guestInitrd(dir string, g Guest) (string, error) {
	busybox, err := staticBusybox()
	if err != nil {
		return "", err
	}
	modDir := filepath.Join("/lib/modules", k.Version)
	mods, err := moduleOrder(modDir, append(append([]string(nil), guestModules...), g.Modules...))
	if err != nil {
		return "", err
	}
	script := strings.NewReplacer("GUEST_IP", guestIP, "GUEST_GATEWAY", guestGateway).Replace(guestInit)
	base, err := cachedBase(filepath.Join(qemuCacheDir(), k.Version), script, busybox, modDir, mods)
	if err != nil {
		return "", err
	}
	files, err := guestFiles(g)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "initrd")
	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := os.Open(base)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(f, b)
	b.Close()
	if err != nil {
		return "", err
	}
	w := bufio.NewWriter(f)
	if err := writeOverlay(w, files); err != nil {
		return "", err
	}
	if err := w.Flush(); err != nil {
		return "", err
	}
	return out, f.Close()
}

// guestFile is one file of the overlay: host content or inline bytes.
type guestFile struct {
	host string
	data []byte
	perm uint32
	what string // for error messages: which Guest field asked for it
}

// guestFiles gathers every file of g by guest path.
func guestFiles(g Guest) (map[string]guestFile, error) {
	files := map[string]guestFile{}
	add := func(guest string, f guestFile) error {
		if !path.IsAbs(guest) || path.Clean(guest) != guest || guest == "/" || guest == "/init" || strings.HasPrefix(guest, "/guest/") {
			return fmt.Errorf("%s: guest path %q: want a clean absolute path, not /, /init or under /guest/", f.what, guest)
		}
		if prev, ok := files[guest]; ok && (prev.host == "" || prev.host != f.host) {
			return fmt.Errorf("%s: guest path %s is also given by %s", f.what, guest, prev.what)
		}
		files[guest] = f
		return nil
	}
	for guest, data := range g.Contents {
		if err := add(guest, guestFile{data: []byte(data), perm: 0o644, what: "Guest.Contents"}); err != nil {
			return nil, err
		}
	}
	for guest, host := range g.Files {
		fi, err := os.Stat(host)
		if err != nil {
			return nil, fmt.Errorf("Guest.Files[%s]: %v", guest, err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("Guest.Files[%s]: %s is not a regular file", guest, host)
		}
		if err := add(guest, guestFile{host: host, perm: uint32(fi.Mode().Perm()), what: "Guest.Files"}); err != nil {
			return nil, err
		}
	}
	closure, libDirs, err := programClosure(g.Programs)
	if err != nil {
		return nil, err
	}
	for guest, host := range closure {
		fi, err := os.Stat(host)
		if err != nil {
			return nil, err
		}
		if err := add(guest, guestFile{host: host, perm: uint32(fi.Mode().Perm()), what: "Guest.Programs"}); err != nil {
			return nil, err
		}
	}
	env := fmt.Sprintf("GUEST_CDROMS=%d\n", len(g.ISOs))
	if len(g.Forward) > 0 {
		env += "GUEST_NET=1\n"
	}
	if len(libDirs) > 0 {
		env += "export LD_LIBRARY_PATH=" + strings.Join(libDirs, ":") + "\n"
	}
	files["/guest/env"] = guestFile{data: []byte(env), perm: 0o644}
	files["/guest/job"] = guestFile{data: []byte(g.Init), perm: 0o755}
	return files, nil
}

// writeOverlay writes files as a cpio archive, every parent directory
// first (the kernel does not create them).
func writeOverlay(w io.Writer, files map[string]guestFile) error {
	dirs := map[string]bool{}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
		for d := path.Dir(name); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	dirNames := make([]string, 0, len(dirs))
	for d := range dirs {
		if _, isFile := files[d]; isFile {
			return fmt.Errorf("guest path %s is both a file and a directory", d)
		}
		dirNames = append(dirNames, d)
	}
	sort.Strings(dirNames) // a parent sorts before its children
	sort.Strings(names)
	c := &cpioWriter{w: w}
	for _, d := range dirNames {
		c.Dir(d[1:])
	}
	for _, name := range names {
		f := files[name]
		data := f.data
		if f.host != "" {
			var err error
			if data, err = os.ReadFile(f.host); err != nil {
				return fmt.Errorf("%s: %v", f.what, err)
			}
		}
		c.File(name[1:], f.perm, data)
	}
	return c.Close()
}

// programClosure returns, by guest path, the host files that progs need
// to run: each program at its own path, its ELF interpreter, and every
// shared library, transitively, at the path ld.so would find it; and the
// directories of those libraries.
func programClosure(progs []string) (map[string]string, []string, error) {
	out := map[string]string{}
	libDirs := map[string]bool{}
	system := ldSearchDirs()
	var visit func(file, what string) error
	visit = func(file, what string) error {
		f, err := elf.Open(file)
		if err != nil {
			return fmt.Errorf("%s: %s is not an ELF file: %v", what, file, err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type != elf.PT_INTERP {
				continue
			}
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return fmt.Errorf("%s: reading the interpreter of %s: %v", what, file, err)
			}
			interp := string(bytes.TrimRight(b, "\x00"))
			if _, err := os.Stat(interp); err != nil {
				return fmt.Errorf("%s: interpreter of %s: %v", what, file, err)
			}
			out[interp] = interp
		}
		needed, err := f.ImportedLibraries()
		if err != nil {
			return fmt.Errorf("%s: %s: %v", what, file, err)
		}
		var dirs []string
		origin := filepath.Dir(file)
		runpath, _ := f.DynString(elf.DT_RUNPATH)
		rpath, _ := f.DynString(elf.DT_RPATH)
		if len(runpath) == 0 { // DT_RPATH counts only without DT_RUNPATH
			dirs = append(dirs, splitPaths(rpath, origin)...)
		}
		dirs = append(append(dirs, splitPaths(runpath, origin)...), system...)
		for _, lib := range needed {
			found := ""
			if strings.Contains(lib, "/") {
				found = lib
			} else {
				for _, d := range dirs {
					if p := filepath.Join(d, lib); sameABI(p, f) {
						found = p
						break
					}
				}
			}
			if found == "" {
				return fmt.Errorf("%s: %s needs %s, not found in %s", what, file, lib, strings.Join(dirs, ":"))
			}
			if _, done := out[found]; done {
				continue
			}
			out[found] = found
			libDirs[filepath.Dir(found)] = true
			if err := visit(found, what); err != nil {
				return err
			}
		}
		return nil
	}
	for _, p := range progs {
		abs := p
		if !strings.Contains(p, "/") {
			var err error
			if abs, err = exec.LookPath(p); err != nil {
				return nil, nil, fmt.Errorf("Guest.Programs: %v", err)
			}
		}
		if !filepath.IsAbs(abs) {
			return nil, nil, fmt.Errorf("Guest.Programs: %s: want an absolute path or a name in PATH", p)
		}
		out[filepath.Clean(abs)] = abs
		if err := visit(abs, "Guest.Programs "+p); err != nil {
			return nil, nil, err
		}
	}
	dirs := make([]string, 0, len(libDirs))
	for d := range libDirs {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	return out, dirs, nil
}

// splitPaths splits a DT_RUNPATH or DT_RPATH, with $ORIGIN expanded.
func splitPaths(values []string, origin string) []string {
	var out []string
	for _, v := range values {
		for _, d := range strings.Split(v, ":") {
			d = strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", origin), "$ORIGIN", origin)
			if d != "" {
				out = append(out, d)
			}
		}
	}
	return out
}

// sameABI reports whether p is an ELF file ld.so would load for f: same
// class and machine (a 32-bit library of the same name is skipped).
func sameABI(p string, f *elf.File) bool {
	g, err := elf.Open(p)
	if err != nil {
		return false
	}
	defer g.Close()
	return g.Class == f.Class && g.Machine == f.Machine
}

// ldSearchDirs returns the directories of /etc/ld.so.conf (and its
// includes), then the default ones: where ld.so looks after the
// program's own paths.
func ldSearchDirs() []string {
	var dirs []string
	seen := map[string]bool{}
	var read func(file string, depth int)
	read = func(file string, depth int) {
		data, err := os.ReadFile(file)
		if err != nil || depth > 8 {
			return
		}
		for _, line := range strings.Split(string(data), "\n") {
			if i := strings.IndexByte(line, '#'); i >= 0 {
				line = line[:i]
			}
			fields := strings.Fields(line)
			switch {
			case len(fields) == 0:
			case fields[0] == "include":
				for _, pat := range fields[1:] {
					if !filepath.IsAbs(pat) {
						pat = filepath.Join(filepath.Dir(file), pat)
					}
					matches, _ := filepath.Glob(pat)
					sort.Strings(matches)
					for _, m := range matches {
						read(m, depth+1)
					}
				}
			default:
				for _, d := range fields {
					if filepath.IsAbs(d) && !seen[d] {
						seen[d] = true
						dirs = append(dirs, d)
					}
				}
			}
		}
	}
	read("/etc/ld.so.conf", 0)
	for _, d := range []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"} {
		if !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	return dirs
}
