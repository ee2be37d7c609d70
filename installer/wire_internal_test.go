package installer

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDefaultListen(t *testing.T) {
	root := t.TempDir()
	if got := defaultListen(root); got != "127.0.0.1:8080" {
		t.Errorf("without bootstrap.yaml: %s", got)
	}
	os.MkdirAll(filepath.Join(root, "etc/metalk8s"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/metalk8s/bootstrap.yaml"), []byte(`apiVersion: metalk8s.scality.com/v1alpha2
kind: BootstrapConfiguration
networks: {controlPlane: 10.0.0.0/16, workloadPlane: 10.0.0.0/16}
ca: {minion: bootstrap}
apiServer: {host: 10.0.0.1}
products: {metalk8s: [/isos/metalk8s]}
`), 0o644)
	if got := defaultListen(root); got != "10.0.0.1:8080" {
		t.Errorf("with apiServer.host 10.0.0.1: %s", got)
	}
}
