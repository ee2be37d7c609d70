package solution

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
	"github.com/metalk8s/buildchain/internal/testenv"
	"github.com/metalk8s/buildchain/registrygen"
)

// writeTestImage lays out a small but real image (a gzip tar layer and its
// config) in the dir: format.
func writeTestImage(t *testing.T, dir, content string) {
	t.Helper()
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	body := []byte(content)
	if err := tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write(body)
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarBuf.Bytes())
	zw.Close()
	layer := gz.Bytes()
	config := []byte(`{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["` + oci.DigestOf(tarBuf.Bytes()) + `"]}}`)
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": oci.DigestOf(config), "size": len(config)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": oci.DigestOf(layer), "size": len(layer)}},
	}
	manifest, _ := json.Marshal(m)
	mustWrite(t, filepath.Join(dir, "manifest.json"), manifest)
	mustWrite(t, filepath.Join(dir, "version"), []byte(dirlayout.Version))
	mustWrite(t, filepath.Join(dir, strings.TrimPrefix(oci.DigestOf(config), "sha256:")), config)
	mustWrite(t, filepath.Join(dir, strings.TrimPrefix(oci.DigestOf(layer), "sha256:")), layer)
}

func mustWrite(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func exampleDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("..", "..", ExampleDir))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

const testProduct = "NAME=example-solution\nVERSION=1.0.0\nREQUIRE_METALK8S=\">=2.0\"\nARCHIVE_LAYOUT_VERSION=1\nGIT=test\nBUILD_TIMESTAMP=2024-01-02T03:04:05Z\n"

// validTree writes, by hand, an archive tree as chapter 12.2 describes it:
// the example's Operator and UI manifests, and the two images they name.
func validTree(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "root")
	writeTestImage(t, filepath.Join(root, "images", "example-solution-operator", "1.0.0"), "operator")
	writeTestImage(t, filepath.Join(root, "images", "example-solution-ui", "1.0.0"), "ui")
	if err := copyTree(filepath.Join(exampleDir(t), "operator", "deploy"), filepath.Join(root, "operator", "deploy"), false); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(filepath.Join(exampleDir(t), "ui", "deployment.yaml"), filepath.Join(root, "ui", "deployment.yaml")); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(root, "product.txt"), []byte(testProduct))
	regenerateConfig(t, root)
	return root
}

func regenerateConfig(t *testing.T, root string) {
	t.Helper()
	conf, err := registrygen.GenerateRoot(filepath.Join(root, "images"), "{{ repository }}", "{{ registry_root }}", registrygen.OmitConstants)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(root, RegistryConfig), conf)
}

// mkisofs runs the invocation documented in chapter 12.2.1.
func mkisofs(t *testing.T, genisoimage, root, volid string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "solution.iso")
	// genisoimage is known to hang on some inputs (link targets over 255
	// bytes): bound it rather than the whole test binary.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, genisoimage, "-output", out, "-R", "-J", "-joliet-long", "-l", "-V", volid,
		"-gid", "0", "-uid", "0", "-iso-level", "3", "-input-charset", "utf-8", "-output-charset", "utf-8", root)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("genisoimage: %v\n%s", err, b)
	}
	return out
}

func validateOrFail(t *testing.T, p string) *Report {
	t.Helper()
	rep, err := Validate(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestValidTree(t *testing.T) {
	root := validTree(t)
	rep := validateOrFail(t, root)
	if !rep.OK() {
		t.Fatal(rep.Err())
	}
	if len(rep.Images) != 2 || rep.Product.ID() != "example-solution-1.0.0" || !rep.UI || rep.Format != "directory" {
		t.Fatalf("report %+v", rep)
	}
}

// TestGenisoimageArchives: a hand-made archive (the documented mkisofs
// invocation) validates, and each single fault is reported, alone, with its
// path.
func TestGenisoimageArchives(t *testing.T) {
	gen := testenv.Need(t, "genisoimage")[0]
	root := validTree(t)
	rep := validateOrFail(t, mkisofs(t, gen, root, "example-solution 1.0.0"))
	if !rep.OK() {
		t.Fatal(rep.Err())
	}
	if rep.Format != "iso" || rep.VolumeID != "example-solution 1.0.0" || len(rep.Images) != 2 {
		t.Fatalf("report %+v", rep)
	}

	opImage := filepath.Join("images", "example-solution-operator", "1.0.0")
	layerOf := func(root string) string {
		var m v1.Manifest
		data, _ := os.ReadFile(filepath.Join(root, opImage, "manifest.json"))
		json.Unmarshal(data, &m)
		return filepath.ToSlash(filepath.Join(opImage, m.Layers[0].Digest.Hex))
	}
	for _, tc := range []struct {
		name     string
		fault    func(t *testing.T, root string)
		volid    string
		path     string // "@layer" is the operator image's layer
		contains string
	}{
		{"no product.txt", func(t *testing.T, root string) { os.Remove(filepath.Join(root, "product.txt")) }, "", "product.txt", "missing"},
		{"bad REQUIRE_METALK8S", func(t *testing.T, root string) {
			mustWrite(t, filepath.Join(root, "product.txt"), []byte(strings.Replace(testProduct, ">=2.0", "at least 2.0", 1)))
		}, "", "product.txt", "REQUIRE_METALK8S"},
		{"blob removed", func(t *testing.T, root string) { os.Remove(filepath.Join(root, layerOf(root))) }, "", "@layer", "missing"},
		{"blob with a byte flipped", func(t *testing.T, root string) {
			p := filepath.Join(root, layerOf(root))
			data, _ := os.ReadFile(p)
			data[len(data)/2] ^= 0x01
			mustWrite(t, p, data)
		}, "", "@layer", "corrupt"},
		{"image referenced but not shipped", func(t *testing.T, root string) {
			os.RemoveAll(filepath.Join(root, "images", "example-solution-ui"))
			regenerateConfig(t, root)
		}, "", "ui/deployment.yaml", "example-solution-ui:1.0.0\" is not in the archive"},
		{"symlink to /etc", func(t *testing.T, root string) {
			if err := os.Symlink("/etc", filepath.Join(root, "operator", "etc")); err != nil {
				t.Fatal(err)
			}
		}, "", "operator/etc", "escapes the archive"},
		{"volume ID mismatch", func(t *testing.T, root string) {}, "example-solution 1.0.1", "", "volume ID is \"example-solution 1.0.1\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := validTree(t)
			want := tc.path
			if want == "@layer" {
				want = layerOf(root)
			}
			tc.fault(t, root)
			volid := tc.volid
			if volid == "" {
				volid = "example-solution 1.0.0"
			}
			rep := validateOrFail(t, mkisofs(t, gen, root, volid))
			if len(rep.Problems) != 1 || rep.Problems[0].Path != want || !strings.Contains(rep.Problems[0].Message, tc.contains) {
				t.Fatalf("want exactly one problem at %q containing %q, got %v", want, tc.contains, rep.Problems)
			}
		})
	}
}

// TestDirectoryFaults: faults checked on trees (the same code reads ISOs).
func TestDirectoryFaults(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fault    func(t *testing.T, root string)
		path     string
		contains string
	}{
		{"fifo", func(t *testing.T, root string) {
			if err := syscall.Mkfifo(filepath.Join(root, "ui", "pipe"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "ui/pipe", "special file (named pipe)"},
		{"relative escape", func(t *testing.T, root string) {
			os.Symlink("../../../x", filepath.Join(root, "operator", "up"))
		}, "operator/up", "escapes"},
		{"CRD of the wrong kind", func(t *testing.T, root string) {
			mustWrite(t, filepath.Join(root, CRDsDir, "x.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"))
		}, CRDsDir + "/x.yaml", "apiextensions.k8s.io"},
		{"CRD misnamed", func(t *testing.T, root string) {
			p := filepath.Join(root, CRDsDir, "examples_crd.yaml")
			data, _ := os.ReadFile(p)
			mustWrite(t, p, bytes.Replace(data, []byte("name: examples.example"), []byte("name: things.example"), 1))
		}, CRDsDir + "/examples_crd.yaml", "<spec.names.plural>.<spec.group>"},
		{"object without a name", func(t *testing.T, root string) {
			mustWrite(t, filepath.Join(root, OperatorDir, "service_account.yaml"), []byte("apiVersion: v1\nkind: ServiceAccount\nmetadata: {}\n"))
		}, OperatorDir + "/service_account.yaml", "without metadata.name"},
		{"invalid YAML", func(t *testing.T, root string) {
			mustWrite(t, filepath.Join(root, OperatorDir, "role.yaml"), []byte("kind: [\n"))
		}, OperatorDir + "/role.yaml", "invalid YAML"},
		{"missing role binding", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, OperatorDir, "role_binding.yaml"))
		}, OperatorDir + "/role_binding.yaml", "missing"},
		{"bad version file", func(t *testing.T, root string) {
			mustWrite(t, filepath.Join(root, "images", "example-solution-ui", "1.0.0", "version"), []byte("v2\n"))
		}, "images/example-solution-ui/1.0.0/version", "Directory Transport Version"},
		{"stale registry config", func(t *testing.T, root string) {
			writeTestImage(t, filepath.Join(root, "images", "extra", "2.0.0"), "extra")
		}, RegistryConfig, "extra:2.0.0"},
		{"image registrygen's policy refuses", func(t *testing.T, root string) {
			writeTestImage(t, filepath.Join(root, "images", "extra", "2..0"), "extra")
		}, RegistryConfig, "cannot be checked: registrygen cannot generate a template from images/: images/extra/2..0: tag \"2..0\" contains \"..\""},
		{"unparsable manifest", func(t *testing.T, root string) {
			mustWrite(t, filepath.Join(root, "images", "example-solution-ui", "1.0.0", "manifest.json"), []byte("{"))
		}, "images/example-solution-ui/1.0.0/manifest.json", "not an image manifest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := validTree(t)
			tc.fault(t, root)
			rep := validateOrFail(t, root)
			found := false
			for _, p := range rep.Problems {
				found = found || (p.Path == tc.path && strings.Contains(p.Message, tc.contains))
			}
			if !found {
				t.Fatalf("want a problem at %q containing %q, got %v", tc.path, tc.contains, rep.Problems)
			}
		})
	}
}

// TestLinkChains: links are resolved as the kernel does, through every
// component, so a chain of relative links that a textual check passes
// (a/b/root → ../../.., then root/../../../../etc) is refused, in a tree
// and in the ISOs genisoimage and the project's writer make of it, while
// legitimate chains pass.
func TestLinkChains(t *testing.T) {
	type link struct{ path, target string }
	cases := []struct {
		name  string
		links []link
		bad   map[string]string // path → message part; others must pass
	}{
		{"issue chain", []link{{"links/a/b/root", "../../.."}, {"links/a/b/esc", "root/../../../../etc"}},
			map[string]string{"links/a/b/esc": "through the links links/a/b/root, it goes above the archive root"}},
		{"link cancelled by ..", []link{{"links/a/b/root", "../../.."}, {"links/esc", "a/b/root/../etc"}},
			map[string]string{"links/esc": "escapes the archive"}},
		{"absolute through a relative link", []link{{"links/abs", "/etc"}, {"links/rel", "abs/passwd"}},
			map[string]string{"links/abs": "absolute path \"/etc\"", "links/rel": "reaches the absolute path \"/etc\""}},
		{"loop", []link{{"links/l1", "l2"}, {"links/l2", "l1"}},
			map[string]string{"links/l1": "more than 40 links", "links/l2": "more than 40 links"}},
		{"legitimate", []link{
			{"links/up", "../product.txt"},
			{"links/a/b/up", "../../../operator/deploy/role.yaml"},
			{"links/crds", "../operator/deploy/crds"},                  // a directory link …
			{"links/deploy", "crds/.."},                                // … as an intermediate component
			{"links/role", "deploy/role.yaml"},                         // … twice
			{"links/deeper", "crds/../../../product.txt"},              // ".." from where the link leads, not where it is
			{"links/dangling", "missing/file"},                         // dangling inside: allowed, as before
			{"links/c0", "c1"}, {"links/c1", "c2"}, {"links/c2", "up"}, // a chain
		}, nil},
	}
	gen := testenv.Need(t, "genisoimage")[0]
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := validTree(t)
			for _, l := range tc.links {
				p := filepath.Join(root, filepath.FromSlash(l.path))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(l.target, p); err != nil {
					t.Fatal(err)
				}
			}
			zero := uint32(0)
			ours := filepath.Join(t.TempDir(), "ours.iso")
			if _, err := iso.Write(context.Background(), ours, root, iso.Options{VolumeID: "example-solution 1.0.0", RockRidge: true, Joliet: true, JolietLong: true,
				UID: &zero, GID: &zero, Epoch: time.Unix(1, 0), NoChecksumFile: true}); err != nil {
				t.Fatal(err)
			}
			for _, archive := range []string{root, mkisofs(t, gen, root, "example-solution 1.0.0"), ours} {
				rep := validateOrFail(t, archive)
				got := map[string]string{}
				for _, p := range rep.Problems {
					got[p.Path] = p.Message
				}
				for p, want := range tc.bad {
					if !strings.Contains(got[p], want) {
						t.Errorf("%s: %s: want a problem containing %q, got %q", filepath.Base(archive), p, want, got[p])
					}
				}
				if len(got) != len(tc.bad) {
					t.Errorf("%s: want problems at %d links, got %v", filepath.Base(archive), len(tc.bad), rep.Problems)
				}
			}
		})
	}
}

// TestRegistryConfigTampered: registry-config.inc.j2 is rendered by
// MetalK8s' Jinja and included in its registry's nginx, so it must be
// exactly what registrygen generates from the archive's images/. Each
// tampered template is refused, alone, naming its first differing line, in
// a tree and in an ISO image of it read in place.
func TestRegistryConfigTampered(t *testing.T) {
	edit := func(f func(t *testing.T, conf string) string) func(t *testing.T, root string) {
		return func(t *testing.T, root string) {
			p := filepath.Join(root, RegistryConfig)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			mustWrite(t, p, []byte(f(t, string(data))))
		}
	}
	replaceOnce := func(t *testing.T, s, old, new string) string {
		t.Helper()
		if !strings.Contains(s, old) {
			t.Fatalf("the template has no %q", old)
		}
		return strings.Replace(s, old, new, 1)
	}
	for _, tc := range []struct {
		name     string
		fault    func(t *testing.T, root string)
		contains []string
	}{
		{"location serving /etc/", edit(func(t *testing.T, conf string) string {
			return conf + "location /etc/ { alias /etc/; }\n"
		}), []string{` is "location /etc/ { alias /etc/; }\n", registrygen generates end of file`}},
		{"location inside a repository's", edit(func(t *testing.T, conf string) string {
			return replaceOnce(t, conf, "    location /v2/{{ repository }}/example-solution-ui/blobs/ {\n",
				"    location /v2/{{ repository }}/etc/ { alias /etc/; }\n    location /v2/{{ repository }}/example-solution-ui/blobs/ {\n")
		}), []string{`"    location /v2/{{ repository }}/etc/ { alias /etc/; }\n"`, "regenerate it"}},
		{"Jinja statement", edit(func(t *testing.T, conf string) string {
			return "{% for x in ().__class__.__base__.__subclasses__() %}{% endfor %}\n" + conf
		}), []string{"line 1 is \"{% for x in ().__class__", "registrygen generates \"# Generated by registrygen"}},
		{"Jinja filter in a placeholder", edit(func(t *testing.T, conf string) string {
			return replaceOnce(t, conf, "alias {{ registry_root }}/", "alias {{ registry_root | attr('__class__') }}/")
		}), []string{"attr('__class__')", "alias {{ registry_root }}/"}},
		{"changed digest", func(t *testing.T, root string) {
			m, err := os.ReadFile(filepath.Join(root, "images", "example-solution-ui", "1.0.0", "manifest.json"))
			if err != nil {
				t.Fatal(err)
			}
			edit(func(t *testing.T, conf string) string {
				return strings.ReplaceAll(conf, oci.DigestOf(m), oci.DigestOf([]byte("another manifest")))
			})(t, root)
		}, []string{oci.DigestOf([]byte("another manifest"))}},
		{"image no longer shipped", func(t *testing.T, root string) {
			writeTestImage(t, filepath.Join(root, "images", "extra", "2.0.0"), "extra")
			regenerateConfig(t, root)
			os.RemoveAll(filepath.Join(root, "images", "extra"))
		}, []string{"serves repositories images/ does not hold: extra"}},
		{"image not served", func(t *testing.T, root string) {
			writeTestImage(t, filepath.Join(root, "images", "extra", "2.0.0"), "extra")
		}, []string{"does not serve the image(s) extra:2.0.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := validTree(t)
			tc.fault(t, root)
			zero := uint32(0)
			image := filepath.Join(t.TempDir(), "solution.iso")
			if _, err := iso.Write(context.Background(), image, root, iso.Options{VolumeID: "example-solution 1.0.0", RockRidge: true, Joliet: true, JolietLong: true,
				UID: &zero, GID: &zero, Epoch: time.Unix(1, 0), NoChecksumFile: true}); err != nil {
				t.Fatal(err)
			}
			for _, archive := range []string{root, image} {
				rep := validateOrFail(t, archive)
				if len(rep.Problems) != 1 || rep.Problems[0].Path != RegistryConfig {
					t.Fatalf("%s: want exactly one problem, at %s, got %v", filepath.Base(archive), RegistryConfig, rep.Problems)
				}
				msg := rep.Problems[0].Message
				for _, want := range append(tc.contains, "is not the template registrygen generates from images/", "regenerate it") {
					if !strings.Contains(msg, want) {
						t.Errorf("%s: want the problem to contain %q, got %q", filepath.Base(archive), want, msg)
					}
				}
			}
		})
	}
}

// TestBlockDevice validates a Solution ISO through a read-only loop
// device, as a CD-ROM drive gives it (its size is not in its stat): the
// same report as the file's, and a fault on the device is found.
func TestBlockDevice(t *testing.T) {
	gen := testenv.Need(t, "genisoimage")[0]
	losetup := testenv.Need(t, "losetup")[0]
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	attach := func(isoPath string) string {
		t.Helper()
		out, err := exec.Command(losetup, "--read-only", "--find", "--show", isoPath).CombinedOutput()
		if err != nil {
			t.Fatalf("losetup %s: %v\n%s", isoPath, err, out)
		}
		dev := strings.TrimSpace(string(out))
		t.Cleanup(func() { exec.Command(losetup, "-d", dev).Run() })
		return dev
	}
	isoPath := mkisofs(t, gen, validTree(t), "example-solution 1.0.0")
	dev := attach(isoPath)
	if fi, err := os.Stat(dev); err != nil || fi.Mode()&os.ModeDevice == 0 || fi.Size() != 0 {
		t.Fatalf("%s is not a block device of no stat size: %v %v", dev, fi, err)
	}
	rep := validateOrFail(t, dev)
	if !rep.OK() {
		t.Fatal(rep.Err())
	}
	file := validateOrFail(t, isoPath)
	if rep.Format != "iso" || rep.Archive != dev || rep.VolumeID != file.VolumeID || rep.Product.ID() != "example-solution-1.0.0" ||
		!reflect.DeepEqual(rep.Images, file.Images) || len(rep.Images) != 2 || !rep.UI {
		t.Fatalf("report through %s:\n%+v\nthrough the file:\n%+v", dev, rep, file)
	}

	// A fault is read through the device as through the file.
	bad := validTree(t)
	os.Remove(filepath.Join(bad, "product.txt"))
	rep = validateOrFail(t, attach(mkisofs(t, gen, bad, "example-solution 1.0.0")))
	if len(rep.Problems) != 1 || rep.Problems[0].Path != "product.txt" {
		t.Fatalf("problems through the device: %v", rep.Problems)
	}

	// A character device is still refused, by name.
	if _, err := Validate(context.Background(), "/dev/null"); err == nil || !strings.Contains(err.Error(), "/dev/null is neither") {
		t.Errorf("Validate(/dev/null) = %v", err)
	}
}
