//go:build registrybench

// Package registry benchmarks the static registry: wrk against (a) nginx
// with the registrygen config, (b) nginx serving the same files as plain
// static files (the limit), (c) Debian's docker-registry holding the same
// images; and the generation of a 500 images x 3 tags config.
//
//	go test -tags registrybench -run TestRegistryBench -v -timeout 30m ./bench/registry
//
// BENCH_DURATION (default 10s per run), BENCH_ROUNDS (3; the median is
// reported), BENCH_CONNECTIONS (16), BENCH_THREADS (1) tune the load;
// BENCH_OUT=FILE also writes the Markdown table there. A fourth server, (d)
// the built-in Go handler, is measured for information. Everything listens
// on 127.0.0.1.
package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/metalk8s/buildchain/internal/testenv"
	"github.com/metalk8s/buildchain/registrygen"
)

const images = 20 // names served, each one tag, one 1 MiB layer

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

type wrkResult struct {
	reqs, bytesPerSec float64
	cpuPerReq         time.Duration // server CPU time per request
}

// cpuTime is the CPU (user+system) time used so far by pids, from
// /proc/PID/stat, or by this process when pids is empty.
func cpuTime(t *testing.T, pids []int) time.Duration {
	if len(pids) == 0 {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	var total time.Duration
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		// Fields after the parenthesised command: utime and stime are the
		// 12th and 13th, in clock ticks (100 per second on Linux).
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
		u, _ := strconv.Atoi(f[11])
		st, _ := strconv.Atoi(f[12])
		total += time.Duration(u+st) * 10 * time.Millisecond
	}
	return total
}

// pidsOf finds the processes whose command line contains every needle,
// and their children (nginx's worker).
func pidsOf(t *testing.T, needles ...string) []int {
	entries, _ := os.ReadDir("/proc")
	var found []int
	parents := map[int]bool{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		ok := len(cmd) > 0
		for _, n := range needles {
			ok = ok && strings.Contains(string(cmd), n)
		}
		if ok {
			found = append(found, pid)
			parents[pid] = true
		}
	}
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
		if ppid, _ := strconv.Atoi(f[1]); parents[ppid] {
			found = append(found, pid)
		}
	}
	if len(found) == 0 {
		t.Fatalf("no process with %q", needles)
	}
	return found
}

var (
	reqsRE     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	transferRE = regexp.MustCompile(`Transfer/sec:\s+([0-9.]+)([KMG]?B)`)
	non2xxRE   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// runWrk loads base with the paths in turn (a Lua script rotates them).
func runWrk(t *testing.T, base string, paths []string, accept string, pids []int) wrkResult {
	t.Helper()
	wrk := testenv.Need(t, "wrk")[0]
	var lua strings.Builder
	lua.WriteString("local paths = {\n")
	for _, p := range paths {
		fmt.Fprintf(&lua, "  %q,\n", p)
	}
	lua.WriteString("}\nlocal i = 0\n")
	if accept != "" {
		fmt.Fprintf(&lua, "wrk.headers[\"Accept\"] = %q\n", accept)
	}
	lua.WriteString("request = function()\n  i = i % #paths + 1\n  return wrk.format(\"GET\", paths[i])\nend\n")
	script := filepath.Join(t.TempDir(), "paths.lua")
	if err := os.WriteFile(script, []byte(lua.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	d := env("BENCH_DURATION", "10s")
	dur, err := time.ParseDuration(d)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur+time.Minute)
	defer cancel()
	cpu0 := cpuTime(t, pids)
	out, err := exec.CommandContext(ctx, wrk, "-t"+env("BENCH_THREADS", "1"), "-c"+env("BENCH_CONNECTIONS", "16"),
		"-d"+d, "-s", script, base).CombinedOutput()
	cpu := cpuTime(t, pids) - cpu0
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	r := wrkResult{}
	if m := reqsRE.FindSubmatch(out); m != nil {
		r.reqs, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if m := transferRE.FindSubmatch(out); m != nil {
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		r.bytesPerSec = v * map[string]float64{"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[string(m[2])]
	}
	if m := non2xxRE.FindSubmatch(out); m != nil {
		t.Errorf("%s: %s non-2xx responses\n%s", base, m[1], out)
	}
	if r.reqs == 0 {
		t.Fatalf("no figures in wrk output:\n%s", out)
	}
	r.cpuPerReq = time.Duration(float64(cpu) / (r.reqs * dur.Seconds()))
	return r
}

func TestRegistryBench(t *testing.T) {
	skopeo := testenv.Need(t, "skopeo", "nginx", "wrk", "docker-registry")[0]
	reg := testenv.StartRegistry(t)
	root := filepath.Join(t.TempDir(), "images")
	type image struct{ name, tag, digest, layer string }
	var imgs []image
	for i := range images {
		img, err := random.Image(1<<20, 1) // Docker v2s2 media types
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", "amd64"
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		im := image{name: fmt.Sprintf("bench/app-%02d", i), tag: "1.0"}
		ref, _ := name.ParseReference(reg.Host + "/" + im.name + ":" + im.tag)
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		layers, _ := img.Layers()
		ld, _ := layers[0].Digest()
		mt, _ := layers[0].MediaType()
		if mt != types.DockerLayer {
			t.Fatalf("layer media type %s", mt)
		}
		im.digest, im.layer = d.String(), ld.String()
		imgs = append(imgs, im)
		dst := filepath.Join(root, im.name, im.tag)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if out, err := exec.Command(skopeo, "copy", "--quiet", "--preserve-digests", "--src-tls-verify=false",
			"docker://"+ref.String(), "dir:"+dst).CombinedOutput(); err != nil {
			t.Fatalf("skopeo copy: %v\n%s", err, out)
		}
	}
	conf, err := registrygen.Generate(registrygen.Config{Roots: []registrygen.Root{{Dir: root}}})
	if err != nil {
		t.Fatal(err)
	}
	ours := testenv.StartNginx(t, testenv.NginxConfig{Server: string(conf)})
	static := testenv.StartNginx(t, testenv.NginxConfig{Server: "root " + root + ";"})

	// Warm the page cache.
	exec.Command("sh", "-c", "find "+root+" -type f -exec cat {} + >/dev/null").Run()

	var blobs, manifests, staticBlobs, staticManifests []string
	for _, im := range imgs {
		blobs = append(blobs, "/v2/"+im.name+"/blobs/"+im.layer)
		manifests = append(manifests, "/v2/"+im.name+"/manifests/"+im.tag)
		staticBlobs = append(staticBlobs, "/"+im.name+"/"+im.tag+"/"+strings.TrimPrefix(im.layer, "sha256:"))
		staticManifests = append(staticManifests, "/"+im.name+"/"+im.tag+"/manifest.json")
	}
	h, err := registrygen.NewHandler(registrygen.Root{Dir: root})
	if err != nil {
		t.Fatal(err)
	}
	goSrv := httptest.NewServer(h)
	defer goSrv.Close()

	accept := registrygen.MediaTypeDockerManifest + ", " + registrygen.MediaTypeOCIManifest
	servers := []struct {
		name, url string
		static    bool
		pids      []int // whose CPU time is the server's; none: this process
	}{
		{"(a) nginx + registrygen", ours.URL, false, pidsOf(t, "nginx", ours.Prefix)},
		{"(b) nginx, static files", static.URL, true, pidsOf(t, "nginx", static.Prefix)},
		{"(c) docker-registry", "http://" + reg.Host, false, pidsOf(t, "docker-registry", reg.Dir)},
		{"(d) registrygen serve (Go)", goSrv.URL, false, nil},
	}
	workloads := []struct {
		name           string
		paths, statics []string
	}{
		{"blob GET (1 MiB)", blobs, staticBlobs},
		{"manifest GET by tag", manifests, staticManifests},
	}
	// Rounds interleave the servers, so that a burst of load from other
	// work on the machine does not favour one of them; the median counts.
	rounds, _ := strconv.Atoi(env("BENCH_ROUNDS", "3"))
	results := map[[2]int][]wrkResult{}
	for range rounds {
		for wi, w := range workloads {
			for si, srv := range servers {
				paths := w.paths
				if srv.static {
					paths = w.statics
				}
				results[[2]int{wi, si}] = append(results[[2]int{wi, si}], runWrk(t, srv.url, paths, accept, srv.pids))
			}
		}
	}
	median := func(rs []wrkResult, f func(wrkResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	reqs := func(r wrkResult) float64 { return r.reqs }
	bps := func(r wrkResult) float64 { return r.bytesPerSec }
	cpu := func(r wrkResult) float64 { return float64(r.cpuPerReq) }
	var md strings.Builder
	fmt.Fprintf(&md, "| workload | server | req/s | MB/s | server CPU µs/req | (a)/this req/s | (a)/this MB/s | this/(a) CPU per req |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	for wi, w := range workloads {
		a := results[[2]int{wi, 0}]
		for si, srv := range servers {
			rs := results[[2]int{wi, si}]
			ratioR, ratioB, ratioC := "", "", ""
			if si > 0 {
				ratioR = fmt.Sprintf("%.2f", median(a, reqs)/median(rs, reqs))
				ratioB = fmt.Sprintf("%.2f", median(a, bps)/median(rs, bps))
				ratioC = fmt.Sprintf("%.2f", median(rs, cpu)/median(a, cpu))
			}
			fmt.Fprintf(&md, "| %s | %s | %.0f | %.1f | %.1f | %s | %s | %s |\n", w.name, srv.name, median(rs, reqs), median(rs, bps)/(1<<20),
				median(rs, cpu)/float64(time.Microsecond), ratioR, ratioB, ratioC)
		}
	}

	// Generation of a large config, and nginx -t on it.
	big := filepath.Join(t.TempDir(), "big")
	writeSynthetic(t, big, 500, 3)
	// Best of several runs, wall and CPU (user+system) time: on a shared
	// machine the wall time measures the other work as much as ours.
	type timing struct{ wall, cpu time.Duration }
	best := func(n int, f func() time.Duration) timing {
		var b timing
		for i := range n {
			s := time.Now()
			cpu := f()
			wall := time.Since(s)
			if i == 0 || wall < b.wall {
				b.wall = wall
			}
			if i == 0 || cpu < b.cpu {
				b.cpu = cpu
			}
		}
		return b
	}
	rusage := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	var bigConf []byte
	gen := best(5, func() time.Duration {
		before := rusage()
		if bigConf, err = registrygen.Generate(registrygen.Config{Roots: []registrygen.Root{{Dir: big}}}); err != nil {
			t.Fatal(err)
		}
		return rusage() - before
	})
	prefix := t.TempDir()
	os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755)
	confPath := filepath.Join(prefix, "nginx.conf")
	os.WriteFile(confPath, []byte(testenv.NginxConf(prefix, testenv.FreePort(t), testenv.NginxConfig{Server: string(bigConf)})), 0o644)
	check := best(5, func() time.Duration {
		cmd := exec.Command("nginx", "-t", "-q", "-p", prefix, "-c", confPath)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nginx -t: %v\n%s", err, out)
		}
		return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	})
	fmt.Fprintf(&md, "\n| 500 images x 3 tags (%d bytes of config) | best wall | best CPU (user+sys) |\n|---|---:|---:|\n| registrygen.Generate | %v | %v |\n| nginx -t | %v | %v |\n",
		len(bigConf), gen.wall.Round(time.Millisecond), gen.cpu.Round(time.Millisecond), check.wall.Round(time.Millisecond), check.cpu.Round(time.Millisecond))
	t.Logf("wrk -t%s -c%s -d%s, %d rounds, %d images\n%s", env("BENCH_THREADS", "1"), env("BENCH_CONNECTIONS", "16"), env("BENCH_DURATION", "10s"), rounds, images, md.String())
	if out := os.Getenv("BENCH_OUT"); out != "" {
		os.WriteFile(out, []byte(md.String()), 0o644)
	}
}

// writeSynthetic writes n names with tags tags each in the dir: layout:
// a config and two layers (one shared by all), hard-linked across the
// tags of a name as the ISO build does.
func writeSynthetic(t testing.TB, root string, n, tags int) {
	t.Helper()
	sha := func(b []byte) string { return "sha256:" + hexSHA(b) }
	shared := []byte("shared layer")
	for i := range n {
		config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","n":%d}`, i))
		layer := []byte(fmt.Sprintf("layer %d", i))
		manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":%d,"digest":%q},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":%d,"digest":%q},{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":%d,"digest":%q}]}`,
			registrygen.MediaTypeDockerManifest, len(config), sha(config), len(layer), sha(layer), len(shared), sha(shared))
		var first string
		for j := range tags {
			dir := filepath.Join(root, fmt.Sprintf("group%d", i%10), fmt.Sprintf("image-%03d", i), fmt.Sprintf("1.%d.0", j))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			files := map[string][]byte{
				"manifest.json": []byte(manifest),
				"version":       []byte("Directory Transport Version: 1.1\n"),
				hexSHA(config):  config,
				hexSHA(layer):   layer,
				hexSHA(shared):  shared,
			}
			for name, data := range files {
				p := filepath.Join(dir, name)
				if first != "" && len(name) == 64 {
					if err := os.Link(filepath.Join(first, name), p); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if err := os.WriteFile(p, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if first == "" {
				first = dir
			}
		}
	}
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
