package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
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
