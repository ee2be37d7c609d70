package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// StartContainerd runs a containerd of its own (root, state and socket in
// temporary directories; only the plugins a pull needs) until the test
// ends, and returns its address for `ctr --address`. CRI, the other
// snapshotters and the runtimes are disabled: they need kernel features a
// test machine may lack, and `ctr images pull --hosts-dir` reads
// hosts.toml through the same resolver code CRI uses with config_path.
// Not root skips the test.
func StartContainerd(t testing.TB) string {
	t.Helper()
	bins := Need(t, "containerd", "ctr")
	if os.Geteuid() != 0 {
		t.Skip("containerd needs root")
	}
	// The socket path must fit in sun_path (108 bytes): not under t.TempDir.
	dir, err := os.MkdirTemp("", "ctd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	addr := filepath.Join(dir, "c.sock")
	conf := filepath.Join(dir, "config.toml")
	err = os.WriteFile(conf, []byte(fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.overlayfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = ""
[metrics]
  address = ""
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), addr, addr+".ttrpc")), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	logs := &cappedLog{}
	cmd := exec.Command(bins[0], "--config", conf, "--address", addr)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// A wait for the daemon, bounded generously; not a timed assertion.
	for i := 0; ; i++ {
		out, err := exec.Command(bins[1], "--address", addr, "version").CombinedOutput()
		if err == nil {
			return addr
		}
		if i > 300 {
			t.Fatalf("containerd did not answer: %v\n%s\n%s", err, out, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cappedLog keeps the first MiB of a daemon's output for failure messages.
type cappedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *cappedLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.b.Len() < 1<<20 {
		w.b.Write(p)
	}
	return len(p), nil
}

func (w *cappedLog) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
