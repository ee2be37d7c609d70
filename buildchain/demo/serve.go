package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/installer/change"
	"github.com/metalk8s/buildchain/installer/mount"
	"github.com/metalk8s/buildchain/installer/serve"
)

// ShippedInstaller is where the ISO ships the static installer.
const ShippedInstaller = "bin/metalk8s-installer"

// Served is what the installer shipped on the ISO did with it, as on a
// Bootstrap node: add the archive (verify, mount, serve), then the image
// pulled and the repodata fetched through its nginx.
type Served struct {
	// Skipped says why the ISO was not served ("" when it was).
	Skipped string
	// Root is the installer's --root: the demo's node.
	Root      string
	Installer string // the installer run: the ISO's, copied under Root
	// Method is how the installer mounted the ISO (fuse, kernel, fuseiso).
	Method     string
	MountPoint string // host path under Root
	URL        string // the repository service, http://127.0.0.1:PORT
	// Image is the reference pulled and Digest its manifest's digest,
	// equal to the ISO's; Blobs and Bytes what was fetched and verified.
	Image, Digest string
	Blobs         int
	Bytes         int64
	// Repomd is the URL of the repodata fetched, byte-identical to the ISO's.
	Repomd string
	// NginxPID is the repository service's master while it served.
	NginxPID int
	Duration time.Duration
}

// ServeISO runs the ISO's own installer in a private root under
// buildRoot/node: archive add (with --mount-method auto, as a node
// would), an image pulled with its digest and every blob checked, one
// repository's repomd.xml, then archive remove and a stop of the
// repository service. Whatever happens (a failure, ctx canceled), nothing
// is left mounted under the root and no nginx of it runs.
//
// res is what Run read back (ISO, Images, Repos); res.Served is set.
// Run calls it as its last phase.
func ServeISO(ctx context.Context, res *Result, buildRoot string, log io.Writer) (err error) {
	start := time.Now()
	// mountinfo names real paths.
	real, err := filepath.EvalSymlinks(buildRoot)
	if err != nil {
		return err
	}
	s := &Served{Root: nodeRoot(real)}
	res.Served = s
	defer func() { s.Duration = time.Since(start) }()
	if s.Root != filepath.Join(real, "node") {
		fmt.Fprintf(log, "demo: %s is not searchable by others, so nginx's workers (nobody) could not reach a node root under it: the node root is %s\n", real, s.Root)
	}
	if reason := cannotMount(); reason != "" {
		s.Skipped = reason
		fmt.Fprintf(log, "demo: not serving the ISO: %s\n", reason)
		return nil
	}
	// A previous run killed outright may have left its node behind.
	if err := cleanNode(s.Root); err != nil {
		return err
	}
	if err := os.RemoveAll(s.Root); err != nil {
		return err
	}
	// 0755 whatever the umask: nginx's workers go through it.
	if err := os.MkdirAll(s.Root, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(s.Root, 0o755); err != nil {
		return err
	}
	bin, err := extractInstaller(res.ISO, s.Root)
	if err != nil {
		return err
	}
	if bin == "" {
		s.Skipped = "the ISO ships no " + ShippedInstaller
		fmt.Fprintf(log, "demo: not serving the ISO: %s\n", s.Skipped)
		return nil
	}
	s.Installer = bin
	port, err := freePort()
	if err != nil {
		return err
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	s.URL = "http://" + listen
	run := func(ctx context.Context, args ...string) error {
		args = append([]string{"--root", s.Root, "--listen", listen, "--mount-method", "auto"}, args...)
		fmt.Fprintf(log, "demo: %s %s\n", bin, strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdout, cmd.Stderr = log, log
		// Interrupted, the installer rolls back (it handles SIGTERM);
		// SIGKILL only if it does not end.
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 30 * time.Second
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("demo: metalk8s-installer %s: %w", strings.Join(args[6:], " "), err)
		}
		return nil
	}
	// Always: remove the archive (unmounts it), stop nginx, and unmount
	// whatever a killed installer may have left, even when ctx is done.
	added := false
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		var errs []error
		if added {
			errs = append(errs, run(cctx, "archive", "remove", res.ISO))
		}
		// The installer's own stop first; cleanNode then finds nothing,
		// unless a killed installer left something behind.
		errs = append(errs, run(cctx, "stop"))
		errs = append(errs, cleanNode(s.Root))
		if left, lerr := MountsUnder(s.Root); lerr != nil || len(left) > 0 {
			errs = append(errs, fmt.Errorf("still mounted: %q %v", left, lerr))
		}
		if cerr := errors.Join(errs...); cerr != nil {
			err = errors.Join(err, fmt.Errorf("demo: cleaning the node %s: %w", s.Root, cerr))
			return
		}
		fmt.Fprintf(log, "demo: node %s: the repository service is stopped, nothing is mounted\n", s.Root)
	}()
	// A failed add rolls itself back; one killed mid-way is cleanNode's.
	if err := run(ctx, "archive", "add", res.ISO); err != nil {
		return err
	}
	added = true
	id, st, err := mounted(s.Root)
	if err != nil {
		return err
	}
	s.Method, s.MountPoint = string(st.Method), "/srv/scality/"+id
	if pid, err := os.ReadFile(filepath.Join(s.Root, serve.PidFile)); err == nil {
		s.NginxPID, _ = strconv.Atoi(strings.TrimSpace(string(pid)))
	}
	fmt.Fprintf(log, "demo: %s mounted at %s (%s), served on %s\n", res.ISO, s.MountPoint, st.Method, s.URL)

	var want *ISOImage
	for i, im := range res.Images {
		if im.MediaType != string(types.OCIImageIndex) && im.MediaType != string(types.DockerManifestList) {
			want = &res.Images[i]
			break
		}
	}
	if want == nil {
		return errors.New("demo: the ISO has no single-platform image to pull")
	}
	if err := pull(ctx, s, listen+"/"+id+"/"+want.Name+":"+want.Version, want.Digest); err != nil {
		return err
	}
	fmt.Fprintf(log, "demo: pulled %s (%s, %d blobs verified)\n", s.Image, s.Digest, s.Blobs)
	return fetchRepomd(ctx, s, res, id)
}

// nodeRoot is the installer's --root: buildRoot/node, unless the demo
// runs as root and a directory above it is closed to others (a project
// under /root, a test's temporary directory): nginx's workers, as
// nobody, must reach the mount point, so the node goes to a directory of
// the temporary one named after buildRoot, which a later run finds again.
func nodeRoot(buildRoot string) string {
	if os.Geteuid() != 0 || searchable(buildRoot) {
		return filepath.Join(buildRoot, "node")
	}
	sum := sha256.Sum256([]byte(buildRoot))
	return filepath.Join(os.TempDir(), "metalk8s-demo-node-"+hex.EncodeToString(sum[:6]))
}

// searchable says whether others may traverse dir and every directory
// above it.
func searchable(dir string) bool {
	for {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

// cannotMount says why the installer cannot mount an ISO here, or "".
// Root mounts through the kernel or FUSE; anyone else through FUSE only,
// with /dev/fuse and the set-uid fusermount3 (or fusermount) that go-fuse
// calls. A directory archive is no way around it: the installer
// bind-mounts it, which needs root too.
func cannotMount() string {
	if os.Geteuid() == 0 {
		return ""
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Sprintf("running as uid %d without /dev/fuse, the installer cannot mount the ISO (it mounts through the kernel as root, else through FUSE)", os.Geteuid())
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		if _, err := exec.LookPath("fusermount"); err != nil {
			return fmt.Sprintf("running as uid %d without fusermount3 (Debian package fuse3), the installer cannot mount the ISO through FUSE", os.Geteuid())
		}
	}
	return ""
}

// extractInstaller copies the ISO's installer to root/usr/bin, where the
// metalk8s-installer RPM puts it (and where a persisted FUSE mount's unit
// runs it from). "" when the ISO ships none.
func extractInstaller(isoPath, root string) (string, error) {
	f, err := os.Open(isoPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	im, err := iso.Open(f, st.Size())
	if err != nil {
		return "", fmt.Errorf("demo: reading %s: %w", isoPath, err)
	}
	data, err := fs.ReadFile(im.FS(), ShippedInstaller)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("demo: %s: %s: %w", isoPath, ShippedInstaller, err)
	}
	bin := filepath.Join(root, "usr", "bin", "metalk8s-installer")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	return bin, fsutil.WriteFile(bin, data, 0o755)
}

// mounted finds the one archive mounted under root/srv/scality: its ID
// (the mount point's name, from product.txt) and how it is mounted.
func mounted(root string) (string, *mount.State, error) {
	dir := filepath.Join(root, "srv", "scality")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", nil, fmt.Errorf("demo: archive add mounted nothing: %w", err)
	}
	if len(entries) != 1 {
		return "", nil, fmt.Errorf("demo: %s holds %d entries after archive add, want the one mount point", dir, len(entries))
	}
	id := entries[0].Name()
	st, err := mount.Current(filepath.Join(dir, id))
	if err != nil {
		return "", nil, err
	}
	if st == nil {
		return "", nil, fmt.Errorf("demo: nothing is mounted at %s after archive add", filepath.Join(dir, id))
	}
	return id, st, nil
}

// pull fetches ref from the installer's registry with go-containerregistry,
// checks that its manifest digest is the ISO's, and validates it: every
// layer and the config against their digests.
func pull(ctx context.Context, s *Served, ref, digest string) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	img, err := remote.Image(r, remote.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("demo: pulling %s from the installer's registry: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return fmt.Errorf("demo: %s: %w", ref, err)
	}
	if d.String() != digest {
		return fmt.Errorf("demo: %s: the installer's registry serves manifest %s, the ISO holds %s", ref, d, digest)
	}
	if err := validate.Image(img); err != nil {
		return fmt.Errorf("demo: %s: served content does not match its digests: %w", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	s.Image, s.Digest, s.Blobs = ref, d.String(), len(m.Layers)+1
	s.Bytes = m.Config.Size
	for _, l := range m.Layers {
		s.Bytes += l.Size
	}
	return nil
}

// fetchRepomd gets one shipped repository's repomd.xml from the served
// yum repository and compares it with the ISO's.
func fetchRepomd(ctx context.Context, s *Served, res *Result, id string) error {
	if len(res.Repos) == 0 {
		return errors.New("demo: the ISO has no repository to fetch")
	}
	repo := res.Repos[0].Name
	rel := "packages/redhat/" + repo + "/repodata/repomd.xml"
	f, err := os.Open(res.ISO)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	im, err := iso.Open(f, st.Size())
	if err != nil {
		return err
	}
	want, err := fs.ReadFile(im.FS(), rel)
	if err != nil {
		return fmt.Errorf("demo: %s: %w", res.ISO, err)
	}
	url := s.URL + "/" + id + "/" + repo + "/repodata/repomd.xml"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("demo: %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("demo: %s: %s", url, resp.Status)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("demo: %s is not the ISO's %s", url, rel)
	}
	s.Repomd = url
	return nil
}

// cleanNode stops the repository service of root (its pid file names it)
// and unmounts anything mounted under root: what a killed installer, or a
// killed demo, may have left. A FUSE server ends with its mount.
func cleanNode(root string) error {
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	errs := []error{serve.Stop(change.New(root, false))}
	mps, err := MountsUnder(root)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	// Deepest first.
	for i := len(mps) - 1; i >= 0; i-- {
		mp := mps[i]
		if err := mount.Unmount(mp); err != nil {
			// Unprivileged, a FUSE mount is the user's through fusermount.
			if out, ferr := exec.Command(fusermount(), "-u", "-z", mp).CombinedOutput(); ferr != nil {
				errs = append(errs, fmt.Errorf("%w (and fusermount: %v: %s)", err, ferr, bytes.TrimSpace(out)))
			}
		}
	}
	return errors.Join(errs...)
}

func fusermount() string {
	if p, err := exec.LookPath("fusermount3"); err == nil {
		return p
	}
	return "fusermount"
}

// MountsUnder lists the mount points at or below dir, in mountinfo order.
func MountsUnder(dir string) ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	ms, err := mount.ParseMountInfo(data)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range ms {
		if m.MountPoint == dir || strings.HasPrefix(m.MountPoint, dir+"/") {
			out = append(out, m.MountPoint)
		}
	}
	return out, nil
}
