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

// TestEndpointFor: a --listen that binds every address is not where the
// nodes pull from; the Bootstrap node's address is.
func TestEndpointFor(t *testing.T) {
	root := t.TempDir()
	for listen, want := range map[string]string{
		"127.0.0.1:9000": "127.0.0.1:9000",
		"10.1.2.3:8080":  "10.1.2.3:8080",
		"repo.local:80":  "repo.local:80",
		"0.0.0.0:8080":   "127.0.0.1:8080",
		"[::]:8081":      "127.0.0.1:8081",
		"[::1]:8081":     "[::1]:8081",
	} {
		if got := endpointFor(root, listen); got != want {
			t.Errorf("endpointFor(%s) without bootstrap.yaml = %s, want %s", listen, got, want)
		}
	}
	os.MkdirAll(filepath.Join(root, "etc/metalk8s"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/metalk8s/bootstrap.yaml"), []byte(`apiVersion: metalk8s.scality.com/v1alpha2
kind: BootstrapConfiguration
networks: {controlPlane: 10.0.0.0/16, workloadPlane: 10.0.0.0/16}
ca: {minion: bootstrap}
apiServer: {host: 10.0.0.1}
products: {metalk8s: [/isos/metalk8s]}
`), 0o644)
	if got := endpointFor(root, "0.0.0.0:8080"); got != "10.0.0.1:8080" {
		t.Errorf("endpointFor(0.0.0.0:8080) with apiServer.host 10.0.0.1 = %s", got)
	}
	if got := endpointFor(root, "127.0.0.1:8080"); got != "127.0.0.1:8080" {
		t.Errorf("an explicit address is kept: %s", got)
	}

	// Through Real: the Deployer points images at the endpoint, and the
	// Server writes it in .repo and hosts.toml files.
	p, err := Real(Env{Root: root, Listen: "0.0.0.0:8080"})
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Deployer.(kubeDeployer); d.cfg.Registry != "10.0.0.1:8080" {
		t.Errorf("Deployer registry %s", d.cfg.Registry)
	}
	if s := p.Server.(nginxServer); s.opts.Listen != "0.0.0.0:8080" || s.opts.Endpoint != "10.0.0.1:8080" {
		t.Errorf("Server options %+v", s.opts)
	}
}
