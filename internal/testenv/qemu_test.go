package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKernelListsISO(t *testing.T) {
	Short(t, "boots a kernel under qemu")
	k := NeedKernel(t)
	geniso := Need(t, "genisoimage")[0]
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "hello world.txt"), []byte("hello\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(t.TempDir(), "t.iso")
	if out, err := exec.Command(geniso, "-quiet", "-R", "-J", "-o", iso, src).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	ls, console, err := k.ListISO(ctx, iso, "ro", "ro,norock")
	t.Logf("boot, two mounts and poweroff: %v", time.Since(start))
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, console)
	}
	t.Logf("%+v", ls)
}

func TestParseGuestListing(t *testing.T) {
	good := "=MOUNT ro\r\nS 41ed 2048 2 ./a dir\r\nS 81a4 3 1 ./a dir/f x\r\nH " + strings.Repeat("ab", 32) + "  ./a dir/f x\r\nS a1ff 1 1 ./l\r\nL 2e2e -\r\n=END ro\r\n=DONE\r\n"
	good = strings.Replace(good, "L 2e2e -", "L 2e2e ./l", 1)
	ls, err := parseGuestListing([]byte(good), []string{"ro"})
	if err != nil {
		t.Fatal(err)
	}
	e := ls[0].Entries
	if e["a dir"].Type != 'd' || e["a dir"].Perm != 0o755 || e["a dir/f x"].Size != 3 || e["a dir/f x"].SHA256 != strings.Repeat("ab", 32) || e["l"].Target != ".." {
		t.Errorf("parsed %+v", e)
	}
	for name, bad := range map[string]string{
		"no DONE":      "=MOUNT ro\nS 41ed 2048 2 ./d\n=END ro\n",
		"missing sha":  "=MOUNT ro\nS 81a4 3 1 ./f\n=END ro\n=DONE\n",
		"not listed":   "=MOUNT ro\nH " + strings.Repeat("ab", 32) + "  ./f\n=END ro\n=DONE\n",
		"guest failed": "=FAIL mount -o ro\n",
		"garbage":      "=MOUNT ro\nS zz 1 1 ./f\n=END ro\n=DONE\n",
		"outside":      "S 81a4 3 1 ./f\n=DONE\n",
	} {
		if _, err := parseGuestListing([]byte(bad), []string{"ro"}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
