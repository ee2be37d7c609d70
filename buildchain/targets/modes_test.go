package targets

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/metalk8s/buildchain/internal/testenv"
)

// An nginx whose workers run as nobody, as on a node, serves the published
// images/<name>/<version>/ trees. They were once 0700 (os.MkdirTemp), and
// every manifest and blob answered 403.
func TestPublishedImagesReadableByUnprivilegedNginx(t *testing.T) {
	testenv.Need(t, "nginx")
	user := testenv.UnprivilegedUser(t)
	u := startUpstream(t)
	root := t.TempDir()
	// Only the test's own 0700 directories are opened; what the build
	// creates below root keeps the modes the build gives it.
	testenv.OpenToOthers(t, root)
	list := u.list(t, root, "library/alpha")
	b, log := u.openBuild(t, root, map[string]string{"IMAGES_FILE": list})
	if err := Images(context.Background(), b); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	n := testenv.StartNginx(t, testenv.NginxConfig{User: user, Server: "root " + b.ImagesDir() + ";"})

	var m v1.Manifest
	raw, err := os.ReadFile(filepath.Join(b.ImagesDir(), "alpha", "1.0", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	paths := []string{"/alpha/1.0/manifest.json", "/alpha/1.0/version", "/alpha/1.0/" + m.Config.Digest.Hex}
	for _, l := range m.Layers {
		paths = append(paths, "/alpha/1.0/"+l.Digest.Hex)
	}
	for _, p := range paths {
		resp, err := http.Get(n.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			fi, _ := os.Stat(filepath.Join(b.ImagesDir(), "alpha", "1.0"))
			t.Errorf("GET %s as %s: %s (images/alpha/1.0 is %v)", p, user, resp.Status, fi.Mode())
			continue
		}
		if want, _ := os.ReadFile(filepath.Join(b.ImagesDir(), filepath.FromSlash(p))); string(body) != string(want) {
			t.Errorf("GET %s: wrong body", p)
		}
	}
}
