// Package isosbom writes the software bill of materials of an ISO root as
// CycloneDX JSON (sbom.cdx.json at the ISO root), through the CycloneDX
// project's own Go library:
//
//   - every image of images/<name>/<version>/ by its manifest digest,
//     purl pkg:oci/<name>@sha256:...?tag=<version>;
//   - every RPM of packages/redhat/<repo>/ by NEVRA and checksum, read
//     from the repository's own repodata, purl pkg:rpm/...;
//   - the Go programs: the buildchain that wrote the ISO and every Go
//     executable shipped outside images and packages, each with the
//     modules it was built from (what `go version -m` prints), purl
//     pkg:golang/...
//
// The document is the same bytes for the same inputs: its timestamp is
// SOURCE_DATE_EPOCH, components are sorted, and its serial number is a
// UUID v5 of the document written with no serial.
package isosbom

import (
	"bytes"
	"context"
	"crypto/sha1"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"path"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
	"github.com/metalk8s/buildchain/buildchain/rpm/repomd"
)

// Name is the SBOM's path at the ISO root.
const Name = "sbom.cdx.json"

// Options describe the product the ISO is.
type Options struct {
	Product, Version string
	Epoch            time.Time
	// Builder is the build information of the program writing the ISO;
	// nil reads the running program's.
	Builder *debug.BuildInfo
}

// Generate reads the ISO root fsys and returns its bill of materials.
// Every image, repository or executable that cannot be read is an error
// naming its path: an SBOM that silently misses a part is worse than none.
func Generate(ctx context.Context, fsys fs.FS, opts Options) (*cdx.BOM, error) {
	bom := cdx.NewBOM()
	product := cdx.Component{
		BOMRef:  "product",
		Type:    cdx.ComponentTypeApplication,
		Name:    opts.Product,
		Version: opts.Version,
	}
	builder := opts.Builder
	if builder == nil {
		if bi, ok := debug.ReadBuildInfo(); ok {
			builder = bi
		}
	}
	var tools []cdx.Component
	if builder != nil {
		tools = append(tools, goComponent("tool:", builder))
	}
	bom.Metadata = &cdx.Metadata{
		Timestamp: opts.Epoch.UTC().Format(time.RFC3339),
		Component: &product,
		Tools:     &cdx.ToolsChoice{Components: &tools},
	}
	var comps []cdx.Component
	images, err := imageComponents(ctx, fsys)
	if err != nil {
		return nil, err
	}
	comps = append(comps, images...)
	rpms, err := rpmComponents(fsys)
	if err != nil {
		return nil, err
	}
	comps = append(comps, rpms...)
	bins, err := binaryComponents(fsys)
	if err != nil {
		return nil, err
	}
	comps = append(comps, bins...)
	sort.Slice(comps, func(i, j int) bool { return comps[i].BOMRef < comps[j].BOMRef })
	for i := 1; i < len(comps); i++ {
		if comps[i].BOMRef == comps[i-1].BOMRef {
			return nil, fmt.Errorf("two components are %s", comps[i].BOMRef)
		}
	}
	bom.Components = &comps
	return bom, nil
}

// Encode writes bom as indented JSON, setting its serial number to the
// UUID v5 of the document without one.
func Encode(bom *cdx.BOM) ([]byte, error) {
	bom.SerialNumber = ""
	raw, err := encode(bom)
	if err != nil {
		return nil, err
	}
	bom.SerialNumber = "urn:uuid:" + uuidV5(namespace, raw)
	return encode(bom)
}

func encode(bom *cdx.BOM) ([]byte, error) {
	var b bytes.Buffer
	enc := cdx.NewBOMEncoder(&b, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(bom); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// namespace is the UUID v5 namespace of MetalK8s ISO SBOMs (itself the
// v5 UUID of "metalk8s-iso-sbom" in the URL namespace).
var namespace = uuidV5("6ba7b811-9dad-11d1-80b4-00c04fd430c8", []byte("metalk8s-iso-sbom"))

// uuidV5 is RFC 9562's name-based UUID (SHA-1).
func uuidV5(ns string, name []byte) string {
	nsb, err := hex.DecodeString(strings.ReplaceAll(ns, "-", ""))
	if err != nil || len(nsb) != 16 {
		panic("isosbom: bad UUID namespace " + ns)
	}
	h := sha1.New()
	h.Write(nsb)
	h.Write(name)
	u := h.Sum(nil)[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

func sha256Hash(digest string) *[]cdx.Hash {
	return &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: strings.TrimPrefix(digest, "sha256:")}}
}

// imageComponents lists images/<name...>/<version>/: an image directory's
// parent path is its name, its own name the version.
func imageComponents(ctx context.Context, fsys fs.FS) ([]cdx.Component, error) {
	var out []cdx.Component
	err := dirlayout.Walk(ctx, fsys, "images", dirlayout.Options{}, func(dir *dirlayout.Dir) error {
		p := dir.Path
		if len(dir.Manifests) == 0 {
			return fmt.Errorf("image %s: no manifest", p)
		}
		name, version := path.Dir(strings.TrimPrefix(p, "images/")), path.Base(p)
		digest := dir.Manifests[0].Digest
		// purl-spec's oci type: the last name segment, the digest with
		// its colon escaped, the tag as a qualifier.
		purl := "pkg:oci/" + url.PathEscape(path.Base(name)) + "@" + strings.ReplaceAll(digest, ":", "%3A") + "?" + url.Values{"tag": {version}}.Encode()
		out = append(out, cdx.Component{
			BOMRef:     "image:" + name + ":" + version,
			Type:       cdx.ComponentTypeContainer,
			Name:       name,
			Version:    version,
			PackageURL: purl,
			Hashes:     sha256Hash(digest),
			Properties: &[]cdx.Property{
				{Name: "metalk8s:image", Value: name},
				{Name: "metalk8s:path", Value: p},
				{Name: "metalk8s:media-type", Value: string(dir.MediaType)},
			},
		})
		return nil
	})
	return out, err
}

// rpmComponents lists every package of packages/redhat/<repo>/ from the
// repository's primary metadata, which dnf trusts on the node too.
func rpmComponents(fsys fs.FS) ([]cdx.Component, error) {
	repos, err := fs.ReadDir(fsys, "packages/redhat")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []cdx.Component
	for _, r := range repos {
		if !r.IsDir() {
			continue
		}
		repo := r.Name()
		dir := path.Join("packages/redhat", repo)
		mdPath := path.Join(dir, "repodata/repomd.xml")
		f, err := fsys.Open(mdPath)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("repository %s has no %s", repo, mdPath)
		}
		if err != nil {
			return nil, err
		}
		md, err := repomd.ParseRepomd(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", mdPath, err)
		}
		prim := md.Data("primary")
		primPath := path.Join(dir, prim.Location)
		pf, err := fsys.Open(primPath)
		if err != nil {
			return nil, fmt.Errorf("repository %s: %w", repo, err)
		}
		rd, err := repomd.Decompress(primPath, pf)
		if err != nil {
			pf.Close()
			return nil, fmt.Errorf("%s: %w", primPath, err)
		}
		err = repomd.ParsePrimary(rd, func(p *repomd.Package) error {
			q := url.Values{"arch": {p.Arch}, "repository_id": {repo}}
			if p.Epoch != "" && p.Epoch != "0" {
				q.Set("epoch", p.Epoch)
			}
			c := cdx.Component{
				BOMRef:     "rpm:" + repo + ":" + p.NEVRA(),
				Type:       cdx.ComponentTypeLibrary,
				Name:       p.Name,
				Version:    p.EVR().String(),
				PackageURL: "pkg:rpm/" + url.PathEscape(p.Name) + "@" + url.PathEscape(p.Ver+"-"+p.Rel) + "?" + q.Encode(),
				Properties: &[]cdx.Property{
					{Name: "metalk8s:nevra", Value: p.NEVRA()},
					{Name: "metalk8s:repository", Value: repo},
					{Name: "metalk8s:path", Value: path.Join(dir, p.Location)},
				},
			}
			if p.License != "" {
				c.Licenses = &cdx.Licenses{{Expression: p.License}}
			}
			switch p.ChecksumType {
			case "sha256":
				c.Hashes = &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: p.Checksum}}
			case "sha512":
				c.Hashes = &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA512, Value: p.Checksum}}
			default:
				return fmt.Errorf("package %s: checksum type %q", p.NEVRA(), p.ChecksumType)
			}
			out = append(out, c)
			return nil
		})
		pf.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", primPath, err)
		}
	}
	return out, nil
}

// binaryComponents finds the Go executables shipped outside images and
// packages (whose binaries are inside layers and RPM payloads, and are
// described by the image and the package).
func binaryComponents(fsys fs.FS) ([]cdx.Component, error) {
	var out []cdx.Component
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p == "images" || p == "packages" {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := fsys.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		ra, ok := f.(io.ReaderAt)
		if !ok {
			return fmt.Errorf("%s: the file system cannot read at an offset", p)
		}
		bi, err := buildinfo.Read(ra)
		if err != nil {
			// Not a Go executable: scripts, product.txt, the manifest.
			return nil
		}
		c := goComponent("binary:"+p+":", bi)
		c.Type = cdx.ComponentTypeApplication
		*c.Properties = append(*c.Properties, cdx.Property{Name: "metalk8s:path", Value: p})
		out = append(out, c)
		return nil
	})
	return out, err
}

func goPurl(mod, version string) string {
	if version == "" || version == "(devel)" {
		// A build from a work tree has no version a purl could name.
		return "pkg:golang/" + mod
	}
	return "pkg:golang/" + mod + "@" + url.PathEscape(version)
}

// goComponent describes a Go program by its main module, with each module
// it was built from as a sub-component.
func goComponent(refPrefix string, bi *debug.BuildInfo) cdx.Component {
	c := cdx.Component{
		BOMRef:     refPrefix + bi.Main.Path,
		Type:       cdx.ComponentTypeApplication,
		Name:       bi.Main.Path,
		Version:    bi.Main.Version,
		PackageURL: goPurl(bi.Main.Path, bi.Main.Version),
		Properties: &[]cdx.Property{{Name: "metalk8s:go-version", Value: bi.GoVersion}},
	}
	if bi.Main.Path == "" {
		// A test binary or `go run` of a file: name it by its package.
		c.Name, c.BOMRef = bi.Path, refPrefix+bi.Path
		c.PackageURL = ""
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" || s.Key == "vcs.modified" || s.Key == "GOOS" || s.Key == "GOARCH" {
			*c.Properties = append(*c.Properties, cdx.Property{Name: "metalk8s:go-" + s.Key, Value: s.Value})
		}
	}
	var deps []cdx.Component
	for _, m := range bi.Deps {
		if m.Replace != nil {
			m = m.Replace
		}
		deps = append(deps, cdx.Component{
			BOMRef:     c.BOMRef + ">" + m.Path + "@" + m.Version,
			Type:       cdx.ComponentTypeLibrary,
			Name:       m.Path,
			Version:    m.Version,
			PackageURL: goPurl(m.Path, m.Version),
		})
	}
	sort.Slice(deps, func(i, j int) bool { return deps[i].BOMRef < deps[j].BOMRef })
	if len(deps) > 0 {
		c.Components = &deps
	}
	return c
}
