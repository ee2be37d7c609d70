package targets

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/config"
)

func TestVagrantOptionsFromConfig(t *testing.T) {
	root := t.TempDir()
	t.Setenv("BUILD_ROOT", filepath.Join(root, "out"))
	t.Setenv("VAGRANT_PROVIDER", "libvirt")
	t.Setenv("VAGRANT_UP_ARGS", "--provision --provider $VAGRANT_PROVIDER")
	t.Setenv("VAGRANT_SNAPSHOT_NAME", "ready")
	cfg, err := config.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	o := VagrantOptions(cfg)
	session := &build.Session{Cfg: cfg}
	if o.ISO != session.IsoPath() || o.Dir != filepath.Join(root, "vagrant") || o.Provider != "libvirt" ||
		!reflect.DeepEqual(o.UpArgs, []string{"--provision", "--provider", "libvirt"}) || o.Snapshot != "ready" {
		t.Fatalf("got %+v", o)
	}
}

// With no ISO built, vagrant:up says so and how to build it, before it
// looks for vagrant at all.
func TestVagrantUpWithoutISO(t *testing.T) {
	root := t.TempDir()
	t.Setenv("BUILD_ROOT", filepath.Join(root, "out"))
	for _, k := range []string{"VAGRANT_PROVIDER", "VAGRANT_UP_ARGS", "VAGRANT_SNAPSHOT_NAME"} {
		t.Setenv(k, "")
	}
	if err := os.MkdirAll(filepath.Join(root, "vagrant"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := VagrantUp(context.Background(), root)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(root, "out", "metalk8s.iso")) ||
		!strings.Contains(err.Error(), "go run mage.go iso") {
		t.Fatalf("got %v", err)
	}
}
