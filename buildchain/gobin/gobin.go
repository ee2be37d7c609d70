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
	// Variant is the OCI platform variant. For GOARCH=arm it is the
	// instruction set ("v6", "v7"), passed as GOARM: without it the go
	// command picks its own default, and an arm/v6 image would ship v7
	// code that faults on a v6 CPU. Other architectures ignore it.
	Variant string
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

// Sources returns the files of the project that the CLIs are built from,
// sorted: go.mod, go.sum (when present) and every Go and embedded file of
// the module's packages they import, for GOOS/GOARCH. A step stamps them
// (with the toolchain version) to know when the binaries are up to date.
// Dependencies outside the project are pinned by go.sum.
func Sources(ctx context.Context, opts Options) ([]string, error) {
	root, clis, err := resolve(opts)
	if err != nil || len(clis) == 0 {
		return nil, err
	}
	// One line per file; $.Dir is the package's directory.
	const format = `{{if not .Standard}}{{range .GoFiles}}{{$.Dir}}/{{.}}
{{end}}{{range .EmbedFiles}}{{$.Dir}}/{{.}}
{{end}}{{end}}`
	args := append([]string{"list", "-deps", "-f", format}, packages(clis)...)
	out, err := goCommand(ctx, opts, root, args)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, f := range []string{"go.mod", "go.sum"} {
		if _, err := os.Stat(filepath.Join(root, f)); err == nil {
			set[filepath.Join(root, f)] = true
		}
	}
	// The go command reports real paths: a root reached through a
	// symbolic link is matched by its resolved form too.
	prefixes := []string{root + string(filepath.Separator)}
	if real, err := filepath.EvalSymlinks(root); err == nil && real != root {
		prefixes = append(prefixes, real+string(filepath.Separator))
	}
	for _, line := range strings.Split(out, "\n") {
		if line != "" && (strings.HasPrefix(line, prefixes[0]) || (len(prefixes) > 1 && strings.HasPrefix(line, prefixes[1]))) {
			set[filepath.Clean(line)] = true
		}
	}
	files := make([]string, 0, len(set))
	for f := range set {
		files = append(files, f)
	}
	sort.Strings(files)
	return files, nil
}

// resolve returns the absolute project root and the CLIs to build.
func resolve(opts Options) (string, []string, error) {
	root, err := filepath.Abs(opts.ProjectRoot)
	if err != nil {
		return "", nil, err
	}
	clis := opts.CLIs
	if clis == nil {
		if clis, err = Discover(root); err != nil {
			return "", nil, err
		}
	}
	for _, c := range clis {
		if c == "" || strings.ContainsAny(c, `/\`) || c == "." || c == ".." {
			return "", nil, fmt.Errorf("CLI name %q is not a directory name under cmd/", c)
		}
	}
	return root, clis, nil
}

func packages(clis []string) []string {
	pkgs := make([]string, 0, len(clis))
	for _, c := range clis {
		pkgs = append(pkgs, "./cmd/"+c)
	}
	return pkgs
}

// goCommand runs the go command in root for the target of opts, returning
// its output, or an error carrying it.
func goCommand(ctx context.Context, opts Options, root string, args []string) (string, error) {
	goCmd := opts.Go
	if goCmd == "" {
		goCmd = "go"
	}
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if opts.GOOS != "" {
		cmd.Env = append(cmd.Env, "GOOS="+opts.GOOS)
	}
	if opts.GOARCH != "" {
		cmd.Env = append(cmd.Env, "GOARCH="+opts.GOARCH)
	}
	if goarm := GOARM(opts.GOARCH, opts.Variant); goarm != "" {
		cmd.Env = append(cmd.Env, "GOARM="+goarm)
	}
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), root, err,
			strings.TrimSpace(stderr.String()+"\n"+out.String()))
	}
	return out.String(), nil
}

// GOARM returns the GOARM value for an OCI platform's architecture and
// variant ("arm", "v6" gives "6"), or "" when there is none to set.
func GOARM(goarch, variant string) string {
	if goarch != "arm" || variant == "" {
		return ""
	}
	return strings.TrimPrefix(variant, "v")
}

// CompilePackage builds the main package pkg (an import path, or a
// directory relative to ProjectRoot starting with ./ or ../) into the file
// dst, for the target of opts, with Flags. Like Compile, it puts dst in place
// by a rename of a complete file. OutDir and CLIs are not used.
func CompilePackage(ctx context.Context, opts Options, pkg, dst string) error {
	root, err := filepath.Abs(opts.ProjectRoot)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), fsutil.TempPrefix+"gobin-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	built := filepath.Join(tmp, filepath.Base(dst))
	args := append([]string{"build"}, Flags...)
	if opts.Jobs > 0 {
		args = append(args, "-p", strconv.Itoa(opts.Jobs))
	}
	args = append(args, "-o", built, pkg)
	if _, err := goCommand(ctx, opts, root, args); err != nil {
		return err
	}
	if err := os.Chmod(built, 0o755); err != nil {
		return err
	}
	return os.Rename(built, dst)
}

// Compile builds the CLIs into OutDir and returns their paths by name. Each
// binary appears at its final path by a rename of a complete file, so an
// interrupted build never leaves a truncated binary that a later step
// would ship.
func Compile(ctx context.Context, opts Options) (map[string]string, error) {
	root, clis, err := resolve(opts)
	if err != nil {
		return nil, err
	}
	if len(clis) == 0 {
		return map[string]string{}, nil
	}
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(opts.OutDir, fsutil.TempPrefix+"gobin-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	// With several main packages, -o DIR/ writes each as DIR/<name>; one
	// go command shares the compile work between them.
	args := append([]string{"build"}, Flags...)
	if opts.Jobs > 0 {
		args = append(args, "-p", strconv.Itoa(opts.Jobs))
	}
	args = append(args, "-o", tmp+string(filepath.Separator))
	args = append(args, packages(clis)...)
	if _, err := goCommand(ctx, opts, root, args); err != nil {
		return nil, err
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
