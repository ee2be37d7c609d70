// Package gobin builds the project's CLIs (the main packages under ./cmd)
// as static, reproducible binaries, for the images and the ISO that ship
// them.
//
// Reproducible means: the same source, toolchain and target give the same
// bytes, whichever directory the checkout is in and whether or not it is a
// git checkout. That takes -trimpath (no local paths), -buildvcs=false (no
// VCS stamp), -buildid= (the build ID hashes the inputs' paths in the
// cache) and -s -w (no symbol or DWARF tables). CGO_ENABLED=0 makes the
// binaries static, so they run in a scratch image.
package gobin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

// Flags are the go build flags every binary is built with.
var Flags = []string{"-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid="}

// Options says what to build and where.
type Options struct {
	ProjectRoot string // the module root holding cmd/
	OutDir      string // binaries land at OutDir/<cli>
	// CLIs to build; nil builds every one Discover finds.
	CLIs []string
	// GOOS and GOARCH of the binaries; empty inherits the environment's
	// (the toolchain's default), which is the host.
	GOOS, GOARCH string
	// Jobs bounds the go command's parallelism (-p); 0 leaves its default.
	Jobs int
	// Go is the go command; empty means "go" from PATH.
	Go string
}

// Discover returns the names of the CLIs: the directories of
// projectRoot/cmd that hold a main package, sorted. It is read at build
// time because the set of CLIs grows as the project does.
func Discover(projectRoot string) ([]string, error) {
	dir := filepath.Join(projectRoot, "cmd")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		// The go command ignores directories starting with . or _.
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || strings.HasPrefix(e.Name(), "_") {
			continue
		}
		isMain, err := hasMain(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if isMain {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// hasMain reports whether dir holds a non-test Go file of package main.
func hasMain(dir string) (bool, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return false, err
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.PackageClauseOnly)
		if err != nil {
			return false, fmt.Errorf("reading the package clause of %s: %w", f, err)
		}
		if af.Name.Name == "main" {
			return true, nil
		}
	}
	return false, nil
}

// Build builds the CLIs into OutDir and returns their paths by name. Each
// binary appears at its final path by a rename of a complete file, so an
// interrupted build never leaves a truncated binary that a later step
// would ship.
func Build(ctx context.Context, opts Options) (map[string]string, error) {
	root, err := filepath.Abs(opts.ProjectRoot)
	if err != nil {
		return nil, err
	}
	clis := opts.CLIs
	if clis == nil {
		if clis, err = Discover(root); err != nil {
			return nil, err
		}
	}
	if len(clis) == 0 {
		return map[string]string{}, nil
	}
	pkgs := make([]string, 0, len(clis))
	for _, c := range clis {
		if c == "" || strings.ContainsAny(c, `/\`) || c == "." || c == ".." {
			return nil, fmt.Errorf("CLI name %q is not a directory name under cmd/", c)
		}
		pkgs = append(pkgs, "./cmd/"+c)
	}
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(opts.OutDir, fsutil.TempPrefix+"gobin-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	goCmd := opts.Go
	if goCmd == "" {
		goCmd = "go"
	}
	// With several main packages, -o DIR/ writes each as DIR/<name>; one
	// go command shares the compile work between them.
	args := append([]string{"build"}, Flags...)
	if opts.Jobs > 0 {
		args = append(args, "-p", strconv.Itoa(opts.Jobs))
	}
	args = append(args, "-o", tmp+string(filepath.Separator))
	args = append(args, pkgs...)
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if opts.GOOS != "" {
		cmd.Env = append(cmd.Env, "GOOS="+opts.GOOS)
	}
	if opts.GOARCH != "" {
		cmd.Env = append(cmd.Env, "GOARCH="+opts.GOARCH)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), root, err, strings.TrimSpace(out.String()))
	}

	paths := make(map[string]string, len(clis))
	for _, c := range clis {
		built := filepath.Join(tmp, c)
		if opts.GOOS == "windows" {
			built += ".exe"
		}
		if _, err := os.Stat(built); err != nil {
			return nil, fmt.Errorf("go build did not write the binary of ./cmd/%s: %w", c, err)
		}
		final := filepath.Join(opts.OutDir, filepath.Base(built))
		if err := os.Chmod(built, 0o755); err != nil {
			return nil, err
		}
		if err := os.Rename(built, final); err != nil {
			return nil, err
		}
		paths[c] = final
	}
	return paths, nil
}
