package solution

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
	"github.com/metalk8s/buildchain/registrygen"
)

// Fixed paths of the archive (12.2.2).
const (
	ProductFile    = "product.txt"
	ImagesDir      = "images"
	RegistryConfig = "registry-config.inc.j2"
	OperatorDir    = "operator/deploy"
	CRDsDir        = "operator/deploy/crds"
	UIDeployment   = "ui/deployment.yaml"
)

// operatorFiles are the files operator/deploy must hold besides crds/ (12.3.1).
var operatorFiles = []string{"operator.yaml", "role.yaml", "role_binding.yaml", "service_account.yaml"}

// Size limits on files validation reads whole.
const (
	maxProductSize = 64 << 10
	maxYAMLSize    = 8 << 20
	maxConfigSize  = 64 << 20
)

// Problem is one fault of an archive, at a path inside it ("" for the
// archive as a whole, such as its volume descriptors).
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Report is what validation found: the archive's identity and content as far
// as it could be read, and every problem.
type Report struct {
	Archive  string      `json:"archive"`
	Format   string      `json:"format"` // "iso" or "directory"
	VolumeID string      `json:"volume_id,omitempty"`
	Product  *Product    `json:"product,omitempty"`
	Images   []ImageInfo `json:"images"`
	UI       bool        `json:"ui"`
	Problems []Problem   `json:"problems"`
}

// OK reports whether the archive has no problem.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Err returns nil for a valid archive, else an error listing every problem.
func (r *Report) Err() error {
	if r.OK() {
		return nil
	}
	lines := make([]string, len(r.Problems))
	for i, p := range r.Problems {
		lines[i] = "  " + p.String()
	}
	return fmt.Errorf("%s: %d problem(s):\n%s", r.Archive, len(r.Problems), strings.Join(lines, "\n"))
}

// ImageInfo describes one image of an archive.
type ImageInfo struct {
	Name      string   `json:"name"`
	Version   string   `json:"version"`
	Digest    string   `json:"digest"` // of manifest.json
	MediaType string   `json:"media_type"`
	Size      int64    `json:"size"` // manifests and blobs, each counted once
	Blobs     int      `json:"blobs"`
	Platforms []string `json:"platforms,omitempty"`
}

// Validate checks the archive at p (an ISO image or a directory tree laid
// out as one) against docs chapter 12.2 and returns every problem found.
// The error is for input that cannot be read at all.
func Validate(ctx context.Context, p string) (*Report, error) {
	a, im, err := openArchive(p)
	if err != nil {
		return nil, err
	}
	defer a.close()
	v := &validator{ctx: ctx, a: a, rep: &Report{Archive: p, Format: "directory", Images: []ImageInfo{}, Problems: []Problem{}},
		byPath: a.byPath}
	if im != nil {
		v.rep.Format = "iso"
		v.rep.VolumeID = im.VolumeID
		if !im.RockRidge {
			v.bad("", "no Rock Ridge extension (SUSP SP and an RRIP ER entry on the root); 12.2.1 requires Rock Ridge")
		}
		if !im.Joliet {
			v.bad("", "no Joliet supplementary volume descriptor; 12.2.1 requires Joliet")
		}
		for _, pr := range im.Problems {
			v.bad(pr.Path, pr.Msg)
		}
	}
	v.run()
	if im != nil && v.rep.Product != nil && v.rep.Product.Name != "" && v.rep.Product.Version != "" {
		if want := v.rep.Product.VolumeID(); im.VolumeID != want {
			v.bad("", fmt.Sprintf("volume ID is %q; product.txt says it must be %q (NAME VERSION, 12.2.1)", im.VolumeID, want))
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(v.rep.Problems, func(i, j int) bool { return v.rep.Problems[i].Path < v.rep.Problems[j].Path })
	return v.rep, nil
}

type validator struct {
	ctx    context.Context
	a      *archive
	rep    *Report
	byPath map[string]node
	images map[string]*ImageInfo
}

func (v *validator) bad(p, msg string) { v.rep.Problems = append(v.rep.Problems, Problem{p, msg}) }

func (v *validator) run() {
	v.safety()
	v.product()
	v.layout()
	v.imagesCheck()
	v.registryConfig()
	v.yamlCheck()
}

// safety refuses special files and links leaving the archive, and checks
// names against the limits of 12.2.1.
func (v *validator) safety() {
	links := newLinkResolver(v.byPath)
	for _, n := range v.a.nodes() {
		switch {
		case n.Mode&fs.ModeSymlink != 0:
			if msg := links.linkProblem(n); msg != "" {
				v.bad(n.Path, msg)
			}
		case n.Mode.IsDir(), n.Mode.IsRegular():
		default:
			v.bad(n.Path, fmt.Sprintf("special file (%s); an archive holds only directories, regular files and links inside it", fsutil.TypeName(n.Mode)))
		}
		if n.Mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			v.bad(n.Path, "set-user-ID or set-group-ID bit set")
		}
		v.nameLimits(n)
	}
}

// nameLimits applies 12.2.1. ISO 9660 level 3 identifiers: directories 31
// characters, files 30 (name + '.' + extension) plus the ";1" version. The
// long names live in the Rock Ridge (255 bytes) and Joliet (103 UCS-2
// characters with -joliet-long) records; a longer name would be cut in one
// of the trees, so readers would disagree on it.
func (v *validator) nameLimits(n node) {
	parts := splitPath(n.Path)
	name := parts[len(parts)-1]
	if !utf8.ValidString(name) {
		v.bad(n.Path, "name is not UTF-8 (12.2.1)")
		return
	}
	if len(name) > 255 {
		v.bad(n.Path, fmt.Sprintf("name is %d bytes; Rock Ridge names are limited to 255", len(name)))
	}
	if u := len(utf16.Encode([]rune(name))); u > 103 {
		v.bad(n.Path, fmt.Sprintf("name is %d UCS-2 characters; Joliet (-joliet-long) keeps 103, so it would be truncated", u))
	}
	if n.ISOName == "" {
		return
	}
	id := n.ISOName
	if n.Mode.IsDir() {
		if len(id) > 31 {
			v.bad(n.Path, fmt.Sprintf("ISO 9660 directory identifier %q is %d characters; level 3 allows 31", id, len(id)))
		}
		return
	}
	if i := strings.LastIndexByte(id, ';'); i >= 0 {
		id = id[:i]
	}
	// Name and extension count, the '.' between them does not (ECMA-119
	// 7.5.1); 31 is what the documented invocation's -l
	// (-full-iso9660-filenames) produces, so it is the limit enforced.
	if l := len(strings.Replace(id, ".", "", 1)); l > 31 {
		v.bad(n.Path, fmt.Sprintf("ISO 9660 file identifier %q has %d characters of name and extension; level 3 with -l allows 31", n.ISOName, l))
	}
}

func (v *validator) product() {
	n, ok := v.byPath[ProductFile]
	if !ok {
		v.bad(ProductFile, "missing: every archive has product.txt at its root (12.2.3)")
		return
	}
	if !n.Mode.IsRegular() {
		v.bad(ProductFile, "not a regular file")
		return
	}
	data, err := readSmall(v.a, n, maxProductSize)
	if err != nil {
		v.bad(ProductFile, err.Error())
		return
	}
	p, err := ParseProduct(data)
	v.rep.Product = &p
	var pe ProductErrors
	if errors.As(err, &pe) {
		for _, e := range pe {
			v.bad(ProductFile, e.Error())
		}
	} else if err != nil {
		v.bad(ProductFile, err.Error())
	}
}

func (v *validator) layout() {
	want := func(p string, dir bool, why string) {
		n, ok := v.byPath[p]
		switch {
		case !ok:
			v.bad(p, "missing: "+why)
		case dir && !n.Mode.IsDir():
			v.bad(p, "not a directory")
		case !dir && !n.Mode.IsRegular():
			v.bad(p, "not a regular file")
		}
	}
	want(ImagesDir, true, "the OCI images live in images/<name>/<version>/ (12.2.4)")
	want(RegistryConfig, false, "the registry configuration template of the images (12.2.4)")
	want("operator", true, "the Operator files live in operator/deploy/ (12.3.1)")
	want(OperatorDir, true, "the Operator files live in operator/deploy/ (12.3.1)")
	want(CRDsDir, true, "the Operator's CustomResourceDefinitions live in operator/deploy/crds/ (12.3.1)")
	for _, f := range operatorFiles {
		want(OperatorDir+"/"+f, false, "12.3.1 lists it among the Operator files")
	}
	if n, ok := v.byPath["ui"]; ok {
		if !n.Mode.IsDir() {
			v.bad("ui", "not a directory")
		} else {
			want(UIDeployment, false, "a ui/ directory holds the UI's Deployment (12.2.2)")
			v.rep.UI = true
		}
	}
}

// imagesCheck finds every images/<name>/<version>/ (a directory holding
// manifest.json or version) and verifies it with dirlayout: version,
// manifests, and the size and digest of every blob.
func (v *validator) imagesCheck() {
	v.images = map[string]*ImageInfo{}
	fsys := v.a
	var dirs []string
	isImage := map[string]bool{}
	fs.WalkDir(fsys, ImagesDir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil // a missing images/ is layout()'s to report
		}
		// Image directories are descended into too: one inside another
		// is a fault to report, not a place to stop looking.
		if entries, err := fs.ReadDir(fsys, p); err == nil && p != ImagesDir && dirlayout.IsImageDir(entries) {
			dirs = append(dirs, p)
			isImage[p] = true
		}
		return nil
	})
	if n, ok := v.byPath[ImagesDir]; ok && n.Mode.IsDir() && len(dirs) == 0 {
		v.bad(ImagesDir, "holds no image (no images/<name>/<version>/manifest.json)")
	}
	for _, d := range dirs {
		if v.ctx.Err() != nil {
			return
		}
		rel := strings.TrimPrefix(d, ImagesDir+"/")
		name, version := path.Dir(rel), path.Base(rel)
		if name == "." {
			v.bad(d, "an image directory must be images/<name>/<version>/, not directly under images/")
			continue
		}
		if isImage[path.Dir(d)] {
			v.bad(d, "an image directory inside another image directory")
			continue
		}
		info := ImageInfo{Name: name, Version: version}
		if !oci.ValidName(name) {
			v.bad(d, fmt.Sprintf("image name %q is not a valid repository name (lower-case [a-z0-9] components separated by . _ __ - or /)", name))
		}
		if !oci.ValidTag(version) {
			v.bad(d, fmt.Sprintf("image version %q is not a valid tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127})", version))
		}
		v.checkImage(fsys, d, &info)
		v.rep.Images = append(v.rep.Images, info)
	}
	for i := range v.rep.Images {
		im := &v.rep.Images[i]
		v.images[im.Name+":"+im.Version] = im
	}
}

// checkImage reads the image directory d through dirlayout, verifying
// every blob, and reports each fault at the file it concerns.
func (v *validator) checkImage(fsys fs.FS, d string, info *ImageInfo) {
	dl, err := dirlayout.Read(v.ctx, fsys, d, dirlayout.Options{VerifyBlobs: true})
	if v.ctx.Err() != nil {
		return
	}
	for _, e := range dirlayout.Errors(err) {
		var le *dirlayout.Error
		if errors.As(e, &le) {
			v.bad(le.Path, le.Err.Error())
		} else {
			v.bad(d, e.Error())
		}
	}
	if dl == nil || dl.Top == nil {
		return
	}
	info.Digest = oci.DigestOf(dl.Manifest)
	info.MediaType = string(dl.MediaType)
	info.Size = int64(len(dl.Manifest))
	for _, c := range dl.Children {
		info.Size += int64(len(c))
	}
	for _, size := range dl.Blobs {
		info.Size += size
	}
	info.Blobs = len(dl.Blobs)
	for _, c := range dl.Top.Manifests {
		if p := c.Platform; p != nil {
			s := p.OS + "/" + p.Architecture
			if p.Variant != "" {
				s += "/" + p.Variant
			}
			info.Platforms = append(info.Platforms, s)
		}
	}
}

// registryConfig requires the template to be exactly what registrygen
// generates from the archive's images/ (12.2.4). MetalK8s renders it with
// Jinja and includes it in its registry's nginx server block, so any other
// content would be run at rendering or served: a location aliasing /etc/,
// a Jinja statement, a digest the manifests no longer have. Regenerating it
// and comparing the bytes refuses every such difference at once, where a
// search for the expected lines would let additions through.
func (v *validator) registryConfig() {
	n, ok := v.byPath[RegistryConfig]
	if !ok || !n.Mode.IsRegular() {
		return // layout() reported it
	}
	data, err := readSmall(v.a, n, maxConfigSize)
	if err != nil {
		v.bad(RegistryConfig, err.Error())
		return
	}
	want, err := registrygen.Template(v.a, ImagesDir, registrygen.OmitConstants)
	if err != nil {
		if v.imagesFaulty() {
			return // what stops registrygen is reported at its path
		}
		v.bad(RegistryConfig, fmt.Sprintf("cannot be checked: registrygen cannot generate a template from %s/: %v", ImagesDir, err))
		return
	}
	if bytes.Equal(data, want) {
		return
	}
	line, have, gen := firstDifference(data, want)
	msg := fmt.Sprintf("is not the template registrygen generates from %s/: line %d is %s, registrygen generates %s", ImagesDir, line, have, gen)
	var unserved []string
	for _, im := range v.rep.Images {
		loc := fmt.Sprintf("location = /v2/%s/%s/manifests/%s {\n", registrygen.RepositoryPlaceholder, im.Name, im.Version)
		if !bytes.Contains(data, []byte(loc)) {
			unserved = append(unserved, im.Name+":"+im.Version)
		}
	}
	if len(unserved) > 0 {
		msg += fmt.Sprintf("; it does not serve the image(s) %s", strings.Join(unserved, ", "))
	}
	shipped := map[string]bool{}
	for _, im := range v.rep.Images {
		shipped[im.Name] = true
	}
	var stale []string
	repoLine := "# Repository " + registrygen.RepositoryPlaceholder + "/"
	for _, l := range strings.Split(string(data), "\n") {
		if name, ok := strings.CutPrefix(l, repoLine); ok && !shipped[name] && len(stale) < 10 {
			stale = append(stale, name)
		}
	}
	if len(stale) > 0 {
		msg += fmt.Sprintf("; it serves repositories %s/ does not hold: %s", ImagesDir, strings.Join(stale, ", "))
	}
	msg += fmt.Sprintf("; regenerate it from the archive's root with: registrygen --name-prefix '%s' --server-root '%s' --omit-constants -o %s %s (solution build does)",
		registrygen.RepositoryPlaceholder, registrygen.RegistryRootPlaceholder, RegistryConfig, ImagesDir)
	v.bad(RegistryConfig, msg)
}

// imagesFaulty reports whether a problem was found in images/.
func (v *validator) imagesFaulty() bool {
	for _, p := range v.rep.Problems {
		if p.Path == ImagesDir || strings.HasPrefix(p.Path, ImagesDir+"/") {
			return true
		}
	}
	return false
}

// firstDifference returns the number of the first line where a and b
// differ, and that line of each, quoted and shortened ("end of file" past
// the last line).
func firstDifference(a, b []byte) (int, string, string) {
	la, lb := bytes.SplitAfter(a, []byte("\n")), bytes.SplitAfter(b, []byte("\n"))
	i := 0
	for i < len(la) && i < len(lb) && bytes.Equal(la[i], lb[i]) {
		i++
	}
	show := func(ls [][]byte) string {
		if i >= len(ls) || len(ls[i]) == 0 {
			return "end of file"
		}
		l := ls[i]
		const max = 160
		if len(l) > max {
			return fmt.Sprintf("%q...", l[:max])
		}
		return fmt.Sprintf("%q", l)
	}
	return i + 1, show(la), show(lb)
}
