package registrygen

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
)

// Fuzz targets for everything that parses outside input: directory names
// (names, tags, digests), the --name-prefix and --server-root values, and
// request paths. Manifest files are parsed by dirlayout, and fuzzed there
// (FuzzSniffMediaType). Seeds are below and in
// testdata/fuzz/<target>/. Run one with, e.g.:
//
//	go test ./registrygen -run '^$' -fuzz '^FuzzValidateName$' -fuzztime 2m

// forbidden are the characters (and sequences) that must never reach the
// config from a validated value: they could end a directive, open a block,
// start a variable, a comment or a quoted string.
func forbidden(s string) bool {
	return strings.ContainsAny(s, "\"'{};$# \t\r\n\\\x00") || strings.Contains(s, "..")
}

// componentRef is an independent (non-regexp) reading of the component
// grammar: [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*.
func componentRef(c string) bool {
	alnum := func(b byte) bool { return b >= 'a' && b <= 'z' || b >= '0' && b <= '9' }
	i := 0
	run := func() bool {
		start := i
		for i < len(c) && alnum(c[i]) {
			i++
		}
		return i > start
	}
	if !run() {
		return false
	}
	for i < len(c) {
		switch {
		case c[i] == '.':
			i++
		case strings.HasPrefix(c[i:], "__"):
			i += 2
		case c[i] == '_':
			i++
		case c[i] == '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
		if !run() {
			return false
		}
	}
	return true
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"library/busybox", "a", "a__b/c--d", "a._b", "A", "a//b", "a/../b", "a;b", "{{ x }}", strings.Repeat("a/", 128) + "a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateName(s)
		ref := s != "" && len(s) <= MaxNameLength
		for _, c := range strings.Split(s, "/") {
			ref = ref && componentRef(c)
		}
		if (err == nil) != ref {
			t.Fatalf("ValidateName(%q) = %v, reference grammar says %v", s, err, ref)
		}
		if err == nil && (forbidden(s) || strings.Contains(s, "//") || strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/")) {
			t.Fatalf("ValidateName accepted unsafe %q", s)
		}
	})
}

func FuzzValidateTag(f *testing.F) {
	for _, s := range []string{"1.0", "latest", "_x", ".x", "-x", "a:b", "a b", strings.Repeat("a", 129)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateTag(s) != nil {
			return
		}
		if forbidden(s) || len(s) > 128 || s == "" || s[0] == '.' || s[0] == '-' || strings.ContainsAny(s, ":/@") {
			t.Fatalf("ValidateTag accepted %q", s)
		}
	})
}

func FuzzValidateDigest(f *testing.F) {
	f.Add(zeroDigest)
	f.Add("sha256:" + strings.Repeat("A", 64))
	f.Add("sha512:" + strings.Repeat("0", 128))
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateDigest(s) != nil {
			return
		}
		hex, ok := strings.CutPrefix(s, "sha256:")
		if !ok || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
			t.Fatalf("ValidateDigest accepted %q", s)
		}
	})
}

func FuzzNormalizePrefix(f *testing.F) {
	for _, s := range []string{"", "/", "a/b/", "{{ repository }}", "sol-{{ v }}", "{% x %}", "{{ a }}{{ b }}", "{{ x }};", "{{x}}/y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := NormalizePrefix(s)
		if err != nil {
			return
		}
		if bare := placeholderRE.ReplaceAllString(p, "x"); forbidden(bare) || strings.Contains(bare, "//") {
			t.Fatalf("NormalizePrefix(%q) = %q: unsafe", s, p)
		}
		if p != "" {
			if again, err := NormalizePrefix(p); err != nil || again != p {
				t.Fatalf("NormalizePrefix not idempotent on %q: %q, %v", p, again, err)
			}
		}
	})
}

func FuzzNormalizeServerRoot(f *testing.F) {
	for _, s := range []string{"/", "/srv/images/", "$root/x", "{{ registry_root }}", "{{ registry_root }}/a", "/a/../b", "$", "${x}", "/a b", "{{ x }}{{ y }}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := NormalizeServerRoot(s)
		if err != nil {
			return
		}
		rest := r
		if h := nginxVarRE.FindString(r); h != "" {
			rest = r[len(h):]
		} else if loc := placeholderRE.FindStringIndex(r); loc != nil && loc[0] == 0 {
			rest = r[loc[1]:]
		}
		if forbidden(rest) || strings.Contains(rest, "//") || strings.Contains(rest+"/", "/./") || (rest != "" && rest[0] != '/') {
			t.Fatalf("NormalizeServerRoot(%q) = %q: unsafe", s, r)
		}
		if again, err := NormalizeServerRoot(r); err != nil || again != r {
			t.Fatalf("NormalizeServerRoot not idempotent on %q: %q, %v", r, again, err)
		}
	})
}

// fuzzHandler serves a tree of nested names built in memory, to fuzz the
// router without touching the file system for every input.
func fuzzHandler() *Handler {
	h := &Handler{repos: map[string]*handlerRepo{}}
	for _, n := range []string{"a", "a/b", "library/busybox", "a/manifests", "x.y/z-w"} {
		h.repos[n] = &handlerRepo{
			manifests: map[string]File{"1.0": {Digest: zeroDigest}, zeroDigest: {Digest: zeroDigest}},
			blobs:     map[string]File{zeroDigest: {Digest: zeroDigest}},
		}
		h.maxDepth = max(h.maxDepth, strings.Count(n, "/"))
	}
	return h
}

// routeRef is a naive reading of the routes: the longest known name whose
// "/v2/<name>/" prefixes the normalized path.
func routeRef(h *Handler, method, p string) routeKind {
	n, ok := normalizePath(p)
	switch {
	case !ok:
		return routeBadPath
	case !strings.HasPrefix(n, "/v2/"):
		return routeOutside
	case method != "GET" && method != "HEAD":
		return routeUnsupported
	case n == "/v2/":
		return routeBase
	}
	names := make([]string, 0, len(h.repos))
	for name := range h.repos {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	for _, name := range names {
		rest, ok := strings.CutPrefix(n, "/v2/"+name+"/")
		if !ok {
			continue
		}
		switch {
		case rest == "tags/list":
			return routeTags
		case strings.HasPrefix(rest, "manifests/"):
			if _, ok := h.repos[name].manifests[rest[len("manifests/"):]]; ok {
				return routeManifest
			}
			return routeManifestUnknown
		case strings.HasPrefix(rest, "blobs/"):
			if _, ok := h.repos[name].blobs[rest[len("blobs/"):]]; ok {
				return routeBlob
			}
			return routeBlobUnknown
		case strings.HasPrefix(rest, "referrers/"):
			if ValidateDigest(rest[len("referrers/"):]) == nil {
				return routeReferrers
			}
			return routeManifestUnknown
		}
		return routeNameUnknown
	}
	return routeNameUnknown
}

func FuzzRoute(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/a/manifests/1.0", "/v2/a/b/manifests/" + zeroDigest, "/v2/a/manifests/manifests/1.0",
		"/v2//a/./b/../b/tags/list", "/v2/../etc", "/v2/a/blobs/" + zeroDigest + "x", "/x/v2/a/tags/list", "/v2/a/referrers/" + zeroDigest,
		"/v2/library/busybox/blobs/" + zeroDigest, "v2/a", "/v2/x.y/z-w/tags/list/", "/v2/a/b/c/d/e/f/g/manifests/1.0"} {
		f.Add("GET", s)
	}
	f.Add("PUT", "/v2/a/manifests/1.0")
	f.Add("HEAD", "/v2/nope/blobs/x")
	h := fuzzHandler()
	f.Fuzz(func(t *testing.T, method, p string) {
		if n, ok := normalizePath(p); ok {
			if again, _ := normalizePath(n); again != n || strings.Contains(n, "//") || strings.Contains(n+"/", "/./") || strings.Contains(n+"/", "/../") {
				t.Fatalf("normalizePath(%q) = %q, not normal", p, n)
			}
		}
		got := h.route(method, p).kind
		if want := routeRef(h, method, p); got != want {
			t.Fatalf("route(%q, %q) = %v, reference says %v", method, p, got, want)
		}
		if got == routeManifest || got == routeBlob {
			return // would open files
		}
		if method == "" || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}") {
			return // not a valid request method
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Method, req.URL = method, &url.URL{Path: p}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q: status %d", method, p, rec.Code)
		}
	})
}

// FuzzConfigStructure checks that validated names, tags, prefixes and
// server roots cannot change the structure of the generated config: it
// has the same lines and the same count of every structural character as
// the config of a plain reference input.
func FuzzConfigStructure(f *testing.F) {
	f.Add("library/busybox", "1.36", "{{ repository }}", "{{ registry_root }}")
	f.Add("a", "b", "", "/srv")
	f.Add("a.b/c__d", "V1_0-rc.1", "p/q", "$root/images")
	structure := func(name, tag, prefix, root string) (int, map[rune]int, bool) {
		p, err1 := NormalizePrefix(prefix)
		r, err2 := NormalizeServerRoot(root)
		if ValidateName(name) != nil || ValidateTag(tag) != nil || err1 != nil || err2 != nil {
			return 0, nil, false
		}
		d := zeroDigest
		s := &served{prefix: p, serverRoot: r, tree: &Tree{Repositories: []*Repository{{
			Name:      name,
			Tags:      []Tag{{Name: tag, Manifest: File{Digest: d, MediaType: MediaTypeOCIManifest, Path: name + "/" + tag + "/manifest.json"}}},
			Manifests: []File{{Digest: d, MediaType: MediaTypeOCIManifest, Path: name + "/" + tag + "/manifest.json"}},
			Blobs:     []File{{Digest: d, Path: name + "/" + tag + "/" + hexOf(d)}},
		}}}}
		var b bytes.Buffer
		writeRoot(&b, s)
		out := placeholderRE.ReplaceAllString(b.String(), "x")
		if v := nginxVarRE.FindString(r); v != "" {
			out = strings.ReplaceAll(out, v, "x") // the one "$" allowed
		}
		counts := map[rune]int{}
		for _, c := range out {
			if strings.ContainsRune("{}'\";$#\\\n", c) {
				counts[c]++
			}
		}
		return strings.Count(out, "\n"), counts, true
	}
	refLines, refCounts, _ := structure("a", "b", "", "/r")
	f.Fuzz(func(t *testing.T, name, tag, prefix, root string) {
		lines, counts, ok := structure(name, tag, prefix, root)
		if !ok {
			return
		}
		if lines != refLines {
			t.Fatalf("%q %q %q %q: %d lines, reference %d", name, tag, prefix, root, lines, refLines)
		}
		for _, c := range "{}'\";$#\\\n" {
			if n := counts[c]; refCounts[c] != n {
				t.Fatalf("%q %q %q %q: %d %q, reference %d", name, tag, prefix, root, n, c, refCounts[c])
			}
		}
	})
}
