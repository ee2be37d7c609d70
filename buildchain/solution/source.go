package solution

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/yamlstrict"
)

// SourceFile is the name of a Solution source description in its directory.
const SourceFile = "solution.yaml"

// Source describes how to build a Solution archive: solution.yaml.
//
//	name: example-solution
//	version: 1.0.0
//	require_metalk8s: ">=2.0"
//	operator: operator/deploy        # the default
//	ui: ui/deployment.yaml           # optional; the default when the file exists
//	binaries:                        # Go main packages that "build" images use as build:NAME
//	  example-solution-operator: ./operator
//	images:
//	  - {name: nginx, version: 1.25.3, source: docker.io/library/nginx, digest: "sha256:…"}  # registry or mirror
//	  - {name: app, version: 1.0.0, oci: layouts/app, ref: "1.0.0"}    # OCI image layout (ref: tag or digest, optional)
//	  - {name: tool, version: 2.1.0, docker-archive: tool.tar}         # `docker save` tarball (ref optional)
//	  - {name: db, version: 3.0.0, dir: images/db}                      # skopeo dir:
//	  - {name: example-solution-operator, version: 1.0.0, build: operator/image.yaml}  # buildchain/imagebuild
//
// Relative paths are relative to the directory of solution.yaml.
type Source struct {
	Dir             string // absolute directory the paths are relative to
	File            string // the file it was read from, for messages
	Name            string
	Version         string
	RequireMetalK8s string
	Operator        string            // directory holding the Operator files
	UI              string            // the UI Deployment file, or ""
	Binaries        map[string]string // binary name → Go package path
	Images          []ImageSource
}

// Image source kinds.
const (
	FromRegistry      = "registry"
	FromOCILayout     = "oci"
	FromDockerArchive = "docker-archive"
	FromDir           = "dir"
	FromBuild         = "build"
)

// ImageSource is one image of the archive and where it comes from.
type ImageSource struct {
	Name, Version string
	Kind          string // one of the From* constants
	Source        string // registry/repository (FromRegistry)
	Digest        string // pinned manifest or index digest (FromRegistry)
	Path          string // file or directory (other kinds), absolute
	Ref           string // tag or digest inside an OCI layout or docker archive
	Line          int
}

// SourceError is a solution.yaml error at a line.
type SourceError = yamlstrict.Error

// LoadSource reads solution.yaml, or the solution.yaml of a directory.
func LoadSource(p string) (*Source, error) {
	if fi, err := os.Stat(p); err == nil && fi.IsDir() {
		p = filepath.Join(p, SourceFile)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(filepath.Dir(p))
	if err != nil {
		return nil, err
	}
	s, err := ParseSource(p, data)
	if err != nil {
		return nil, err
	}
	s.resolve(abs)
	if s.UI == "" {
		def := filepath.Join(abs, "ui", "deployment.yaml")
		if _, err := os.Lstat(def); err == nil {
			s.UI = def
		}
	}
	return s, nil
}

// resolve makes the paths of s absolute, relative to dir.
func (s *Source) resolve(dir string) {
	s.Dir = dir
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, filepath.FromSlash(p))
	}
	s.Operator = abs(s.Operator)
	s.UI = abs(s.UI)
	for i := range s.Images {
		s.Images[i].Path = abs(s.Images[i].Path)
	}
}

var binaryNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// ParseSource parses solution.yaml; file names it in errors. Paths stay as
// written (LoadSource resolves them). Unknown fields, anchors and aliases are
// errors: a typo must never silently change an archive.
func ParseSource(file string, data []byte) (*Source, error) {
	errf := func(n *yaml.Node, format string, args ...any) error {
		return yamlstrict.Errorf(file, n, format, args...)
	}
	root, err := yamlstrict.Decode(file, data)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, errf(nil, "empty file")
	}
	if root.Kind != yaml.MappingNode {
		return nil, errf(root, "want a mapping with name, version, require_metalk8s and images")
	}
	s := &Source{File: file, Operator: "operator/deploy"}
	str := func(n *yaml.Node, what string) (string, error) {
		if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
			return "", errf(n, "%s: want a string", what)
		}
		return n.Value, nil
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, val := root.Content[i], root.Content[i+1]
		if seen[k.Value] {
			return nil, errf(k, "%s is set twice", k.Value)
		}
		seen[k.Value] = true
		var err error
		switch k.Value {
		case "name":
			s.Name, err = str(val, "name")
		case "version":
			s.Version, err = str(val, "version")
		case "require_metalk8s":
			if s.RequireMetalK8s, err = str(val, "require_metalk8s"); err == nil {
				if _, cerr := ParseConstraint(s.RequireMetalK8s); cerr != nil {
					err = errf(val, "require_metalk8s: %v", cerr)
				}
			}
		case "operator":
			s.Operator, err = str(val, "operator")
		case "ui":
			s.UI, err = str(val, "ui")
		case "binaries":
			if val.Kind != yaml.MappingNode {
				return nil, errf(val, "binaries: want a mapping of binary name to Go package")
			}
			s.Binaries = map[string]string{}
			for j := 0; j+1 < len(val.Content); j += 2 {
				bk, bv := val.Content[j], val.Content[j+1]
				if !binaryNameRE.MatchString(bk.Value) {
					return nil, errf(bk, "binary name %q: want [a-z0-9][a-z0-9._-]*", bk.Value)
				}
				if _, dup := s.Binaries[bk.Value]; dup {
					return nil, errf(bk, "binary %s is listed twice", bk.Value)
				}
				pkg, err := str(bv, "binaries."+bk.Value)
				if err != nil {
					return nil, err
				}
				if !strings.HasPrefix(pkg, "./") && !strings.HasPrefix(pkg, "../") {
					return nil, errf(bv, "binaries.%s: %q must be a relative package path starting with ./ (built offline from the enclosing module)", bk.Value, pkg)
				}
				s.Binaries[bk.Value] = pkg
			}
		case "images":
			if val.Kind != yaml.SequenceNode {
				return nil, errf(val, "images: want a list")
			}
			for _, in := range val.Content {
				im, err := parseImageSource(in, errf, str)
				if err != nil {
					return nil, err
				}
				s.Images = append(s.Images, im)
			}
		default:
			return nil, errf(k, "unknown field %q (want name, version, require_metalk8s, operator, ui, binaries, images)", k.Value)
		}
		if err != nil {
			return nil, err
		}
	}
	for _, req := range []string{"name", "version", "require_metalk8s"} {
		if !seen[req] {
			return nil, errf(root, "%s is missing", req)
		}
	}
	if err := CheckNameVersion(s.Name, s.Version); err != nil {
		return nil, errf(root, "%v", err)
	}
	for _, p := range []string{s.Operator, s.UI} {
		if strings.Contains(p, "\x00") {
			return nil, errf(root, "path %q holds a NUL byte", p)
		}
	}
	seenImg := map[string]int{}
	for _, im := range s.Images {
		key := im.Name + ":" + im.Version
		if prev, dup := seenImg[key]; dup {
			return nil, yamlstrict.At(file, im.Line, "image %s is already listed on line %d", key, prev)
		}
		seenImg[key] = im.Line
	}
	return s, nil
}

func parseImageSource(n *yaml.Node, errf func(*yaml.Node, string, ...any) error, str func(*yaml.Node, string) (string, error)) (ImageSource, error) {
	im := ImageSource{Line: n.Line}
	if n.Kind != yaml.MappingNode {
		return im, errf(n, "an image is a mapping with name, version and one source")
	}
	seen := map[string]bool{}
	var kinds []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			return im, errf(k, "%s is set twice", k.Value)
		}
		seen[k.Value] = true
		v, err := str(val, k.Value)
		if err != nil {
			return im, err
		}
		switch k.Value {
		case "name":
			im.Name = v
		case "version":
			im.Version = v
		case "source":
			im.Source = v
			kinds = append(kinds, FromRegistry)
		case "digest":
			im.Digest = v
		case "ref":
			im.Ref = v
		case FromOCILayout, FromDockerArchive, FromDir, FromBuild:
			if v == "" || strings.Contains(v, "\x00") {
				return im, errf(val, "%s: want a path", k.Value)
			}
			im.Path = v
			kinds = append(kinds, k.Value)
		default:
			return im, errf(k, "unknown image field %q (want name, version, and source+digest, oci, docker-archive, dir or build)", k.Value)
		}
	}
	if !oci.ValidName(im.Name) {
		return im, errf(n, "image name %q is not a valid repository name", im.Name)
	}
	if !oci.ValidTag(im.Version) {
		return im, errf(n, "image %s: version %q is not a valid tag", im.Name, im.Version)
	}
	if len(kinds) != 1 {
		return im, errf(n, "image %s:%s needs exactly one source: source+digest (registry), oci, docker-archive, dir or build", im.Name, im.Version)
	}
	im.Kind = kinds[0]
	switch {
	case im.Kind == FromRegistry && !oci.ValidDigest(im.Digest):
		return im, errf(n, "image %s:%s: a registry source must be pinned by digest (sha256:<64 hex>), got %q", im.Name, im.Version, im.Digest)
	case im.Kind != FromRegistry && im.Digest != "":
		return im, errf(n, "image %s:%s: digest only goes with source", im.Name, im.Version)
	case im.Ref != "" && im.Kind != FromOCILayout && im.Kind != FromDockerArchive:
		return im, errf(n, "image %s:%s: ref only goes with oci or docker-archive", im.Name, im.Version)
	case im.Kind == FromRegistry && (strings.Count(im.Source, "/") < 1 || strings.ContainsAny(im.Source, "@ ")):
		return im, errf(n, "image %s:%s: source %q: want registry/repository", im.Name, im.Version, im.Source)
	}
	return im, nil
}
