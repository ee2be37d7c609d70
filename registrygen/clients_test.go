package registrygen

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/metalk8s/buildchain/internal/testenv"
)

// run runs a client program, failing the test with its output.
func run(t testing.TB, timeout time.Duration, prog string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, prog, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return out
}

// TestClientSkopeo inspects and copies every image back to dir: with the
// reference implementation of that layout, from both servers.
func TestClientSkopeo(t *testing.T) {
	skopeo := testenv.Need(t, "skopeo")[0]
	tree, servers := bothServers(t)
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			for _, im := range tree.images {
				ref := "docker://" + s.host + "/" + im.ref()
				raw := run(t, time.Minute, skopeo, "inspect", "--raw", "--tls-verify=false", ref)
				if sha(raw) != im.digest {
					t.Errorf("skopeo inspect --raw %s: digest %s, want %s", ref, sha(raw), im.digest)
				}
				for _, c := range im.children {
					cref := "docker://" + s.host + "/" + im.name + "@" + c
					if raw := run(t, time.Minute, skopeo, "inspect", "--raw", "--tls-verify=false", cref); sha(raw) != c {
						t.Errorf("skopeo inspect --raw %s: digest %s", cref, sha(raw))
					}
				}
				// Without --raw, skopeo resolves the index to this
				// platform's image and reads its config blob too.
				var info struct{ Digest, Name string }
				if err := json.Unmarshal(run(t, time.Minute, skopeo, "inspect", "--tls-verify=false", ref), &info); err != nil {
					t.Fatal(err)
				}
				if want := im.digest; len(im.children) == 0 && info.Digest != want {
					t.Errorf("skopeo inspect %s: Digest %s, want %s", ref, info.Digest, want)
				}

				dst := filepath.Join(t.TempDir(), "copy")
				run(t, 2*time.Minute, skopeo, "copy", "--quiet", "--all", "--preserve-digests", "--src-tls-verify=false", ref, "dir:"+dst)
				src := filepath.Join(tree.root, filepath.FromSlash(im.name), im.tag)
				if got, want := dirDigests(t, dst), dirDigests(t, src); !reflect.DeepEqual(got, want) {
					t.Errorf("skopeo copy %s: files %v, want %v", ref, got, want)
				}
			}
		})
	}
}

// dirDigests maps each file of a dir: image to its content digest.
func dirDigests(t testing.TB, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = sha(b)
	}
	return out
}

// TestClientGGCR pulls every image with go-containerregistry's remote and
// validates every byte (validate.Image / validate.Index fetch and check
// all manifests, configs and layers).
func TestClientGGCR(t *testing.T) {
	tree, servers := bothServers(t)
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			tags := map[string][]string{}
			for _, im := range tree.images {
				tags[im.name] = append(tags[im.name], im.tag)
				ref, err := name.ParseReference(s.host+"/"+im.ref(), name.Insecure)
				if err != nil {
					t.Fatal(err)
				}
				desc, err := remote.Get(ref)
				if err != nil {
					t.Fatalf("remote.Get %s: %v", ref, err)
				}
				if desc.Digest.String() != im.digest || string(desc.MediaType) != im.mediaType {
					t.Errorf("remote.Get %s: %s %s, want %s %s", ref, desc.Digest, desc.MediaType, im.digest, im.mediaType)
				}
				if len(im.children) > 0 {
					idx, err := desc.ImageIndex()
					if err != nil {
						t.Fatal(err)
					}
					if err := validate.Index(idx); err != nil {
						t.Errorf("validate.Index %s: %v", ref, err)
					}
					continue
				}
				img, err := desc.Image()
				if err != nil {
					t.Fatal(err)
				}
				if err := validate.Image(img); err != nil {
					t.Errorf("validate.Image %s: %v", ref, err)
				}
			}
			for repo, want := range tags {
				r, err := name.NewRepository(s.host+"/"+repo, name.Insecure)
				if err != nil {
					t.Fatal(err)
				}
				got, err := remote.List(r)
				sort.Strings(want)
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("remote.List %s: %v %v, want %v", r, got, err, want)
				}
			}
		})
	}
}

// TestClientContainerd pulls every image with `ctr images pull
// --plain-http`, which also unpacks this platform's layers.
func TestClientContainerd(t *testing.T) {
	testenv.Short(t, "starts containerd")
	addr := testenv.StartContainerd(t)
	ctr := testenv.Need(t, "ctr")[0]
	tree, servers := bothServers(t)
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			for _, im := range tree.images {
				ref := s.host + "/" + im.ref()
				run(t, 2*time.Minute, ctr, "--address", addr, "--namespace", "registrygen", "images", "pull",
					"--plain-http", "--snapshotter", "native", ref)
				out := run(t, time.Minute, ctr, "--address", addr, "--namespace", "registrygen", "images", "list", "name=="+ref)
				if !strings.Contains(string(out), im.digest) {
					t.Errorf("ctr images list %s: no digest %s in\n%s", ref, im.digest, out)
				}
			}
		})
	}
}

// TestClientPodman pulls every image with podman into temporary storage.
func TestClientPodman(t *testing.T) {
	testenv.Short(t, "runs podman")
	podman := testenv.Need(t, "podman")[0]
	if os.Geteuid() != 0 {
		t.Skip("podman with a temporary --root needs root here")
	}
	tree, servers := bothServers(t)
	dir, err := os.MkdirTemp("", "rg-podman-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// vfs layers may hold read-only directories.
		exec.Command("chmod", "-R", "u+w", dir).Run()
		os.RemoveAll(dir)
	})
	base := []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
		"--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none",
		"--tmpdir", filepath.Join(dir, "tmp")}
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			for _, im := range tree.images {
				ref := s.host + "/" + im.ref()
				run(t, 2*time.Minute, podman, append(base, "pull", "--quiet", "--tls-verify=false", ref)...)
				out := run(t, time.Minute, podman, append(base, "image", "inspect", "--format", "{{.Digest}}", ref)...)
				if got := strings.TrimSpace(string(out)); got != im.digest {
					t.Errorf("podman image inspect %s: digest %s, want %s", ref, got, im.digest)
				}
			}
		})
	}
}
