package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/internal/testenv"
	"github.com/metalk8s/buildchain/registrygen"
)

// writeImage writes a minimal Docker v2s2 dir: image at root/rel.
func writeImage(t *testing.T, root, rel string) {
	t.Helper()
	dir := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	sum := sha256.Sum256(config)
	h := hex.EncodeToString(sum[:])
	manifest := `{"schemaVersion":2,"mediaType":"` + registrygen.MediaTypeDockerManifest + `","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":37,"digest":"sha256:` + h + `"},"layers":[]}`
	for name, data := range map[string]string{"manifest.json": manifest, "version": "Directory Transport Version: 1.1\n", h: string(config)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestGenerateFlags(t *testing.T) {
	root := t.TempDir()
	writeImage(t, root, "library/busybox/1.36")
	want := func(cfg registrygen.Config) string {
		b, err := registrygen.Generate(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	one := func(prefix, serverRoot string, mode registrygen.ConstantsMode) registrygen.Config {
		return registrygen.Config{Roots: []registrygen.Root{{Dir: root, NamePrefix: prefix, ServerRoot: serverRoot}}, Constants: mode}
	}
	constants := want(registrygen.Config{Constants: registrygen.OnlyConstants})
	for _, c := range []struct {
		args []string
		cfg  registrygen.Config
	}{
		{[]string{root}, one("", "", registrygen.WithConstants)},
		{[]string{"--name-prefix", "{{ repository }}", "--server-root", "{{ registry_root }}", root}, one("{{ repository }}", "{{ registry_root }}", registrygen.WithConstants)},
		// argparse lets flags follow ROOT; so does registrygen.
		{[]string{root, "--omit-constants", "--name-prefix=p"}, one("p", "", registrygen.OmitConstants)},
		{[]string{"--only-constants", root}, registrygen.Config{Constants: registrygen.OnlyConstants}},
		{[]string{"-server-root", "$r", "--", root}, one("", "$r", registrygen.WithConstants)},
	} {
		code, out, stderr := runCLI(t, c.args...)
		if code != 0 || out != want(c.cfg) {
			t.Errorf("%q: exit %d, stderr %s, output differs: %v", c.args, code, stderr, out != want(c.cfg))
			continue
		}
		// nginx -t (in StartNginx) on what the command wrote, rendered
		// and completed the way it would be deployed.
		conf := "set $r " + root + ";\n" + strings.NewReplacer("{{ repository }}", "solution-1.0", "{{ registry_root }}", root).Replace(out)
		if c.cfg.Constants == registrygen.OmitConstants {
			conf = constants + conf
		}
		testenv.StartNginx(t, testenv.NginxConfig{Server: conf})
	}
	// ROOT defaults to the working directory.
	wd, _ := os.Getwd()
	t.Chdir(root)
	code, out, _ := runCLI(t, "--server-root", "/srv")
	t.Chdir(wd)
	if code != 0 || out != want(one("", "/srv", registrygen.WithConstants)) {
		t.Errorf("default ROOT: exit %d", code)
	}
}

func TestGenerateErrors(t *testing.T) {
	root := t.TempDir()
	writeImage(t, root, "a;b/1.0")
	other := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--omit-constants", "--only-constants", other}, "mutually exclusive"},
		{[]string{"--server-root", "/srv", root, other}, "one ROOT"},
		{[]string{root}, filepath.Join(root, "a;b", "1.0")},
		{[]string{"--server-root", "srv", other}, "server root"},
		{[]string{"--bogus"}, "bogus"},
	} {
		code, out, stderr := runCLI(t, c.args...)
		if code == 0 || out != "" || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q (want %q)", c.args, code, out, stderr, c.want)
		}
	}
}

// TestOutputFile: -o writes the file atomically and leaves nothing behind
// on failure.
func TestOutputFile(t *testing.T) {
	root := t.TempDir()
	writeImage(t, root, "a/1.0")
	dir := t.TempDir()
	out := filepath.Join(dir, "registry-config.inc")
	if code, _, stderr := runCLI(t, "-o", out, "--server-root", "/srv", root); code != 0 {
		t.Fatal(stderr)
	}
	got, _ := os.ReadFile(out)
	want, _ := registrygen.GenerateRoot(root, "", "/srv", registrygen.WithConstants)
	if !bytes.Equal(got, want) {
		t.Fatal("-o content differs from Generate")
	}
	writeImage(t, root, "B/1.0")
	if code, _, _ := runCLI(t, "-o", out, "--server-root", "/srv", root); code == 0 {
		t.Fatal("invalid tree accepted")
	}
	if after, _ := os.ReadFile(out); !bytes.Equal(after, want) {
		t.Fatal("a failed run changed the output file")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("litter in the output directory: %v", entries)
	}
}

func TestServe(t *testing.T) {
	root := t.TempDir()
	writeImage(t, root, "library/busybox/1.36")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--listen", addr, "--name-prefix", "p", root}, io.Discard, &stderr)
	}()
	var resp *http.Response
	for deadline := time.Now().Add(10 * time.Second); ; {
		if resp, err = http.Get("http://" + addr + "/v2/p/library/busybox/tags/list"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"name":"p/library/busybox","tags":["1.36"]}` {
		t.Errorf("tags/list: %d %s", resp.StatusCode, body)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}
