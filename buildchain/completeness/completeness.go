// Package completeness checks the ISO root both ways before the ISO is
// written (docs/integrity.md): every image a shipped state, template or
// manifest refers to is on the ISO, every image on the ISO is referred to,
// and every package of versions.json installs from the shipped
// repositories plus the external ones. MetalK8s 2.x shipped ISOs that
// lacked images and carried unused ones (its issues #1678 and #1719).
package completeness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/metalk8s/buildchain/buildchain/rpm/depsolve"
	"github.com/metalk8s/buildchain/buildchain/salttree"
)

// Options are what Check needs.
type Options struct {
	Root   string // the ISO root
	Python string // the interpreter salttree renders with
	// External are the repositories a node installs from besides the
	// ISO's (the base OS): they satisfy dependencies, as in packaging.
	External []depsolve.Repo
}

// Report is the "completeness" section of build-report.json.
type Report struct {
	// Missing are image references that resolve to no image on the ISO.
	Missing []Reference `json:"missing"`
	// Unused are images on the ISO (name/version) that nothing refers to.
	Unused []string `json:"unused"`
	// Uninstallable are packages of versions.json whose closure cannot
	// be satisfied, each with the dependency that is missing.
	Uninstallable []Uninstallable `json:"uninstallable"`
	// Salt are the problems salttree's checker found while rendering.
	Salt []string `json:"salt"`
	// Images, References and Packages count what was checked.
	Images     int `json:"images"`
	References int `json:"references"`
	Packages   int `json:"packages"`
}

// Reference is one image reference and the file it is in.
type Reference struct {
	Ref  string `json:"ref"`
	File string `json:"file"`
}

// Uninstallable is a package and why it does not install.
type Uninstallable struct {
	Package string `json:"package"`
	Error   string `json:"error"`
}

// OK reports whether nothing is wrong.
func (r *Report) OK() bool {
	return len(r.Missing)+len(r.Unused)+len(r.Uninstallable)+len(r.Salt) == 0
}

// Err names every problem, or is nil.
func (r *Report) Err() error {
	if r.OK() {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "completeness: the ISO root is not complete")
	for _, m := range r.Missing {
		fmt.Fprintf(&b, "\n  missing image: %s (referenced in %s) is not on the ISO", m.Ref, m.File)
	}
	for _, u := range r.Unused {
		fmt.Fprintf(&b, "\n  unused image: images/%s is referenced by no state, template or manifest", u)
	}
	for _, u := range r.Uninstallable {
		fmt.Fprintf(&b, "\n  uninstallable package: %s: %s", u.Package, u.Error)
	}
	for _, s := range r.Salt {
		fmt.Fprintf(&b, "\n  salt: %s", s)
	}
	return errors.New(b.String())
}

// Grains are those of the Bootstrap node the states are rendered for.
var Grains = map[string]any{"id": "bootstrap", "os_family": "RedHat", "osmajorrelease": 7}

// image is one image of the ISO root.
type image struct {
	name, version string
	used          bool
}

// Check inspects the ISO root. The error is for a check that cannot run;
// what it finds is in the report (see Report.Err).
func Check(ctx context.Context, opts Options) (*Report, error) {
	r := &Report{Missing: []Reference{}, Unused: []string{}, Uninstallable: []Uninstallable{}, Salt: []string{}}
	saltRoot := filepath.Join(opts.Root, "salt")
	var v salttree.Versions
	data, err := os.ReadFile(filepath.Join(saltRoot, "metalk8s", "versions.json"))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("salt/metalk8s/versions.json: %w", err)
	}
	onISO, err := isoImages(opts.Root)
	if err != nil {
		return nil, err
	}
	r.Images = len(onISO)

	// A reference resolves through versions.json (an upstream name, by tag
	// or digest, as states and manifests keep them: containerd mirrors the
	// upstream hosts) or names the Bootstrap registry's repository
	// (metalk8s-<version>/<name>:<version>) directly.
	resolve := map[string]string{}
	for _, im := range v.Images {
		key := im.Name + "/" + im.Version
		resolve[im.Source+":"+im.Version] = key
		resolve[im.Source+"@"+im.Digest] = key
		resolve[im.Source+":"+im.Version+"@"+im.Digest] = key
	}
	prefix := "metalk8s-" + v.MetalK8s.Version + "/"
	use := func(ref, file string) {
		r.References++
		key, ok := resolve[ref]
		if !ok {
			if rest, cut := strings.CutPrefix(ref, prefix); cut {
				if n, ver, ok := strings.Cut(rest, ":"); ok {
					key = n + "/" + ver
				}
			}
		}
		if im := onISO[key]; im != nil && key != "" {
			im.used = true
			return
		}
		r.Missing = append(r.Missing, Reference{Ref: ref, File: file})
	}

	// States and templates, rendered as the master renders them. The
	// default pillar and one with an archive and Solutions, so every loop
	// renders.
	pillars, err := pillars(opts.Root)
	if err != nil {
		return nil, err
	}
	probs, texts, err := salttree.CheckRender(ctx, opts.Python, saltRoot, Grains, pillars...)
	if err != nil {
		return nil, err
	}
	r.Salt = append(r.Salt, probs...)
	re := refPattern(v.Registries, prefix)
	seen := map[Reference]bool{}
	for _, t := range texts {
		for _, ref := range re.FindAllString(t.Text, -1) {
			ref = strings.TrimRight(ref, ".")
			x := Reference{Ref: ref, File: path.Join("salt", t.Path)}
			if !seen[x] {
				seen[x] = true
				use(ref, x.File)
			}
		}
	}

	// YAML manifests elsewhere in the root (examples/, Solution-like
	// deploy files): every `image:` value, and every reference to a
	// mirrored host or the Bootstrap registry in their text.
	err = filepath.WalkDir(opts.Root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(opts.Root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			switch rel {
			case "salt", "pillar", "images", "packages":
				return fs.SkipDir
			}
			return nil
		}
		if ext := path.Ext(rel); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		refs, err := manifestRefs(rel, data, re)
		if err != nil {
			return err
		}
		for _, ref := range refs {
			x := Reference{Ref: ref, File: rel}
			if !seen[x] {
				seen[x] = true
				use(ref, rel)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for key, im := range onISO {
		if !im.used {
			r.Unused = append(r.Unused, key)
		}
	}
	sort.Strings(r.Unused)
	sort.Slice(r.Missing, func(i, j int) bool {
		if r.Missing[i].File != r.Missing[j].File {
			return r.Missing[i].File < r.Missing[j].File
		}
		return r.Missing[i].Ref < r.Missing[j].Ref
	})

	if err := installable(r, opts, &v); err != nil {
		return nil, err
	}
	return r, nil
}

// refPattern matches references to the upstream hosts that containerd
// mirrors, and to the Bootstrap registry's repository. A tag or digest is
// required, as in salttree's own check: a path under the repository
// prefix without one is a URL (the yum repositories are served there).
func refPattern(hosts []string, prefix string) *regexp.Regexp {
	alts := []string{regexp.QuoteMeta(strings.TrimSuffix(prefix, "/"))}
	for _, h := range hosts {
		alts = append(alts, regexp.QuoteMeta(h))
	}
	return regexp.MustCompile(`(?:` + strings.Join(alts, "|") + `)/[a-z0-9._/-]+(?::[\w][\w.-]*(?:@sha256:[0-9a-f]{64})?|@sha256:[0-9a-f]{64})`)
}

// manifestRefs returns the image references of one YAML file: every
// string value of an `image` key, in every document, then what the
// pattern finds in the text (a reference in a ConfigMap or an argument).
func manifestRefs(file string, data []byte, re *regexp.Regexp) ([]string, error) {
	var refs []string
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		walkImages(&n, &refs)
	}
	for _, ref := range re.FindAllString(string(data), -1) {
		refs = append(refs, strings.TrimRight(ref, "."))
	}
	return refs, nil
}

func walkImages(n *yaml.Node, refs *[]string) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Value == "image" && val.Kind == yaml.ScalarNode && val.Tag == "!!str" && val.Value != "" {
				*refs = append(*refs, val.Value)
			}
		}
	}
	for _, c := range n.Content {
		walkImages(c, refs)
	}
}

// isoImages lists root/images/<name>/<version> by "name/version".
func isoImages(root string) (map[string]*image, error) {
	out := map[string]*image{}
	dir := filepath.Join(root, "images")
	names, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if !n.IsDir() {
			continue
		}
		vers, err := os.ReadDir(filepath.Join(dir, n.Name()))
		if err != nil {
			return nil, err
		}
		for _, ver := range vers {
			if ver.IsDir() {
				out[n.Name()+"/"+ver.Name()] = &image{name: n.Name(), version: ver.Name()}
			}
		}
	}
	return out, nil
}

// pillars reads the pillar defaults the ISO ships, and adds a sample in
// which an archive and Solutions are set, so that every loop renders.
func pillars(root string) ([]map[string]any, error) {
	load := func() (map[string]any, error) {
		var p map[string]any
		data, err := os.ReadFile(filepath.Join(root, "pillar", "metalk8s.sls"))
		if err != nil {
			return nil, err
		}
		if err := yaml.Unmarshal(data, &p); err != nil {
			return nil, fmt.Errorf("pillar/metalk8s.sls: %w", err)
		}
		return p, nil
	}
	defaults, err := load()
	if err != nil {
		return nil, err
	}
	sample, _ := load()
	if m, ok := sample["metalk8s"].(map[string]any); ok {
		m["archives"] = []any{map[string]any{"path": "/srv/iso/metalk8s.iso", "version": "0.0.0"}}
		m["solutions"] = map[string]any{
			"configured": []any{map[string]any{"name": "example", "version": "1.0.0", "archive": "/srv/iso/example-1.0.0.iso"}},
			"removed":    []any{map[string]any{"name": "example", "version": "0.9.0", "archive": "/srv/iso/example-0.9.0.iso"}},
		}
	}
	return []map[string]any{defaults, sample}, nil
}
