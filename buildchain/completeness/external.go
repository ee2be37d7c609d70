package completeness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/metalk8s/buildchain/buildchain/rpm/depsolve"
)

// FetchRepo reads the metadata of an external repository at baseURL
// (http, https or file), as packaging reads it to resolve.
func FetchRepo(ctx context.Context, client *http.Client, name, baseURL string) (depsolve.Repo, error) {
	var fsys fs.FS
	u, err := url.Parse(baseURL)
	if err != nil {
		return depsolve.Repo{}, fmt.Errorf("external repository %s: %w", name, err)
	}
	switch u.Scheme {
	case "file":
		fsys = os.DirFS(u.Path)
	case "http", "https":
		fsys = urlFS{ctx: ctx, client: client, base: strings.TrimSuffix(baseURL, "/")}
	default:
		return depsolve.Repo{}, fmt.Errorf("external repository %s: base URL %q is neither http(s) nor file", name, baseURL)
	}
	pkgs, err := ReadRepo(fsys, ".")
	if err != nil {
		return depsolve.Repo{}, fmt.Errorf("external repository %s (%s): %w", name, baseURL, err)
	}
	return depsolve.Repo{Name: name, Packages: pkgs}, nil
}

// urlFS opens paths below a base URL; only what ReadRepo needs.
type urlFS struct {
	ctx    context.Context
	client *http.Client
	base   string
}

func (u urlFS) Open(name string) (fs.File, error) {
	req, err := http.NewRequestWithContext(u.ctx, http.MethodGet, u.base+"/"+name, nil)
	if err != nil {
		return nil, err
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", req.URL, resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", req.URL, err)
	}
	return &memFile{Reader: bytes.NewReader(data), name: name, size: int64(len(data))}, nil
}

type memFile struct {
	*bytes.Reader
	name string
	size int64
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f, nil }
func (f *memFile) Close() error               { return nil }
func (f *memFile) Name() string               { return f.name }
func (f *memFile) Size() int64                { return f.size }
func (f *memFile) Mode() fs.FileMode          { return 0o444 }
func (f *memFile) ModTime() time.Time         { return time.Time{} }
func (f *memFile) IsDir() bool                { return false }
func (f *memFile) Sys() any                   { return nil }
