package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/internal/testenv"
)

// TestMetalK8sInvocation runs the flags MetalK8s passed to mkisofs.
func TestMetalK8sInvocation(t *testing.T) {
	isoinfo := testenv.Need(t, "isoinfo")[0]
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "product.txt"), []byte("NAME=MetalK8s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "metalk8s.iso")
	var stdout, stderr bytes.Buffer
	args := []string{"-output", out, "-rock", "-joliet", "-joliet-long", "-full-iso9660-filenames",
		"-volid", "example-solution 1.0.0", "-iso-level", "3", "-gid", "0", "-uid", "0",
		"-input-charset", "utf-8", "-output-charset", "utf-8", "-implantisomd5", src}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	d, err := exec.Command(isoinfo, "-d", "-i", out).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Volume id: example-solution 1.0.0", "Rock Ridge", "Joliet"} {
		if !strings.Contains(string(d), s) {
			t.Errorf("isoinfo -d lacks %q:\n%s", s, d)
		}
	}
	sums, err := os.ReadFile(filepath.Join(filepath.Dir(out), "SHA256SUM"))
	if err != nil || !strings.HasSuffix(string(sums), "  metalk8s.iso\n") {
		t.Errorf("SHA256SUM: %q, %v", sums, err)
	}
}

func TestErrors(t *testing.T) {
	src := t.TempDir()
	out := filepath.Join(t.TempDir(), "x.iso")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{src}, "-o is required"},
		{[]string{"-o", out}, "exactly one source directory"},
		{[]string{"-o", out, "-V", strings.Repeat("V", 33), src}, "at most 32"},
		{[]string{"-o", out, "-iso-level", "2", src}, "only level 3"},
		{[]string{"-o", out, "-input-charset", "iso8859-1", src}, "only utf-8"},
		{[]string{"-o", out, "-uid", "root", src}, "numeric"},
		{[]string{"-o", out, filepath.Join(src, "missing")}, "missing"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tc.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error()+stderr.String(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output left behind: %v", err)
	}
}
