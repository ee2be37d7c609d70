package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/singleflight"
)

// Fetcher downloads pinned images into a Cache, verifying every byte.
type Fetcher struct {
	Cache     Cache
	Mirrors   map[string]string // registry host → mirror host[:port][/path]
	Insecure  []string          // hosts reached over plain HTTP
	Platforms []string          // os/arch[/variant]; one resolves the image, several keep the index
	Progress  *Progress         // nil: silent

	// Retry policy for transient failures; zero values mean 4 attempts
	// starting at 250ms.
	Attempts int
	Backoff  time.Duration

	// Transport overrides the HTTP transport (tests).
	Transport http.RoundTripper

	transferred atomic.Int64
	flight      singleflight.Group
}

// Transferred returns the bytes fetched from registries so far.
func (f *Fetcher) Transferred() int64 { return f.transferred.Load() }

// Resolved is a fetched image: what goes into its dir: layout.
type Resolved struct {
	Image Image
	// Manifest is the raw top manifest that becomes manifest.json: the
	// pinned manifest or index itself, or the platform manifest that a
	// single-platform build resolves an index to.
	Manifest  []byte
	MediaType types.MediaType
	// Children are the raw platform manifests kept beside an index, by digest.
	Children map[string][]byte
	// Blobs are every config and layer digest the image needs, with sizes.
	Blobs map[string]int64
}

// UpstreamRef is the reference an image is fetched from, after mirroring:
// the registry host is replaced, path and digest are kept.
func (f *Fetcher) UpstreamRef(im Image) string {
	reg, path, _ := strings.Cut(im.Source, "/")
	if m, ok := f.Mirrors[reg]; ok {
		reg = m
	}
	return reg + "/" + path + "@" + im.Digest
}

func (f *Fetcher) insecure(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if h == "localhost" {
		return true
	}
	if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil && ip.IsLoopback() {
		return true
	}
	for _, i := range f.Insecure {
		if i == host || i == h {
			return true
		}
	}
	return false
}

func (f *Fetcher) options(ctx context.Context) []remote.Option {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		// Our own retry loop classifies errors and names the image; a
		// second loop inside would multiply the attempts.
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
		remote.WithUserAgent("metalk8s-buildchain"),
	}
	if f.Transport != nil {
		opts = append(opts, remote.WithTransport(f.Transport))
	}
	return opts
}

func (f *Fetcher) parse(ref string) (name.Digest, error) {
	host, _, _ := strings.Cut(ref, "/")
	var nopts []name.Option
	if f.insecure(host) {
		nopts = append(nopts, name.Insecure)
	}
	return name.NewDigest(ref, append(nopts, name.StrictValidation)...)
}

// Fetch resolves im, fetches its manifests and blobs into the cache and
// verifies them. Nothing unverified is ever kept.
func (f *Fetcher) Fetch(ctx context.Context, im Image) (*Resolved, error) {
	return f.fetch(ctx, im, f.Platforms)
}

func (f *Fetcher) fetch(ctx context.Context, im Image, platforms []string) (*Resolved, error) {
	ref, err := f.parse(f.UpstreamRef(im))
	if err != nil {
		return nil, fmt.Errorf("image %s:%s: %v", im.Name, im.Version, err)
	}
	wrap := func(err error) error {
		return fmt.Errorf("image %s:%s (%s): %w", im.Name, im.Version, ref, err)
	}
	raw, mt, err := f.manifest(ctx, ref, im.Digest)
	if err != nil {
		return nil, wrap(err)
	}
	res := &Resolved{Image: im, Manifest: raw, MediaType: mt, Children: map[string][]byte{}, Blobs: map[string]int64{}}
	manifests := [][]byte{raw}
	if mt.IsIndex() {
		var idx v1.IndexManifest
		if err := json.Unmarshal(raw, &idx); err != nil {
			return nil, wrap(fmt.Errorf("index %s: %v", im.Digest, err))
		}
		children, err := selectPlatforms(&idx, platforms)
		if err != nil {
			return nil, wrap(fmt.Errorf("index %s: %v", im.Digest, err))
		}
		manifests = manifests[:0]
		for _, d := range children {
			craw, cmt, err := f.manifest(ctx, ref.Context().Digest(d.Digest.String()), d.Digest.String())
			if err != nil {
				return nil, wrap(err)
			}
			if cmt.IsIndex() {
				return nil, wrap(fmt.Errorf("nested index %s is not supported", d.Digest))
			}
			if len(platforms) == 1 {
				res.Manifest, res.MediaType = craw, cmt
			} else {
				res.Children[d.Digest.String()] = craw
			}
			manifests = append(manifests, craw)
		}
	}
	for _, m := range manifests {
		if err := manifestBlobs(m, res.Blobs); err != nil {
			return nil, wrap(err)
		}
	}
	var total int64
	for _, s := range res.Blobs {
		total += s
	}
	f.Progress.Start(im, total)
	var client *http.Client
	for _, d := range slices.Sorted(maps.Keys(res.Blobs)) {
		if client == nil && !f.Cache.Has(d, res.Blobs[d]) {
			if client, err = f.client(ctx, ref); err != nil {
				return nil, wrap(err)
			}
		}
		if err := f.blob(ctx, client, ref, d, res.Blobs[d], im); err != nil {
			err = wrap(fmt.Errorf("blob %s: %w", d, err))
			f.Progress.Done(im, err)
			return nil, err
		}
	}
	f.Progress.Done(im, nil)
	return res, nil
}

// manifest returns the raw manifest pinned by digest, from the cache or the
// registry. The cache key is the digest, so a cached manifest is final.
func (f *Fetcher) manifest(ctx context.Context, ref name.Digest, digest string) ([]byte, types.MediaType, error) {
	path := f.Cache.Path(digest)
	if raw, err := os.ReadFile(path); err == nil && DigestOf(raw) == digest {
		return raw, sniffMediaType(raw), nil
	}
	v, err, _ := f.flight.Do("m"+digest, func() (any, error) {
		var raw []byte
		err := f.retry(ctx, func() error {
			desc, err := remote.Get(ref, f.options(ctx)...)
			if err != nil {
				return err
			}
			raw = desc.Manifest
			f.transferred.Add(int64(len(raw)))
			if got := DigestOf(raw); got != digest {
				return &DigestError{Want: digest, Got: got, WantSize: -1}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", digest, err)
		}
		if err := f.Cache.PutBytes(digest, raw); err != nil {
			return nil, err
		}
		return raw, nil
	})
	if err != nil {
		return nil, "", err
	}
	raw := v.([]byte)
	mt := sniffMediaType(raw)
	if mt == "" {
		return nil, "", fmt.Errorf("manifest %s: unknown media type", digest)
	}
	return raw, mt, nil
}

// sniffMediaType reads mediaType from the manifest itself; an OCI manifest
// or index may omit it, and then the shape decides.
func sniffMediaType(raw []byte) types.MediaType {
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
		Layers    json.RawMessage `json:"layers"`
		Config    json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return ""
	}
	switch probe.MediaType {
	case types.DockerManifestSchema2, types.DockerManifestList, types.OCIManifestSchema1, types.OCIImageIndex:
		return probe.MediaType
	case "":
		if probe.Manifests != nil {
			return types.OCIImageIndex
		}
		if probe.Config != nil {
			return types.OCIManifestSchema1
		}
	}
	return ""
}

func (f *Fetcher) blob(ctx context.Context, client *http.Client, ref name.Digest, digest string, size int64, im Image) error {
	if f.Cache.Has(digest, size) {
		f.Progress.Blob(im, digest, size, true)
		return nil
	}
	_, err, _ := f.flight.Do("b"+digest, func() (any, error) {
		if f.Cache.Has(digest, size) {
			return nil, nil
		}
		repo := ref.Context()
		u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", repo.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), digest)
		return nil, f.retry(ctx, func() error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return err
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if err := transport.CheckError(resp, http.StatusOK); err != nil {
				return err
			}
			// Our own check is the authority: the body is hashed on its
			// way into the cache and dropped unless digest and size match.
			_, err = f.Cache.Put(digest, size, &countingReader{r: resp.Body, f: f, im: im})
			return err
		})
	})
	if err == nil {
		f.Progress.Blob(im, digest, size, false)
	}
	return err
}

// client returns an HTTP client authenticated for pulls from ref's repository.
func (f *Fetcher) client(ctx context.Context, ref name.Digest) (*http.Client, error) {
	auth, err := authn.DefaultKeychain.Resolve(ref.Context())
	if err != nil {
		return nil, err
	}
	base := f.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	var rt http.RoundTripper
	err = f.retry(ctx, func() error {
		var err error
		rt, err = transport.NewWithContext(ctx, ref.Context().Registry, auth, base, []string{ref.Context().Scope(transport.PullScope)})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: rt}, nil
}

type countingReader struct {
	r  io.Reader
	f  *Fetcher
	im Image
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.f.transferred.Add(int64(n))
	c.f.Progress.Bytes(c.im, int64(n))
	return n, err
}

// retry runs op until it succeeds, fails permanently, or runs out of
// attempts. Content that does not match its digest is never retried: a
// registry that serves it once will serve it again.
func (f *Fetcher) retry(ctx context.Context, op func() error) error {
	attempts, backoff := f.Attempts, f.Backoff
	if attempts <= 0 {
		attempts = 4
	}
	if backoff <= 0 {
		backoff = 250 * time.Millisecond
	}
	var err error
	for i := 0; i < attempts; i++ {
		if err = op(); err == nil || !transient(err) {
			return err
		}
		if i == attempts-1 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff << i):
		}
	}
	return fmt.Errorf("giving up after %d attempts: %w", attempts, err)
}

func transient(err error) bool {
	var de *DigestError
	if errors.As(err, &de) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusRequestTimeout, http.StatusTooManyRequests:
			return true
		}
		return te.StatusCode >= 500
	}
	return true
}

func selectPlatforms(idx *v1.IndexManifest, want []string) ([]v1.Descriptor, error) {
	var out []v1.Descriptor
	for _, w := range want {
		parts := strings.Split(w, "/")
		var found *v1.Descriptor
		for i := range idx.Manifests {
			d := &idx.Manifests[i]
			p := d.Platform
			if p == nil || p.OS != parts[0] || p.Architecture != parts[1] {
				continue
			}
			if len(parts) == 3 && p.Variant != parts[2] {
				continue
			}
			found = d
			break
		}
		if found == nil {
			var have []string
			for _, d := range idx.Manifests {
				if d.Platform != nil {
					have = append(have, d.Platform.String())
				}
			}
			return nil, fmt.Errorf("no manifest for platform %s (the index has: %s)", w, strings.Join(have, ", "))
		}
		if !ValidDigest(found.Digest.String()) {
			return nil, fmt.Errorf("platform %s: digest %q is not sha256", w, found.Digest)
		}
		out = append(out, *found)
	}
	return out, nil
}

// manifestBlobs adds the config and layers of an image manifest to blobs.
// A manifest is outside input: every digest must be sha256, every size
// non-negative (a negative size would disable the size check of the
// download), and a digest may not claim two sizes.
func manifestBlobs(raw []byte, blobs map[string]int64) error {
	var man v1.Manifest
	if err := json.Unmarshal(raw, &man); err != nil {
		return fmt.Errorf("manifest %s: %v", DigestOf(raw), err)
	}
	if man.SchemaVersion != 2 {
		return fmt.Errorf("manifest %s: schema version %d is not supported (want 2)", DigestOf(raw), man.SchemaVersion)
	}
	for _, d := range append([]v1.Descriptor{man.Config}, man.Layers...) {
		ds := d.Digest.String()
		switch {
		case !ValidDigest(ds):
			return fmt.Errorf("manifest %s references blob %q: not a sha256 digest", DigestOf(raw), ds)
		case d.Size < 0:
			return fmt.Errorf("manifest %s: blob %s has a negative size %d", DigestOf(raw), ds, d.Size)
		case len(d.URLs) > 0:
			return fmt.Errorf("manifest %s: blob %s is foreign (urls %v): not shippable offline", DigestOf(raw), ds, d.URLs)
		}
		if prev, ok := blobs[ds]; ok && prev != d.Size {
			return fmt.Errorf("manifest %s: blob %s is listed with sizes %d and %d", DigestOf(raw), ds, prev, d.Size)
		}
		blobs[ds] = d.Size
	}
	return nil
}
