// Package fetch downloads RPMs in parallel into a content-addressed cache,
// resuming partial downloads, and admits a file to the cache only after
// its checksum from the repository metadata and its OpenPGP signatures
// against the repository's keys have been verified. A package that fails
// either check is removed, never kept.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/metalk8s/buildchain/buildchain/cas"
	"github.com/metalk8s/buildchain/buildchain/rpm/pgp"
)

// Item is one package to fetch.
type Item struct {
	Repo    string // repository name, for errors
	Name    string // NEVRA, for errors
	URL     string // http(s):// or file://
	SHA256  string // hex, from the repository metadata
	Size    int64  // from the metadata; 0 if unknown
	Keyring *pgp.Keyring
	// RequireSignature makes an unsigned package an error. With a nil
	// Keyring no signature is checked (a repository without gpgcheck).
	RequireSignature bool
}

func (it *Item) describe() string { return fmt.Sprintf("%s from repo %s", it.Name, it.Repo) }

// Fetcher fetches into Dir: Dir/sha256/<hex> holds verified files (a
// cas.Store, the layout the image cache has) and Dir/partial the
// downloads in progress.
type Fetcher struct {
	Dir    string
	Client *http.Client
	Jobs   int
	// Now is the time signatures and keys are checked at (default time.Now).
	Now func() time.Time
}

// Path is where a verified package with this checksum lives in the cache.
func (f *Fetcher) Path(sha string) string { return f.store().Path("sha256:" + sha) }

func (f *Fetcher) store() cas.Store { return cas.Store{Dir: f.Dir} }

// Fetch fetches every item and returns their cache paths, in order. All
// items are attempted; the error joins every failure.
func (f *Fetcher) Fetch(ctx context.Context, items []Item) ([]string, error) {
	paths := make([]string, len(items))
	errs := make([]error, len(items))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, f.Jobs))
	for i := range items {
		g.Go(func() error {
			p, err := f.one(ctx, &items[i])
			paths[i], errs[i] = p, err
			return nil
		})
	}
	g.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return paths, nil
}

func (f *Fetcher) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *Fetcher) one(ctx context.Context, it *Item) (string, error) {
	if !cas.ValidDigest("sha256:" + it.SHA256) {
		return "", fmt.Errorf("%s: metadata gives no usable sha256 (%q)", it.describe(), it.SHA256)
	}
	final := f.Path(it.SHA256)
	if _, err := os.Stat(final); err == nil {
		// The cache is keyed by content, but the keys that must have
		// signed it belong to this repository: check them again.
		if err := f.checkSig(final, it); err != nil {
			return "", err
		}
		return final, nil
	}
	if err := os.MkdirAll(filepath.Join(f.Dir, "partial"), 0o755); err != nil {
		return "", err
	}
	part := filepath.Join(f.Dir, "partial", it.SHA256)
	if err := f.download(ctx, it, part); err != nil {
		return "", fmt.Errorf("%s: %w", it.describe(), err)
	}
	size := it.Size
	if size <= 0 {
		size = -1 // unknown
	}
	err := f.store().Adopt("sha256:"+it.SHA256, size, part, func(p string) error {
		if err := f.checkSig(p, it); err != nil {
			return fmt.Errorf("%w; the download was removed", err)
		}
		return nil
	})
	var de *cas.DigestError
	if errors.As(err, &de) {
		return "", fmt.Errorf("%s: checksum mismatch: got sha256 %s (%d bytes), metadata says %s (%d bytes); the download was removed",
			it.describe(), strings.TrimPrefix(de.Got, "sha256:"), de.GotSize, it.SHA256, it.Size)
	}
	if err != nil {
		return "", err
	}
	return final, nil
}

func (f *Fetcher) checkSig(path string, it *Item) error {
	if it.Keyring == nil {
		return nil
	}
	_, err := VerifyRPM(path, it.Keyring, f.now())
	if errors.Is(err, ErrUnsigned) && !it.RequireSignature {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: signature check against %v failed: %w", it.describe(), it.Keyring.Names, err)
	}
	return nil
}

// download appends to part from where an earlier attempt stopped, when the
// server honours the Range request; otherwise it starts over.
func (f *Fetcher) download(ctx context.Context, it *Item, part string) error {
	u, err := url.Parse(it.URL)
	if err != nil {
		return err
	}
	if u.Scheme == "file" {
		src, err := os.Open(u.Path)
		if err != nil {
			return err
		}
		defer src.Close()
		dst, err := os.Create(part)
		if err != nil {
			return err
		}
		if _, err := io.Copy(dst, src); err != nil {
			dst.Close()
			return err
		}
		return dst.Close()
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("unsupported URL scheme in %s", it.URL)
	}
	var have int64
	if st, err := os.Stat(part); err == nil {
		have = st.Size()
		if it.Size > 0 && have >= it.Size {
			// Complete or overlong: let the checksum decide; restart if wrong.
			if sum, _, err := cas.FileDigest(part); err == nil && sum == "sha256:"+it.SHA256 {
				return nil
			}
			os.Remove(part)
			have = 0
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, it.URL, nil)
	if err != nil {
		return err
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	client := f.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	flags := os.O_WRONLY | os.O_CREATE
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0 && strings.HasPrefix(resp.Header.Get("Content-Range"), "bytes "+strconv.FormatInt(have, 10)+"-"):
		flags |= os.O_APPEND
	case resp.StatusCode == http.StatusOK:
		flags |= os.O_TRUNC
	default:
		return fmt.Errorf("GET %s: %s", it.URL, resp.Status)
	}
	out, err := os.OpenFile(part, flags, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		// Keep what arrived: the next attempt resumes from there.
		return fmt.Errorf("GET %s: %w (partial download kept for resuming)", it.URL, err)
	}
	return out.Close()
}
