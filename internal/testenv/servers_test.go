package testenv

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNginxServesFiles(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "hello"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := StartNginx(t, NginxConfig{Server: "root " + root + ";"})
	resp, err := http.Get(n.URL + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "hi\n" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

func TestRegistryAnswers(t *testing.T) {
	r := StartRegistry(t)
	resp, err := http.Get("http://" + r.Host + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Docker-Distribution-Api-Version"), "registry/2.0") {
		t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
	}
}
