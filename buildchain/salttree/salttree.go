// Package salttree writes the Salt tree of the ISO root: the states of the
// project's salt/ directory, and with them the version data they read
// (salt/metalk8s/versions.json), the top file of the metalk8s-<version>
// saltenv and the pillar defaults. See docs/salt.md.
package salttree

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
	"github.com/metalk8s/buildchain/buildchain/product"
	"github.com/metalk8s/buildchain/buildchain/rpm/packaging"
	"github.com/metalk8s/buildchain/buildchain/step"
)

// StepName is the step that writes root/salt and root/pillar.
const StepName = "saltTree"

// Options are what Build needs of the run.
type Options struct {
	SaltDir      string // the project's salt/ tree
	ImagesFile   string // images.yaml
	ResolvedFile string // packaging's resolved.json: the shipped NEVRAs
	// ImagesDir is the ISO root's images/, already written: versions.json
	// records the digest each image is served by, which is not the pinned
	// one when a single-platform build resolved an index to its platform's
	// manifest. Empty (or an image not there) keeps the pinned digest.
	ImagesDir string
	Version   product.Version
	// RepodataSigned is set when the shipped repodata is signed
	// (REPO_SIGNING_KEY): the states then turn repo_gpgcheck on with the
	// key packaging publishes beside the repositories.
	RepodataSigned bool
	RootDir        string // the ISO root: root/salt and root/pillar are written
	Engine         *step.Engine
	Log            io.Writer
}

// Versions is salt/metalk8s/versions.json.
type Versions struct {
	MetalK8s struct {
		Version string `json:"version"`
	} `json:"metalk8s"`
	Packages     map[string]Package    `json:"packages"`
	Images       map[string]Image      `json:"images"`
	Repositories map[string]Repository `json:"repositories"`
	// Registries are the upstream registry hosts of the images, which
	// containerd mirrors to the Bootstrap registry.
	Registries []string `json:"registries"`
}

// Package is one shipped RPM.
type Package struct {
	Name    string `json:"name"`
	Epoch   string `json:"epoch,omitempty"`
	Version string `json:"version"`
	Release string `json:"release"`
	Arch    string `json:"arch"`
	Repo    string `json:"repo"`
}

// Image is one shipped image.
type Image struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Digest is what the ISO's registry serves the image by, and so what a
	// reference by digest must name.
	Digest string `json:"digest"`
	Source string `json:"source"`
	// SourceDigest is the digest images.yaml pins upstream, when the ISO
	// serves another one (an index resolved to one platform's manifest).
	SourceDigest string `json:"source_digest,omitempty"`
}

// Repository is one shipped repository: its key files, as packaging names
// them beside the repositories on the ISO.
type Repository struct {
	GPGKeys []string `json:"gpgkeys"`
	Signed  bool     `json:"signed"`
}

// ParseNEVRA splits name-[epoch:]version-release.arch.
func ParseNEVRA(s string) (Package, error) {
	bad := func() (Package, error) { return Package{}, fmt.Errorf("malformed NEVRA %q", s) }
	dot := strings.LastIndexByte(s, '.')
	if dot <= 0 {
		return bad()
	}
	p := Package{Arch: s[dot+1:]}
	rest := s[:dot]
	i := strings.LastIndexByte(rest, '-')
	if i <= 0 {
		return bad()
	}
	p.Release, rest = rest[i+1:], rest[:i]
	i = strings.LastIndexByte(rest, '-')
	if i <= 0 {
		return bad()
	}
	p.Version, p.Name = rest[i+1:], rest[:i]
	if e, v, ok := strings.Cut(p.Version, ":"); ok {
		if _, err := strconv.ParseUint(e, 10, 32); err != nil {
			return bad()
		}
		p.Epoch, p.Version = e, v
	}
	if p.Arch == "" || p.Release == "" || p.Version == "" {
		return bad()
	}
	return p, nil
}

// Compute builds the version data of a product version, its images and
// its resolved repositories. A package name shipped twice is an error:
// states pin packages by name.
func Compute(v product.Version, images []oci.Image, res packaging.Resolved, repodataSigned bool) (*Versions, error) {
	out := &Versions{Packages: map[string]Package{}, Images: map[string]Image{}, Repositories: map[string]Repository{}, Registries: []string{}}
	out.MetalK8s.Version = v.String()
	hosts := map[string]bool{}
	for _, im := range images {
		if _, dup := out.Images[im.Name]; dup {
			return nil, fmt.Errorf("image %s listed twice", im.Name)
		}
		out.Images[im.Name] = Image{Name: im.Name, Version: im.Version, Digest: im.Digest, Source: im.Source}
		hosts[im.Registry()] = true
	}
	for h := range hosts {
		out.Registries = append(out.Registries, h)
	}
	sort.Strings(out.Registries)
	for _, rr := range res.Repos {
		repo := Repository{GPGKeys: []string{}, Signed: repodataSigned}
		for i := range rr.Keys {
			repo.GPGKeys = append(repo.GPGKeys, fmt.Sprintf("RPM-GPG-KEY-metalk8s-%s_%d", rr.Name, i+1))
		}
		if repodataSigned {
			repo.GPGKeys = append(repo.GPGKeys, "RPM-GPG-KEY-metalk8s-repodata")
		}
		out.Repositories[rr.Name] = repo
		for _, rp := range rr.Packages {
			p, err := ParseNEVRA(rp.NEVRA)
			if err != nil {
				return nil, fmt.Errorf("repository %s: %w", rr.Name, err)
			}
			p.Repo = rr.Name
			if old, dup := out.Packages[p.Name]; dup {
				return nil, fmt.Errorf("package %s shipped twice: in %s and %s", p.Name, old.Repo, rr.Name)
			}
			out.Packages[p.Name] = p
		}
	}
	return out, nil
}

// Build writes root/salt and root/pillar through the step engine. Its
// inputs are the salt/ tree, the images list, the resolved packages and
// the version, so that editing one state re-runs this step and the ISO.
func Build(ctx context.Context, opts Options) error {
	if fi, err := os.Stat(opts.SaltDir); err != nil || !fi.IsDir() {
		return step.NotBuiltYet("saltTree: no Salt states at "+opts.SaltDir, "issue 11")
	}
	saltOut := filepath.Join(opts.RootDir, "salt")
	pillarOut := filepath.Join(opts.RootDir, "pillar")
	served, err := ServedDigests(ctx, opts.ImagesDir, opts.ImagesFile)
	if err != nil {
		return err
	}
	var servedKeys []string
	for k, d := range served {
		servedKeys = append(servedKeys, k+"@"+d)
	}
	sort.Strings(servedKeys)
	return opts.Engine.Run(ctx, step.Step{
		Name: StepName,
		Inputs: []step.Input{
			step.Tree(opts.SaltDir),
			step.File(opts.ImagesFile),
			step.File(opts.ResolvedFile),
			step.Value("served-digests", strings.Join(servedKeys, ",")),
			step.Value("version", opts.Version.String()),
			step.Value("repodata-signed", strconv.FormatBool(opts.RepodataSigned)),
		},
		Outputs: []string{saltOut, pillarOut},
		Run: func(ctx context.Context) error {
			v, err := load(opts, served)
			if err != nil {
				return err
			}
			return Write(opts.SaltDir, saltOut, pillarOut, v)
		},
	})
}

// ServedDigests reads, for each image of the list at imagesFile that is in
// imagesDir (the ISO root's images/), the digest its directory serves it
// by (its top manifest or index), keyed by name:version. A missing
// imagesDir gives none.
func ServedDigests(ctx context.Context, imagesDir, imagesFile string) (map[string]string, error) {
	out := map[string]string{}
	if imagesDir == "" {
		return out, nil
	}
	images, err := readList(imagesFile)
	if err != nil {
		return nil, err
	}
	fsys := os.DirFS(imagesDir)
	for _, im := range images {
		dir := im.Name + "/" + im.Version
		if _, err := fs.Stat(fsys, dir); err != nil {
			continue
		}
		d, err := dirlayout.Read(ctx, fsys, dir, dirlayout.Options{})
		if err != nil {
			return nil, fmt.Errorf("saltTree: images/%s: %w", dir, err)
		}
		if len(d.Manifests) > 0 {
			out[im.Name+":"+im.Version] = d.Manifests[0].Digest
		}
	}
	return out, nil
}

func readList(imagesFile string) ([]oci.Image, error) {
	data, err := os.ReadFile(imagesFile)
	if err != nil {
		return nil, err
	}
	return oci.ParseList(imagesFile, data)
}

func load(opts Options, served map[string]string) (*Versions, error) {
	images, err := readList(opts.ImagesFile)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(opts.ResolvedFile)
	if err != nil {
		return nil, err
	}
	var res packaging.Resolved
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("%s: %w", opts.ResolvedFile, err)
	}
	v, err := Compute(opts.Version, images, res, opts.RepodataSigned)
	if err != nil {
		return nil, err
	}
	for name, im := range v.Images {
		if d := served[im.Name+":"+im.Version]; d != "" && d != im.Digest {
			im.SourceDigest, im.Digest = im.Digest, d
			v.Images[name] = im
		}
	}
	return v, nil
}

// Write publishes the salt tree src with the generated files at saltOut,
// and the pillar defaults at pillarOut, each replaced whole.
func Write(src, saltOut, pillarOut string, v *Versions) error {
	tmp, err := fsutil.TempDir(saltOut)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := copyTree(src, tmp); err != nil {
		return err
	}
	js, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	gen := map[string][]byte{
		"metalk8s/versions.json": append(js, '\n'),
		"top.sls":                []byte(TopFile(v.MetalK8s.Version)),
	}
	for name, data := range gen {
		p := filepath.Join(tmp, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	ptmp, err := fsutil.TempDir(pillarOut)
	if err != nil {
		return err
	}
	defer os.RemoveAll(ptmp)
	for name, data := range Pillar(v.MetalK8s.Version) {
		if err := os.WriteFile(filepath.Join(ptmp, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	if err := fsutil.PublishDir(tmp, saltOut); err != nil {
		return err
	}
	return fsutil.PublishDir(ptmp, pillarOut)
}

// copyTree copies regular files and directories; a symlink or a special
// file in salt/ is refused, since the ISO would carry it to the master.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(out, 0o755)
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: %s in the Salt tree, only files and directories are shipped", p, fsutil.TypeName(d.Type()))
		}
		if rel == filepath.FromSlash("metalk8s/versions.json") || rel == "top.sls" {
			return fmt.Errorf("%s: generated by saltTree, remove it from the source tree", p)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(out, data, fsutil.PublishMode(info.Mode()))
	})
}

// TopFile is top.sls of the saltenv metalk8s-<version>: every node gets
// the repositories, containerd and the kubelet; the Bootstrap node (grain
// metalk8s:role:bootstrap) also mounts the archives and Solutions and
// serves the repositories and registry, and deploys the cluster's addons;
// the etcd and master roles (chapter 4.3.1) run the control plane's
// static Pods.
func TopFile(version string) string {
	return "# Generated by the buildchain (saltTree).\n" +
		"metalk8s-" + version + ":\n" +
		"  '*':\n" +
		"    - metalk8s.repo\n" +
		"    - metalk8s.container-engine.containerd\n" +
		"    - metalk8s.kubernetes.kubelet\n" +
		"  'metalk8s:role:bootstrap':\n" +
		"    - match: grain\n" +
		"    - metalk8s.archives\n" +
		"    - metalk8s.solutions\n" +
		"    - metalk8s.roles.bootstrap\n" +
		"  'metalk8s:role:etcd':\n" +
		"    - match: grain\n" +
		"    - metalk8s.roles.etcd\n" +
		"  'metalk8s:role:master':\n" +
		"    - match: grain\n" +
		"    - metalk8s.roles.master\n"
}

// Pillar is the pillar defaults, by file name. The installer overrides
// the endpoints from bootstrap.yaml and fills archives and Solutions from
// bootstrap.yaml and solutions.yaml.
func Pillar(version string) map[string]string {
	return map[string]string{
		"top.sls": "# Generated by the buildchain (saltTree).\n" +
			"metalk8s-" + version + ":\n" +
			"  '*':\n" +
			"    - metalk8s\n",
		"metalk8s.sls": "# Generated by the buildchain (saltTree): defaults the installer overrides.\n" +
			"metalk8s:\n" +
			"  endpoints:\n" +
			"    repositories:\n" +
			"      host: 127.0.0.1\n" +
			"      port: 8080\n" +
			"    registry:\n" +
			"      host: 127.0.0.1\n" +
			"      port: 8080\n" +
			"      container: repositories\n" +
			"    api_server:\n" +
			"      host: 127.0.0.1\n" +
			"      port: 6443\n" +
			"  networks:\n" +
			"    pod: 10.233.0.0/16\n" +
			"    service: 10.96.0.0/12\n" +
			"    cluster_dns: 10.96.0.10\n" +
			"  archives: []\n" +
			"  solutions:\n" +
			"    configured: []\n" +
			"    removed: []\n",
	}
}
