package gobin

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// writeModule makes a small module under dir with the given files.
func writeModule(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	files["go.mod"] = "module example.com/tools\n\ngo 1.26\n"
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func tools() map[string]string {
	return map[string]string{
		"cmd/hello/main.go":       "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello from\", where()) }\n",
		"cmd/hello/where.go":      "package main\n\nimport \"runtime/debug\"\n\nfunc where() string { bi, _ := debug.ReadBuildInfo(); return bi.Path }\n",
		"cmd/hello/main_test.go":  "package main\n",
		"cmd/bye/main.go":         "package main\n\nfunc main() { println(\"bye\") }\n",
		"cmd/lib/lib.go":          "package lib\n",
		"cmd/_skip/main.go":       "package main\n\nfunc main() {}\n",
		"cmd/.hidden/main.go":     "package main\n\nfunc main() {}\n",
		"cmd/onlytests/x_test.go": "package main\n",
		"cmd/README":              "not a directory\n",
	}
}

func TestDiscover(t *testing.T) {
	dir := t.TempDir()
	writeModule(t, dir, tools())
	got, err := Discover(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"bye", "hello"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Discover = %q, want %q", got, want)
	}

	// No cmd directory yet: no CLIs, not an error.
	if got, err := Discover(t.TempDir()); err != nil || len(got) != 0 {
		t.Errorf("Discover(empty project) = %q, %v", got, err)
	}

	// The project's own CLIs: mkiso exists since the ISO writer landed.
	got, err = Discover("../..")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got, "mkiso") || !slices.IsSorted(got) {
		t.Errorf("Discover(project) = %q, want a sorted list with mkiso", got)
	}
}

func TestDiscoverBadSource(t *testing.T) {
	dir := t.TempDir()
	writeModule(t, dir, map[string]string{"cmd/broken/main.go": "this is not go\n"})
	if _, err := Discover(dir); err == nil || !strings.Contains(err.Error(), filepath.Join("cmd", "broken", "main.go")) {
		t.Errorf("Discover with an unparsable file: err = %v, want one naming the file", err)
	}
}

// TestBuildReproducible builds the same module from two checkouts at
// different paths: the binaries must be byte-identical, static, free of
// the checkout path, and run.
func TestBuildReproducible(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	var outs [2]map[string]string
	for i, root := range []string{filepath.Join(base, "a"), filepath.Join(base, "checkout-with-a-longer-name")} {
		writeModule(t, root, tools())
		out := filepath.Join(root, "dist", "bin")
		// A stale binary from an earlier build is replaced.
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, "hello"), []byte("stale"), 0o644); err != nil {
			t.Fatal(err)
		}
		paths, err := Compile(ctx, Options{ProjectRoot: root, OutDir: out, Jobs: 2, GOOS: "linux", GOARCH: runtime.GOARCH})
		if err != nil {
			t.Fatal(err)
		}
		outs[i] = paths
		ents, _ := os.ReadDir(out)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if want := []string{"bye", "hello"}; !reflect.DeepEqual(names, want) {
			t.Errorf("%s holds %q, want only %q (no temporary litter)", out, names, want)
		}
	}
	for _, cli := range []string{"bye", "hello"} {
		a, err := os.ReadFile(outs[0][cli])
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(outs[1][cli])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two checkouts (%d vs %d bytes): not reproducible", cli, len(a), len(b))
		}
		if bytes.Contains(a, []byte(base)) {
			t.Errorf("%s embeds the checkout path %s", cli, base)
		}
		st, _ := os.Stat(outs[0][cli])
		if st.Mode().Perm() != 0o755 {
			t.Errorf("%s has mode %v, want 0755", cli, st.Mode())
		}
		checkStatic(t, outs[0][cli])
	}
	out, err := exec.Command(outs[0]["hello"]).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "hello from example.com/tools/cmd/hello" {
		t.Errorf("running hello: %q, %v", out, err)
	}
}

// checkStatic fails unless the ELF file has no interpreter and no shared
// library dependencies: it must run in a scratch image.
func checkStatic(t *testing.T, p string) {
	t.Helper()
	f, err := elf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
			t.Errorf("%s is dynamically linked (%v)", p, prog.Type)
		}
	}
	if f.Section(".symtab") != nil {
		t.Errorf("%s keeps its symbol table; -s was not applied", p)
	}
}

func TestBuildSubset(t *testing.T) {
	root := t.TempDir()
	writeModule(t, root, tools())
	out := filepath.Join(root, "bin")
	paths, err := Compile(context.Background(), Options{ProjectRoot: root, OutDir: out, CLIs: []string{"bye"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 1 || paths["bye"] != filepath.Join(out, "bye") {
		t.Errorf("Compile(bye) = %v", paths)
	}
	if _, err := Compile(context.Background(), Options{ProjectRoot: root, OutDir: out, CLIs: []string{"../etc"}}); err == nil {
		t.Error("a CLI name with a slash was accepted")
	}
	// No CLIs at all (a project before its first cmd/): nothing to do.
	paths, err = Compile(context.Background(), Options{ProjectRoot: t.TempDir(), OutDir: out})
	if err != nil || len(paths) != 0 {
		t.Errorf("Compile(no cmd/) = %v, %v", paths, err)
	}
}

func TestBuildFailureLeavesNothing(t *testing.T) {
	root := t.TempDir()
	files := tools()
	files["cmd/bye/main.go"] = "package main\n\nfunc main() { undefinedCall() }\n"
	writeModule(t, root, files)
	out := filepath.Join(root, "bin")
	_, err := Compile(context.Background(), Options{ProjectRoot: root, OutDir: out})
	if err == nil {
		t.Fatal("a compile error was not reported")
	}
	if !strings.Contains(err.Error(), "undefinedCall") || !strings.Contains(err.Error(), "go build") {
		t.Errorf("error does not carry the compiler's message: %v", err)
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 0 {
		t.Errorf("a failed build left %d entries in %s", len(ents), out)
	}
}

func TestSources(t *testing.T) {
	root := t.TempDir()
	files := tools()
	files["internal/greet/greet.go"] = "package greet\n\nimport _ \"embed\"\n\n//go:embed hello.txt\nvar Text string\n"
	files["internal/greet/hello.txt"] = "hi\n"
	files["internal/greet/greet_test.go"] = "package greet\n"
	files["internal/unused/unused.go"] = "package unused\n"
	files["cmd/bye/main.go"] = "package main\n\nimport \"example.com/tools/internal/greet\"\n\nfunc main() { println(greet.Text) }\n"
	writeModule(t, root, files)
	got, err := Sources(context.Background(), Options{ProjectRoot: root, GOOS: "linux", GOARCH: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	var rel []string
	for _, f := range got {
		r, err := filepath.Rel(root, f)
		if err != nil {
			t.Fatal(err)
		}
		rel = append(rel, filepath.ToSlash(r))
	}
	want := []string{"cmd/bye/main.go", "cmd/hello/main.go", "cmd/hello/where.go", "go.mod", "internal/greet/greet.go", "internal/greet/hello.txt"}
	if !reflect.DeepEqual(rel, want) {
		t.Errorf("Sources = %q, want %q", rel, want)
	}
}

// goarmOf reads the GOARM a binary was built with from its build info.
func goarmOf(t *testing.T, path string) string {
	t.Helper()
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range bi.Settings {
		if s.Key == "GOARM" {
			return s.Value
		}
	}
	return ""
}

// An arm/v6 platform gives a GOARM=6 binary, not the go command's default,
// whether the CLIs of the project or any package is built; a package
// outside cmd/ (a Solution's ./operator) builds too.
func TestBuildARMVariant(t *testing.T) {
	root := t.TempDir()
	files := tools()
	files["operator/main.go"] = "package main\n\nfunc main() { println(\"op\") }\n"
	writeModule(t, root, files)
	ctx := context.Background()
	for _, v := range []string{"v6", "v7"} {
		opts := Options{ProjectRoot: root, OutDir: filepath.Join(root, "bin", v), CLIs: []string{"bye"}, GOOS: "linux", GOARCH: "arm", Variant: v}
		paths, err := Compile(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := goarmOf(t, paths["bye"]); got != v[1:] {
			t.Errorf("Build for arm/%s: GOARM=%q", v, got)
		}
		dst := filepath.Join(root, "pkg", v, "operator")
		if err := CompilePackage(ctx, opts, "./operator", dst); err != nil {
			t.Fatal(err)
		}
		if got := goarmOf(t, dst); got != v[1:] {
			t.Errorf("BuildPackage for arm/%s: GOARM=%q", v, got)
		}
		if st, err := os.Stat(dst); err != nil || st.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v %v", dst, st, err)
		}
	}
	if GOARM("arm64", "v8") != "" || GOARM("amd64", "") != "" || GOARM("arm", "v5") != "5" {
		t.Error("GOARM")
	}
	// A failed build leaves no file at dst and no temporary beside it.
	files["operator/main.go"] = "package main\n\nfunc main() { undefinedCall() }\n"
	writeModule(t, root, files)
	dst := filepath.Join(root, "broken", "operator")
	if err := CompilePackage(ctx, Options{ProjectRoot: root}, "./operator", dst); err == nil || !strings.Contains(err.Error(), "undefinedCall") {
		t.Fatalf("broken package: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(dst)); len(ents) != 0 {
		t.Errorf("a failed build left %v", ents)
	}
}
