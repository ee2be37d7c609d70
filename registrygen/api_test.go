package registrygen

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
)

const zeroDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t testing.TB, method, u string, hdr ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, u, err)
	}
	return response{resp.StatusCode, resp.Header, body}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// wantError checks a spec error response.
func wantError(t testing.TB, what string, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d (body %s)", what, r.status, status, r.body)
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	if r.header.Get(APIVersionHeader) != APIVersion {
		t.Errorf("%s: %s header %q", what, APIVersionHeader, r.header.Get(APIVersionHeader))
	}
	if strings.HasPrefix(what, "HEAD ") {
		return
	}
	var doc struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.Unmarshal(r.body, &doc); err != nil || len(doc.Errors) != 1 || doc.Errors[0].Code != code {
		t.Errorf("%s: body %s, want one error with code %s", what, r.body, code)
	}
}

// fileOf returns the bytes of the file that serves digest d in im's directory.
func fileOf(t testing.TB, tree *fixtureTree, im fixtureImage, d string) []byte {
	t.Helper()
	dir := filepath.Join(tree.root, filepath.FromSlash(im.name), im.tag)
	for _, name := range []string{hexOf(d), hexOf(d) + ".manifest.json", "manifest.json"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil && sha(b) == d {
			return b
		}
	}
	t.Fatalf("no file for %s in %s", d, dir)
	return nil
}

// TestAPI checks the pull side of the distribution spec, the same
// assertions against nginx with the generated config and the Go handler.
func TestAPI(t *testing.T) {
	tree, servers := bothServers(t)
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) { checkAPI(t, tree, s) })
	}
}

func checkAPI(t *testing.T, tree *fixtureTree, s registryServer) {
	for _, m := range []string{"GET", "HEAD"} {
		r := do(t, m, s.url("/v2/"))
		if r.status != 200 || r.header.Get(APIVersionHeader) != APIVersion || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s /v2/: %d %v", m, r.status, r.header)
		}
		if m == "GET" && !json.Valid(r.body) {
			t.Errorf("GET /v2/: body %q is not JSON", r.body)
		}
	}

	for _, im := range tree.images {
		base := "/v2/" + im.name
		manifest := fileOf(t, tree, im, im.digest)
		for _, ref := range []string{im.tag, im.digest} {
			for _, m := range []string{"GET", "HEAD"} {
				r := do(t, m, s.url(base+"/manifests/"+ref), "Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json")
				what := m + " " + base + "/manifests/" + ref
				if r.status != 200 {
					t.Errorf("%s: status %d: %s", what, r.status, r.body)
					continue
				}
				if got := r.header.Get("Content-Type"); got != im.mediaType {
					t.Errorf("%s: Content-Type %q, want %q", what, got, im.mediaType)
				}
				if got := r.header.Get("Docker-Content-Digest"); got != im.digest {
					t.Errorf("%s: Docker-Content-Digest %q, want %q", what, got, im.digest)
				}
				if got := r.header.Get("Content-Length"); got != fmt.Sprint(len(manifest)) {
					t.Errorf("%s: Content-Length %q, want %d", what, got, len(manifest))
				}
				if m == "GET" && sha(r.body) != im.digest {
					t.Errorf("%s: body digest %s, want %s", what, sha(r.body), im.digest)
				}
				if m == "HEAD" && len(r.body) != 0 {
					t.Errorf("%s: HEAD has a body", what)
				}
			}
		}
		for _, c := range im.children {
			r := do(t, "GET", s.url(base+"/manifests/"+c))
			info, err := dirlayout.ParseManifest(r.body)
			if r.status != 200 || sha(r.body) != c || err != nil || r.header.Get("Content-Type") != string(info.MediaType) || r.header.Get("Docker-Content-Digest") != c {
				t.Errorf("child %s of %s: %d %v (sniff %v)", c, im.ref(), r.status, r.header, err)
			}
		}
		for _, b := range im.blobs {
			content := fileOf(t, tree, im, b)
			what := base + "/blobs/" + b
			h := do(t, "HEAD", s.url(what))
			if h.status != 200 || h.header.Get("Docker-Content-Digest") != b || h.header.Get("Content-Type") != "application/octet-stream" || h.header.Get("Content-Length") != fmt.Sprint(len(content)) {
				t.Errorf("HEAD %s: %d %v", what, h.status, h.header)
			}
			g := do(t, "GET", s.url(what))
			if g.status != 200 || sha(g.body) != b {
				t.Errorf("GET %s: %d, body digest %s", what, g.status, sha(g.body))
			}
			if len(content) > 1000 {
				r := do(t, "GET", s.url(what), "Range", "bytes=100-899")
				if r.status != http.StatusPartialContent || !bytes.Equal(r.body, content[100:900]) ||
					r.header.Get("Content-Range") != fmt.Sprintf("bytes 100-899/%d", len(content)) || r.header.Get("Docker-Content-Digest") != b {
					t.Errorf("GET %s Range bytes=100-899: %d %v, %d bytes", what, r.status, r.header, len(r.body))
				}
			}
		}
		r := do(t, "GET", s.url(base+"/referrers/"+im.digest))
		var idx struct {
			SchemaVersion int
			MediaType     string
			Manifests     []any
		}
		if r.status != 200 || r.header.Get("Content-Type") != MediaTypeOCIIndex || json.Unmarshal(r.body, &idx) != nil ||
			idx.SchemaVersion != 2 || idx.MediaType != MediaTypeOCIIndex || idx.Manifests == nil || len(idx.Manifests) != 0 {
			t.Errorf("referrers of %s: %d %v %s", im.ref(), r.status, r.header, r.body)
		}
	}

	tagsWant := map[string][]string{}
	for _, im := range tree.images {
		tagsWant[im.name] = append(tagsWant[im.name], im.tag)
	}
	for name, tags := range tagsWant {
		r := do(t, "GET", s.url("/v2/"+name+"/tags/list"))
		var doc struct {
			Name string
			Tags []string
		}
		if err := json.Unmarshal(r.body, &doc); r.status != 200 || err != nil || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("tags of %s: %d %s", name, r.status, r.body)
			continue
		}
		if doc.Name != name || !reflect.DeepEqual(doc.Tags, tags) {
			t.Errorf("tags of %s: %+v, want %v (sorted)", name, doc, tags)
		}
	}

	bb := "/v2/library/busybox"
	bbImage := tree.byRef(t, "library/busybox", "1.36")
	blob := bbImage.blobs[0]
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v2/nope/manifests/1.0", 404, "NAME_UNKNOWN"},
		{"HEAD", "/v2/nope/manifests/1.0", 404, "NAME_UNKNOWN"},
		{"GET", "/v2/nope/tags/list", 404, "NAME_UNKNOWN"},
		{"GET", "/v2/nope/blobs/" + blob, 404, "NAME_UNKNOWN"},
		{"GET", "/v2/busybox/manifests/1.36", 404, "NAME_UNKNOWN"},
		{"GET", "/v2/library/manifests/1.36", 404, "NAME_UNKNOWN"},
		{"GET", bb + "/x/manifests/1.36", 404, "NAME_UNKNOWN"},
		{"GET", bb + "/tags/list/x", 404, "NAME_UNKNOWN"},
		{"GET", bb + "/tags/listx", 404, "NAME_UNKNOWN"},
		{"GET", bb + "/manifests/nope", 404, "MANIFEST_UNKNOWN"},
		{"GET", bb + "/manifests/1.36x", 404, "MANIFEST_UNKNOWN"},
		{"GET", bb + "/manifests/1.36/", 404, "MANIFEST_UNKNOWN"},
		{"GET", bb + "/manifests/1.36/x", 404, "MANIFEST_UNKNOWN"},
		{"GET", bb + "/manifests/" + zeroDigest, 404, "MANIFEST_UNKNOWN"},
		{"GET", bb + "/manifests/" + bbImage.digest + "junk", 404, "MANIFEST_UNKNOWN"},
		{"GET", bb + "/manifests/" + blob, 404, "MANIFEST_UNKNOWN"},
		{"GET", bb + "/blobs/" + zeroDigest, 404, "BLOB_UNKNOWN"},
		{"HEAD", bb + "/blobs/" + zeroDigest, 404, "BLOB_UNKNOWN"},
		{"GET", bb + "/blobs/" + blob + "junk", 404, "BLOB_UNKNOWN"},
		{"GET", bb + "/blobs/" + blob + "/", 404, "BLOB_UNKNOWN"},
		{"GET", bb + "/blobs/" + hexOf(blob), 404, "BLOB_UNKNOWN"},
		{"GET", bb + "/blobs/" + bbImage.digest, 404, "BLOB_UNKNOWN"},
		{"GET", bb + "/referrers/sha256:xyz", 404, "MANIFEST_UNKNOWN"},
		// Requests never name files: traversal lands on routes, not paths.
		{"GET", bb + "/blobs/..%2F..%2F1.36%2Fmanifest.json", 404, "NAME_UNKNOWN"},
		{"GET", bb + "/manifests/..%2F1.36", 404, "NAME_UNKNOWN"},
		{"GET", bb + "/manifests/1.36%2F..%2F..%2F..%2Fv2s2%2Fapp%2Fmanifests%2F1.0", 404, "NAME_UNKNOWN"},
		{"GET", bb + "/referrers/" + zeroDigest + "0", 404, "MANIFEST_UNKNOWN"},
		{"PUT", bb + "/manifests/1.36", 405, "UNSUPPORTED"},
		{"DELETE", bb + "/manifests/" + bbImage.digest, 405, "UNSUPPORTED"},
		{"DELETE", bb + "/blobs/" + blob, 405, "UNSUPPORTED"},
		{"POST", bb + "/blobs/uploads/", 405, "UNSUPPORTED"},
		{"PATCH", bb + "/blobs/uploads/abc", 405, "UNSUPPORTED"},
		{"PUT", bb + "/blobs/uploads/abc?digest=" + blob, 405, "UNSUPPORTED"},
		{"POST", "/v2/nope/blobs/uploads/", 405, "UNSUPPORTED"},
		{"PUT", "/v2/", 405, "UNSUPPORTED"},
		{"OPTIONS", bb + "/tags/list", 405, "UNSUPPORTED"},
	} {
		r := do(t, c.method, s.url(c.path))
		wantError(t, c.method+" "+c.path, r, c.status, c.code)
		if c.status == 405 && r.header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q", c.method, c.path, r.header.Get("Allow"))
		}
	}
	// nginx refuses a path climbing above the root; so does the handler.
	if r := do(t, "GET", s.url("/v2/../../etc/passwd")); r.status != 400 {
		t.Errorf("GET /v2/../../etc/passwd: status %d, want 400", r.status)
	}
	// Outside /v2/ nothing is ours: a 404 of any kind.
	for _, p := range []string{"/x/v2/library/busybox/manifests/1.36", "/v2", "/library/busybox/manifests/1.36"} {
		if r := do(t, "GET", s.url(p)); r.status != 404 {
			t.Errorf("GET %s: status %d, want 404", p, r.status)
		}
	}
}

// TestSameResponses sends the same requests to nginx and the Go handler
// and compares status, registry headers and bodies byte for byte.
func TestSameResponses(t *testing.T) {
	tree, servers := bothServers(t)
	ngx, gosrv := servers[0], servers[1]
	im := tree.byRef(t, "multi/app", "3.0")
	bb := tree.byRef(t, "library/busybox", "1.36")
	big := tree.byRef(t, "oci/app", "2.0")
	paths := []string{
		"/v2/", "/v2/nope/tags/list", "/v2/multi/app/tags/list", "/v2/v2s2/app/tags/list",
		"/v2/multi/app/manifests/3.0", "/v2/multi/app/manifests/" + im.digest, "/v2/multi/app/manifests/" + im.children[1],
		"/v2/multi/app/manifests/nope", "/v2/multi/app/blobs/" + im.blobs[0], "/v2/multi/app/blobs/" + zeroDigest,
		"/v2/multi/app/referrers/" + im.digest, "/v2/multi/app/referrers/nope", "/v2/multi/app/other",
		"/v2/library/busybox/manifests/1.36", "/v2/library/busybox/blobs/" + bb.blobs[1],
		"/v2//library//busybox/manifests/1.36", "/v2/library/x/../busybox/manifests/1.36", "/v2/library/busybox/./tags/list",
		"/v2/oci/app/blobs/" + big.blobs[1],
	}
	type req struct {
		method, path string
		hdr          []string
	}
	var reqs []req
	for _, p := range paths {
		reqs = append(reqs, req{"GET", p, nil}, req{"HEAD", p, nil})
	}
	blob := "/v2/oci/app/blobs/" + big.blobs[1]
	reqs = append(reqs,
		req{"GET", blob, []string{"Range", "bytes=0-0"}},
		req{"GET", blob, []string{"Range", "bytes=1000-"}},
		req{"GET", blob, []string{"Range", "bytes=-10"}},
		req{"PUT", "/v2/multi/app/manifests/3.0", nil},
		req{"DELETE", "/v2/nope/blobs/" + zeroDigest, nil},
		req{"POST", "/v2/multi/app/blobs/uploads/", nil},
	)
	headers := []string{"Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "Docker-Content-Digest",
		APIVersionHeader, "Allow", "ETag", "Last-Modified"}
	for _, rq := range reqs {
		a := do(t, rq.method, ngx.url(rq.path), rq.hdr...)
		b := do(t, rq.method, gosrv.url(rq.path), rq.hdr...)
		what := fmt.Sprintf("%s %s %v", rq.method, rq.path, rq.hdr)
		if a.status != b.status {
			t.Errorf("%s: status nginx %d, go %d", what, a.status, b.status)
		}
		for _, h := range headers {
			if av, bv := a.header.Values(h), b.header.Values(h); strings.Join(av, ",") != strings.Join(bv, ",") {
				t.Errorf("%s: %s nginx %q, go %q", what, h, av, bv)
			}
		}
		if !bytes.Equal(a.body, b.body) {
			t.Errorf("%s: bodies differ: nginx %.200q, go %.200q", what, a.body, b.body)
		}
	}
}
