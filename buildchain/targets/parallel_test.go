package targets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/config"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// Every part runs; missing parts come back in the order given and the
// error is the first in that order, whichever finished first.
func TestParallelPartsStableErrors(t *testing.T) {
	root := t.TempDir()
	t.Setenv("BUILD_ROOT", filepath.Join(root, "dist"))
	t.Setenv("SOURCE_DATE_EPOCH", "1")
	for _, jobs := range []string{"1", "4"} {
		t.Setenv("JOBS", jobs)
		cfg, err := config.Load(root)
		if err != nil {
			t.Fatal(err)
		}
		b, err := build.OpenConfig(cfg, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var ran atomic.Int32
		release := make(chan struct{})
		part := func(err error, wait bool) Target {
			return func(context.Context, *build.Session) error {
				ran.Add(1)
				if wait && jobs != "1" {
					<-release // finishes after the others
				}
				return err
			}
		}
		boom1, boom2 := errors.New("boom1"), errors.New("boom2")
		last := func(context.Context, *build.Session) error { ran.Add(1); close(release); return boom2 }
		if jobs == "1" {
			last = part(boom2, false)
		}
		missing, err := parallelParts(context.Background(), b,
			part(build.NotBuiltYet("salt", "x"), false), part(boom1, true), part(build.NotBuiltYet("other", "y"), false), last)
		b.Close()
		if ran.Load() != 4 || err != boom1 || len(missing) != 2 || !strings.Contains(missing[0].Error(), "salt") {
			t.Fatalf("JOBS=%s: ran %d, err %v, missing %v", jobs, ran.Load(), err, missing)
		}
	}
}

// JOBS=4 builds the same images and writes the same report order as
// JOBS=1.
func TestParallelImagesMatchSerial(t *testing.T) {
	testenv.Need(t, "skopeo")
	u := startUpstream(t)
	var trees, orders []string
	for _, jobs := range []string{"1", "4"} {
		root := t.TempDir()
		list := u.list(t, root, "library/alpha", "library/beta", "team/tools/gamma", "library/delta")
		b, log := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list, "JOBS": jobs})
		if err := Images(context.Background(), b); err != nil {
			t.Fatalf("%v\n%s", err, log)
		}
		b.Close()
		var tree []string
		filepath.WalkDir(b.ImagesDir(), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(b.ImagesDir(), p)
			line := rel + " " + d.Type().String()
			if d.Type().IsRegular() {
				line += " " + fmt.Sprintf("%x", fileSHA256(t, p))
			}
			tree = append(tree, line)
			return nil
		})
		trees = append(trees, strings.Join(tree, "\n"))
		var order []string
		for _, r := range report(t, b) {
			// Digests of step: inputs carry output mtimes, which differ
			// between two builds; the value inputs must not.
			line := r.Step
			if !strings.HasPrefix(r.Step, "images/dedup") {
				line += " " + r.InputDigest
			}
			order = append(order, line)
		}
		orders = append(orders, strings.Join(order, "\n"))
	}
	if trees[0] != trees[1] {
		t.Fatalf("JOBS=1 and JOBS=4 built different trees:\n%s\n---\n%s", trees[0], trees[1])
	}
	if orders[0] != orders[1] || orders[0] == "" {
		t.Fatalf("report orders differ:\n%s\n---\n%s", orders[0], orders[1])
	}
}
