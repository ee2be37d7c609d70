package installer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"

	"github.com/metalk8s/buildchain/buildchain/isomanifest"
	"github.com/metalk8s/buildchain/buildchain/rpm/pgp"
	"github.com/metalk8s/buildchain/buildchain/solution"
	"github.com/metalk8s/buildchain/installer/archive"
	"github.com/metalk8s/buildchain/installer/change"
	"github.com/metalk8s/buildchain/installer/config"
	"github.com/metalk8s/buildchain/installer/kube"
	"github.com/metalk8s/buildchain/installer/mount"
	"github.com/metalk8s/buildchain/installer/serve"
)

// DefaultPort is the repository service's port when --listen is not
// given, as MetalK8s 2.x runs it.
const DefaultPort = 8080

// Real wires the pieces that have landed; the others stay nil, and the
// commands that need them say so. It fills in env.Listen when --listen
// is not given: apiServer.host of bootstrap.yaml when it is an IP (the
// Bootstrap node's control-plane address), else 127.0.0.1, on DefaultPort.
func Real(env Env) (Pieces, error) {
	if env.Listen == "" {
		env.Listen = defaultListen(env.Root)
	}
	endpoint := endpointFor(env.Root, env.Listen)
	mo := mount.Options{Method: env.MountMethod}
	var keys *pgp.Keyring
	if len(env.TrustedKeys) > 0 {
		var err error
		if keys, err = archive.LoadKeys(env.TrustedKeys...); err != nil {
			return Pieces{}, err
		}
	}
	isos := &isoPieces{keys: keys, mo: mo, uo: mount.UnitOptions{Installer: InstalledPath}}
	return Pieces{
		Verifier: isos,
		Mounter:  isos,
		Config:   configFiles{},
		Server:   nginxServer{opts: serve.Options{Listen: env.Listen, Endpoint: endpoint}},
		// The nodes pull the Solution's images from the repository service.
		Deployer: kubeDeployer{cfg: kube.Config{Kubeconfig: env.Kubeconfig, Registry: endpoint}, log: logOr(env.Log)},
		Close:    isos.close,
	}, nil
}

func logOr(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// InstalledPath is where the metalk8s-installer RPM puts the installer:
// what a persisted FUSE mount runs at boot (a copy on the mounted ISO
// could not serve that very mount).
const InstalledPath = "/usr/bin/metalk8s-installer"

// isoPieces is Verifier and Mounter over installer/archive and
// installer/mount. The archives it opens stay open for the run: a dry
// run serves from them, unmounted.
type isoPieces struct {
	keys   *pgp.Keyring
	mo     mount.Options
	uo     mount.UnitOptions
	opened []*archive.Archive
}

func (p *isoPieces) close() error {
	var errs []error
	for _, a := range p.opened {
		errs = append(errs, a.Close())
	}
	p.opened = nil
	return errors.Join(errs...)
}

func (p *isoPieces) open(path string, k Kind) (Archive, error) {
	a, err := archive.Open(path, archive.Options{Keys: p.keys})
	if err != nil {
		return Archive{}, err
	}
	p.opened = append(p.opened, a)
	out := Archive{Kind: k, Name: solution.MachineName(a.Product.Name), Version: a.Product.Version, Source: a.Path, FS: a.FS}
	// The content's identity: the in-ISO manifest lists every file's
	// sha256; without one, the image's own digest when it was computed.
	if m, err := fs.ReadFile(a.FS, isomanifest.Name); err == nil {
		sum := sha256.Sum256(m)
		out.Digest = "manifest:sha256:" + hex.EncodeToString(sum[:])
	} else if a.Checked.SHA256 != "" {
		out.Digest = "sha256:" + a.Checked.SHA256
	}
	return out, nil
}

func (p *isoPieces) Archive(_ context.Context, path string) (Archive, error) {
	return p.open(path, KindMetalK8s)
}

// Solution runs the Solution validator before anything else reads the
// archive (MetalK8s issue #1560), then verifies it as any archive.
func (p *isoPieces) Solution(ctx context.Context, path string) (Archive, error) {
	rep, err := solution.Validate(ctx, path)
	if err != nil {
		return Archive{}, err
	}
	if err := rep.Err(); err != nil {
		return Archive{}, fmt.Errorf("not a valid Solution archive: %w", err)
	}
	return p.open(path, KindSolution)
}

// Mount is archive.Archive.Mount for an archive known by its source.
func (p *isoPieces) Mount(_ context.Context, tx *change.Tx, a Archive) error {
	m, err := mount.Ensure(tx, a.Source, a.MountPoint(), p.mo)
	if err != nil {
		return err
	}
	if m == mount.Auto {
		// A dry run does not try the methods, so it cannot say which unit.
		tx.Record(change.Added, "systemd unit for mount "+a.MountPoint()+" (its kind depends on the method that mounts)")
		return nil
	}
	fi, err := os.Stat(a.Source)
	if err != nil {
		return err
	}
	block := fi.Mode()&fs.ModeDevice != 0 && fi.Mode()&fs.ModeCharDevice == 0
	return mount.Persist(tx, a.Source, a.MountPoint(), m, block, p.uo)
}

// Unmount works from the state alone: the ISO may be gone.
func (p *isoPieces) Unmount(_ context.Context, tx *change.Tx, a Archive) error {
	if err := mount.Unpersist(tx, a.MountPoint()); err != nil {
		return err
	}
	return mount.Remove(tx, a.Source, a.MountPoint(), p.mo)
}

// nginxServer is Server over installer/serve: one nginx for every
// installed archive, checked with nginx -t before it is swapped in.
type nginxServer struct{ opts serve.Options }

func (s nginxServer) Serve(ctx context.Context, tx *change.Tx, archives []Archive) error {
	served := make([]serve.Archive, 0, len(archives))
	for _, a := range archives {
		// An archive added by this run may not be mounted (a dry run):
		// its verifier's view of it stands in.
		fsys := a.FS
		if fsys == nil {
			fsys = os.DirFS(tx.Path(a.MountPoint()))
		}
		served = append(served, serve.Archive{Name: a.Name, Version: a.Version, Kind: serve.Kind(a.Kind), MountPath: a.MountPoint(), FS: fsys})
	}
	_, err := serve.Apply(ctx, tx, served, s.opts)
	return err
}

func defaultListen(root string) string {
	host := "127.0.0.1"
	b, err := config.LoadBootstrap(change.New(root, true).Path(config.BootstrapPath))
	if err == nil && b.APIServer.Addr.IsValid() {
		host = b.APIServer.Addr.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(DefaultPort))
}

// endpointFor is the repository service's address as the nodes reach it
// (in .repo files, hosts.toml and a Solution's image references): the
// --listen address, unless it binds every address (0.0.0.0, [::]), which
// no node can connect to; then the host defaultListen finds (bootstrap.yaml
// apiServer.host when it is an IP, else 127.0.0.1) on the listen port.
func endpointFor(root, listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen // serve refuses it, naming it
	}
	if a, err := netip.ParseAddr(host); err != nil || !a.IsUnspecified() {
		return listen
	}
	h, _, _ := net.SplitHostPort(defaultListen(root))
	return net.JoinHostPort(h, port)
}

// configFiles is Config over installer/config: bootstrap.yaml and
// solutions.yaml.
type configFiles struct{}

func (configFiles) BootstrapArchives(tx *change.Tx) ([]string, error) {
	p := tx.Path(config.BootstrapPath)
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return nil, errors.New(config.BootstrapPath + " does not exist: write it first (MetalK8s docs, chapter 3.2)")
	}
	b, err := config.LoadBootstrap(p)
	if err != nil {
		return nil, err
	}
	return b.Products.MetalK8s, nil
}

// AddSolution lists the archive and makes its version the active one:
// solution add deploys it.
func (configFiles) AddSolution(tx *change.Tx, a Archive) error {
	s, err := config.OpenSolutions(tx, config.SolutionsPath)
	if err != nil {
		return err
	}
	if _, err := s.AddArchive(a.Source); err != nil {
		return err
	}
	if _, err := s.SetActive(a.Name, a.Version); err != nil {
		return err
	}
	_, err = s.Save(tx, config.SolutionsPath)
	return err
}

// RemoveSolution unlists the archive, and deactivates its Solution when
// this version was the active one.
func (configFiles) RemoveSolution(tx *change.Tx, a Archive) error {
	s, err := config.OpenSolutions(tx, config.SolutionsPath)
	if err != nil {
		return err
	}
	if _, err := s.RemoveArchive(a.Source); err != nil {
		return err
	}
	if s.Active[a.Name] == a.Version {
		if _, err := s.Deactivate(a.Name); err != nil {
			return err
		}
	}
	_, err = s.Save(tx, config.SolutionsPath)
	return err
}

// kubeDeployer is Deployer over installer/kube: server-side apply with
// --kubeconfig, else the rendered manifests in a directory it names.
type kubeDeployer struct {
	cfg kube.Config
	log io.Writer
}

func (d kubeDeployer) solution(tx *change.Tx, a Archive) kube.Solution {
	fsys := a.FS
	if fsys == nil {
		fsys = os.DirFS(tx.Path(a.MountPoint()))
	}
	return kube.Solution{Name: a.Name, Version: a.Version, FS: fsys}
}

func (d kubeDeployer) Deploy(ctx context.Context, tx *change.Tx, a Archive) error {
	dir, err := kube.Apply(ctx, tx, d.cfg, d.solution(tx, a))
	if err == nil && dir != "" {
		fmt.Fprintf(d.log, "%s: no --kubeconfig: its CRDs and UI are rendered in %s, for kubectl apply -f\n", a.ID(), dir)
	}
	return err
}

func (d kubeDeployer) Undeploy(ctx context.Context, tx *change.Tx, a Archive) error {
	_, err := kube.Delete(ctx, tx, d.cfg, d.solution(tx, a))
	return err
}
