//go:build servebench

// Package serve benchmarks the repository service (issue 12): blob pull
// throughput through the nginx config installer/serve generates and
// starts (Apply, unprivileged workers, every archive's registry and yum
// tree in one server block) against a plain nginx serving the same files
// with `location / { root ...; }` and the same main settings, measured in
// the same run with wrk, in interleaved rounds.
//
//	go test -tags servebench -run TestServeBench -v -count=1 -timeout 30m ./bench/serve
//
// BENCH_DURATION (default 10s per wrk run), BENCH_ROUNDS (5; medians are
// reported), BENCH_CONNECTIONS (4), BENCH_BLOB_MIB (16) tune it. Everything
// listens on 127.0.0.1.
package serve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
	"github.com/metalk8s/buildchain/buildchain/solution"
	"github.com/metalk8s/buildchain/installer/change"
	iserve "github.com/metalk8s/buildchain/installer/serve"
	"github.com/metalk8s/buildchain/internal/testenv"
	"github.com/metalk8s/buildchain/registrygen"
)

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// cpuTicks is the user+system CPU time of pids and their children, from
// /proc (clock ticks of 10 ms).
func cpuTime(t *testing.T, master int) time.Duration {
	var total time.Duration
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
		if ppid, _ := strconv.Atoi(f[1]); pid != master && ppid != master {
			continue
		}
		u, _ := strconv.Atoi(f[11])
		s, _ := strconv.Atoi(f[12])
		total += time.Duration(u+s) * 10 * time.Millisecond
	}
	return total
}

var (
	reqsRE     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	transferRE = regexp.MustCompile(`Transfer/sec:\s+([0-9.]+)([KMG]?B)`)
	non2xxRE   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// result: requests and MiB per second as wrk counts them (bytes read,
// completed responses or not), and the server's CPU time per MiB served,
// which does not depend on what else loads the machine.
type result struct{ reqs, mbps, cpuMsPerMiB float64 }

func runWrk(t *testing.T, url string, master int) result {
	t.Helper()
	wrk := testenv.Need(t, "wrk")[0]
	d := env("BENCH_DURATION", "10s")
	dur, err := time.ParseDuration(d)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur+time.Minute)
	defer cancel()
	cpu0 := cpuTime(t, master)
	out, err := exec.CommandContext(ctx, wrk, "-t1", "-c"+env("BENCH_CONNECTIONS", "4"), "-d"+d, url).CombinedOutput()
	cpu := cpuTime(t, master) - cpu0
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	if m := non2xxRE.FindSubmatch(out); m != nil {
		t.Fatalf("%s: %s non-2xx responses\n%s", url, m[1], out)
	}
	var r result
	if m := reqsRE.FindSubmatch(out); m != nil {
		r.reqs, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if m := transferRE.FindSubmatch(out); m != nil {
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		r.mbps = v * map[string]float64{"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[string(m[2])] / (1 << 20)
	}
	if r.mbps == 0 {
		t.Fatalf("no figures in wrk output:\n%s", out)
	}
	r.cpuMsPerMiB = float64(cpu.Milliseconds()) / (r.mbps * dur.Seconds())
	return r
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func TestServeBench(t *testing.T) {
	nginx := testenv.Need(t, "nginx", "wrk")[0]
	user := testenv.UnprivilegedUser(t)
	root := t.TempDir()
	testenv.OpenToOthers(t, root)
	mib, _ := strconv.Atoi(env("BENCH_BLOB_MIB", "16"))
	rounds, _ := strconv.Atoi(env("BENCH_ROUNDS", "5"))

	// A Solution-like archive: one image with one large layer.
	mount := "/srv/scality/bench-solution-1.0.0"
	dir := filepath.Join(root, mount)
	cache := oci.Cache{Dir: filepath.Join(root, "cache")}
	img, err := random.Image(int64(mib)<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	res, err := oci.StoreImage(oci.Image{Name: "bench", Version: "1.0"}, img, cache)
	if err != nil {
		t.Fatal(err)
	}
	if err := oci.WriteDir(filepath.Join(dir, "images/bench/1.0"), res, cache); err != nil {
		t.Fatal(err)
	}
	if err := solution.WriteRegistryConfig(dir, registrygen.OmitConstants); err != nil {
		t.Fatal(err)
	}
	var blob string
	var size int64
	for d, n := range res.Blobs {
		if n > size {
			blob, size = d, n
		}
	}
	exec.Command("chmod", "-R", "a+rX", filepath.Join(root, "srv")).Run()

	// (a) the installer's config, applied and started as on a node.
	port := testenv.FreePort(t)
	opts := iserve.Options{Listen: fmt.Sprintf("127.0.0.1:%d", port), User: user, Nginx: nginx}
	arch := iserve.Archive{Name: "bench-solution", Version: "1.0.0", Kind: iserve.KindSolution, MountPath: mount, FS: os.DirFS(dir)}
	if _, err := iserve.Apply(context.Background(), change.New(root, false), []iserve.Archive{arch}, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { iserve.Stop(change.New(root, false)) })
	pidData, err := os.ReadFile(filepath.Join(root, iserve.PidFile))
	if err != nil {
		t.Fatal(err)
	}
	pidA, _ := strconv.Atoi(strings.TrimSpace(string(pidData)))
	urlA := fmt.Sprintf("http://%s/v2/bench-solution-1.0.0/bench/blobs/%s", opts.Listen, blob)

	// (b) plain nginx, the same main settings (workers, sendfile,
	// tcp_nopush, user) and the same files, no access log: the limit.
	prefix := t.TempDir()
	testenv.OpenToOthers(t, prefix)
	portB := testenv.FreePort(t)
	conf := filepath.Join(prefix, "nginx.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`user %[1]s;
worker_processes auto;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    server {
        listen 127.0.0.1:%[3]d;
        location / { root %[4]s; }
    }
}
`, user, prefix, portB, dir+"/images")), 0o644)
	if out, err := exec.Command(nginx, "-e", prefix+"/start.log", "-c", conf).CombinedOutput(); err != nil {
		t.Fatalf("plain nginx: %v\n%s", err, out)
	}
	var pidB int
	for i := 0; i < 100 && pidB == 0; i++ {
		if b, err := os.ReadFile(prefix + "/nginx.pid"); err == nil {
			pidB, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() { exec.Command(nginx, "-e", prefix+"/start.log", "-c", conf, "-s", "quit").Run() })
	urlB := fmt.Sprintf("http://127.0.0.1:%d/bench/1.0/%s", portB, dirlayout.BlobName(blob))

	// Both serve the blob's bytes; then warm the page cache.
	for _, u := range []string{urlA, urlB} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		io.Copy(h, resp.Body)
		resp.Body.Close()
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); resp.StatusCode != 200 || got != blob {
			t.Fatalf("GET %s: %d %s, want the blob %s", u, resp.StatusCode, got, blob)
		}
	}
	runWrk(t, urlA, pidA)
	runWrk(t, urlB, pidB)
	var a, b [3][]float64
	for i := 0; i < rounds; i++ {
		var ra, rb result
		if i%2 == 0 { // alternate which goes first
			ra = runWrk(t, urlA, pidA)
			rb = runWrk(t, urlB, pidB)
		} else {
			rb = runWrk(t, urlB, pidB)
			ra = runWrk(t, urlA, pidA)
		}
		for k, v := range []float64{ra.reqs, ra.mbps, ra.cpuMsPerMiB} {
			a[k] = append(a[k], v)
		}
		for k, v := range []float64{rb.reqs, rb.mbps, rb.cpuMsPerMiB} {
			b[k] = append(b[k], v)
		}
		t.Logf("round %d: installer %.1f req/s %.0f MiB/s %.2f ms CPU/MiB; plain %.1f req/s %.0f MiB/s %.2f ms CPU/MiB",
			i+1, ra.reqs, ra.mbps, ra.cpuMsPerMiB, rb.reqs, rb.mbps, rb.cpuMsPerMiB)
	}
	ratio := median(a[1]) / median(b[1])
	var perRound []string
	for i := range a[1] {
		perRound = append(perRound, fmt.Sprintf("%.2f", a[1][i]/b[1][i]))
	}
	t.Logf("installer/plain MiB/s per round: %s", strings.Join(perRound, " "))
	t.Logf("blob %s, %d bytes; medians of %d rounds: installer %.1f req/s %.0f MiB/s %.2f ms CPU/MiB; plain %.1f req/s %.0f MiB/s %.2f ms CPU/MiB; installer/plain MiB/s %.2f",
		blob, size, rounds, median(a[0]), median(a[1]), median(a[2]), median(b[0]), median(b[1]), median(b[2]), ratio)
}
