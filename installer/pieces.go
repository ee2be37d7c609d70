package installer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"

	"github.com/metalk8s/buildchain/installer/change"
	"github.com/metalk8s/buildchain/installer/mount"
)

// Kind tells a MetalK8s archive from a Solution archive.
type Kind string

const (
	KindMetalK8s Kind = "metalk8s"
	KindSolution Kind = "solution"
)

// Archive is one archive the installer manages, as its verifier read it
// (product.txt) before anything on it was used.
type Archive struct {
	Kind Kind `json:"kind"`
	// Name is lower case ("metalk8s", "example-solution") and Version is
	// product.txt's VERSION: together they name the mount point and the
	// repository prefix, so both are checked before they reach a path.
	Name    string `json:"name"`
	Version string `json:"version"`
	// Source is the absolute path of the ISO file or directory.
	Source string `json:"source"`
	// Digest identifies the content (the verifier's choice: the ISO's
	// sha256, its signed manifest's); two archives with one ID and
	// different digests are different archives, which is refused.
	Digest string `json:"digest,omitempty"`
	// FS is the archive's tree as its verifier read it, unmounted (nil
	// for an archive read back from the state): what a dry run serves
	// from, the mount being skipped.
	FS fs.FS `json:"-"`
}

// ID is "<name>-<version>": the mount point's base name and the
// repository and registry prefix.
func (a Archive) ID() string { return a.Name + "-" + a.Version }

// MountPoint is where the archive is mounted on the node (chapter 3.1.1):
// derived from product.txt, never chosen by the caller, so that it cannot
// be wrong (MetalK8s issue #2864).
func (a Archive) MountPoint() string { return "/srv/scality/" + a.ID() }

var (
	nameRE    = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$`)
	versionRE = regexp.MustCompile(`^[0-9A-Za-z]([0-9A-Za-z.+_-]{0,62}[0-9A-Za-z])?$`)
)

// Check refuses an archive whose identity could escape its mount point or
// its URL prefix, whatever verifier produced it.
func (a Archive) Check() error {
	switch {
	case a.Kind != KindMetalK8s && a.Kind != KindSolution:
		return fmt.Errorf("archive %s: kind %q is neither %q nor %q", a.Source, a.Kind, KindMetalK8s, KindSolution)
	case !nameRE.MatchString(a.Name):
		return fmt.Errorf("archive %s: name %q: want lower-case letters, digits, '.', '_' or '-'", a.Source, a.Name)
	case !versionRE.MatchString(a.Version) || a.Version == "." || a.Version == "..":
		return fmt.Errorf("archive %s: version %q: want letters, digits, '.', '+', '_' or '-'", a.Source, a.Version)
	case a.Source == "" || a.Source[0] != '/':
		return fmt.Errorf("archive %s-%s: source %q is not an absolute path", a.Name, a.Version, a.Source)
	}
	return nil
}

// Env is what the pieces are made for: one run's options and its log.
type Env struct {
	Root       string // --root
	DryRun     bool
	Kubeconfig string    // --kubeconfig, "" without
	Listen     string    // --listen, "" for the default
	Log        io.Writer // the run's log (file and, with --verbose, stderr)
	// MountMethod is --mount-method (auto, kernel, fuse, fuseiso).
	MountMethod mount.Method
	// TrustedKeys are --trusted-key files: when given, archives must be
	// signed by one of them.
	TrustedKeys []string
}

// Verifier checks an archive before anything on it is used, and reads its
// identity without mounting it.
type Verifier interface {
	// Archive verifies the MetalK8s archive at path (absolute): its
	// SHA256SUM, signature and signed manifest as available, and reads
	// its product.txt. The Archive it returns has KindMetalK8s.
	Archive(ctx context.Context, path string) (Archive, error)
	// Solution runs the Solution validator on the archive at path
	// (absolute) before it is mounted. The Archive has KindSolution.
	Solution(ctx context.Context, path string) (Archive, error)
}

// Mounter mounts archives read-only at their MountPoint, persistently
// (they come back after a reboot), through tx: Mount twice is one mount,
// and rolling tx back unmounts.
type Mounter interface {
	Mount(ctx context.Context, tx *change.Tx, a Archive) error
	// Unmount undoes Mount, its persistence included; an archive that is
	// not mounted is no change.
	Unmount(ctx context.Context, tx *change.Tx, a Archive) error
}

// Server makes the repository service serve exactly the archives given
// (every installed one): nginx configuration checked and swapped in,
// .repo files, containerd hosts.toml, the service unit. On failure the
// previous configuration keeps serving.
type Server interface {
	Serve(ctx context.Context, tx *change.Tx, archives []Archive) error
}

// Deployer deploys a mounted Solution's CRDs and UI (through the API of
// Env.Kubeconfig, or as manifests written to a directory), and deletes
// them again.
type Deployer interface {
	Deploy(ctx context.Context, tx *change.Tx, a Archive) error
	Undeploy(ctx context.Context, tx *change.Tx, a Archive) error
}

// Config reads bootstrap.yaml and edits solutions.yaml.
type Config interface {
	// BootstrapArchives returns products.metalk8s of
	// /etc/metalk8s/bootstrap.yaml, validated, as written there (node
	// paths).
	BootstrapArchives(tx *change.Tx) ([]string, error)
	// AddSolution and RemoveSolution edit /etc/metalk8s/solutions.yaml
	// through tx, keeping its comments and order.
	AddSolution(tx *change.Tx, a Archive) error
	RemoveSolution(tx *change.Tx, a Archive) error
}

// Pieces are the implementations the commands are wired to. A nil piece
// makes the commands that need it fail, naming it.
type Pieces struct {
	Verifier Verifier
	Mounter  Mounter
	Server   Server
	Deployer Deployer
	Config   Config
	// Close, when set, releases what the pieces hold, at the end of the run.
	Close func() error
}

// Wire makes the pieces for one run, once its options are known.
type Wire func(env Env) (Pieces, error)

// ErrNotBuiltYet marks a command whose piece has not landed.
var ErrNotBuiltYet = errors.New("not built yet")

func missing(pkg string) error {
	return fmt.Errorf("%s: %w (issue 12)", pkg, ErrNotBuiltYet)
}

func (p Pieces) need(names ...string) error {
	var errs []error
	for _, n := range names {
		var nil_ bool
		var pkg string
		switch n {
		case "verifier":
			nil_, pkg = p.Verifier == nil, "installer/archive (verification)"
		case "mounter":
			nil_, pkg = p.Mounter == nil, "installer/mount"
		case "server":
			nil_, pkg = p.Server == nil, "installer/serve"
		case "deployer":
			nil_, pkg = p.Deployer == nil, "installer/kube"
		case "config":
			nil_, pkg = p.Config == nil, "installer/config"
		}
		if nil_ {
			errs = append(errs, missing(pkg))
		}
	}
	return errors.Join(errs...)
}
