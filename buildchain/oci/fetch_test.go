package oci

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/metalk8s/buildchain/internal/testenv"
)

// tamperingRegistry is a real registry behind a proxy that can flip a
// byte in every blob it serves.
func tamperingRegistry(t *testing.T) (host string, tamper *atomic.Bool) {
	reg := testenv.StartRegistry(t)
	target, _ := url.Parse("http://" + reg.Host)
	proxy := httputil.NewSingleHostReverseProxy(target)
	tamper = &atomic.Bool{}
	proxy.ModifyResponse = func(resp *http.Response) error {
		if !tamper.Load() || resp.Request.Method != http.MethodGet || !strings.Contains(resp.Request.URL.Path, "/blobs/") {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if len(body) > 0 {
			body[len(body)/2] ^= 0xff
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), tamper
}

// TestFetchErrorChains: every error the fetcher wraps stays visible to
// errors.Is and errors.As, whatever the layer that wrapped it.
func TestFetchErrorChains(t *testing.T) {
	host, tamper := tamperingRegistry(t)
	img, err := random.Image(4<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host+"/library/alpha:latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	im := Image{Name: "alpha", Version: "1.0", Source: host + "/library/alpha", Digest: d.String()}
	f := &Fetcher{Cache: Cache{Dir: t.TempDir()}, Platforms: []string{"linux/amd64"}, Attempts: 1}

	t.Run("bad reference", func(t *testing.T) {
		bad := im
		bad.Source = host + "/Library/UPPER"
		_, err := f.Fetch(context.Background(), bad)
		var be *name.ErrBadName
		if !errors.As(err, &be) {
			t.Fatalf("errors.As(*name.ErrBadName) is false for %v", err)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := f.Fetch(ctx, im)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("errors.Is(context.Canceled) is false for %v", err)
		}
	})
	t.Run("digest mismatch", func(t *testing.T) {
		tamper.Store(true)
		defer tamper.Store(false)
		_, err := f.Fetch(context.Background(), im)
		var de *DigestError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), "alpha:1.0") {
			t.Fatalf("errors.As(*DigestError) is false, or the image is not named, for %v", err)
		}
	})
	t.Run("manifest parse error", func(t *testing.T) {
		// A cached manifest the parser refuses: its error reaches the
		// caller as dirlayout's, still naming the image.
		raw := []byte(`{"schemaVersion":2,"mediaType":"text/html","config":{}}`)
		c := Cache{Dir: t.TempDir()}
		if err := c.PutBytes(DigestOf(raw), raw); err != nil {
			t.Fatal(err)
		}
		g := &Fetcher{Cache: c, Platforms: f.Platforms, Attempts: 1}
		bad := im
		bad.Digest = DigestOf(raw)
		_, err := g.Fetch(context.Background(), bad)
		if err == nil || !strings.Contains(err.Error(), "not served") || !strings.Contains(err.Error(), "alpha:1.0") {
			t.Fatalf("got %v", err)
		}
	})
	if _, err := f.Fetch(context.Background(), im); err != nil {
		t.Fatalf("the untampered image: %v", err)
	}
}
