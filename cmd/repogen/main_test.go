package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/buildchain/rpm/rpmtest"
)

func TestCLI(t *testing.T) {
	dir := t.TempDir()
	rpmtest.Copy(t, rpmtest.BuildRPMs(t, rpmtest.Standard()...), dir)
	key := rpmtest.GPGKey(t, "repo-signer", "rsa2048")
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	// Files newer than the epoch have their time clamped, and then only a
	// checksum can tell they are unchanged; make them older so --update
	// can trust size and mtime, as createrepo_c does.
	old := time.Unix(1600000000, 0)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		os.Chtimes(filepath.Join(dir, e.Name()), old, old)
	}
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"--sign-key", key.SecretPath, dir}, &out, &errb); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "4 packages (4 read, 0 reused)") {
		t.Errorf("output %q", out.String())
	}
	md, err := os.ReadFile(filepath.Join(dir, "repodata", "repomd.xml"))
	if err != nil || !bytes.Contains(md, []byte("<revision>1700000000</revision>")) {
		t.Fatalf("repomd.xml: %v\n%s", err, md)
	}
	if _, err := os.Stat(filepath.Join(dir, "repodata", "repomd.xml.asc")); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"--update", dir}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "(0 read, 4 reused)") {
		t.Errorf("update output %q", out.String())
	}
	for _, args := range [][]string{{}, {"a", "b"}, {filepath.Join(dir, "missing")}, {"--sign-key", filepath.Join(dir, "nokey"), dir}} {
		if err := run(context.Background(), args, &out, &errb); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if err := run(context.Background(), []string{dir}, &out, &errb); err == nil || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
		t.Errorf("bad epoch: %v", err)
	}
}
