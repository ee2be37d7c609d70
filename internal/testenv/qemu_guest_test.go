package testenv

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/buildchain/iso"
)

// guestNginxConf serves /srv (where the job mounts the ISOs) on port 8080
// with workers as nobody, as the installer's repository service runs.
const guestNginxConf = `user nobody nogroup;
worker_processes 1;
pid /run/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    client_body_temp_path /tmp/nginx-body;
    server {
        listen 8080;
        root /srv;
    }
}
`

// TestGuestServesISOs boots Debian's kernel with two ISOs written by the
// project's writer as CD-ROM drives and Debian's nginx with its shared
// libraries; the guest mounts both through the kernel's iso9660 and
// serves them with unprivileged workers; the host fetches every file
// through qemu's forwarding on 127.0.0.1 and compares the bytes.
func TestGuestServesISOs(t *testing.T) {
	Short(t, "boots a kernel under software emulation")
	k := NeedKernel(t)
	nginx := Need(t, "nginx")[0]
	mime := "/etc/nginx/mime.types"
	if _, err := os.Stat(mime); err != nil {
		t.Fatalf("nginx without its mime.types (Debian package nginx-common): %v", err)
	}

	rng := rand.New(rand.NewSource(12))
	big := make([]byte, 300<<10+7) // spans many sectors and TCP segments
	rng.Read(big)
	trees := []map[string][]byte{{
		"product.txt":                    []byte("NAME=Guest\nVERSION=1.0.0\n"),
		"packages/redhat/repodata/a.xml": []byte("<repomd/>\n"),
		"images/app/1.0/blob.bin":        big,
		"empty":                          nil,
	}, {
		"solution.txt":      []byte("second drive\n"),
		"deep/er/still.txt": bytes.Repeat([]byte("b"), 5000),
	}}
	// Readable by root only: an unprivileged worker must refuse it.
	const secret = "secret.txt"
	var isos []string
	for i, files := range trees {
		src := t.TempDir()
		for name, data := range files {
			p := filepath.Join(src, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if i == 0 {
			if err := os.WriteFile(filepath.Join(src, secret), []byte("root only\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		out := filepath.Join(t.TempDir(), fmt.Sprintf("guest%d.iso", i))
		opts := iso.ProductOptions(fmt.Sprintf("GUEST %d", i), time.Unix(1700000000, 0))
		if _, err := iso.Write(context.Background(), out, src, opts); err != nil {
			t.Fatal(err)
		}
		isos = append(isos, out)
	}

	vm := k.Boot(t, Guest{
		ISOs:     isos,
		Programs: []string{nginx},
		Files:    map[string]string{"/etc/nginx/mime.types": mime},
		Contents: map[string]string{"/etc/nginx/guest.conf": guestNginxConf},
		Init: `set -e
mkdir -p /srv/a /srv/b /var/log/nginx /var/lib/nginx
mount -t iso9660 -o ro /dev/cdrom0 /srv/a
mount -t iso9660 -o ro /dev/cdrom1 /srv/b
nginx -e stderr -t -c /etc/nginx/guest.conf
nginx -e stderr -c /etc/nginx/guest.conf
echo SERVING
`,
		Forward: []int{8080},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := vm.WaitFor(ctx, "=BOOTED"); err != nil {
		t.Fatal(err)
	}
	booted := time.Since(vm.Started)
	if err := vm.WaitFor(ctx, "SERVING"); err != nil {
		t.Fatal(err)
	}
	serving := time.Since(vm.Started)

	base := "http://" + vm.Addr(8080)
	get := func(p string) (int, []byte) {
		t.Helper()
		u := base + (&url.URL{Path: p}).EscapedPath()
		req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v\n%s", u, err, vm.Logs())
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		return resp.StatusCode, body
	}
	var first time.Duration
	n := 0
	for i, files := range trees {
		names := make([]string, 0, len(files))
		for name := range files {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			p := fmt.Sprintf("/%c/%s", 'a'+i, name)
			code, body := get(p)
			if first == 0 {
				first = time.Since(vm.Started)
			}
			if code != http.StatusOK || !bytes.Equal(body, files[name]) {
				t.Errorf("GET %s: %d, %d bytes; want 200 and the %d bytes written to the ISO", p, code, len(body), len(files[name]))
			}
			n++
		}
	}
	if code, _ := get("/a/" + secret); code != http.StatusForbidden {
		t.Errorf("GET /a/%s (mode 0600 on the ISO): %d; want 403 from a worker that is not root", secret, code)
	}
	if code, _ := get("/b/" + secret); code != http.StatusNotFound {
		t.Errorf("GET /b/%s: %d; want 404: the second drive holds the second ISO", secret, code)
	}
	// The host acts between guest commands, as the installer's test does
	// between `solution add` and `solution remove`.
	out, status, err := vm.Exec(ctx, "grep ' iso9660 ' /proc/mounts; ps -o user,args | grep '[n]ginx: worker'")
	if err != nil || status != 0 {
		t.Fatalf("exec: %d, %v\n%s", status, err, out)
	}
	for _, want := range []string{"/srv/a iso9660 ro", "/srv/b iso9660 ro", "nobody"} {
		if !strings.Contains(out, want) {
			t.Errorf("the guest's mounts and nginx workers lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "root ") {
		t.Errorf("an nginx worker runs as root:\n%s", out)
	}
	// A program started with a clean environment (the installer may
	// start nginx so) still finds its libraries: they sit in ld.so's
	// default directories, LD_LIBRARY_PATH is only a fallback.
	if out, status, err := vm.Exec(ctx, "env -i /usr/sbin/nginx -v"); err != nil || status != 0 {
		t.Errorf("nginx without LD_LIBRARY_PATH: %d, %v\n%s", status, err, out)
	}
	if out, status, err := vm.Exec(ctx, "umount /srv/b"); err != nil || status != 0 {
		t.Fatalf("umount: %d, %v\n%s", status, err, out)
	}
	if code, _ := get("/b/solution.txt"); code != http.StatusNotFound {
		t.Errorf("GET /b/solution.txt after umount: %d; want 404", code)
	}
	if code, _ := get("/a/product.txt"); code != http.StatusOK {
		t.Errorf("GET /a/product.txt after umounting the other drive: %d; want 200", code)
	}

	t.Logf("kernel %s under TCG: init done %v after qemu started, nginx serving both ISOs at %v, first file at %v; %d files fetched and compared",
		k.Version, booted.Round(time.Millisecond), serving.Round(time.Millisecond), first.Round(time.Millisecond), n)

	if err := vm.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestGuestJobAndExec: a job that fails before its marker makes WaitFor
// fail at once with the job's output, not time out; Exec still runs
// commands, with their output (bytes as they are) and exit status; an
// extra module (loop) lets the guest mount an ISO file, as `archive add
// PATH` does with an ISO that is not on a drive.
func TestGuestJobAndExec(t *testing.T) {
	Short(t, "boots a kernel under software emulation")
	k := NeedKernel(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "hello.txt"), []byte("from a loop device\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	isoFile := filepath.Join(t.TempDir(), "loop.iso")
	if _, err := iso.Write(context.Background(), isoFile, src, iso.ProductOptions("LOOP", time.Unix(1700000000, 0))); err != nil {
		t.Fatal(err)
	}
	vm := k.Boot(t, Guest{
		Init:    "echo about to fail\nexit 3\n",
		Files:   map[string]string{"/root/loop.iso": isoFile},
		Modules: []string{"loop"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	err := vm.WaitFor(ctx, "NEVER")
	if err == nil || !strings.Contains(err.Error(), "status 3") || !strings.Contains(err.Error(), "about to fail") {
		t.Fatalf("WaitFor: %v; want the job's exit status and output", err)
	}
	if status, err := vm.WaitExit(ctx); err != nil || status != 3 {
		t.Fatalf("WaitExit: %d, %v; want 3", status, err)
	}
	// The guest is still up: the host can still run commands in it.
	script := "echo out; echo err >&2; printf 'no newline \\001'; exit 4\n" + strings.Repeat("# a script longer than a tty line\n", 200)
	out, status, err := vm.Exec(ctx, script)
	if err != nil || status != 4 || out != "out\nerr\nno newline \001" {
		t.Fatalf("Exec: %q, %d, %v; want the output and status 4", out, status, err)
	}
	out, status, err = vm.Exec(ctx, "mkdir /mnt/l && mount -t iso9660 -o loop,ro /root/loop.iso /mnt/l && cat /mnt/l/hello.txt")
	if err != nil || status != 0 || out != "from a loop device\n" {
		t.Fatalf("loop mount: %q, %d, %v", out, status, err)
	}
	if err := vm.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestProgramClosure: the libraries found for nginx are the ones the
// host's ld.so loads (ldd), plus its interpreter.
func TestProgramClosure(t *testing.T) {
	nginx := Need(t, "nginx")[0]
	ldd := Need(t, "ldd")[0]
	out, err := exec.Command(ldd, nginx).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)(?:=> )?(/\S+) \(0x`).FindAllStringSubmatch(string(out), -1) {
		want[realpath(t, m[1])] = true
	}
	want[realpath(t, nginx)] = true
	files, dirs, err := programClosure([]string{"nginx"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for guest, host := range files {
		if guest != host {
			t.Errorf("%s comes from %s: want it at its host path", guest, host)
		}
		got[realpath(t, host)] = true
	}
	if fmt.Sprint(sortedKeys(got)) != fmt.Sprint(sortedKeys(want)) {
		t.Errorf("closure of nginx:\n got %v\nwant %v (ldd)", sortedKeys(got), sortedKeys(want))
	}
	if len(dirs) == 0 {
		t.Error("no library directory for LD_LIBRARY_PATH")
	}
	if _, _, err := programClosure([]string{"/etc/passwd"}); err == nil || !strings.Contains(err.Error(), "not an ELF") {
		t.Errorf("a text file as a program: %v", err)
	}
}

func realpath(t *testing.T, p string) string {
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestGuestFilesRejects(t *testing.T) {
	for name, g := range map[string]Guest{
		"relative":      {Contents: map[string]string{"etc/x": ""}},
		"unclean":       {Contents: map[string]string{"/etc/../x": ""}},
		"init":          {Contents: map[string]string{"/init": ""}},
		"reserved":      {Contents: map[string]string{"/guest/job": ""}},
		"twice":         {Contents: map[string]string{"/etc/hosts": ""}, Files: map[string]string{"/etc/hosts": "/etc/hosts"}},
		"missing host":  {Files: map[string]string{"/x": "/nonexistent/x"}},
		"directory":     {Files: map[string]string{"/x": "/etc"}},
		"not a program": {Programs: []string{"/etc/hosts"}},
	} {
		if _, err := guestFiles(g); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	files, err := guestFiles(Guest{Contents: map[string]string{"/a/b": "x"}, ISOs: []string{"1", "2"}, Forward: []int{80}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeOverlay(&buf, files); err != nil {
		t.Fatal(err)
	}
	if env := string(files["/guest/env"].data); env != "GUEST_CDROMS=2\nGUEST_NET=1\n" {
		t.Errorf("/guest/env: %q", env)
	}
	if !bytes.Contains(buf.Bytes(), []byte("a\x00")) || !bytes.HasSuffix(bytes.TrimRight(buf.Bytes(), "\x00"), []byte("TRAILER!!!")) {
		t.Errorf("overlay lacks the parent directory or the trailer")
	}
}

// TestPVHKernel: the kernel unpacked from Debian's bzImage is an ELF with
// the PVH entry qemu boots; anything else is refused, so Boot falls back
// to the bzImage.
func TestPVHKernel(t *testing.T) {
	k := NeedKernel(t)
	p, err := pvhKernel(t.TempDir(), k.Vmlinuz)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if f.Type != elf.ET_EXEC || f.Machine != elf.EM_X86_64 {
		t.Errorf("%s: %v %v, want an x86-64 executable", p, f.Type, f.Machine)
	}
	if _, err := bzImagePayload(make([]byte, 4096)); err == nil {
		t.Error("a block of zeros passed for a bzImage")
	}
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip(err)
	}
	if err := hasPVHEntry(busybox); err == nil {
		t.Error("busybox passed for a PVH kernel")
	}
	if _, err := unpackPayload([]byte("BZh91AY&SY")); err == nil {
		t.Error("a bzip2 payload was accepted")
	}
}
