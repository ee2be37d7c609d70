package completeness

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/metalk8s/buildchain/buildchain/rpm/depsolve"
	"github.com/metalk8s/buildchain/buildchain/rpm/repomd"
	"github.com/metalk8s/buildchain/buildchain/salttree"
)

// installable solves each package of versions.json on its own, pinned, so
// that each one that fails is named with its own missing dependency.
func installable(r *Report, opts Options, v *salttree.Versions) error {
	shipped, err := ShippedRepos(os.DirFS(opts.Root))
	if err != nil {
		return err
	}
	s := depsolve.New(append(shipped, opts.External...))
	names := make([]string, 0, len(v.Packages))
	for n := range v.Packages {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := v.Packages[n]
		pin := p.Version + "-" + p.Release
		if p.Epoch != "" {
			pin = p.Epoch + ":" + pin
		}
		r.Packages++
		if _, err := s.Solve([]depsolve.Request{{Name: n, Pin: pin, Set: "versions.json"}}); err != nil {
			r.Uninstallable = append(r.Uninstallable, Uninstallable{Package: n + "-" + pin, Error: err.Error()})
		}
	}
	return nil
}

// ShippedRepos reads the primary metadata of every repository of
// packages/redhat/ in fsys, as dnf on a node reads it from the ISO.
func ShippedRepos(fsys fs.FS) ([]depsolve.Repo, error) {
	dirs, err := fs.ReadDir(fsys, "packages/redhat")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []depsolve.Repo
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		dir := path.Join("packages/redhat", d.Name())
		pkgs, err := ReadRepo(fsys, dir)
		if err != nil {
			return nil, fmt.Errorf("repository %s: %w", d.Name(), err)
		}
		out = append(out, depsolve.Repo{Name: d.Name(), Packages: pkgs})
	}
	return out, nil
}

// ReadRepo reads the packages of the repository at dir of fsys, with their
// file lists when the repository has them, since requirements on a path
// may be met by a file that primary.xml leaves out.
func ReadRepo(fsys fs.FS, dir string) ([]*repomd.Package, error) {
	f, err := fsys.Open(path.Join(dir, "repodata/repomd.xml"))
	if err != nil {
		return nil, err
	}
	md, err := repomd.ParseRepomd(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	var pkgs []*repomd.Package
	byID := map[string]*repomd.Package{}
	err = readData(fsys, dir, md.Data("primary"), func(rd io.Reader) error {
		return repomd.ParsePrimary(rd, func(p *repomd.Package) error {
			pkgs = append(pkgs, p)
			byID[p.Checksum] = p
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if fl := md.Data("filelists"); fl != nil {
		err = readData(fsys, dir, fl, func(rd io.Reader) error {
			return repomd.ParseFilelists(rd, func(id string, files []repomd.File) error {
				if p := byID[id]; p != nil {
					p.Files = files
				}
				return nil
			})
		})
		if err != nil {
			return nil, err
		}
	}
	return pkgs, nil
}

func readData(fsys fs.FS, dir string, d *repomd.DataFile, fn func(io.Reader) error) error {
	if d == nil {
		return fmt.Errorf("repomd.xml has no primary entry")
	}
	p := path.Join(dir, d.Location)
	f, err := fsys.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	rd, err := repomd.Decompress(p, f)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if err := fn(rd); err != nil {
		return fmt.Errorf("%s: %w", filepath.FromSlash(p), err)
	}
	return nil
}
