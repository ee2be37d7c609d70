package registrygen

import (
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/internal/testenv"
)

// registryServer is one of the two implementations under test.
type registryServer struct {
	name string // "nginx" or "go"
	host string // 127.0.0.1:PORT
}

func (s registryServer) url(p string) string { return "http://" + s.host + p }

// startNginxRegistry serves cfg's roots with nginx through the generated
// config (nginx -t runs first, in testenv.StartNginx).
func startNginxRegistry(t testing.TB, cfg Config) registryServer {
	t.Helper()
	conf, err := Generate(cfg)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	n := testenv.StartNginx(t, testenv.NginxConfig{Server: string(conf)})
	u, _ := url.Parse(n.URL)
	return registryServer{name: "nginx", host: u.Host}
}

// startGoRegistry serves roots with the built-in Handler on 127.0.0.1.
func startGoRegistry(t testing.TB, roots ...Root) registryServer {
	t.Helper()
	h, err := NewHandler(roots...)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return registryServer{name: "go", host: u.Host}
}

// bothServers starts nginx and the Go server over the shared test tree.
func bothServers(t *testing.T) (*fixtureTree, []registryServer) {
	t.Helper()
	tree := testTree(t)
	root := Root{Dir: tree.root}
	return tree, []registryServer{startNginxRegistry(t, Config{Roots: []Root{root}}), startGoRegistry(t, root)}
}

// nginxCheck runs `nginx -t` on conf placed in a server block.
func nginxCheck(t testing.TB, conf string) error {
	t.Helper()
	bin := testenv.Need(t, "nginx")[0]
	prefix := t.TempDir()
	if err := os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(path, []byte(testenv.NginxConf(prefix, testenv.FreePort(t), testenv.NginxConfig{Server: conf})), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-t", "-q", "-p", prefix, "-c", path).CombinedOutput()
	if err != nil {
		return &nginxError{err: err, out: strings.TrimSpace(string(out))}
	}
	return nil
}

type nginxError struct {
	err error
	out string
}

func (e *nginxError) Error() string { return "nginx -t: " + e.err.Error() + ": " + e.out }
