// Package serve makes the Bootstrap node serve every mounted archive (the
// MetalK8s ISOs and the Solutions) from one nginx: the yum repositories at
// /<name>-<version>/<repo>/, each archive's read-only registry under
// /v2/<name>-<version>/, and a containerd mirror path per upstream registry
// so that nodes pull images by their upstream names and digests. It also
// writes what the nodes need to use them: .repo files, containerd
// hosts.toml files, and the systemd unit of the repository service.
//
// Generate is pure (archives in, file contents out); Apply writes them
// through a change.Tx after `nginx -t` accepted the candidate, then
// reloads or starts nginx. See docs/installer-serving.md.
package serve

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os/user"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/metalk8s/buildchain/buildchain/distref"
	"github.com/metalk8s/buildchain/installer/change"
	"github.com/metalk8s/buildchain/registrygen"
)

// Kind is what an archive is; it decides the form of its registry
// template (MetalK8s' carries the shared locations, a Solution's does not)
// and whether it holds versions.json.
type Kind string

const (
	KindMetalK8s Kind = "metalk8s"
	KindSolution Kind = "solution"
)

// Archive is one mounted archive to serve.
type Archive struct {
	Name    string // lower-case product name, e.g. metalk8s, example-solution
	Version string // e.g. 2.0.0
	Kind    Kind
	// MountPath is where it is mounted, as a host path (the Tx's root is
	// put in front of it), e.g. /srv/scality/metalk8s-2.0.0.
	MountPath string
	// FS is the mounted tree (or the ISO read in place): the registry
	// template, images/ and versions.json are read through it.
	FS fs.FS
}

// Repository is the archive's prefix in URLs and registry names.
func (a Archive) Repository() string { return a.Name + "-" + a.Version }

// Host paths the package writes (as on the node; through Tx.Path).
const (
	NginxDir        = "/etc/metalk8s/nginx"
	MainConfig      = NginxDir + "/nginx.conf"
	ServerConfig    = NginxDir + "/conf.d/repositories.conf"
	PidFile         = "/run/metalk8s/repositories-nginx.pid"
	LogDir          = "/var/log/metalk8s/repositories"
	TempDir         = "/var/lib/metalk8s/repositories/tmp"
	UnitFile        = "/etc/systemd/system/metalk8s-repositories.service"
	YumReposDir     = "/etc/yum.repos.d"
	ContainerdHosts = "/etc/containerd/certs.d"
	// RegistryTemplate is the archive's registry configuration template,
	// at its root.
	RegistryTemplate = "registry-config.inc.j2"
	imagesDir        = "images"
	packagesDir      = "packages/redhat"
	// mirrorsPrefix is the URL root of the containerd mirror paths. It
	// has no "-", so it never is a <name>-<version>.
	mirrorsPrefix = "/mirrors/"
)

// Options are the service's settings.
type Options struct {
	// Listen is nginx's address, host:port (default 127.0.0.1:8080).
	Listen string
	// Endpoint is host:port as the nodes reach the service, in the .repo
	// and hosts.toml files (default Listen).
	Endpoint string
	// User is nginx's "user" directive ("USER [GROUP]"): the workers never
	// run as root. Default: nobody and its primary group.
	User string
	// Nginx is the nginx program (default /usr/sbin/nginx).
	Nginx string
}

func (o Options) withDefaults() (Options, error) {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:8080"
	}
	if o.Endpoint == "" {
		o.Endpoint = o.Listen
	}
	if o.Nginx == "" {
		o.Nginx = "/usr/sbin/nginx"
	}
	if o.User == "" {
		u, err := user.Lookup("nobody")
		if err != nil {
			return o, fmt.Errorf("nginx workers: no user nobody (%v); set the user", err)
		}
		g, err := user.LookupGroupId(u.Gid)
		if err != nil {
			return o, fmt.Errorf("nginx workers: group %s of nobody: %v", u.Gid, err)
		}
		o.User = u.Username + " " + g.Name
	}
	for what, hp := range map[string]string{"listen address": o.Listen, "endpoint": o.Endpoint} {
		h, p, err := net.SplitHostPort(hp)
		if err != nil {
			return o, fmt.Errorf("%s %q: %v", what, hp, err)
		}
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return o, fmt.Errorf("%s %q: bad port", what, hp)
		}
		if net.ParseIP(h) == nil && !distref.ValidHost(h) {
			return o, fmt.Errorf("%s %q: not an IP address or host name", what, hp)
		}
	}
	f := strings.Fields(o.User)
	if len(f) == 0 || len(f) > 2 {
		return o, fmt.Errorf("nginx user %q: want USER [GROUP]", o.User)
	}
	for _, w := range f {
		if !userRE.MatchString(w) {
			return o, fmt.Errorf("nginx user %q: %q is not a user or group name", o.User, w)
		}
	}
	if f[0] == "root" || f[0] == "0" {
		return o, fmt.Errorf("nginx user %q: the workers must not run as root", o.User)
	}
	if err := checkHostPath("nginx program", o.Nginx); err != nil {
		return o, err
	}
	return o, nil
}

var (
	userRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	// pathSegRE is what a path segment may hold in a config: nothing
	// nginx (quotes, ";", "{", "$", "#", spaces), a regex or a shell
	// would read as syntax.
	pathSegRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
	// productNameRE is a <name> of <name>-<version>; the version is a tag
	// (distref) and the whole a repository name component.
	productNameRE = regexp.MustCompile(`^[a-z0-9]+(?:-[a-z0-9]+)*$`)
)

// checkHostPath refuses a path that is not absolute and clean, or holds a
// character outside [A-Za-z0-9_.-] in a segment (or a segment starting with
// "."): it is written into nginx and systemd configs unquoted.
func checkHostPath(what, p string) error {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return fmt.Errorf("%s %q: not an absolute, clean path", what, p)
	}
	if p == "/" {
		return nil
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if !pathSegRE.MatchString(seg) {
			return fmt.Errorf("%s %q: segment %q holds a character outside [A-Za-z0-9_.-] or starts with \".\" or \"-\"", what, p, seg)
		}
	}
	return nil
}

// Files is what Generate produces: host path (as on the node) to content.
type Files struct {
	// Main is nginx.conf; Server the server block it includes.
	Main, Server []byte
	// Repos are the .repo files, Hosts the hosts.toml files, by host path.
	Repos, Hosts map[string][]byte
	// Unit is the systemd unit of the repository service.
	Unit []byte
}

// served is an archive with everything read from it and checked.
type served struct {
	a        Archive
	repo     string // <name>-<version>
	mount    string // host path under the root
	registry []byte // rendered locations
	versions *Versions
	repos    []RepoInfo
}

// Generate checks every archive and returns the files serving them all.
// Nothing is written. The output depends only on the archives, the
// options and the root, so an unchanged host regenerates the same bytes.
func Generate(tx *change.Tx, archives []Archive, opts Options) (*Files, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	as := append([]Archive(nil), archives...)
	sort.Slice(as, func(i, j int) bool { return as[i].Repository() < as[j].Repository() })
	var ss []*served
	seen := map[string]bool{}
	for _, a := range as {
		s, err := prepare(tx, a)
		if err != nil {
			return nil, err
		}
		if seen[s.repo] {
			return nil, fmt.Errorf("archive %s listed twice", s.repo)
		}
		seen[s.repo] = true
		ss = append(ss, s)
	}
	// Every path written into the configs is checked, the root included:
	// under a test's --root the mount paths are long temp paths.
	for what, p := range map[string]string{
		"nginx config directory": tx.Path(NginxDir), "pid file": tx.Path(PidFile),
		"log directory": tx.Path(LogDir), "temp directory": tx.Path(TempDir),
	} {
		if err := checkHostPath(what, p); err != nil {
			return nil, err
		}
	}
	f := &Files{Repos: map[string][]byte{}, Hosts: map[string][]byte{}}
	f.Server, err = serverConfig(ss, opts)
	if err != nil {
		return nil, err
	}
	f.Main = mainConfig(opts.User, tx.Path(PidFile), tx.Path(LogDir), tx.Path(TempDir), tx.Path(ServerConfig))
	for _, s := range ss {
		for _, r := range s.repos {
			f.Repos[repoFile(s, r)] = repoConfig(s, r, opts)
		}
	}
	f.Hosts = hostsConfigs(ss, opts)
	f.Unit = unit(tx, ss, opts)
	return f, nil
}

// prepare reads and checks one archive.
func prepare(tx *change.Tx, a Archive) (*served, error) {
	if !productNameRE.MatchString(a.Name) {
		return nil, fmt.Errorf("archive name %q: want lower-case [a-z0-9] words joined by \"-\"", a.Name)
	}
	if !distref.ValidTag(a.Version) || strings.Contains(a.Version, "..") || strings.ContainsAny(a.Version, "_") {
		return nil, fmt.Errorf("archive %s: version %q is not a [A-Za-z0-9.-] tag", a.Name, a.Version)
	}
	repo := a.Repository()
	// The repository is a name component of every image name under it.
	if !distref.ValidComponent(repo) || strings.ToLower(repo) != repo {
		return nil, fmt.Errorf("archive %s: %q is not a repository name component (lower-case, see the distribution grammar)", repo, repo)
	}
	if a.Kind != KindMetalK8s && a.Kind != KindSolution {
		return nil, fmt.Errorf("archive %s: kind %q, want %s or %s", repo, a.Kind, KindMetalK8s, KindSolution)
	}
	if a.FS == nil {
		return nil, fmt.Errorf("archive %s: no file system", repo)
	}
	if err := checkHostPath("archive "+repo+" mount path", a.MountPath); err != nil {
		return nil, err
	}
	mount := tx.Path(a.MountPath)
	if err := checkHostPath("archive "+repo+" mount path under the root", mount); err != nil {
		return nil, err
	}
	s := &served{a: a, repo: repo, mount: mount}
	var err error
	if s.registry, err = renderRegistry(a, repo, mount); err != nil {
		return nil, err
	}
	if a.Kind == KindMetalK8s {
		data, err := fs.ReadFile(a.FS, VersionsFile)
		if err != nil {
			return nil, fmt.Errorf("archive %s: %w", repo, err)
		}
		if s.versions, err = ParseVersions(repo+": "+VersionsFile, data); err != nil {
			return nil, err
		}
		for _, u := range s.versions.Upstreams {
			if _, err := fs.Stat(a.FS, path.Join(imagesDir, u.Name, u.Version, "manifest.json")); err != nil {
				return nil, fmt.Errorf("archive %s: %s lists image %s:%s (from %s/%s), which %s/ does not hold: %v", repo, VersionsFile, u.Name, u.Version, u.Host, u.Path, imagesDir, err)
			}
		}
		s.repos = s.versions.Repositories
	} else if s.repos, err = scanRepos(a.FS); err != nil {
		return nil, fmt.Errorf("archive %s: %w", repo, err)
	}
	for _, r := range s.repos {
		if _, err := fs.Stat(a.FS, path.Join(packagesDir, r.Name, "repodata", "repomd.xml")); err != nil {
			return nil, fmt.Errorf("archive %s: repository %s: %v", repo, r.Name, err)
		}
		for _, k := range r.GPGKeys {
			if _, err := fs.Stat(a.FS, path.Join(packagesDir, k)); err != nil {
				return nil, fmt.Errorf("archive %s: repository %s: key %v", repo, r.Name, err)
			}
		}
	}
	return s, nil
}

// scanRepos finds a Solution's yum repositories: the directories of
// packages/redhat/ holding repodata, with the RPM-GPG-KEY-*-<repo>_<n>
// key files beside them (the MetalK8s naming).
func scanRepos(fsys fs.FS) ([]RepoInfo, error) {
	entries, err := fs.ReadDir(fsys, packagesDir)
	if err != nil {
		if errorsIsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []RepoInfo
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := fs.Stat(fsys, path.Join(packagesDir, e.Name(), "repodata", "repomd.xml")); err != nil {
			continue
		}
		if !validFileName(e.Name()) {
			return nil, fmt.Errorf("%s/%s: repository name outside [A-Za-z0-9._-]", packagesDir, e.Name())
		}
		r := RepoInfo{Name: e.Name()}
		for _, k := range entries {
			n := k.Name()
			if k.Type().IsRegular() && strings.HasPrefix(n, "RPM-GPG-KEY-") && strings.Contains(n, "-"+e.Name()+"_") && validFileName(n) {
				r.GPGKeys = append(r.GPGKeys, n)
			}
		}
		if len(r.GPGKeys) == 0 {
			return nil, fmt.Errorf("%s/%s: no RPM-GPG-KEY-*-%s_<n> key beside it; its .repo file turns gpgcheck on", packagesDir, e.Name(), e.Name())
		}
		out = append(out, r)
	}
	return out, nil
}

// renderRegistry checks the archive's registry template and renders the
// archive's locations, without the shared ones.
//
// The archive's file must be byte for byte what registrygen generates
// from its images/ (with the constants for MetalK8s, without for a
// Solution), so nothing but registrygen's own locations can reach the
// config: an injected directive, a Jinja statement or a stale digest all
// make it differ. What is rendered is then registrygen's OmitConstants
// template of the same tree, with the two placeholders replaced by checked
// values; the constants are emitted once for all archives.
func renderRegistry(a Archive, repo, mount string) ([]byte, error) {
	have, err := fs.ReadFile(a.FS, RegistryTemplate)
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", repo, err)
	}
	mode := registrygen.OmitConstants
	if a.Kind == KindMetalK8s {
		mode = registrygen.WithConstants
	}
	want, err := registrygen.Template(a.FS, imagesDir, mode)
	if err != nil {
		return nil, fmt.Errorf("archive %s: regenerating %s from %s/: %w", repo, RegistryTemplate, imagesDir, err)
	}
	if !bytes.Equal(have, want) {
		line := firstDiffLine(have, want)
		return nil, fmt.Errorf("archive %s: %s is not the template registrygen generates from %s/ (first difference at line %d); refusing to serve it", repo, RegistryTemplate, imagesDir, line)
	}
	tmpl := want
	if mode != registrygen.OmitConstants {
		if tmpl, err = registrygen.Template(a.FS, imagesDir, registrygen.OmitConstants); err != nil {
			return nil, err
		}
	}
	out := strings.NewReplacer(registrygen.RepositoryPlaceholder, repo, registrygen.RegistryRootPlaceholder, mount+"/"+imagesDir).Replace(string(tmpl))
	if strings.Contains(out, "{{") || strings.Contains(out, "{%") || strings.Contains(out, "{#") {
		return nil, fmt.Errorf("archive %s: %s holds template syntax besides its two placeholders", repo, RegistryTemplate)
	}
	return []byte(out), nil
}

func errorsIsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

func firstDiffLine(a, b []byte) int {
	line := 1
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return line
		}
		if a[i] == '\n' {
			line++
		}
	}
	return line
}

// serverConfig is the one server block: the registry constants once, each
// archive's registry, its yum tree and its mirror paths.
func serverConfig(ss []*served, opts Options) ([]byte, error) {
	constants, err := registrygen.Generate(registrygen.Config{Constants: registrygen.OnlyConstants})
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("# Generated by metalk8s-installer (installer/serve): the repository service\n" +
		"# of the Bootstrap node. Do not edit: the installer rewrites it from the\n" +
		"# mounted archives.\n")
	fmt.Fprintf(&b, "server {\n    listen %s;\n    server_name _;\n", opts.Listen)
	b.WriteString("    # The registry's shared locations, once for every archive.\n")
	b.Write(indent(constants))
	for _, s := range ss {
		fmt.Fprintf(&b, "\n    # Archive %s (%s), mounted at %s.\n", s.repo, s.a.Kind, s.mount)
		fmt.Fprintf(&b, "    # Its yum repositories and their keys: /%s/<repo>/, /%s/RPM-GPG-KEY-*.\n", s.repo, s.repo)
		fmt.Fprintf(&b, "    location ^~ /%s/ {\n        alias %s/%s/;\n    }\n", s.repo, s.mount, packagesDir)
		b.WriteString("    # Its registry, under /v2/" + s.repo + "/.\n")
		b.Write(indent(s.registry))
		if s.versions != nil && len(s.versions.Upstreams) > 0 {
			fmt.Fprintf(&b, "    # Mirror paths: containerd asks for <upstream host>/<upstream path> under\n"+
				"    # %s%s/ (hosts.toml, override_path); each is the image served as\n"+
				"    # /v2/%s/<name>/.\n", mirrorsPrefix, s.repo, s.repo)
			for _, u := range s.versions.Upstreams {
				from := mirrorsPrefix + s.repo + "/" + u.Host + "/" + u.Path + "/"
				fmt.Fprintf(&b, "    location ^~ %s {\n        rewrite \"^%s(.*)$\" /v2/%s/%s/$1 last;\n    }\n", from, regexLiteral(from), s.repo, u.Name)
			}
		}
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// regexLiteral quotes what the checked names, hosts and repositories may
// hold that a PCRE reads as syntax: "." and an IPv6 host's brackets, each
// put in a character class (nginx keeps backslashes, but a class needs no
// escaping at all).
func regexLiteral(s string) string {
	return strings.NewReplacer(".", "[.]", "[", "[[]", "]", "[]]").Replace(s)
}

func indent(data []byte) []byte {
	var b bytes.Buffer
	for _, l := range strings.SplitAfter(string(data), "\n") {
		if strings.TrimSpace(l) == "" {
			b.WriteString(strings.TrimLeft(l, " \t"))
			continue
		}
		b.WriteString("    " + l)
	}
	return b.Bytes()
}

// mainConfig is nginx.conf: unprivileged workers, every state path under
// the root, the server block included.
func mainConfig(user, pid, logDir, tmpDir, server string) []byte {
	return []byte(fmt.Sprintf(`# Generated by metalk8s-installer (installer/serve): nginx of the MetalK8s
# repository service (metalk8s-repositories.service).
user %[1]s;
worker_processes auto;
pid %[2]s;
error_log %[3]s/error.log warn;
events {
    worker_connections 1024;
}
http {
    access_log %[3]s/access.log combined buffer=64k flush=5s;
    client_body_temp_path %[4]s/body;
    proxy_temp_path %[4]s/proxy;
    fastcgi_temp_path %[4]s/fastcgi;
    uwsgi_temp_path %[4]s/uwsgi;
    scgi_temp_path %[4]s/scgi;
    types {
        application/octet-stream rpm;
        application/xml xml;
        application/octet-stream bin;
    }
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    server_tokens off;
    include %[5]s;
}
`, user, pid, logDir, tmpDir, server))
}

func repoFile(s *served, r RepoInfo) string {
	return fmt.Sprintf("%s/metalk8s-%s-%s.repo", YumReposDir, s.repo, r.Name)
}

// repoConfig is the node's .repo file of one shipped repository, with the
// URL layout of salt/metalk8s/repo/init.sls: baseurl
// http://<endpoint>/<name>-<version>/<repo>/, keys beside the repositories.
func repoConfig(s *served, r RepoInfo, opts Options) []byte {
	base := "http://" + opts.Endpoint + "/" + s.repo
	var keys []string
	for _, k := range r.GPGKeys {
		keys = append(keys, base+"/"+k)
	}
	repoGPG := 0
	if r.Signed {
		repoGPG = 1
	}
	return []byte(fmt.Sprintf(`# Generated by metalk8s-installer: repository %[2]s of %[1]s.
[metalk8s-%[1]s-%[2]s]
name=%[1]s %[2]s
baseurl=%[3]s/%[2]s/
enabled=1
gpgcheck=1
repo_gpgcheck=%[4]d
gpgkey=%[5]s
`, s.repo, r.Name, base, repoGPG, strings.Join(keys, " ")))
}

// hostsServer is the API address of an upstream registry, containerd's
// fallback after the mirrors (never reached offline).
func hostsServer(host string) string {
	if host == "docker.io" {
		return "https://registry-1.docker.io"
	}
	return "https://" + host
}

// hostsConfigs are the containerd hosts.toml files: one per upstream
// registry host, listing the mirror path of every archive holding images
// from it. containerd tries the hosts in order and goes on to the next on
// a 404, so two archives (or two versions) shipping images of one
// upstream registry are both found.
func hostsConfigs(ss []*served, opts Options) map[string][]byte {
	mirrors := map[string][]string{}
	for _, s := range ss {
		if s.versions == nil {
			continue
		}
		added := map[string]bool{}
		for _, u := range s.versions.Upstreams {
			if !added[u.Host] {
				added[u.Host] = true
				mirrors[u.Host] = append(mirrors[u.Host], s.repo)
			}
		}
	}
	out := map[string][]byte{}
	for h, repos := range mirrors {
		var b strings.Builder
		fmt.Fprintf(&b, "# Generated by metalk8s-installer: pulls of %s images are served by the\n"+
			"# Bootstrap node's repository service, by their upstream names and digests.\n", h)
		fmt.Fprintf(&b, "server = %q\n", hostsServer(h))
		for _, r := range repos {
			fmt.Fprintf(&b, "\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n",
				"http://"+opts.Endpoint+mirrorsPrefix+r+"/"+h)
		}
		out[ContainerdHosts+"/"+hostDir(h)+"/hosts.toml"] = []byte(b.String())
	}
	return out
}

// hostDir is containerd's directory name of a registry host: host:port
// as is, which a path may hold; an IPv6 literal's brackets too.
func hostDir(h string) string { return h }

// unit is the systemd unit running nginx with the generated config. It
// needs the archives' mounts (MetalK8s issue #1235: a registry started
// before the ISOs were mounted again stayed empty after a reboot).
func unit(tx *change.Tx, ss []*served, opts Options) []byte {
	var mounts []string
	for _, s := range ss {
		mounts = append(mounts, s.mount)
	}
	req := ""
	if len(mounts) > 0 {
		req = "RequiresMountsFor=" + strings.Join(mounts, " ") + "\n"
	}
	conf := tx.Path(MainConfig)
	return []byte(fmt.Sprintf(`# Generated by metalk8s-installer (installer/serve).
[Unit]
Description=MetalK8s repository service (yum repositories and registry of the mounted archives)
Wants=network-online.target
After=network-online.target local-fs.target
%[1]s
[Service]
Type=forking
PIDFile=%[2]s
ExecStartPre=%[3]s -t -q -e %[5]s/error.log -c %[4]s
ExecStart=%[3]s -e %[5]s/error.log -c %[4]s
ExecReload=%[3]s -t -q -e %[5]s/error.log -c %[4]s
ExecReload=/bin/kill -s HUP $MAINPID
ExecStop=/bin/kill -s QUIT $MAINPID
Restart=on-failure
RuntimeDirectory=metalk8s
RuntimeDirectoryPreserve=yes

[Install]
WantedBy=multi-user.target
`, req, tx.Path(PidFile), opts.Nginx, conf, tx.Path(LogDir)))
}
