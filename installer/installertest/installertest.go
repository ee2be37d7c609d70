// Package installertest has stand-ins for the installer's pieces, so that
// the orchestration (lock, log, dry run, change report, rollback,
// idempotence) is tested before, and apart from, the packages that
// verify, mount, serve and deploy for real. They work on directories and
// write through the change.Tx like the real ones:
//
//   - an archive is a directory holding product.txt (NAME, VERSION);
//   - a file named fail-verify, fail-mount, fail-serve or fail-deploy in
//     it makes that piece fail (the last three after writing, to show the
//     rollback);
//   - mounting writes /etc/systemd/system/fake-<id>.mount, serving
//     /etc/metalk8s/nginx/conf.d/archives.conf, deploying
//     /var/lib/metalk8s/installer/manifests/<id>/deployed, the solutions
//     list /etc/metalk8s/solutions.list, and bootstrap reads archive
//     paths from /etc/metalk8s/bootstrap.list, one a line;
//   - with BlockEnv set to a FIFO's path, Serve prints BlockMessage to
//     stdout and blocks until a writer opens the FIFO: a run that holds
//     the lock for as long as a test needs.
package installertest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/metalk8s/buildchain/buildchain/product"
	"github.com/metalk8s/buildchain/installer"
	"github.com/metalk8s/buildchain/installer/change"
)

// BlockEnv names the FIFO Serve blocks on; BlockMessage says it holds.
const (
	BlockEnv     = "INSTALLER_FAKE_BLOCK"
	BlockMessage = "fake serve: holding the lock"
)

// Wire wires every piece to the stand-ins.
func Wire(installer.Env) (installer.Pieces, error) {
	return installer.Pieces{Verifier: Verifier{}, Mounter: Mounter{}, Server: Server{}, Deployer: Deployer{}, Config: Config{}}, nil
}

// WriteArchive makes dir an archive named name at version.
func WriteArchive(dir, name, version string, fail ...string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data := fmt.Sprintf("NAME=%s\nVERSION=%s\n", name, version)
	if err := os.WriteFile(filepath.Join(dir, "product.txt"), []byte(data), 0o644); err != nil {
		return err
	}
	for _, f := range fail {
		if err := os.WriteFile(filepath.Join(dir, "fail-"+f), nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func failing(dir, what string) bool {
	_, err := os.Stat(filepath.Join(dir, "fail-"+what))
	return err == nil
}

// Verifier reads product.txt; the digest is its sha256.
type Verifier struct{}

func (Verifier) read(path string, k installer.Kind) (installer.Archive, error) {
	if failing(path, "verify") {
		return installer.Archive{}, fmt.Errorf("%s: checksum mismatch (fake)", path)
	}
	data, err := os.ReadFile(filepath.Join(path, "product.txt"))
	if err != nil {
		return installer.Archive{}, err
	}
	fields, err := product.Parse(data)
	if err != nil {
		return installer.Archive{}, fmt.Errorf("%s/product.txt: %w", path, err)
	}
	a := installer.Archive{Kind: k, Source: path, FS: os.DirFS(path)}
	for _, f := range fields {
		switch f.Key {
		case "NAME":
			a.Name = strings.ToLower(f.Value)
		case "VERSION":
			a.Version = f.Value
		}
	}
	sum := sha256.Sum256(data)
	a.Digest = "sha256:" + hex.EncodeToString(sum[:])
	return a, nil
}

func (v Verifier) Archive(_ context.Context, path string) (installer.Archive, error) {
	return v.read(path, installer.KindMetalK8s)
}

func (v Verifier) Solution(_ context.Context, path string) (installer.Archive, error) {
	return v.read(path, installer.KindSolution)
}

// Mounter writes a unit file and the mount point directory.
type Mounter struct{}

func unit(a installer.Archive) string { return "/etc/systemd/system/fake-" + a.ID() + ".mount" }

func (Mounter) Mount(_ context.Context, tx *change.Tx, a installer.Archive) error {
	if err := tx.MkdirAll(a.MountPoint()); err != nil {
		return err
	}
	if _, err := tx.WriteFile(unit(a), []byte("What="+a.Source+"\nWhere="+a.MountPoint()+"\n"), 0o644); err != nil {
		return err
	}
	if failing(a.Source, "mount") {
		return fmt.Errorf("mounting %s: wrong fs type (fake)", a.Source)
	}
	return nil
}

func (Mounter) Unmount(_ context.Context, tx *change.Tx, a installer.Archive) error {
	_, err := tx.Remove(unit(a))
	return err
}

// Server lists the served archives in one file.
type Server struct{}

// ConfPath is the node path Server writes.
const ConfPath = "/etc/metalk8s/nginx/conf.d/archives.conf"

func (Server) Serve(ctx context.Context, tx *change.Tx, archives []installer.Archive) error {
	var b strings.Builder
	for _, a := range archives {
		fmt.Fprintf(&b, "location /%s/ { alias %s/; }\n", a.ID(), a.MountPoint())
	}
	if err := tx.MkdirAll(filepath.Dir(ConfPath)); err != nil {
		return err
	}
	if _, err := tx.WriteFile(ConfPath, []byte(b.String()), 0o644); err != nil {
		return err
	}
	if fifo := os.Getenv(BlockEnv); fifo != "" {
		fmt.Println(BlockMessage)
		f, err := os.Open(fifo) // blocks until the test opens it for writing
		if err != nil {
			return err
		}
		f.Close()
	}
	for _, a := range archives {
		if failing(a.Source, "serve") {
			return errors.New("nginx -t: configuration test failed (fake)")
		}
	}
	return ctx.Err()
}

// Deployer writes a marker per deployed Solution.
type Deployer struct{}

func deployed(a installer.Archive) string {
	return "/var/lib/metalk8s/installer/manifests/" + a.ID() + "/deployed"
}

func (Deployer) Deploy(_ context.Context, tx *change.Tx, a installer.Archive) error {
	if err := tx.MkdirAll(filepath.Dir(deployed(a))); err != nil {
		return err
	}
	if _, err := tx.WriteFile(deployed(a), []byte(a.ID()+"\n"), 0o644); err != nil {
		return err
	}
	if failing(a.Source, "deploy") {
		return errors.New("applying the CRDs: forbidden (fake)")
	}
	return nil
}

func (Deployer) Undeploy(_ context.Context, tx *change.Tx, a installer.Archive) error {
	_, err := tx.Remove(deployed(a))
	return err
}

// Config keeps the Solutions in a list file and reads bootstrap's paths
// from another.
type Config struct{}

const (
	bootstrapList = "/etc/metalk8s/bootstrap.list"
	solutionsList = "/etc/metalk8s/solutions.list"
)

func (Config) BootstrapArchives(tx *change.Tx) ([]string, error) {
	data, err := os.ReadFile(tx.Path(bootstrapList))
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(data)), nil
}

func (Config) edit(tx *change.Tx, f func(map[string]bool)) error {
	data, err := os.ReadFile(tx.Path(solutionsList))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	set := map[string]bool{}
	for _, l := range strings.Fields(string(data)) {
		set[l] = true
	}
	f(set)
	var lines []string
	for l := range set {
		lines = append(lines, l)
	}
	sort.Strings(lines)
	if err := tx.MkdirAll("/etc/metalk8s"); err != nil {
		return err
	}
	out := strings.Join(lines, "\n")
	if out != "" {
		out += "\n"
	}
	_, err = tx.WriteFile(solutionsList, []byte(out), 0o644)
	return err
}

func (c Config) AddSolution(tx *change.Tx, a installer.Archive) error {
	return c.edit(tx, func(m map[string]bool) { m[a.ID()] = true })
}

func (c Config) RemoveSolution(tx *change.Tx, a installer.Archive) error {
	return c.edit(tx, func(m map[string]bool) { delete(m, a.ID()) })
}
