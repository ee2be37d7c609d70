package isosbom

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/internal/cdxtest"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// The SBOM of a tree with a shipped Go binary validates against the
// CycloneDX 1.7 JSON schema; a broken document does not (the validator
// can fail).
func TestSchema(t *testing.T) {
	gobin := testenv.Need(t, "go")[0]
	root := t.TempDir()
	if out, err := exec.Command(gobin, "build", "-o", filepath.Join(root, "bin", "tool"), "github.com/metalk8s/buildchain/cmd/registrygen").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bom, err := Generate(context.Background(), os.DirFS(root), Options{Product: "MetalK8s", Version: "2.0.0-dev", Epoch: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Encode(bom)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := cdxtest.Validate(t, doc); err != nil {
		t.Fatalf("the SBOM does not validate: %v\n%s", err, out)
	}
	bad := strings.Replace(string(doc), `"type": "application"`, `"type": "bogus"`, 1)
	if out, err := cdxtest.Validate(t, []byte(bad)); err == nil {
		t.Fatalf("the validator accepted a bogus component type:\n%s", out)
	}
}
