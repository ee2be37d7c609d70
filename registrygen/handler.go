package registrygen

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Handler is the built-in registry: the same routes, status codes, headers
// and bodies as the generated nginx config, over the same trees. It serves
// the snapshot taken by NewHandler; files are opened per request.
type Handler struct {
	repos map[string]*handlerRepo // by full name
	// maxDepth is the largest number of "/" in a full name, bounding the
	// longest-prefix search of route.
	maxDepth int
}

type handlerRepo struct {
	dir       string // the root's directory
	tagsBody  string
	manifests map[string]File // by tag and by digest
	blobs     map[string]File // by digest
}

// NewHandler scans roots for the built-in server. ServerRoot is ignored
// (files are read from Dir) and a NamePrefix must be literal: placeholders
// belong to config templates.
func NewHandler(roots ...Root) (*Handler, error) {
	// The server root is nginx's business: files are read from Dir. Set
	// it to "/" so that prepare does not reject a Dir path that nginx
	// could not take.
	fixed := make([]Root, len(roots))
	for i, r := range roots {
		if IsTemplate(r.NamePrefix) {
			return nil, fmt.Errorf("root %s: name prefix %q is a template; the built-in server needs the rendered value", r.Dir, r.NamePrefix)
		}
		fixed[i] = r
		fixed[i].ServerRoot = "/"
	}
	prepared, err := prepare(fixed)
	if err != nil {
		return nil, err
	}
	h := &Handler{repos: map[string]*handlerRepo{}}
	for _, s := range prepared {
		for _, r := range s.tree.Repositories {
			full := s.fullName(r)
			hr := &handlerRepo{
				dir:       s.tree.Dir,
				tagsBody:  tagsBody(full, r.Tags),
				manifests: map[string]File{},
				blobs:     map[string]File{},
			}
			for _, t := range r.Tags {
				hr.manifests[t.Name] = t.Manifest
			}
			for _, m := range r.Manifests {
				hr.manifests[m.Digest] = m
			}
			for _, b := range r.Blobs {
				hr.blobs[b.Digest] = b
			}
			h.repos[full] = hr
			h.maxDepth = max(h.maxDepth, strings.Count(full, "/"))
		}
	}
	return h, nil
}

// Route kinds: what a request resolves to.
type routeKind int

const (
	routeOutside     routeKind = iota // not under /v2/: not ours
	routeBadPath                      // a path nginx refuses (".." above /)
	routeUnsupported                  // a write method under /v2/
	routeBase                         // /v2/
	routeNameUnknown
	routeTags
	routeManifest
	routeManifestUnknown
	routeBlob
	routeBlobUnknown
	routeReferrers
)

type route struct {
	kind routeKind
	repo *handlerRepo
	file File
}

// route resolves a request the way nginx resolves it through the generated
// config: the URI normalized, then the longest repository prefix wins, then
// exact matches inside it.
func (h *Handler) route(method, rawPath string) route {
	p, ok := normalizePath(rawPath)
	if !ok {
		return route{kind: routeBadPath}
	}
	if !strings.HasPrefix(p, "/v2/") {
		return route{kind: routeOutside}
	}
	if method != http.MethodGet && method != http.MethodHead {
		return route{kind: routeUnsupported}
	}
	if p == "/v2/" {
		return route{kind: routeBase}
	}
	rest := p[len("/v2/"):]
	// Candidate names are rest's prefixes ending before a "/", longest
	// first, as nginx's longest-prefix location match. No name has more
	// than maxDepth slashes, so the search starts at the slash after
	// maxDepth+1 segments.
	cut, seen := -1, 0
	for i := 0; i < len(rest); i++ {
		if rest[i] == '/' {
			cut = i
			if seen++; seen > h.maxDepth {
				break
			}
		}
	}
	var repo *handlerRepo
	for {
		if cut <= 0 {
			return route{kind: routeNameUnknown}
		}
		if r, ok := h.repos[rest[:cut]]; ok {
			repo = r
			break
		}
		cut = strings.LastIndexByte(rest[:cut], '/')
	}
	sub := rest[cut+1:]
	switch {
	case sub == "tags/list":
		return route{kind: routeTags, repo: repo}
	case strings.HasPrefix(sub, "manifests/"):
		if f, ok := repo.manifests[sub[len("manifests/"):]]; ok {
			return route{kind: routeManifest, repo: repo, file: f}
		}
		return route{kind: routeManifestUnknown}
	case strings.HasPrefix(sub, "blobs/"):
		if f, ok := repo.blobs[sub[len("blobs/"):]]; ok {
			return route{kind: routeBlob, repo: repo, file: f}
		}
		return route{kind: routeBlobUnknown}
	case strings.HasPrefix(sub, "referrers/"):
		if ValidateDigest(sub[len("referrers/"):]) == nil {
			return route{kind: routeReferrers}
		}
		return route{kind: routeManifestUnknown}
	}
	return route{kind: routeNameUnknown}
}

// normalizePath does what nginx does to a decoded URI before matching
// locations: merge slashes, resolve "." and ".." segments, keep a trailing
// slash. It fails where nginx answers 400: a ".." above the root or a path
// that does not start with "/".
func normalizePath(p string) (string, bool) {
	if !strings.HasPrefix(p, "/") {
		return "", false
	}
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	trailing := false
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case "", ".":
			trailing = last
		case "..":
			if len(out) == 0 {
				return "", false
			}
			out = out[:len(out)-1]
			trailing = last
		default:
			out = append(out, s)
			trailing = false
		}
	}
	n := "/" + strings.Join(out, "/")
	if trailing && n != "/" {
		n += "/"
	}
	return n, true
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := h.route(r.Method, r.URL.Path)
	hd := w.Header()
	if rt.kind != routeOutside && rt.kind != routeBadPath {
		hd.Set(APIVersionHeader, APIVersion)
	}
	switch rt.kind {
	case routeOutside:
		http.NotFound(w, r)
	case routeBadPath:
		http.Error(w, "bad request", http.StatusBadRequest)
	case routeUnsupported:
		hd.Set("Allow", "GET, HEAD")
		writeBody(w, r, http.StatusMethodNotAllowed, "application/json", bodyUnsupported)
	case routeBase:
		writeBody(w, r, http.StatusOK, "application/json", bodyBase)
	case routeNameUnknown:
		writeBody(w, r, http.StatusNotFound, "application/json", bodyNameUnknown)
	case routeTags:
		writeBody(w, r, http.StatusOK, "application/json", rt.repo.tagsBody)
	case routeManifestUnknown:
		writeBody(w, r, http.StatusNotFound, "application/json", bodyManifestUnk)
	case routeBlobUnknown:
		writeBody(w, r, http.StatusNotFound, "application/json", bodyBlobUnknown)
	case routeReferrers:
		writeBody(w, r, http.StatusOK, MediaTypeOCIIndex, bodyReferrers)
	case routeManifest, routeBlob:
		h.serveFile(w, r, rt)
	}
}

func writeBody(w http.ResponseWriter, r *http.Request, status int, contentType, body string) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write([]byte(body))
	}
}

// serveFile serves a manifest or blob file with nginx's static headers:
// Last-Modified, an ETag in nginx's "<mtime hex>-<size hex>" form, Range
// and conditional requests (http.ServeContent).
func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, rt route) {
	// A file gone since the scan (the tree changed under the server) is a
	// 404, as in nginx; the body is the spec's rather than nginx's page.
	gone := func() {
		body := bodyManifestUnk
		if rt.kind == routeBlob {
			body = bodyBlobUnknown
		}
		writeBody(w, r, http.StatusNotFound, "application/json", body)
	}
	f, err := os.Open(filepath.Join(rt.repo.dir, filepath.FromSlash(rt.file.Path)))
	if err != nil {
		gone()
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		gone()
		return
	}
	mt := rt.file.MediaType
	if mt == "" {
		mt = "application/octet-stream"
	}
	hd := w.Header()
	hd.Set("Content-Type", mt)
	hd.Set("Docker-Content-Digest", rt.file.Digest)
	hd.Set("ETag", fmt.Sprintf(`"%x-%x"`, st.ModTime().Unix(), st.Size()))
	http.ServeContent(partialWriter{w}, r, "", st.ModTime(), f)
}

// partialWriter drops the Accept-Ranges header that http.ServeContent puts
// on a 206, which nginx sends only on full responses.
type partialWriter struct{ http.ResponseWriter }

func (p partialWriter) WriteHeader(code int) {
	if code == http.StatusPartialContent {
		p.Header().Del("Accept-Ranges")
	}
	p.ResponseWriter.WriteHeader(code)
}
