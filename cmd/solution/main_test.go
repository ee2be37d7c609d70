package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/metalk8s/buildchain/buildchain/solution"
)

// source writes a solution source with the example's manifests and two
// random images in an OCI layout.
func source(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ex := filepath.Join("..", "..", "examples", "solution")
	for _, f := range []string{"operator/deploy/operator.yaml", "operator/deploy/role.yaml", "operator/deploy/role_binding.yaml",
		"operator/deploy/service_account.yaml", "operator/deploy/crds/examples_crd.yaml", "ui/deployment.yaml"} {
		data, err := os.ReadFile(filepath.Join(ex, f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lp, err := layout.Write(filepath.Join(dir, "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"op", "ui"} {
		img, _ := random.Image(1024, 1)
		if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
			t.Fatal(err)
		}
	}
	yaml := `name: example-solution
version: 1.0.0
require_metalk8s: ">=2.0"
images:
  - {name: example-solution-operator, version: 1.0.0, oci: layout, ref: op}
  - {name: example-solution-ui, version: 1.0.0, oci: layout, ref: ui}
`
	if err := os.WriteFile(filepath.Join(dir, "solution.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCLI(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	ctx := context.Background()
	src := source(t)
	out := filepath.Join(t.TempDir(), "example.iso")
	var stdout, stderr bytes.Buffer
	// Flags may follow the operand.
	if err := run(ctx, []string{"build", src, "-o", out, "--cache", t.TempDir(), "--git", "cli"}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if strings.TrimSpace(stdout.String()) != out {
		t.Fatalf("build printed %q", stdout.String())
	}

	stdout.Reset()
	if err := run(ctx, []string{"validate", out}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if !strings.Contains(stdout.String(), "valid Solution archive example-solution-1.0.0 (2 images)") {
		t.Fatalf("validate printed %q", stdout.String())
	}

	stdout.Reset()
	if err := run(ctx, []string{"inspect", "--json", out}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	var rep solution.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Product.Git != "cli" || rep.Product.BuildTimestamp != "2023-11-14T22:13:20Z" || len(rep.Images) != 2 || rep.Images[0].Digest == "" || rep.Images[0].Size == 0 {
		t.Fatalf("inspect --json: %+v", rep)
	}
	stdout.Reset()
	if err := run(ctx, []string{"inspect", out}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Volume ID:", "example-solution 1.0.0", "example-solution-operator", rep.Images[0].Digest, ">=2.0"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("inspect output lacks %q:\n%s", want, stdout.String())
		}
	}

	// A tree with problems: each is printed with its path, exit status 1.
	bad := t.TempDir()
	os.MkdirAll(filepath.Join(bad, "images"), 0o755)
	os.WriteFile(filepath.Join(bad, "product.txt"), []byte("NAME=x\n"), 0o644)
	stdout.Reset()
	err := run(ctx, []string{"validate", bad}, &stdout, &stderr)
	if !errors.Is(err, errProblems) {
		t.Fatalf("validate of a bad tree: %v", err)
	}
	for _, want := range []string{"product.txt: VERSION is missing", "operator/deploy/operator.yaml: missing", "registry-config.inc.j2: missing"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("validate output lacks %q:\n%s", want, stdout.String())
		}
	}
	stdout.Reset()
	if err := run(ctx, []string{"validate", "--json", bad}, &stdout, &stderr); !errors.Is(err, errProblems) {
		t.Fatal(err)
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil || len(rep.Problems) == 0 {
		t.Fatalf("validate --json: %v %+v", err, rep)
	}

	// Usage errors are not validation results.
	for _, args := range [][]string{nil, {"frobnicate"}, {"validate"}, {"validate", "a", "b"}, {"build", "--nope", src}, {"validate", filepath.Join(bad, "nothing")}} {
		if err := run(ctx, args, &stdout, &stderr); err == nil || errors.Is(err, errProblems) {
			t.Errorf("run(%q) = %v, want a usage or I/O error", args, err)
		}
	}
}

// A mirror that is not a registry host is refused before anything is
// fetched or written, from IMAGE_MIRRORS as from --mirror, with the checks
// the mage build applies to the same variable.
func TestBuildRefusesBadMirror(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	src := source(t)
	for _, tc := range []struct {
		env, flag, want string
	}{
		{env: "docker.io=bad host", want: `IMAGE_MIRRORS: "bad host" is not a registry host`},
		{env: "docker.io=127.0.0.1:5000/UPPER", want: `IMAGE_MIRRORS: "127.0.0.1:5000/UPPER": path component "UPPER"`},
		{env: "docker.io", want: `IMAGE_MIRRORS: entry "docker.io" is not KEY=VALUE`},
		{env: "docker.io=127.0.0.1:5000", flag: "quay.io/x=127.0.0.1:5000", want: `--mirror: "quay.io/x" is not a registry host`},
	} {
		t.Setenv("IMAGE_MIRRORS", tc.env)
		out := filepath.Join(t.TempDir(), "example.iso")
		args := []string{"build", src, "-o", out, "--cache", t.TempDir()}
		if tc.flag != "" {
			args = append(args, "--mirror", tc.flag)
		}
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("IMAGE_MIRRORS=%q --mirror %q: got %v, want %q", tc.env, tc.flag, err, tc.want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("IMAGE_MIRRORS=%q: an ISO was written (%v)", tc.env, err)
		}
	}
}
