package build

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// clean -n lists exactly what clean then removes, and removes nothing.
func TestCleanDryRunListsWhatCleanRemoves(t *testing.T) {
	for _, area := range []string{"all", "images", "stamps"} {
		t.Run(area, func(t *testing.T) {
			dir, cfg := markedRoot(t)
			for _, name := range []string{"root/images/a/1/manifest.json", "root/product.txt", "cache/blobs/sha256/ab", "cache/rpm/x.rpm", "bin/linux_amd64/mkiso",
				".stamps/x.json", "metalk8s.iso", "SHA256SUM", "build-report.json", "notes.txt"} {
				os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
				os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644)
			}
			before := listing(t, dir)
			dry := *cfg
			dry.DryRun = true
			var dryLog bytes.Buffer
			if err := Clean(&dry, area, &dryLog); err != nil {
				t.Fatal(err)
			}
			if after := listing(t, dir); after != before {
				t.Fatalf("a dry run changed the build root:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			var log bytes.Buffer
			if err := Clean(cfg, area, &log); err != nil {
				t.Fatal(err)
			}
			listed := strings.ReplaceAll(dryLog.String(), "would remove ", "")
			removed := strings.ReplaceAll(log.String(), "removing ", "")
			if listed != removed || listed == "" {
				t.Fatalf("dry run listed:\n%s\nclean removed:\n%s", listed, removed)
			}
			// Each listed path existed and is gone; what was not listed stays.
			for _, p := range strings.Fields(listed) {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s listed but not removed", p)
				}
				if !strings.Contains(before, strings.TrimPrefix(p, dir+"/")) {
					t.Errorf("%s listed but did not exist", p)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
				t.Error("notes.txt removed")
			}
			if area == "stamps" {
				if _, err := os.Stat(filepath.Join(dir, "root", "product.txt")); err != nil {
					t.Error("clean:stamps removed root/product.txt")
				}
			}
			// Nothing left to remove: both say so and list no path.
			dryLog.Reset()
			if err := Clean(&dry, area, &dryLog); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(dryLog.String(), "nothing to clean") {
				t.Errorf("second dry run: %q", dryLog.String())
			}
		})
	}
}
