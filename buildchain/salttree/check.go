package salttree

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Salt cannot be installed here (not in Debian 12, no Python index), so
// the tree is checked with what can run: the real Jinja2 renders every
// file (render.py, with stand-ins for Salt's own parts), and this file
// checks what comes out against the state functions Salt's core modules
// define and against versions.json.

//go:embed render.py
var renderPy string

// Allowed are the state functions the tree may use: core modules only,
// each with the arguments it takes (Salt 2018.3's signatures, the series
// MetalK8s 2.0 ships). Requisites and other global arguments are in
// globalArgs.
var Allowed = map[string][]string{
	"pkg.installed":                {"name", "version", "fromrepo", "pkgs", "refresh", "skip_verify", "hold"},
	"pkg.latest":                   {"name", "fromrepo", "pkgs", "refresh"},
	"pkg.removed":                  {"name", "version", "pkgs"},
	"pkgrepo.managed":              {"name", "humanname", "baseurl", "mirrorlist", "enabled", "gpgcheck", "repo_gpgcheck", "gpgkey", "comments", "priority"},
	"pkgrepo.absent":               {"name"},
	"file.managed":                 {"name", "source", "source_hash", "template", "user", "group", "mode", "makedirs", "dir_mode", "contents", "context", "defaults", "replace", "backup", "skip_verify"},
	"file.absent":                  {"name"},
	"file.directory":               {"name", "user", "group", "dir_mode", "file_mode", "makedirs", "clean"},
	"file.symlink":                 {"name", "target", "force", "makedirs"},
	"mount.mounted":                {"name", "device", "fstype", "mkmnt", "opts", "dump", "pass_num", "config", "persist", "match_on"},
	"mount.unmounted":              {"name", "device", "config", "persist"},
	"service.running":              {"name", "enable", "reload", "init_delay"},
	"service.dead":                 {"name", "enable", "init_delay"},
	"service.enabled":              {"name"},
	"service.disabled":             {"name"},
	"cmd.run":                      {"name", "cwd", "runas", "shell", "env", "stateful", "creates", "timeout", "output_loglevel"},
	"cmd.wait":                     {"name", "cwd", "runas", "shell", "env", "stateful", "creates"},
	"test.nop":                     {"name"},
	"test.succeed_without_changes": {"name"},
	"test.succeed_with_changes":    {"name"},
	"test.fail_without_changes":    {"name"},
	"test.show_notification":       {"name", "text"},
	"test.configurable_test_state": {"name", "changes", "result", "comment"},
}

var requisites = []string{"require", "watch", "onchanges", "onfail", "prereq", "use"}

var globalArgs = map[string]bool{"names": true, "order": true, "unless": true, "onlyif": true,
	"check_cmd": true, "retry": true, "reload_modules": true, "failhard": true}

func init() {
	for _, r := range requisites {
		globalArgs[r] = true
		globalArgs[r+"_in"] = true
	}
}

// Python is the interpreter the checker renders with. Debian's
// python3-jinja2 belongs to the system interpreter, which a python3
// earlier on PATH (pyenv, a venv) does not see.
func Python() (string, error) {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(p); err == nil {
			if exec.Command(path, "-c", "import jinja2, tomllib").Run() == nil {
				return path, nil
			}
		}
	}
	return "", fmt.Errorf("no python3 with jinja2 (Debian: python3-jinja2)")
}

type renderJob struct {
	Path    string         `json:"path"`
	SLS     string         `json:"sls,omitempty"`
	Context map[string]any `json:"context,omitempty"`
}

type renderResult struct {
	Path  string `json:"path"`
	Text  string `json:"text"`
	Error string `json:"error"`
}

func render(ctx context.Context, python, root, saltenv string, pillar, grains map[string]any, jobs []renderJob) ([]renderResult, error) {
	if len(jobs) == 0 {
		// render.py reads a list; a nil slice would reach it as null.
		return nil, nil
	}
	req, err := json.Marshal(map[string]any{"root": root, "saltenv": saltenv, "pillar": pillar, "grains": grains, "jobs": jobs})
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, python, "-c", renderPy)
	cmd.Stdin = bytes.NewReader(req)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("render.py: %v\n%s", err, stderr.Bytes())
	}
	var resp struct {
		Results []renderResult `json:"results"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("render.py output: %w", err)
	}
	return resp.Results, nil
}

// state is one state of a rendered sls.
type state struct {
	id, fun string
	args    map[string]any
}

type rendered struct {
	includes []string
	states   []state
}

// SLSName is the name Salt gives the sls at path (slash-separated,
// relative to the saltenv root).
func SLSName(path string) string {
	p := strings.TrimSuffix(path, ".sls")
	p = strings.TrimSuffix(p, "/init")
	return strings.ReplaceAll(p, "/", ".")
}

// Check renders the Salt tree at saltRoot (as saltTree writes it, with
// versions.json and top.sls) once per pillar, and returns every problem
// found, each naming its file. An error is returned when the check itself
// cannot run.
func Check(ctx context.Context, python, saltRoot string, grains map[string]any, pillars ...map[string]any) ([]string, error) {
	probs, _, err := CheckRender(ctx, python, saltRoot, grains, pillars...)
	return probs, err
}

// Text is one rendered file: an sls, or a template as a state renders it.
type Text struct {
	Path string
	Text string
}

// CheckRender is Check, and also returns every text it rendered, so that
// the completeness check reads the image references of the states as the
// master would render them (buildchain/completeness).
func CheckRender(ctx context.Context, python, saltRoot string, grains map[string]any, pillars ...map[string]any) ([]string, []Text, error) {
	var v Versions
	var renderedTexts []Text
	data, err := os.ReadFile(filepath.Join(saltRoot, "metalk8s", "versions.json"))
	if err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, nil, fmt.Errorf("versions.json: %w", err)
	}
	saltenv := "metalk8s-" + v.MetalK8s.Version
	var files []string
	err = filepath.WalkDir(saltRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(saltRoot, p)
		switch filepath.Ext(rel) {
		case ".sls", ".jinja", ".j2":
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(files)
	probs := map[string]bool{}
	bad := func(f string, a ...any) { probs[fmt.Sprintf(f, a...)] = true }
	usedTemplates := map[string]bool{}
	for _, pillar := range pillars {
		var jobs []renderJob
		for _, f := range files {
			if strings.HasSuffix(f, ".j2") {
				continue
			}
			jobs = append(jobs, renderJob{Path: f, SLS: SLSName(f)})
		}
		res, err := render(ctx, python, saltRoot, saltenv, pillar, grains, jobs)
		if err != nil {
			return nil, nil, err
		}
		all := map[string]*rendered{}
		var texts []renderResult
		for _, r := range res {
			if r.Error != "" {
				bad("%s", r.Error)
				continue
			}
			texts = append(texts, r)
			var doc any
			if err := yaml.Unmarshal([]byte(r.Text), &doc); err != nil {
				bad("%s: rendered output is not YAML: %v", r.Path, err)
				continue
			}
			if strings.HasSuffix(r.Path, ".sls") {
				all[SLSName(r.Path)] = parseSLS(r.Path, doc, bad)
			}
		}
		var tjobs []renderJob
		for _, f := range files {
			rs := all[SLSName(f)]
			if rs == nil || !strings.HasSuffix(f, ".sls") {
				continue
			}
			if f == "top.sls" {
				checkTop(doc(texts, f), saltenv, all, bad)
				continue
			}
			for _, inc := range rs.includes {
				if all[inc] == nil {
					bad("%s: includes %s, which is not in the tree", f, inc)
				}
			}
			for _, s := range rs.states {
				checkState(f, SLSName(f), s, &v, all, bad)
				if s.fun == "file.managed" && s.args["template"] == "jinja" {
					src, _ := s.args["source"].(string)
					if t, ok := strings.CutPrefix(src, "salt://"); ok {
						c, _ := s.args["context"].(map[string]any)
						tjobs = append(tjobs, renderJob{Path: t, Context: c})
						usedTemplates[t] = true
						if _, err := os.Stat(filepath.Join(saltRoot, filepath.FromSlash(t))); err != nil {
							bad("%s: %s: source %s is not in the tree", f, s.id, src)
						}
					}
				}
			}
		}
		res, err = render(ctx, python, saltRoot, saltenv, pillar, grains, tjobs)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range res {
			if r.Error != "" {
				bad("%s", r.Error)
				continue
			}
			if strings.HasSuffix(r.Path, ".yaml.j2") {
				checkManifest(r.Path, r.Text, bad)
			}
			texts = append(texts, r)
		}
		checkImages(texts, &v, bad)
		for _, t := range texts {
			renderedTexts = append(renderedTexts, Text{Path: t.Path, Text: t.Text})
		}
	}
	for _, f := range files {
		if strings.HasSuffix(f, ".j2") && !usedTemplates[f] {
			bad("%s: no state renders this template", f)
		}
	}
	out := make([]string, 0, len(probs))
	for p := range probs {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, renderedTexts, nil
}

func doc(texts []renderResult, path string) any {
	for _, t := range texts {
		if t.Path == path {
			var d any
			yaml.Unmarshal([]byte(t.Text), &d)
			return d
		}
	}
	return nil
}

func parseSLS(path string, doc any, bad func(string, ...any)) *rendered {
	rs := &rendered{}
	if doc == nil {
		return rs
	}
	m, ok := doc.(map[string]any)
	if !ok {
		bad("%s: a rendered sls must be a mapping", path)
		return rs
	}
	if path == "top.sls" {
		return rs
	}
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		body := m[id]
		switch id {
		case "include":
			l, ok := body.([]any)
			if !ok {
				bad("%s: include must be a list", path)
				continue
			}
			for _, x := range l {
				s, ok := x.(string)
				if !ok {
					bad("%s: include entry %v is not an sls name", path, x)
					continue
				}
				rs.includes = append(rs.includes, s)
			}
			continue
		case "extend", "exclude":
			bad("%s: %s is not used by this tree's checker", path, id)
			continue
		}
		decl, ok := body.(map[string]any)
		if !ok || len(decl) != 1 {
			bad("%s: state %q must map one module.function to its arguments", path, id)
			continue
		}
		for fun, argv := range decl {
			st := state{id: id, fun: fun, args: map[string]any{}}
			list, ok := argv.([]any)
			if argv != nil && !ok {
				bad("%s: %s: arguments of %s must be a list", path, id, fun)
				continue
			}
			for _, a := range list {
				switch a := a.(type) {
				case string:
					if strings.Contains(fun, ".") {
						bad("%s: %s: %q: a bare word names the function, and %s already does", path, id, a, fun)
					}
					st.fun = fun + "." + a
				case map[string]any:
					if len(a) != 1 {
						bad("%s: %s: each argument is one key", path, id)
					}
					for k, val := range a {
						st.args[k] = val
					}
				default:
					bad("%s: %s: argument %v is not key: value", path, id, a)
				}
			}
			rs.states = append(rs.states, st)
		}
	}
	return rs
}

func checkState(file, sls string, s state, v *Versions, all map[string]*rendered, bad func(string, ...any)) {
	known, ok := Allowed[s.fun]
	if !ok {
		bad("%s: %s: %s is not one of the allowed core state functions", file, s.id, s.fun)
		return
	}
	takes := map[string]bool{}
	for _, a := range known {
		takes[a] = true
	}
	for a, val := range s.args {
		if !takes[a] && !globalArgs[a] {
			bad("%s: %s: %s takes no argument %q", file, s.id, s.fun, a)
		}
		base := strings.TrimSuffix(a, "_in")
		if isRequisite(base) && base == a {
			checkRequisites(file, sls, s, a, val, all, bad)
		}
	}
	if strings.HasPrefix(s.fun, "pkg.") {
		name := s.id
		if n, ok := s.args["name"].(string); ok {
			name = n
		}
		p, ok := v.Packages[name]
		if !ok {
			bad("%s: %s: package %s is not in versions.json", file, s.id, name)
			return
		}
		if ver, ok := s.args["version"]; ok && fmt.Sprint(ver) != pkgVersion(p) {
			bad("%s: %s: package %s version %v, versions.json has %s", file, s.id, name, ver, pkgVersion(p))
		}
		if repo, ok := s.args["fromrepo"]; ok && repo != "metalk8s-"+p.Repo {
			bad("%s: %s: package %s from %v, versions.json has it in %s", file, s.id, name, repo, p.Repo)
		}
	}
}

func pkgVersion(p Package) string {
	v := p.Version + "-" + p.Release
	if p.Epoch != "" {
		v = p.Epoch + ":" + v
	}
	return v
}

func isRequisite(a string) bool {
	for _, r := range requisites {
		if a == r {
			return true
		}
	}
	return false
}

// checkRequisites finds each target of a requisite among the states of the
// sls and of what it includes, by ID or name, as Salt does.
func checkRequisites(file, sls string, s state, arg string, val any, all map[string]*rendered, bad func(string, ...any)) {
	list, ok := val.([]any)
	if !ok {
		bad("%s: %s: %s must be a list", file, s.id, arg)
		return
	}
	for _, r := range list {
		m, ok := r.(map[string]any)
		if !ok || len(m) != 1 {
			bad("%s: %s: %s entry %v must be module: ID", file, s.id, arg, r)
			continue
		}
		for mod, target := range m {
			if !reachable(sls, mod, fmt.Sprint(target), all, map[string]bool{}) {
				bad("%s: %s: %s %s: %v matches no state of this sls or what it includes", file, s.id, arg, mod, target)
			}
		}
	}
}

func reachable(sls, mod, target string, all map[string]*rendered, seen map[string]bool) bool {
	if seen[sls] || all[sls] == nil {
		return false
	}
	seen[sls] = true
	for _, s := range all[sls].states {
		if strings.HasPrefix(s.fun, mod+".") && (s.id == target || s.args["name"] == target) {
			return true
		}
	}
	for _, inc := range all[sls].includes {
		if reachable(inc, mod, target, all, seen) {
			return true
		}
	}
	return false
}

func checkTop(doc any, saltenv string, all map[string]*rendered, bad func(string, ...any)) {
	m, _ := doc.(map[string]any)
	envs, _ := m[saltenv].(map[string]any)
	if envs == nil {
		bad("top.sls: no entry for the saltenv %s", saltenv)
		return
	}
	for target, l := range envs {
		list, _ := l.([]any)
		for _, x := range list {
			if name, ok := x.(string); ok && all[name] == nil {
				bad("top.sls: %s: %s is not in the tree", target, name)
			}
		}
	}
}

// checkImages finds every reference to an upstream registry in rendered
// text and requires it to name an image of versions.json, by tag or digest.
func checkImages(texts []renderResult, v *Versions, bad func(string, ...any)) {
	if len(v.Registries) == 0 {
		return
	}
	hosts := make([]string, len(v.Registries))
	for i, h := range v.Registries {
		hosts[i] = regexp.QuoteMeta(h)
	}
	re := regexp.MustCompile(`(?:` + strings.Join(hosts, "|") + `)/[a-z0-9._/-]+(?::[\w][\w.-]*|@sha256:[0-9a-f]{64})`)
	known := map[string]bool{}
	for _, im := range v.Images {
		known[im.Source+":"+im.Version] = true
		known[im.Source+"@"+im.Digest] = true
	}
	for _, t := range texts {
		for _, ref := range re.FindAllString(t.Text, -1) {
			if !known[ref] {
				bad("%s: image %s is not in versions.json", t.Path, ref)
			}
		}
	}
}

// checkManifest requires a rendered *.yaml.j2 to be YAML whose every
// document is a Kubernetes object (apiVersion and kind; a configuration
// file such as the kubelet's has no metadata): the kubelet and kubectl
// read these files, and an empty or broken document would only show on a
// node.
func checkManifest(path, text string, bad func(string, ...any)) {
	dec := yaml.NewDecoder(strings.NewReader(text))
	for i := 1; ; i++ {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			if i == 1 {
				bad("%s: rendered manifest is empty", path)
			}
			return
		}
		if err != nil {
			bad("%s: rendered document %d is not YAML: %v", path, i, err)
			return
		}
		if s, _ := d["apiVersion"].(string); s == "" {
			bad("%s: rendered document %d has no apiVersion", path, i)
		}
		if s, _ := d["kind"].(string); s == "" {
			bad("%s: rendered document %d has no kind", path, i)
		}
	}
}
