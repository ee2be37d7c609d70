package oci

import (
	"context"
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
	"golang.org/x/sync/singleflight"

	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
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

// Resolved is a fetched image: what goes into its dir: layout. Its
// Manifest is the raw top manifest that becomes manifest.json: the pinned
// manifest or index itself, or the platform manifest that a
// single-platform build resolves an index to; its Children are the raw
// platform manifests kept beside an index, and its Blobs every config and
// layer the image needs.
type Resolved struct {
	Image Image
	dirlayout.Contents
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
		return nil, fmt.Errorf("image %s:%s: %w", im.Name, im.Version, err)
	}
	// The host as the list and IMAGE_MIRRORS spell it (docker.io, not
	// the index.docker.io it is dialled as).
	host, _, _ := strings.Cut(f.UpstreamRef(im), "/")
	wrap := func(err error) error {
		return fmt.Errorf("image %s:%s (%s): %w", im.Name, im.Version, ref, unreachable(host, err))
	}
	raw, top, err := f.manifest(ctx, ref, im.Digest, dirlayout.ParseManifest)
	if err != nil {
		return nil, wrap(err)
	}
	res := &Resolved{Image: im, Contents: dirlayout.Contents{Manifest: raw, MediaType: top.MediaType, Children: map[string][]byte{}, Blobs: map[string]int64{}}}
	manifests := []*dirlayout.ParsedManifest{top}
	digests := []string{im.Digest}
	if top.MediaType.IsIndex() {
		children, err := selectPlatforms(&v1.IndexManifest{Manifests: top.Manifests}, platforms)
		if err != nil {
			return nil, wrap(fmt.Errorf("index %s: %w", im.Digest, err))
		}
		manifests, digests = manifests[:0], digests[:0]
		for _, d := range children {
			craw, cm, err := f.manifest(ctx, ref.Context().Digest(d.Digest.String()), d.Digest.String(), dirlayout.ParseChild)
			if err != nil {
				return nil, wrap(err)
			}
			if len(platforms) == 1 {
				res.Manifest, res.MediaType = craw, cm.MediaType
			} else {
				res.Children[d.Digest.String()] = craw
			}
			manifests = append(manifests, cm)
			digests = append(digests, d.Digest.String())
		}
	}
	for i, m := range manifests {
		if err := addBlobs(m, res.Blobs); err != nil {
			return nil, wrap(fmt.Errorf("manifest %s: %w", digests[i], err))
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
// registry, checked by parse (dirlayout's: the top manifest, or an index's
// child). The cache key is the digest, so a cached manifest is final.
func (f *Fetcher) manifest(ctx context.Context, ref name.Digest, digest string, parse func([]byte) (*dirlayout.ParsedManifest, error)) ([]byte, *dirlayout.ParsedManifest, error) {
	raw, err := os.ReadFile(f.Cache.Path(digest))
	if err != nil || DigestOf(raw) != digest {
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
			return nil, nil, err
		}
		raw = v.([]byte)
	}
	m, err := parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w", digest, err)
	}
	return raw, m, nil
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
	// A host that does not resolve, or that no route leads to, fails the
	// same way on every attempt: give up at once (see UnreachableError).
	if hopeless(err) {
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

// addBlobs adds the config and layers of an image manifest to blobs. A
// foreign (non-distributable) blob is refused: its content lives at its
// URLs, and the image must install offline.
func addBlobs(m *dirlayout.ParsedManifest, blobs map[string]int64) error {
	for _, d := range append([]v1.Descriptor{*m.Config}, m.Layers...) {
		if len(d.URLs) > 0 {
			return fmt.Errorf("blob %s is foreign (urls %v): not shippable offline", d.Digest, d.URLs)
		}
	}
	return dirlayout.AddBlobs(m, blobs)
}

// manifestBlobs parses a raw image manifest and adds its blobs to blobs.
func manifestBlobs(raw []byte, blobs map[string]int64) error {
	m, err := dirlayout.ParseManifest(raw)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", DigestOf(raw), err)
	}
	if m.MediaType.IsIndex() {
		return fmt.Errorf("manifest %s is an index, not an image manifest", DigestOf(raw))
	}
	if err := addBlobs(m, blobs); err != nil {
		return fmt.Errorf("manifest %s: %w", DigestOf(raw), err)
	}
	return nil
}
