// Package kubebuild builds the kube-apiserver the installer's tests run
// against, from the tools module internal/tools/kube-apiserver, into the
// user cache directory, once: the test target calls it before `go test`
// (while apt-get installs the Debian packages), and the tests find the
// binary there. A cold build takes minutes, so it is logged as it goes.
package kubebuild

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Version is the Kubernetes release whose kube-apiserver is built.
// internal/tools/kube-apiserver/go.mod pins it, with its staging modules
// at the matching v0.x release.
const Version = "v1.34.4"

// ToolsDir is the tools module, relative to the repository root.
const ToolsDir = "internal/tools/kube-apiserver"

// Cached returns the binary's path and whether it is built.
func Cached(tools string) (string, bool, error) {
	dir, err := cacheDir(tools)
	if err != nil {
		return "", false, err
	}
	bin := filepath.Join(dir, "kube-apiserver")
	_, err = os.Stat(bin)
	return bin, err == nil, nil
}

// Binary returns the cached kube-apiserver, building it first when it is
// missing. Processes running at once build it once: the first takes a
// lock in the cache directory, the others wait on it. Progress goes to
// log every 30 seconds.
func Binary(ctx context.Context, tools string, log io.Writer) (string, error) {
	bin, ok, err := Cached(tools)
	if err != nil || ok {
		return bin, err
	}
	dir := filepath.Dir(bin)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		fmt.Fprintf(log, "kube-apiserver: another process is building it into %s; waiting\n", dir)
		if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
			return "", err
		}
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := build(ctx, tools, bin, log); err != nil {
		return "", fmt.Errorf("building kube-apiserver %s: %w", Version, err)
	}
	return bin, nil
}

func build(ctx context.Context, tools, bin string, log io.Writer) error {
	start := time.Now()
	fmt.Fprintf(log, "kube-apiserver: building %s from %s into %s (cold: several minutes on 2 cores; later runs reuse it)\n", Version, tools, bin)
	tmp := bin + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-v", "-trimpath", "-o", tmp, "k8s.io/kubernetes/cmd/kube-apiserver")
	cmd.Dir = tools
	// The tools module's go.sum pins everything; neither a workspace nor
	// a go.mod edit on the fly may change what is built. CGO_ENABLED is
	// left as the environment has it: it is part of every package's cache
	// key, so forcing it would miss a build cache warmed by hand.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOWORK=off")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	var out bytes.Buffer
	var mu sync.Mutex
	pkgs := 0
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(30 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				mu.Lock()
				n := pkgs
				mu.Unlock()
				fmt.Fprintf(log, "kube-apiserver: building, %v, %d packages compiled\n", time.Since(start).Round(time.Second), n)
			}
		}
	}()
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		mu.Lock()
		pkgs++
		if out.Len() < 64<<10 {
			out.Write(sc.Bytes())
			out.WriteByte('\n')
		}
		mu.Unlock()
	}
	err = cmd.Wait()
	close(stop)
	<-done
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%w\n%s", err, out.String())
	}
	if err := os.Rename(tmp, bin); err != nil {
		return err
	}
	fmt.Fprintf(log, "kube-apiserver: built %s in %v\n", Version, time.Since(start).Round(time.Second))
	return nil
}

// cacheDir names the binary's cache directory after what decides its
// content: the Kubernetes version, the Go release that compiles it and
// the tools module's go.mod and go.sum.
func cacheDir(tools string) (string, error) {
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOVERSION: %w", err)
	}
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(tools, f))
		if err != nil {
			return "", err
		}
		h.Write(data)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	key := Version + "-" + strings.TrimSpace(string(out)) + "-" + hex.EncodeToString(h.Sum(nil))[:12]
	return filepath.Join(base, "metalk8s-buildchain", "kube-apiserver", key), nil
}

// FindTools finds the tools module from dir up.
func FindTools(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		p := filepath.Join(d, filepath.FromSlash(ToolsDir))
		if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
			return p, nil
		}
		if d == filepath.Dir(d) {
			return "", errors.New("no " + ToolsDir + "/go.mod above " + dir)
		}
	}
}
