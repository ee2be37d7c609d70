package repogen_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/rpmpack"

	"github.com/metalk8s/buildchain/buildchain/rpm/repogen"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// packRPM writes name-1.0-1.x86_64.rpm into dir, built with rpmpack.
func packRPM(t *testing.T, dir, name string, md rpmpack.RPMMetaData, files ...string) string {
	t.Helper()
	md.Name, md.Version, md.Release, md.Arch, md.Licence, md.BuildTime = name, "1.0", "1", "x86_64", "MIT", time.Unix(1700000000, 0)
	if md.Summary == "" {
		md.Summary = name
	}
	p, err := rpmpack.NewRPM(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		p.AddFile(rpmpack.RPMFile{Name: f, Body: []byte(f), Mode: 0o100755, MTime: 1700000000})
	}
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+"-1.0-1.x86_64.rpm")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// Older than the epoch, so that an update may trust size and mtime.
	old := time.Unix(1600000000, 0)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestControlCharactersRefused: a control character in any string
// createrepo_c checks is an error naming the package file, its NEVRA and
// the string. It used to be dropped, so /usr/bin/py\x01thon was published
// as a provide of /usr/bin/python. Nothing is published: the repodata
// already there stays as it was, full run and update alike.
func TestControlCharactersRefused(t *testing.T) {
	createrepo := testenv.Need(t, "createrepo_c")[0]
	for _, tc := range []struct {
		name  string
		md    rpmpack.RPMMetaData
		files []string
		want  string
	}{
		{"file name", rpmpack.RPMMetaData{}, []string{"/usr/bin/py\x01thon"}, `file "/usr/bin/py\x01thon" holds the control character 0x01`},
		{"provide", rpmpack.RPMMetaData{Provides: rpmpack.Relations{{Name: "py\x1bthon"}}}, nil, `provide "py\x1bthon"`},
		{"description", rpmpack.RPMMetaData{Description: "one\x07two"}, nil, `description "one\atwo"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			packRPM(t, dir, "good", rpmpack.RPMMetaData{}, "/usr/bin/good")
			generate(t, dir, repogen.Options{})
			before := repodataFiles(t, dir)
			evil := packRPM(t, dir, "evil", tc.md, tc.files...)
			for _, incremental := range []bool{false, true} {
				_, err := repogen.Generate(context.Background(), dir, repogen.Options{Epoch: &epoch, Incremental: incremental})
				if err == nil || !strings.Contains(err.Error(), evil) || !strings.Contains(err.Error(), "evil-0:1.0-1.x86_64") || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("incremental=%v: err = %v; want it to name %s, evil-0:1.0-1.x86_64 and %s", incremental, err, evil, tc.want)
				}
				if after := repodataFiles(t, dir); !reflect.DeepEqual(before, after) {
					t.Fatalf("incremental=%v: a refused run changed the repodata", incremental)
				}
			}
			fresh := t.TempDir()
			packRPM(t, fresh, "evil", tc.md, tc.files...)
			if _, err := repogen.Generate(context.Background(), fresh, repogen.Options{Epoch: &epoch}); err == nil {
				t.Fatal("no error without repodata")
			}
			if _, err := os.Stat(filepath.Join(fresh, "repodata")); !os.IsNotExist(err) {
				t.Fatalf("repodata published for a refused package: %v", err)
			}
			// The oracle: createrepo_c refuses the package too (it then
			// goes on without it, exiting 0).
			out, _ := exec.Command(createrepo, "--no-database", "--outputdir", t.TempDir(), fresh).CombinedOutput()
			if !strings.Contains(string(out), "Forbidden control chars") {
				t.Fatalf("createrepo_c accepts the package:\n%s", out)
			}
		})
	}
}

// TestSymlinkedRPM: a link named *.rpm is indexed under its own name, read
// through, as createrepo_c does, in a full run and in an update; a
// dangling link, or one to a directory, is an error naming it.
func TestSymlinkedRPM(t *testing.T) {
	createrepo := testenv.Need(t, "createrepo_c")[0]
	layout := func(t *testing.T) string {
		top := t.TempDir()
		repo := filepath.Join(top, "repo")
		packRPM(t, repo, "plain", rpmpack.RPMMetaData{}, "/usr/bin/plain")
		store := filepath.Join(top, "store")
		packRPM(t, store, "linked", rpmpack.RPMMetaData{}, "/usr/bin/linked")
		packRPM(t, store, "later", rpmpack.RPMMetaData{}, "/usr/bin/later")
		if err := os.MkdirAll(filepath.Join(repo, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../../store/linked-1.0-1.x86_64.rpm", filepath.Join(repo, "sub", "linked.rpm")); err != nil {
			t.Fatal(err)
		}
		return repo
	}
	ours, theirs := layout(t), layout(t)
	if st := generate(t, ours, repogen.Options{}); st.Packages != 2 {
		t.Fatalf("stats %+v: the link was not indexed", st)
	}
	if out, err := exec.Command(createrepo, "--no-database", theirs).CombinedOutput(); err != nil {
		t.Fatalf("createrepo_c: %v\n%s", err, out)
	}
	compare := func(t *testing.T) {
		t.Helper()
		a, b := parseRepo(t, ours), parseRepo(t, theirs)
		if len(a.Primary) != len(b.Primary) {
			t.Fatalf("we list %d packages, createrepo_c %d", len(a.Primary), len(b.Primary))
		}
		for id, want := range b.Primary {
			if got := a.Primary[id]; got == nil || !reflect.DeepEqual(*got, *want) {
				t.Errorf("primary entry of %s differs:\n ours:   %+v\n theirs: %+v", want.NEVRA(), got, *want)
			}
		}
	}
	compare(t)
	if !bytes.Contains(readDoc(t, ours, "primary"), []byte(`<location href="sub/linked.rpm"/>`)) {
		t.Fatal("the link is not indexed under its own name")
	}

	// Update: a second link is read, the first one's entry is reused, and
	// the result is a full run's.
	for _, repo := range []string{ours, theirs} {
		if err := os.Symlink("../store/later-1.0-1.x86_64.rpm", filepath.Join(repo, "later.rpm")); err != nil {
			t.Fatal(err)
		}
	}
	st := generate(t, ours, repogen.Options{Incremental: true})
	if st.Packages != 3 || st.Read != 1 {
		t.Fatalf("update stats %+v: want 3 packages, 1 read", st)
	}
	if out, err := exec.Command(createrepo, "--no-database", "--update", theirs).CombinedOutput(); err != nil {
		t.Fatalf("createrepo_c --update: %v\n%s", err, out)
	}
	compare(t)
	updated := repodataFiles(t, ours)
	generate(t, ours, repogen.Options{})
	if full := repodataFiles(t, ours); !reflect.DeepEqual(updated, full) {
		t.Fatal("the update differs from a full run")
	}

	for _, tc := range []struct{ name, target, want string }{
		{"dangling", "nowhere.rpm", "does not lead to a package"},
		{"directory", "sub", "leads to a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			link := filepath.Join(ours, "zz-"+tc.name+".rpm")
			if err := os.Symlink(tc.target, link); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(link)
			before := repodataFiles(t, ours)
			for _, incremental := range []bool{false, true} {
				_, err := repogen.Generate(context.Background(), ours, repogen.Options{Epoch: &epoch, Incremental: incremental})
				if err == nil || !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("incremental=%v: err = %v; want it to name %s and say %q", incremental, err, link, tc.want)
				}
			}
			if after := repodataFiles(t, ours); !reflect.DeepEqual(before, after) {
				t.Fatal("a refused run changed the repodata")
			}
		})
	}
}
