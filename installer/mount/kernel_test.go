package mount

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/internal/testenv"
)

// guestEnv makes the test binary the guest program of TestKernelMountUnderQEMU.
const guestEnv = "MOUNT_TEST_GUEST"

// guestMain runs in the VM: it mounts the CD-ROM and an ISO file through
// kernelMounter (the installer's code, not busybox's mount) and reports
// what it reads on stdout, which the guest's init sends to a serial port.
func guestMain() {
	for _, src := range []string{"/dev/sr0", "/t.iso"} {
		mnt := "/mnt/x"
		os.MkdirAll(mnt, 0o755)
		if err := (kernelMounter{}).Mount(src, mnt); err != nil {
			fmt.Printf("=FAIL %s: %v\n", src, err)
			continue
		}
		cur, err := Current(mnt)
		if err != nil || cur == nil {
			fmt.Printf("=FAIL %s: Current: %v\n", src, err)
			continue
		}
		fmt.Printf("=MOUNT %s %s %s %s\n", src, cur.Method, cur.Source, cur.Info.Options)
		filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				fmt.Printf("=FAIL %s: %v\n", p, err)
				return nil
			}
			rel, _ := filepath.Rel(mnt, p)
			fi, _ := os.Lstat(p)
			switch {
			case d.Type().IsRegular():
				b, _ := os.ReadFile(p)
				s := sha256.Sum256(b)
				fmt.Printf("H %o %x %s\n", fi.Mode().Perm(), s, rel)
			case d.Type()&fs.ModeSymlink != 0:
				t, _ := os.Readlink(p)
				fmt.Printf("L %s %s\n", t, rel)
			}
			return nil
		})
		if err := Unmount(mnt); err != nil {
			fmt.Printf("=FAIL %s: %v\n", src, err)
		}
		held := 0
		bf, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
		for _, b := range bf {
			if data, _ := os.ReadFile(b); len(bytes.TrimSpace(data)) > 0 {
				held++
			}
		}
		fmt.Printf("=END %s loops=%d\n", src, held)
	}
	fmt.Println("=DONE")
}

const guestInit = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules) loop.ko; do insmod /lib/modules/$m || echo "=FAIL insmod $m" > /dev/ttyS1; done
n=0
while [ ! -b /dev/sr0 ]; do
	n=$((n+1)); [ $n -gt 600 ] && break
	sleep 0.1
done
MOUNT_TEST_GUEST=1 /guest > /dev/ttyS1 2>&1
poweroff -f
`

// TestKernelMountUnderQEMU boots Debian's kernel (testenv.NeedKernel's
// initramfs, plus the loop module, this test built static, and an ISO
// file) with the ISO as a CD-ROM too. The kernel method mounts both
// through the guest's iso9660: the CD-ROM directly, the file on a loop
// device it configures itself, which is freed after the unmount.
func TestKernelMountUnderQEMU(t *testing.T) {
	testenv.Short(t, "boots a kernel under software emulation")
	k := testenv.NeedKernel(t)
	loopKo := filepath.Join("/lib/modules", k.Version, "kernel/drivers/block/loop.ko")
	if _, err := os.Stat(loopKo); err != nil {
		t.Skipf("no uncompressed loop module for %s: %v", k.Version, err)
	}
	src := tree(t)
	isoPath := writeISO(t, src, "guest.iso", "MetalK8s 2.0.0")
	dir := t.TempDir()
	guest := filepath.Join(dir, "guest")
	// Static: the initramfs has no libc.
	build := exec.Command("go", "test", "-c", "-o", guest, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the guest program: %v\n%s", err, out)
	}

	var ov bytes.Buffer
	base, err := os.ReadFile(k.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	ov.Write(base)
	for ov.Len()%4 != 0 {
		ov.WriteByte(0)
	}
	add := func(name string, mode uint32, data []byte) {
		fmt.Fprintf(&ov, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", 0, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
		ov.WriteString(name + "\x00")
		for ov.Len()%4 != 0 {
			ov.WriteByte(0)
		}
		ov.Write(data)
		for ov.Len()%4 != 0 {
			ov.WriteByte(0)
		}
	}
	for _, f := range []struct {
		name, path string
		mode       uint32
	}{{"guest", guest, 0o100755}, {"t.iso", isoPath, 0o100644}, {"lib/modules/loop.ko", loopKo, 0o100644}} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		add(f.name, f.mode, b)
	}
	add("init", 0o100755, []byte(guestInit))
	add("TRAILER!!!", 0, nil)
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := os.WriteFile(initrd, ov.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(dir, "ttyS1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.QEMU, "-accel", "tcg", "-nographic", "-no-reboot", "-m", "512",
		"-monitor", "none", "-nic", "none", "-serial", "stdio", "-serial", "file:"+out,
		"-kernel", k.Vmlinuz, "-initrd", initrd, "-append", "console=ttyS0 panic=-1",
		"-drive", "file="+isoPath+",media=cdrom,if=ide,readonly=on")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	console, runErr := cmd.CombinedOutput()
	report, err := os.ReadFile(out)
	if err != nil || !bytes.Contains(report, []byte("=DONE")) {
		t.Fatalf("qemu: %v; guest report %v:\n%s\nconsole:\n%.4000s", runErr, err, report, console)
	}

	want := map[string]string{}
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			s := sha256.Sum256(b)
			fi, _ := d.Info()
			rel, _ := filepath.Rel(src, p)
			want[rel] = fmt.Sprintf("%o %s", fi.Mode().Perm(), hex.EncodeToString(s[:]))
		}
		return nil
	})
	var cur string
	got := map[string]map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(report))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 0:
		case f[0] == "=FAIL":
			t.Errorf("guest: %s", sc.Text())
		case f[0] == "=MOUNT" && len(f) >= 5:
			t.Logf("guest: %s", sc.Text())
			cur = f[1]
			got[cur] = map[string]string{}
			if f[2] != string(Kernel) || f[3] != cur || !strings.HasPrefix(f[4], "ro") {
				t.Errorf("guest mount of %s: method %s, source %s, options %s", cur, f[2], f[3], f[4])
			}
		case f[0] == "H" && len(f) == 4 && cur != "":
			got[cur][f[3]] = f[1] + " " + f[2]
		case f[0] == "=END":
			t.Logf("guest: %s", sc.Text())
			if !strings.HasSuffix(sc.Text(), "loops=0") {
				t.Errorf("guest: a loop device is still bound after the unmount: %s", sc.Text())
			}
		}
	}
	for _, s := range []string{"/dev/sr0", "/t.iso"} {
		if len(got[s]) != len(want) {
			t.Errorf("%s: the guest read %d files, want %d", s, len(got[s]), len(want))
		}
		for p, w := range want {
			if got[s][p] != w {
				t.Errorf("%s: %s is %q in the guest, %q in the source", s, p, got[s][p], w)
			}
		}
	}
}
