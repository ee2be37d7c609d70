package registrygen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

// Root is one image root to serve, as given on the command line.
type Root struct {
	// Dir is the directory scanned for <name>/<tag> image directories.
	Dir string
	// NamePrefix goes in front of every repository name found in Dir
	// (--name-prefix); it may hold {{ variable }} placeholders for the
	// nginx config, not for the built-in server.
	NamePrefix string
	// ServerRoot is where nginx finds Dir (--server-root): an absolute path,
	// an nginx $variable or a {{ variable }} placeholder, each optionally
	// followed by a path. Empty means Dir's absolute path.
	ServerRoot string

	// fsys, if set, is the file system Dir is a slash path of (see
	// ScanFS), for Template; nil means the operating system's. It is not
	// exported because the built-in server opens files by their OS path.
	fsys fs.FS
}

// ConstantsMode says whether the locations shared by all roots are emitted.
type ConstantsMode int

const (
	// WithConstants emits the shared locations and the roots' locations:
	// a complete registry for one server block.
	WithConstants ConstantsMode = iota
	// OmitConstants emits only the roots' locations (--omit-constants), for
	// one of several includes served side by side.
	OmitConstants
	// OnlyConstants emits only the shared locations (--only-constants),
	// included once in the server block beside the OmitConstants includes.
	OnlyConstants
)

// Config is the input of Generate.
type Config struct {
	Roots     []Root
	Constants ConstantsMode
}

// Response bodies, shared by the nginx config and the built-in server so
// that both send the same bytes.
var (
	bodyBase        = `{}`
	bodyNameUnknown = errorBody("NAME_UNKNOWN", "repository name not known to registry")
	bodyManifestUnk = errorBody("MANIFEST_UNKNOWN", "manifest unknown")
	bodyBlobUnknown = errorBody("BLOB_UNKNOWN", "blob unknown to registry")
	bodyUnsupported = errorBody("UNSUPPORTED", "the operation is unsupported: this registry is read-only")
	bodyReferrers   = `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[]}`
)

// errorBody is the distribution spec's error document. The messages are
// constant: nothing from the request is echoed back.
func errorBody(code, message string) string {
	b, err := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": message}}})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// tagsBody is the /tags/list document for the full name and its sorted tags.
func tagsBody(name string, tags []Tag) string {
	names := make([]string, len(tags))
	for i, t := range tags {
		names[i] = t.Name
	}
	b, err := json.Marshal(struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{name, names})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// APIVersionHeader is sent on every /v2/ response, as Distribution does;
// Docker clients check it on /v2/.
const (
	APIVersionHeader = "Docker-Distribution-API-Version"
	APIVersion       = "registry/2.0"
	// unsupportedURI is where non-GET/HEAD requests under /v2/ are sent by
	// an internal rewrite. "_" cannot start a name component, so it never
	// collides with a repository.
	unsupportedURI = "/v2/_registrygen/unsupported"
)

// served is a root prepared for serving: scanned and validated.
type served struct {
	root       Root
	prefix     string // normalized: "" or ending in "/"
	serverRoot string // normalized
	tree       *Tree
}

// fullName is the repository name clients use.
func (s *served) fullName(r *Repository) string { return s.prefix + r.Name }

// prepare scans and validates every root, and checks that no repository
// name is claimed by two roots.
func prepare(roots []Root) ([]*served, error) {
	var out []*served
	owner := map[string]string{}
	for _, root := range roots {
		prefix, err := NormalizePrefix(root.NamePrefix)
		if err != nil {
			return nil, fmt.Errorf("root %s: %w", root.Dir, err)
		}
		var tree *Tree
		if root.fsys != nil {
			if root.ServerRoot == "" {
				return nil, fmt.Errorf("root %s: a root read from a file system needs a server root", root.Dir)
			}
			tree, err = ScanFS(root.fsys, root.Dir)
		} else {
			tree, err = Scan(root.Dir)
		}
		if err != nil {
			return nil, err
		}
		sr := root.ServerRoot
		if sr == "" {
			sr = tree.Dir
		}
		serverRoot, err := NormalizeServerRoot(sr)
		if err != nil {
			if root.ServerRoot == "" {
				return nil, fmt.Errorf("root %s: %w (pass a server root to serve it from another path)", root.Dir, err)
			}
			return nil, fmt.Errorf("root %s: %w", root.Dir, err)
		}
		s := &served{root: root, prefix: prefix, serverRoot: serverRoot, tree: tree}
		for _, r := range tree.Repositories {
			full := s.fullName(r)
			where := tree.Dir + "/" + r.Name
			if !IsTemplate(prefix) {
				if err := ValidateName(full); err != nil {
					return nil, fmt.Errorf("%s: with prefix %q: %w", where, prefix, err)
				}
			}
			if prev, dup := owner[full]; dup {
				return nil, fmt.Errorf("repository %s is served from both %s and %s", full, prev, where)
			}
			owner[full] = where
		}
		out = append(out, s)
	}
	// A name that is another's name plus "/manifests" (or "/blobs",
	// "/tags", "/referrers") would take that other repository's requests:
	// nginx and the handler pick the longest name prefix, while the API
	// reads /v2/a/manifests/1.0 as repository a, tag 1.0.
	names := make([]string, 0, len(owner))
	for full := range owner {
		names = append(names, full)
	}
	sort.Strings(names) // the same error on every run
	for _, full := range names {
		where := owner[full]
		for _, ep := range []string{"manifests", "blobs", "tags", "referrers"} {
			if other, ok := owner[full+"/"+ep]; ok {
				return nil, fmt.Errorf("repository %s/%s (%s) would shadow the %s API of repository %s (%s)", full, ep, other, ep, full, where)
			}
		}
	}
	return out, nil
}

// Generate returns the nginx configuration for cfg: location blocks to
// include in one server block. It fails, writing nothing, on any invalid
// input. The output depends only on the trees' content and names, so it is
// byte-identical on re-run.
func Generate(cfg Config) ([]byte, error) {
	var roots []*served
	if cfg.Constants != OnlyConstants {
		var err error
		if roots, err = prepare(cfg.Roots); err != nil {
			return nil, err
		}
	}
	var b bytes.Buffer
	b.WriteString("# Generated by registrygen: a read-only Docker Registry v2 / OCI distribution\n" +
		"# API over skopeo dir: image trees. Include it in an nginx server block.\n")
	if cfg.Constants != OmitConstants {
		writeConstants(&b)
	}
	for _, s := range roots {
		writeRoot(&b, s)
	}
	return b.Bytes(), nil
}

// WriteConfig writes the configuration for cfg to w, all or nothing.
func WriteConfig(w io.Writer, cfg Config) error {
	data, err := Generate(cfg)
	if err != nil {
		return err
	}
	_, err = w.Write(data)
	return err
}

// WriteConfigFile writes the configuration for cfg to path atomically: a
// reader (or an nginx reload) never sees a partial file.
func WriteConfigFile(path string, cfg Config) error {
	data, err := Generate(cfg)
	if err != nil {
		return err
	}
	return fsutil.WriteFile(path, data, 0o644)
}

// writeConstants emits what every root relies on, once per server block.
func writeConstants(b *bytes.Buffer) {
	fmt.Fprintf(b, `
# Constants, once per server block (static-container-registry's
# --only-constants part).
# Writes are refused: any other method than GET and HEAD under /v2/ is
# routed to a 405 UNSUPPORTED. A server-level rewrite is the one place that
# sees every /v2/ request before a location runs its "return".
if ($request_method !~ ^(GET|HEAD)$) {
    rewrite ^/v2/ %[1]s last;
}
location = %[1]s {
    internal;
    types { }
    default_type application/json;
    add_header %[2]s %[3]s always;
    add_header Allow "GET, HEAD" always;
    return 405 '%[4]s';
}
location = /v2/ {
    types { }
    default_type application/json;
    add_header %[2]s %[3]s always;
    return 200 '%[5]s';
}
# Any other /v2/ path is an unknown repository; each repository's own
# (longer) prefix location below wins for its paths.
location ^~ /v2/ {
    types { }
    default_type application/json;
    add_header %[2]s %[3]s always;
    return 404 '%[6]s';
}
`, unsupportedURI, APIVersionHeader, APIVersion, bodyUnsupported, bodyBase, bodyNameUnknown)
}

// writeRoot emits the locations of one root's repositories. Everything it
// writes comes from validated names and tags, hex digests, the four known
// media types and the validated prefix and server root.
func writeRoot(b *bytes.Buffer, s *served) {
	fmt.Fprintf(b, "\n# Root: names prefixed with %q, files under %s.\n", s.prefix, s.serverRoot)
	for _, r := range s.tree.Repositories {
		n := s.fullName(r)
		fmt.Fprintf(b, `
# Repository %[1]s
location ^~ /v2/%[1]s/ {
    types { }
    default_type application/json;
    add_header %[2]s %[3]s always;
    return 404 '%[4]s';

    location = /v2/%[1]s/tags/list {
        return 200 '%[5]s';
    }
    location /v2/%[1]s/manifests/ {
        return 404 '%[6]s';
`, n, APIVersionHeader, APIVersion, bodyNameUnknown, tagsBody(n, r.Tags), bodyManifestUnk)
		for _, t := range r.Tags {
			writeFile(b, s, "/v2/"+n+"/manifests/"+t.Name, t.Manifest)
		}
		for _, m := range r.Manifests {
			writeFile(b, s, "/v2/"+n+"/manifests/"+m.Digest, m)
		}
		fmt.Fprintf(b, `    }
    location /v2/%[1]s/blobs/ {
        return 404 '%[2]s';
`, n, bodyBlobUnknown)
		for _, f := range r.Blobs {
			writeFile(b, s, "/v2/"+n+"/blobs/"+f.Digest, f)
		}
		fmt.Fprintf(b, `    }
    location /v2/%[1]s/referrers/ {
        return 404 '%[2]s';
        location ~ "^/v2/%[3]s/referrers/sha256:[a-f0-9]{64}$" {
            default_type %[4]s;
            return 200 '%[5]s';
        }
    }
}
`, n, bodyManifestUnk, regexLiteral(n), MediaTypeOCIIndex, bodyReferrers)
	}
}

// writeFile emits the exact location serving f at uri.
func writeFile(b *bytes.Buffer, s *served, uri string, f File) {
	mt := f.MediaType
	if mt == "" {
		mt = "application/octet-stream"
	}
	fmt.Fprintf(b, `        location = %s {
            alias %s;
            default_type %s;
            add_header %s %s;
            add_header Docker-Content-Digest %s;
        }
`, uri, serverPath(s.serverRoot, f.Path), mt, APIVersionHeader, APIVersion, f.Digest)
}

func serverPath(root, rel string) string {
	if root == "/" {
		return "/" + rel
	}
	return root + "/" + rel
}

// regexLiteral quotes a repository name for a PCRE: "." is the only
// metacharacter the name grammar allows. Placeholders are left alone; what
// they render to is matched literally by the enclosing prefix location
// anyway.
func regexLiteral(name string) string { return strings.ReplaceAll(name, ".", "[.]") }

// GenerateRoot is Generate for a single root, the static-container-registry
// case.
func GenerateRoot(dir, namePrefix, serverRoot string, mode ConstantsMode) ([]byte, error) {
	return Generate(Config{Roots: []Root{{Dir: dir, NamePrefix: namePrefix, ServerRoot: serverRoot}}, Constants: mode})
}

// The Jinja placeholders MetalK8s substitutes when it renders a Solution's
// (or its own) registry configuration template (docs 12.2.4): the
// repository every image name is put under, and where the archive's images
// directory is mounted.
const (
	RepositoryPlaceholder   = "{{ repository }}"
	RegistryRootPlaceholder = "{{ registry_root }}"
)

// Template returns the registry configuration template of the images
// directory dir of fsys (a slash path): names prefixed with
// RepositoryPlaceholder, files under RegistryRootPlaceholder. It is the
// one definition of a Solution archive's registry-config.inc.j2 (with
// OmitConstants), for the tool that writes it and for the validator, which
// regenerates it from the archive (an ISO image read in place, or a
// directory) and requires the archive's copy to be identical.
func Template(fsys fs.FS, dir string, mode ConstantsMode) ([]byte, error) {
	return Generate(Config{Roots: []Root{{fsys: fsys, Dir: dir, NamePrefix: RepositoryPlaceholder, ServerRoot: RegistryRootPlaceholder}}, Constants: mode})
}
