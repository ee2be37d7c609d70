package demo_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/isomanifest"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// The end-to-end comparisons fail when they should: each difference
// between what a reader shows and the manifest is named.
func TestE2EComparisonsFail(t *testing.T) {
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	manifest := []isomanifest.Entry{{Path: "product.txt", Size: 3, SHA256: a}, {Path: "images/x/1/manifest.json", Size: 5, SHA256: b}}
	good := map[string]testenv.GuestEntry{
		"product.txt":              {Type: 'f', Size: 3, SHA256: a},
		"images":                   {Type: 'd'},
		"images/x/1/manifest.json": {Type: 'f', Size: 5, SHA256: b},
		isomanifest.Name:           {Type: 'f', Size: 9, SHA256: a},
		isomanifest.SignatureName:  {Type: 'f', Size: 9, SHA256: a},
	}
	if d := againstManifest(manifest, good); len(d) != 0 {
		t.Fatalf("a matching listing: %v", d)
	}
	bad := map[string]testenv.GuestEntry{}
	for k, v := range good {
		bad[k] = v
	}
	bad["product.txt"] = testenv.GuestEntry{Type: 'f', Size: 3, SHA256: b}
	delete(bad, "images/x/1/manifest.json")
	bad["images/stray"] = testenv.GuestEntry{Type: 'f', Size: 1, SHA256: a}
	bad["images/link"] = testenv.GuestEntry{Type: 'l', Target: "x"}
	delete(bad, isomanifest.SignatureName)
	got := strings.Join(againstManifest(manifest, bad), "\n")
	for _, want := range []string{"product.txt: sha256 " + b, "missing images/x/1/manifest.json", "images/stray (f): not in the manifest", "images/link (l): not in the manifest", "missing " + isomanifest.SignatureName} {
		if !strings.Contains(got, want) {
			t.Errorf("differences do not name %q:\n%s", want, got)
		}
	}
	bad = map[string]testenv.GuestEntry{"product.txt": {Type: 'f', Size: 4, SHA256: a}, "images/x/1/manifest.json": {Type: 'd'}}
	got = strings.Join(againstManifest(manifest, bad), "\n")
	for _, want := range []string{"product.txt: 4 bytes, the manifest says 3", "images/x/1/manifest.json: type d"} {
		if !strings.Contains(got, want) {
			t.Errorf("differences do not name %q:\n%s", want, got)
		}
	}

	listing := `
Directory listing of /
drwxr-xr-x   6    0    0            2048 Nov 14 2023 [     23 02]  . 
-rw-r--r--   1    0    0             115 Nov 14 2023 [    343 00]  product.txt 

Directory listing of /images/demo 1/
-rw-r--r--   2    0    0           66153 Nov 14 2023 [    400 00]  a b 
`
	files := isoinfoFiles(t, listing)
	if len(files) != 2 || files["product.txt"] != 115 || files["images/demo 1/a b"] != 66153 {
		t.Fatalf("isoinfo listing read as %v", files)
	}
	var rec recorder
	sameFiles(&rec, "tool", map[string]int64{"product.txt": 115, "a": 1, "b": 2}, map[string]int64{"product.txt": 114, "b": 2, "c": 3})
	for _, want := range []string{"missing a", "product.txt: 114 bytes, want 115", "unexpected c"} {
		if !strings.Contains(rec.msg, want) {
			t.Errorf("sameFiles does not name %q:\n%s", want, rec.msg)
		}
	}
}

// recorder is a testing.TB that keeps what Errorf said.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.msg += fmt.Sprintf(format, args...)
}
