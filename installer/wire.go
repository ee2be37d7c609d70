package installer

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"strconv"

	"github.com/metalk8s/buildchain/installer/change"
	"github.com/metalk8s/buildchain/installer/config"
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
	return Pieces{
		Config: configFiles{},
		Server: nginxServer{opts: serve.Options{Listen: env.Listen}},
	}, nil
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
