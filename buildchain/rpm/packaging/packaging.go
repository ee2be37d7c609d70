// Package packaging builds the RPM repositories of the ISO root: it reads
// packages.yaml, fetches each repository's metadata and keys, builds the
// local packages, resolves the dependency closure of the package sets,
// downloads and verifies the shipped packages, and writes
// <OutDir>/<repo>/ (BUILD_ROOT/root/packages/redhat/<repo>/ in a build)
// with repodata, and the repositories' GPG keys beside them as
// RPM-GPG-KEY-metalk8s-<repo>_<n>.
//
// Resolution always runs (upstream metadata may change); its result is
// written to <StateDir>/resolved.json only when it changed, and
// the step that populates the repositories is skipped when that file, the
// signing key and the epoch are unchanged.
package packaging

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/gobin"
	"github.com/metalk8s/buildchain/buildchain/rpm/depsolve"
	"github.com/metalk8s/buildchain/buildchain/rpm/fetch"
	"github.com/metalk8s/buildchain/buildchain/rpm/pgp"
	"github.com/metalk8s/buildchain/buildchain/rpm/pkglist"
	"github.com/metalk8s/buildchain/buildchain/rpm/repogen"
	"github.com/metalk8s/buildchain/buildchain/rpm/repomd"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmbuild"
	"github.com/metalk8s/buildchain/buildchain/step"
)

// Resolved is the outcome of resolution: what each shipped repository
// will contain. It is the input of the populate step.
type Resolved struct {
	Repos []ResolvedRepo `json:"repos"`
}

// ResolvedRepo is one shipped repository.
type ResolvedRepo struct {
	Name     string        `json:"name"`
	Keys     []string      `json:"keys"` // sha256 of each key file in the key cache
	Signed   bool          `json:"signed"`
	Packages []ResolvedPkg `json:"packages"`
}

// ResolvedPkg is one package to ship.
type ResolvedPkg struct {
	NEVRA  string   `json:"nevra"`
	File   string   `json:"file"` // base name in the output repository
	URL    string   `json:"url"`  // where to fetch it (file:// for local builds)
	SHA256 string   `json:"sha256"`
	Size   int64    `json:"size"`
	Why    []string `json:"why"`
}

type repoState struct {
	cfg      pkglist.Repo
	md       *repomd.Repomd
	keyring  *pgp.Keyring
	keyHashs []string
	pkgs     []*repomd.Package
}

// Binaries builds the project's CLIs as static linux/amd64 binaries and
// returns their paths by name. The packaging target gets it from its
// caller, which owns the step that builds them.
type Binaries func(ctx context.Context) (map[string]string, error)

// Options are what Packaging needs of the run: configuration values, the
// step engine, and where to report.
type Options struct {
	ProjectRoot    string            // holds cmd/, for the CLIs local packages ship
	PackagesFile   string            // packages.yaml (PACKAGES_FILE)
	RepoMirrors    map[string]string // REPO_MIRRORS
	RepoSigningKey string            // REPO_SIGNING_KEY: armored private key file, or empty
	Epoch          time.Time         // SOURCE_DATE_EPOCH
	Jobs           int               // parallel downloads and repodata workers
	CacheDir       string            // keys, metadata and packages, kept between runs
	StateDir       string            // resolved.json
	OutDir         string            // the repositories: <OutDir>/<repo>/
	Engine         *step.Engine
	Log            io.Writer // nil is silent
	// Binaries is only called when a local package ships a CLI binary;
	// when nil, such a package is "not built yet".
	Binaries Binaries
}

type run struct {
	opts   Options
	client *http.Client
	cache  string
	epoch  time.Time
	signer *pgp.Signer
}

// cacheKey keeps a repository key under its SHA-256. A key already there
// is left alone: a run with nothing changed writes nothing (each atomic
// write costs an fsync).
func (r *run) cacheKey(h string, data []byte) error {
	p := filepath.Join(r.cache, "keys", h)
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return fsutil.WriteFile(p, data, 0o644)
}

// BuildRepos builds the RPM repositories of the ISO root. It is what the
// `packaging` mage target runs.
func BuildRepos(ctx context.Context, opts Options) error {
	r := &run{opts: opts, client: &http.Client{Timeout: 10 * time.Minute}, cache: opts.CacheDir, epoch: opts.Epoch.UTC()}
	list, err := pkglist.Load(opts.PackagesFile)
	if err != nil {
		return err
	}
	if err := list.ApplyMirrors(opts.RepoMirrors); err != nil {
		return err
	}
	if opts.RepoSigningKey != "" {
		if r.signer, err = pgp.LoadSigner(opts.RepoSigningKey); err != nil {
			return fmt.Errorf("REPO_SIGNING_KEY: %w", err)
		}
	}
	resolved, err := r.resolve(ctx, list)
	if err != nil {
		return err
	}
	data, _ := json.MarshalIndent(resolved, "", "  ")
	data = append(data, '\n')
	resolvedPath := filepath.Join(opts.StateDir, "resolved.json")
	if old, err := os.ReadFile(resolvedPath); err != nil || !bytes.Equal(old, data) {
		if err := fsutil.WriteFile(resolvedPath, data, 0o644); err != nil {
			return err
		}
	}
	out := opts.OutDir
	inputs := []step.Input{
		step.File(resolvedPath),
		step.Value("SOURCE_DATE_EPOCH", strconv.FormatInt(r.epoch.Unix(), 10)),
		step.Value("REPO_SIGNING_KEY", opts.RepoSigningKey),
	}
	if opts.RepoSigningKey != "" {
		inputs = append(inputs, step.File(opts.RepoSigningKey))
	}
	return opts.Engine.Run(ctx, step.Step{
		Name:    "packaging: repositories",
		Inputs:  inputs,
		Outputs: []string{out},
		Run:     func(ctx context.Context) error { return r.populate(ctx, resolved, out) },
	})
}

func (r *run) get(ctx context.Context, u string) ([]byte, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	if pu.Scheme == "file" {
		return os.ReadFile(pu.Path)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func join(base, rel string) string {
	return strings.TrimSuffix(base, "/") + "/" + strings.TrimPrefix(rel, "/")
}

// loadRepo fetches a repository's keys and primary metadata, checking the
// primary against the checksum repomd.xml gives.
func (r *run) loadRepo(ctx context.Context, rc pkglist.Repo) (*repoState, error) {
	st := &repoState{cfg: rc}
	where := fmt.Sprintf("repo %s (%s)", rc.Name, rc.BaseURL)
	if len(rc.GPGKeys) > 0 {
		st.keyring = &pgp.Keyring{}
		for _, k := range rc.GPGKeys {
			data, err := r.get(ctx, k)
			if err != nil {
				return nil, fmt.Errorf("%s: GPG key: %w", where, err)
			}
			if err := st.keyring.ReadKeys(k, data); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			sum := sha256.Sum256(data)
			h := hex.EncodeToString(sum[:])
			if err := r.cacheKey(h, data); err != nil {
				return nil, err
			}
			st.keyHashs = append(st.keyHashs, h)
		}
	}
	if rc.BaseURL == "" {
		return st, nil
	}
	mdata, err := r.get(ctx, join(rc.BaseURL, "repodata/repomd.xml"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	md, err := repomd.ParseRepomd(bytes.NewReader(mdata))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	st.md = md
	prim := md.Data("primary")
	if prim.Checksum.Type != "sha256" {
		return nil, fmt.Errorf("%s: primary checksum type %q is not sha256", where, prim.Checksum.Type)
	}
	dr, err := r.metadata(ctx, st, prim)
	if err != nil {
		return nil, err
	}
	err = repomd.ParsePrimary(dr, func(p *repomd.Package) error {
		if p.ChecksumType != "sha256" {
			return fmt.Errorf("package %s: checksum type %q is not sha256", p.NEVRA(), p.ChecksumType)
		}
		st.pkgs = append(st.pkgs, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return st, nil
}

// metadata returns the decompressed content of one metadata file of a
// repository, checked against repomd.xml. Files are cached by checksum:
// an unchanged upstream costs one small repomd.xml request.
func (r *run) metadata(ctx context.Context, st *repoState, d *repomd.DataFile) (io.Reader, error) {
	where := fmt.Sprintf("repo %s (%s)", st.cfg.Name, st.cfg.BaseURL)
	if d.Checksum.Type != "sha256" {
		return nil, fmt.Errorf("%s: %s checksum type %q is not sha256", where, d.Type, d.Checksum.Type)
	}
	cached := filepath.Join(r.cache, "metadata", d.Checksum.Value+"-"+path.Base(d.Location))
	raw, err := os.ReadFile(cached)
	if err != nil {
		if raw, err = r.get(ctx, join(st.cfg.BaseURL, d.Location)); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		sum := sha256.Sum256(raw)
		if got := hex.EncodeToString(sum[:]); got != d.Checksum.Value {
			return nil, fmt.Errorf("%s: %s has sha256 %s, repomd.xml says %s", where, d.Location, got, d.Checksum.Value)
		}
		if err := fsutil.WriteFile(cached, raw, 0o644); err != nil {
			return nil, err
		}
	}
	dr, err := repomd.Decompress(d.Location, bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return dr, nil
}

// loadFilelists replaces each package's primary file list with the full
// one, for file requirements outside the primary paths.
func (r *run) loadFilelists(ctx context.Context, st *repoState) error {
	if st.md == nil {
		return nil
	}
	d := st.md.Data("filelists")
	if d == nil {
		return nil
	}
	dr, err := r.metadata(ctx, st, d)
	if err != nil {
		return err
	}
	byID := map[string]*repomd.Package{}
	for _, p := range st.pkgs {
		byID[p.Checksum] = p
	}
	return repomd.ParseFilelists(dr, func(id string, files []repomd.File) error {
		if p := byID[id]; p != nil {
			p.Files = files
		}
		return nil
	})
}

// buildLocal builds the local packages into the cache and returns their
// repodata entries by repository.
func (r *run) buildLocal(ctx context.Context, list *pkglist.List) (map[string][]*repomd.Package, map[string]string, error) {
	out := map[string][]*repomd.Package{}
	files := map[string]string{} // sha256 -> built file
	if len(list.Local) == 0 {
		return out, files, nil
	}
	var specs []*rpmbuild.Spec
	needBins := false
	for _, lo := range list.Local {
		s, err := rpmbuild.Load(filepath.Join(filepath.Dir(list.File), lo.Spec))
		if err != nil {
			return nil, nil, err
		}
		specs = append(specs, s)
		for _, f := range s.Files {
			needBins = needBins || f.Binary != ""
		}
	}
	var bins map[string]string
	if needBins {
		clis, err := gobin.Discover(r.opts.ProjectRoot)
		if err != nil {
			return nil, nil, err
		}
		have := map[string]bool{}
		for _, c := range clis {
			have[c] = true
		}
		for i, s := range specs {
			for _, f := range s.Files {
				if f.Binary != "" && !have[f.Binary] {
					return nil, nil, fmt.Errorf("%s:%d: local package %s ships cmd/%s: %w", s.File, f.Line, s.Name, f.Binary,
						step.NotBuiltYet("the "+f.Binary+" CLI", "the local package "+list.Local[i].Spec))
				}
			}
		}
		if r.opts.Binaries == nil {
			return nil, nil, step.NotBuiltYet("packaging: local packages that ship CLI binaries (no binary builder given)", "issue 5")
		}
		if bins, err = r.opts.Binaries(ctx); err != nil {
			return nil, nil, err
		}
	}
	opt := rpmbuild.Options{Epoch: r.epoch, Binaries: bins}
	if r.signer != nil {
		opt.Sign = func(b []byte) ([]byte, error) { return r.signer.Sign(b, r.epoch) }
	}
	for i, s := range specs {
		var buf bytes.Buffer
		if err := s.Build(&buf, opt); err != nil {
			return nil, nil, err
		}
		sum := sha256.Sum256(buf.Bytes())
		h := hex.EncodeToString(sum[:])
		p := filepath.Join(r.cache, "local", h, s.FileName())
		if _, err := os.Stat(p); err != nil {
			if err := fsutil.WriteFile(p, buf.Bytes(), 0o644); err != nil {
				return nil, nil, err
			}
		}
		pkg, err := repogen.ReadPackage(p, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: reading back %s: %w", s.File, p, err)
		}
		pkg.Location = "file://" + p
		repo := list.Local[i].Repo
		out[repo] = append(out[repo], pkg)
		files[h] = p
	}
	return out, files, nil
}

func (r *run) resolve(ctx context.Context, list *pkglist.List) (*Resolved, error) {
	local, _, err := r.buildLocal(ctx, list)
	if err != nil {
		return nil, err
	}
	states := make([]*repoState, len(list.Repos))
	errs := make([]error, len(list.Repos))
	done := make(chan int, len(list.Repos))
	for i, rc := range list.Repos {
		go func() {
			states[i], errs[i] = r.loadRepo(ctx, rc)
			done <- i
		}()
	}
	for range list.Repos {
		<-done
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var repos []depsolve.Repo
	byName := map[string]*repoState{}
	for _, st := range states {
		st.pkgs = append(st.pkgs, local[st.cfg.Name]...)
		repos = append(repos, depsolve.Repo{Name: st.cfg.Name, Packages: st.pkgs})
		byName[st.cfg.Name] = st
	}
	var reqs []depsolve.Request
	for _, s := range list.Sets {
		for _, p := range s.Packages {
			reqs = append(reqs, depsolve.Request{Name: p.Name, Pin: p.Version, Set: s.Name})
		}
	}
	chosen, err := depsolve.New(repos).Solve(reqs)
	var ue *depsolve.UnresolvedError
	if errors.As(err, &ue) && strings.HasPrefix(ue.Dep, "/") {
		// primary.xml lists only some paths; like dnf, read the full
		// file lists when a file requirement is not among them.
		for _, st := range states {
			if err := r.loadFilelists(ctx, st); err != nil {
				return nil, err
			}
		}
		chosen, err = depsolve.New(repos).Solve(reqs)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", list.File, err)
	}
	res := &Resolved{}
	idx := map[string]int{}
	for _, rc := range list.Repos {
		if rc.Kind != pkglist.Shipped {
			continue
		}
		st := byName[rc.Name]
		signed := rc.Signed()
		keys := st.keyHashs
		if len(local[rc.Name]) > 0 && r.signer != nil {
			// Local packages are signed with the repository signing key,
			// which then ships beside the repository.
			pub, err := r.signer.PublicKeyArmored()
			if err != nil {
				return nil, err
			}
			sum := sha256.Sum256(pub)
			h := hex.EncodeToString(sum[:])
			if err := r.cacheKey(h, pub); err != nil {
				return nil, err
			}
			keys = append(keys, h)
		}
		idx[rc.Name] = len(res.Repos)
		res.Repos = append(res.Repos, ResolvedRepo{Name: rc.Name, Keys: keys, Signed: signed})
	}
	for _, c := range chosen {
		i, ok := idx[c.Repo]
		if !ok {
			continue // external: satisfies dependencies, not shipped
		}
		u := c.Pkg.Location
		if !strings.HasPrefix(u, "file://") {
			base := byName[c.Repo].cfg.BaseURL
			if c.Pkg.LocationBase != "" {
				base = c.Pkg.LocationBase
			}
			u = join(base, c.Pkg.Location)
		}
		res.Repos[i].Packages = append(res.Repos[i].Packages, ResolvedPkg{
			NEVRA: c.Pkg.NEVRA(), File: path.Base(c.Pkg.Location), URL: u,
			SHA256: c.Pkg.Checksum, Size: c.Pkg.SizePackage, Why: c.Why,
		})
	}
	for i := range res.Repos {
		sort.Slice(res.Repos[i].Packages, func(a, b int) bool { return res.Repos[i].Packages[a].File < res.Repos[i].Packages[b].File })
	}
	return res, nil
}

// populate fetches and verifies every shipped package, lays the
// repositories out in a temporary tree with repodata and keys, and
// publishes it in one rename.
func (r *run) populate(ctx context.Context, res *Resolved, out string) error {
	f := &fetch.Fetcher{Dir: filepath.Join(r.cache, "packages"), Client: r.client, Jobs: r.opts.Jobs}
	var items []fetch.Item
	for _, rr := range res.Repos {
		var ring *pgp.Keyring
		if len(rr.Keys) > 0 {
			ring = &pgp.Keyring{}
			for _, k := range rr.Keys {
				data, err := os.ReadFile(filepath.Join(r.cache, "keys", k))
				if err != nil {
					return err
				}
				if err := ring.ReadKeys("key "+k[:12]+" of repo "+rr.Name, data); err != nil {
					return err
				}
			}
		}
		for _, p := range rr.Packages {
			items = append(items, fetch.Item{Repo: rr.Name, Name: p.NEVRA, URL: p.URL, SHA256: p.SHA256, Size: p.Size, Keyring: ring, RequireSignature: rr.Signed})
		}
	}
	paths, err := f.Fetch(ctx, items)
	if err != nil {
		return err
	}
	tmp, err := fsutil.TempDir(out)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	k := 0
	for _, rr := range res.Repos {
		dir := filepath.Join(tmp, rr.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		sums := map[string]string{}
		for _, p := range rr.Packages {
			dst := filepath.Join(dir, p.File)
			if err := fsutil.LinkOrCopy(paths[k], dst); err != nil {
				return err
			}
			// Before repogen reads it: its time goes into primary.xml.
			if err := os.Chtimes(dst, r.epoch, r.epoch); err != nil {
				return err
			}
			k++
			sums[p.File] = p.SHA256
		}
		// Start from the previous repodata so unchanged entries are reused.
		if old := filepath.Join(out, rr.Name, "repodata"); dirExists(old) {
			if err := copyDir(old, filepath.Join(dir, "repodata")); err != nil {
				return err
			}
		}
		opt := repogen.Options{Epoch: &r.epoch, Workers: r.opts.Jobs, Incremental: true, Checksums: sums}
		if r.signer != nil {
			opt.Sign = func(md []byte) ([]byte, error) { return r.signer.SignArmored(md, r.epoch) }
		}
		if _, err := repogen.Generate(ctx, dir, opt); err != nil {
			return fmt.Errorf("repodata of %s: %w", rr.Name, err)
		}
		for i, kh := range rr.Keys {
			data, err := os.ReadFile(filepath.Join(r.cache, "keys", kh))
			if err != nil {
				return err
			}
			name := fmt.Sprintf("RPM-GPG-KEY-metalk8s-%s_%d", rr.Name, i+1)
			if err := os.WriteFile(filepath.Join(tmp, name), data, 0o644); err != nil {
				return err
			}
		}
	}
	if r.signer != nil {
		pub, err := r.signer.PublicKeyArmored()
		if err != nil {
			return err
		}
		// The key repomd.xml.asc files are signed with.
		if err := os.WriteFile(filepath.Join(tmp, "RPM-GPG-KEY-metalk8s-repodata"), pub, 0o644); err != nil {
			return err
		}
	}
	if err := clampTimes(tmp, r.epoch); err != nil {
		return err
	}
	if r.opts.Log != nil {
		fmt.Fprintf(r.opts.Log, "packaging: %d packages in %d repositories\n", len(items), len(res.Repos))
	}
	return fsutil.PublishDir(tmp, out)
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func copyDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := fsutil.LinkOrCopy(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// clampTimes sets every mtime in the new tree to SOURCE_DATE_EPOCH, so the
// ISO built from it does not depend on when files were fetched.
func clampTimes(root string, t time.Time) error {
	var dirs []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		return os.Chtimes(p, t, t)
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chtimes(dirs[i], t, t); err != nil {
			return err
		}
	}
	return nil
}
