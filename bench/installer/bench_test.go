//go:build installerbench

// Package installer benchmarks `metalk8s-installer archive add` (issue 12):
// the time from the command's start to a serving registry (the command
// returns once nginx serves; then GET /v2/ and one image manifest prove
// it), for a ~2 GB MetalK8s-like ISO, with the per-file verification
// against MANIFEST.sha256 and without it, against `sha256sum ISO` (the
// limit of verification) in the same run, in interleaved rounds, page
// cache warm for all.
//
//	go test -tags installerbench -run TestArchiveAddBench -v -count=1 -timeout 60m ./bench/installer
//
// BENCH_ISO_MIB (default 2048) is the image data; BENCH_ROUNDS (3);
// BENCH_DIR keeps the built ISO there between runs (default: a temporary
// directory, removed at the end); BENCH_OUT appends the Markdown results
// to a file. Runs as root (mounts; nginx workers as nobody), on 127.0.0.1.
package installer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/buildchain/isomanifest"
	"github.com/metalk8s/buildchain/buildchain/isosign"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmtest"
	"github.com/metalk8s/buildchain/buildchain/salttree"
	"github.com/metalk8s/buildchain/buildchain/solution"
	"github.com/metalk8s/buildchain/installer/archive"
	"github.com/metalk8s/buildchain/installer/change"
	"github.com/metalk8s/buildchain/installer/serve"
	"github.com/metalk8s/buildchain/internal/testenv"
	"github.com/metalk8s/buildchain/registrygen"
)

var epoch = time.Unix(1700000000, 0)

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// fixture is the built ISO and what a pull of it needs.
type fixture struct {
	ISO, PublicKey string
	Image, Digest  string // one image, as served: metalk8s-2.0.0/<name>, its manifest digest
	Size           int64
	Files          int
}

// buildISO writes a MetalK8s-like tree and its ISO with the project's
// writer: images/ holding 4 images of 2 incompressible layers each
// (skopeo's dir: layout, written by oci.WriteDir as the buildchain does),
// versions.json naming them, registry-config.inc.j2 from
// registrygen.Template, 2,000 small Salt files, product.txt matching the
// volume ID, MANIFEST.sha256 (isomanifest) signed with a throwaway key,
// the ISO with its SHA256SUM beside it (iso.Write) and its detached
// signature (isosign).
func buildISO(t *testing.T, work string, mib int) fixture {
	t.Helper()
	key := rpmtest.GPGKey(t, "installer-bench", "rsa2048")
	meta := filepath.Join(work, "fixture.json")
	var fx fixture
	if data, err := os.ReadFile(meta); err == nil && json.Unmarshal(data, &fx) == nil {
		if fi, err := os.Stat(fx.ISO); err == nil && fi.Size() == fx.Size {
			fx.PublicKey = key.PublicPath
			t.Logf("reusing %s (%d bytes)", fx.ISO, fx.Size)
			return fx
		}
	}
	src := filepath.Join(work, "tree")
	os.RemoveAll(src)
	defer os.RemoveAll(src)
	cache := oci.Cache{Dir: filepath.Join(work, "cache")}
	defer os.RemoveAll(cache.Dir)
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p string, data []byte) {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("product.txt", []byte("NAME=MetalK8s\nVERSION=2.0.0\nSHORT_VERSION=2.0\n"))
	rng := rand.NewChaCha8([32]byte{'i', 'b', 'e', 'n', 'c', 'h'})
	const images, layers = 4, 2
	layerSize := int64(mib) << 20 / (images * layers)
	vers := salttree.Versions{Packages: map[string]salttree.Package{}, Repositories: map[string]salttree.Repository{},
		Images: map[string]salttree.Image{}, Registries: []string{}}
	vers.MetalK8s.Version = "2.0.0"
	buf := make([]byte, layerSize)
	for i := 1; i <= images; i++ {
		img := empty.Image
		for j := 0; j < layers; j++ {
			rng.Read(buf)
			var err error
			// Random bytes as a gzip layer: nothing on the serving path
			// decompresses it, and no compressor could shrink it.
			if img, err = mutate.AppendLayers(img, static.NewLayer(bytes.Clone(buf), types.DockerLayer)); err != nil {
				t.Fatal(err)
			}
		}
		name := fmt.Sprintf("bench-app%d", i)
		source := "registry.mirror.invalid/bench/" + name
		res, err := oci.StoreImage(oci.Image{Name: name, Version: "1.0.0", Source: source}, img, cache)
		if err != nil {
			t.Fatal(err)
		}
		if err := oci.WriteDir(filepath.Join(src, "images", name, "1.0.0"), res, cache); err != nil {
			t.Fatal(err)
		}
		vers.Images[name] = salttree.Image{Name: name, Version: "1.0.0", Digest: res.Image.Digest, Source: source}
		if i == 1 {
			fx.Image, fx.Digest = "metalk8s-2.0.0/"+name, res.Image.Digest
		}
		runtime.GC()
	}
	vers.Registries = []string{"registry.mirror.invalid"}
	data, err := json.MarshalIndent(vers, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	write(serve.VersionsFile, data)
	// Salt states: many small files, as the real ISO has.
	small := make([]byte, 4096)
	for i := 0; i < 2000; i++ {
		rng.Read(small)
		write(fmt.Sprintf("salt/metalk8s/d%02d/state-%04d.sls", i/100, i), small[:1024+i%3072])
	}
	if err := solution.WriteRegistryConfig(src, registrygen.WithConstants); err != nil {
		t.Fatal(err)
	}
	signer, err := isosign.LoadKey(key.SecretPath)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := isomanifest.Build(os.DirFS(src), isomanifest.HashFile)
	if err != nil {
		t.Fatal(err)
	}
	fx.Files = len(entries)
	mdata, err := isomanifest.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	write(isomanifest.Name, mdata)
	if err := signer.SignFile(filepath.Join(src, isomanifest.SignatureName), filepath.Join(src, isomanifest.Name), epoch); err != nil {
		t.Fatal(err)
	}
	fx.ISO = filepath.Join(work, "metalk8s.iso")
	res, err := iso.Write(context.Background(), fx.ISO, src, iso.ProductOptions("MetalK8s 2.0.0", epoch))
	if err != nil {
		t.Fatal(err)
	}
	fx.Size = res.Size
	if err := signer.SignFile(fx.ISO+".asc", fx.ISO, epoch); err != nil {
		t.Fatal(err)
	}
	fx.PublicKey = key.PublicPath
	data, _ = json.Marshal(fx)
	if err := os.WriteFile(meta, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return fx
}

func warm(t *testing.T, files ...string) {
	t.Helper()
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, r)
		r.Close()
	}
}

func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// cpuOf is the user+system CPU time of a finished command and of the
// children it waited for (nginx and the FUSE server outlive it and are
// not counted).
func cpuOf(ps *os.ProcessState) time.Duration { return ps.UserTime() + ps.SystemTime() }

var mountRE = regexp.MustCompile(`mount /srv/scality/metalk8s-2\.0\.0 \(([a-z]+)`)

func TestArchiveAddBench(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	if nginx := testenv.Need(t, "nginx", "sha256sum", "openssl")[0]; nginx != "/usr/sbin/nginx" {
		t.Skipf("nginx is %s; the installer runs /usr/sbin/nginx", nginx)
	}
	mib, _ := strconv.Atoi(env("BENCH_ISO_MIB", "2048"))
	rounds, _ := strconv.Atoi(env("BENCH_ROUNDS", "3"))
	work := os.Getenv("BENCH_DIR")
	if work == "" {
		work = t.TempDir()
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	repo, _ := filepath.Abs("../..")
	bin := t.TempDir()
	for _, b := range [][]string{
		{"-o", filepath.Join(bin, "metalk8s-installer"), "./cmd/metalk8s-installer"},
		{"-tags", "installerbench", "-o", filepath.Join(bin, "skipcheck"), "./bench/installer/skipcheck"},
	} {
		cmd := exec.Command("go", append([]string{"build"}, b...)...)
		cmd.Dir, cmd.Env = repo, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", b, err, out)
		}
	}
	t0 := time.Now()
	fx := buildISO(t, work, mib)
	t.Logf("ISO %s: %d bytes, %d files in its manifest, built in %s", fx.ISO, fx.Size, fx.Files, time.Since(t0).Round(time.Second))
	want, err := iso.LookupSHA256SUM(filepath.Join(filepath.Dir(fx.ISO), "SHA256SUM"), filepath.Base(fx.ISO))
	if err != nil || want == "" {
		t.Fatalf("no SHA256SUM line for %s: %v", fx.ISO, err)
	}

	root := t.TempDir()
	testenv.OpenToOthers(t, root)
	mp := filepath.Join(root, "srv/scality/metalk8s-2.0.0")
	t.Cleanup(func() {
		serve.Stop(change.New(root, false))
		syscall.Unmount(mp, syscall.MNT_DETACH)
	})
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	installer := func(binary string, args ...string) (*os.ProcessState, string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, binary), append([]string{"--root", root, "--listen", listen, "--trusted-key", fx.PublicKey}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", binary, args, err, out)
		}
		return cmd.ProcessState, string(out)
	}
	get := func(url string, headers ...string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
		}
		if d := resp.Header.Get("Docker-Content-Digest"); strings.Contains(url, "/manifests/") {
			sum := sha256.Sum256(body)
			if got := "sha256:" + hex.EncodeToString(sum[:]); d != fx.Digest || got != fx.Digest {
				t.Fatalf("GET %s: Docker-Content-Digest %s, body %s, want %s", url, d, got, fx.Digest)
			}
		}
	}

	type sample struct{ wall, cpu time.Duration }
	results := map[string][]sample{}
	var methods []string
	var loads []string
	// add runs one `archive add` until the registry answers, then removes
	// the archive and stops nginx (not timed), so that every timed add
	// starts from the same state: nothing mounted, nginx not running.
	add := func(name, binary string) {
		start := time.Now()
		ps, out := installer(binary, "archive", "add", fx.ISO)
		get("http://" + listen + "/v2/")
		get("http://"+listen+"/v2/"+fx.Image+"/manifests/"+fx.Digest, "Accept", string(types.DockerManifestSchema2))
		results[name] = append(results[name], sample{time.Since(start), cpuOf(ps)})
		m := mountRE.FindStringSubmatch(out)
		if m == nil || !strings.Contains(out, "nginx started") {
			t.Fatalf("archive add report lacks the mount or nginx start:\n%s", out)
		}
		methods = append(methods, m[1])
		installer(binary, "archive", "remove", fx.ISO)
		if err := serve.Stop(change.New(root, false)); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(mp, "product.txt")); err == nil {
			t.Fatalf("%s still mounted after archive remove", mp)
		}
	}
	hashTool := func(name string, argv ...string) {
		start := time.Now()
		cmd := exec.Command(argv[0], append(argv[1:], fx.ISO)...)
		out, err := cmd.Output()
		wall := time.Since(start)
		if err != nil || !strings.Contains(string(out), want) {
			t.Fatalf("%v: %v\n%s (want %s)", argv, err, out, want)
		}
		results[name] = append(results[name], sample{wall, cpuOf(cmd.ProcessState)})
	}
	// In-process, what the verification is made of: Open with the
	// per-file check skipped (SHA256SUM and the ISO's signature in one
	// read, the manifest's signature), then the per-file check alone
	// (isomanifest.Verify over the ISO reader's fs.FS, as Open runs it),
	// and a plain sha256 of the file by Go (the same code as the
	// SHA256SUM check, without the signature's hashing).
	keys, err := archive.LoadKeys(fx.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	inProcess := func() {
		var ru0, ru1 syscall.Rusage
		timed := func(name string, f func()) {
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			start := time.Now()
			f()
			wall := time.Since(start)
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()+ru1.Stime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
			results[name] = append(results[name], sample{wall, cpu})
		}
		timed("Go sha256 of the ISO (crypto/sha256)", func() {
			f, err := os.Open(fx.ISO)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			h := sha256.New()
			io.Copy(h, f)
			if hex.EncodeToString(h.Sum(nil)) != want {
				t.Fatal("Go sha256 differs from SHA256SUM")
			}
		})
		var a *archive.Archive
		timed("archive.Open, SkipFileCheck (SHA256SUM + signatures)", func() {
			if a, err = archive.Open(fx.ISO, archive.Options{Keys: keys, SkipFileCheck: true}); err != nil {
				t.Fatal(err)
			}
		})
		defer a.Close()
		if a.Checked.SHA256SUM == "" || a.Checked.Signature == "" || a.Checked.ManifestSignature == "" || a.Checked.Manifest {
			t.Fatalf("checked: %+v", a.Checked)
		}
		timed("per-file check alone (isomanifest.Verify)", func() {
			data, err := io.ReadAll(must(a.FS.Open(isomanifest.Name)))
			if err != nil {
				t.Fatal(err)
			}
			entries, err := isomanifest.Parse(isomanifest.Name, data)
			if err != nil {
				t.Fatal(err)
			}
			if err := isomanifest.Verify(a.FS, entries); err != nil {
				t.Fatal(err)
			}
		})
		timed("archive.Open, full (what archive add runs)", func() {
			b, err := archive.Open(fx.ISO, archive.Options{Keys: keys})
			if err != nil {
				t.Fatal(err)
			}
			if !b.Checked.Manifest {
				t.Fatalf("full Open did not check the files: %+v", b.Checked)
			}
			b.Close()
		})
	}

	steps := []func(){
		func() { hashTool("sha256sum ISO", "sha256sum") },
		func() { add("archive add, full verification", "metalk8s-installer") },
		func() { add("archive add, per-file check skipped", "skipcheck") },
		func() { hashTool("openssl dgst -sha256 ISO (SHA-NI)", "openssl", "dgst", "-sha256", "-r") },
		inProcess,
	}
	for r := 0; r < rounds; r++ {
		warm(t, fx.ISO, filepath.Join(bin, "metalk8s-installer"), filepath.Join(bin, "skipcheck"))
		loads = append(loads, loadavg())
		// Rotate the order, so that no variant always follows another.
		for i := range steps {
			steps[(i+r)%len(steps)]()
		}
		t.Logf("round %d done, load average %s", r+1, loadavg())
	}
	loads = append(loads, loadavg())

	names := make([]string, 0, len(results))
	for n := range results {
		names = append(names, n)
	}
	order := func(n string) int {
		for i, p := range []string{"sha256sum", "openssl", "Go sha256", "archive add, full", "archive add, per-file", "archive.Open, full", "archive.Open, Skip", "per-file"} {
			if strings.HasPrefix(n, p) {
				return i
			}
		}
		return 99
	}
	sort.Slice(names, func(i, j int) bool { return order(names[i]) < order(names[j]) })
	med := func(ss []sample) (wall, cpu time.Duration) {
		w := make([]time.Duration, len(ss))
		c := make([]time.Duration, len(ss))
		for i, s := range ss {
			w[i], c[i] = s.wall, s.cpu
		}
		sort.Slice(w, func(i, j int) bool { return w[i] < w[j] })
		sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
		return w[len(w)/2], c[len(c)/2]
	}
	base, baseCPU := med(results["sha256sum ISO"])
	var b strings.Builder
	fmt.Fprintf(&b, "ISO: %d bytes (%.2f GiB), %d files in MANIFEST.sha256, signed (ISO .asc and MANIFEST.sha256.asc, --trusted-key); %d rounds, interleaved, order rotated; page cache warm for all (the ISO read whole before each round); %d CPUs; load average (1, 5, 15 min) at each round's start and at the end: %s; mount methods used: %s\n\n",
		fx.Size, float64(fx.Size)/(1<<30), fx.Files, rounds, runtime.NumCPU(), strings.Join(loads, " / "), strings.Join(uniq(methods), ", "))
	fmt.Fprintf(&b, "| what | median wall (s) | each round (s) | median CPU (s) | wall / sha256sum | CPU / sha256sum |\n|---|---:|---|---:|---:|---:|\n")
	for _, n := range names {
		w, c := med(results[n])
		var each []string
		for _, s := range results[n] {
			each = append(each, fmt.Sprintf("%.2f", s.wall.Seconds()))
		}
		fmt.Fprintf(&b, "| %s | %.2f | %s | %.2f | %.2fx | %.2fx |\n", n, w.Seconds(), strings.Join(each, ", "), c.Seconds(), w.Seconds()/base.Seconds(), c.Seconds()/baseCPU.Seconds())
	}
	fmt.Print("\n" + b.String())
	if out := os.Getenv("BENCH_OUT"); out != "" {
		f, err := os.OpenFile(out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(b.String())
		f.Close()
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func uniq(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
