// Package config reads the buildchain configuration from the environment and
// an optional .env file. The environment wins over .env, so CI can override
// any key without editing files.
package config

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Key documents one configuration key. Keys is the single list of every key
// the buildchain reads; .env.example is checked against it in tests.
type Key struct {
	Name    string
	Default string // as shown to users; empty means unset
	Help    string
}

// Keys lists every configuration key, in the order .env.example documents them.
var Keys = []Key{
	{"PROJECT_NAME", "MetalK8s", "Product name, used in the ISO volume ID and product.txt."},
	{"BUILD_ROOT", "dist", "Where every build output goes (relative to the project root, or absolute)."},
	{"SOURCE_DATE_EPOCH", "commit time of HEAD, or 0 outside git", "Seconds since 1970; every timestamp in an artifact comes from it."},
	{"BUILD_HOST", "this machine's host name", "Recorded as product.txt's BUILD_HOST. Set it, with SOURCE_DATE_EPOCH, to rebuild an ISO byte for byte on another machine."},
	{"JOBS", "number of CPUs", "How many fetches and builds run in parallel."},
	{"IMAGES_FILE", "images/images.yaml", "The list of upstream images to ship."},
	{"PACKAGES_FILE", "packages/packages.yaml", "The list of package repositories and package sets to ship."},
	{"PLATFORMS", "linux/amd64", "Comma-separated os/arch[/variant] kept from multi-platform images. With one platform the image is resolved to it; with several the index is kept with each selected manifest."},
	{"IMAGE_MIRRORS", "", "Comma-separated REGISTRY=MIRROR pairs, e.g. docker.io=127.0.0.1:5000. The registry host of a source is replaced; path and digest are kept."},
	{"INSECURE_REGISTRIES", "", "Comma-separated registry hosts (after mirroring) reached over plain HTTP. Loopback hosts always are."},
	{"REPO_MIRRORS", "", "Comma-separated REPO=URL pairs replacing the base URL of a package repository."},
	{"REPO_SIGNING_KEY", "", "Path to an armored OpenPGP private key used to sign repomd.xml."},
	{"ISO_SIGNING_KEY", "", "Path to an armored OpenPGP private key used to sign the ISO (metalk8s.iso.asc, docs/integrity.md)."},
	{"STEPS", "", "Run only the steps matching this pattern (\"*\" matches any run of characters) and the steps they depend on."},
	{"FORCE", "", "Re-run the steps matching this pattern even when they are up to date."},
	{"DRY_RUN", "", "1: clean lists what it would remove and removes nothing."},
	{"COMPLETENESS", "fail", "fail: an ISO root with a missing or unused image or an uninstallable package fails the build; report: the problems are reported and the ISO is written (the demo's stand-in fixture)."},
	{"VAGRANT_PROVIDER", "virtualbox", "The Vagrant provider vagrant:up spawns the Bootstrap VM with: virtualbox or libvirt."},
	{"VAGRANT_UP_ARGS", "--provision --no-destroy-on-error --parallel --provider $VAGRANT_PROVIDER", "Arguments to `vagrant up`, split on blanks; $VAGRANT_PROVIDER is replaced. No shell runs them."},
	{"VAGRANT_SNAPSHOT_NAME", "", "When set, vagrant:up saves a snapshot of that name after provisioning."},
}

// Config is the resolved configuration. Paths are absolute.
type Config struct {
	ProjectRoot        string
	ProjectName        string
	BuildHost          string
	BuildRoot          string
	SourceDateEpoch    int64
	Jobs               int
	ImagesFile         string
	PackagesFile       string
	Platforms          []string
	ImageMirrors       map[string]string
	InsecureRegistries []string
	RepoMirrors        map[string]string
	RepoSigningKey     string
	IsoSigningKey      string
	Steps              string // a step.Match pattern; empty runs every step
	Force              string // a step.Match pattern; empty forces none
	DryRun             bool
	// CompletenessReportOnly: the completeness check reports its problems
	// instead of failing the build (COMPLETENESS=report).
	CompletenessReportOnly bool

	VagrantProvider     string
	VagrantUpArgs       []string // one argument each, $VAGRANT_PROVIDER replaced
	VagrantSnapshotName string

	// Values holds the raw value of every key that was set, for step stamps.
	Values map[string]string
}

// Epoch returns SOURCE_DATE_EPOCH as a time.
func (c *Config) Epoch() time.Time { return time.Unix(c.SourceDateEpoch, 0).UTC() }

// RootDir returns the ISO root under the build root.
func (c *Config) RootDir() string { return filepath.Join(c.BuildRoot, "root") }

// Load reads projectRoot/.env (if present) and the environment.
func Load(projectRoot string) (*Config, error) {
	abs, err := filepath.Abs(projectRoot)
	if err != nil {
		return nil, err
	}
	vals := map[string]string{}
	origin := map[string]string{}
	envFile := filepath.Join(abs, ".env")
	if data, err := os.ReadFile(envFile); err == nil {
		entries, err := ParseDotEnv(envFile, data)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			vals[e.Key] = e.Value
			origin[e.Key] = fmt.Sprintf("%s:%d", envFile, e.Line)
		}
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("reading %s: %w", envFile, err)
	}
	for _, k := range Keys {
		if v, ok := os.LookupEnv(k.Name); ok {
			vals[k.Name] = v
			origin[k.Name] = "environment variable " + k.Name
		}
	}
	return resolve(abs, vals, origin)
}

func resolve(root string, vals, origin map[string]string) (*Config, error) {
	c := &Config{ProjectRoot: root, Values: vals}
	get := func(k, def string) string {
		if v, ok := vals[k]; ok && v != "" {
			return v
		}
		return def
	}
	bad := func(k string, format string, a ...any) error {
		return fmt.Errorf("%s: %s: %s", origin[k], k, fmt.Sprintf(format, a...))
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return filepath.Clean(p)
		}
		return filepath.Join(root, p)
	}
	c.ProjectName = get("PROJECT_NAME", "MetalK8s")
	if c.BuildHost = get("BUILD_HOST", ""); c.BuildHost == "" {
		c.BuildHost, _ = os.Hostname()
	}
	c.BuildRoot = abs(get("BUILD_ROOT", "dist"))
	c.ImagesFile = abs(get("IMAGES_FILE", "images/images.yaml"))
	c.PackagesFile = abs(get("PACKAGES_FILE", "packages/packages.yaml"))
	if k := get("REPO_SIGNING_KEY", ""); k != "" {
		c.RepoSigningKey = abs(k)
	}
	if k := get("ISO_SIGNING_KEY", ""); k != "" {
		c.IsoSigningKey = abs(k)
	}

	if v := get("SOURCE_DATE_EPOCH", ""); v != "" {
		t, err := ParseEpoch(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", origin["SOURCE_DATE_EPOCH"], err)
		}
		c.SourceDateEpoch = t.Unix()
	} else {
		c.SourceDateEpoch = gitCommitTime(root)
		vals["SOURCE_DATE_EPOCH"] = strconv.FormatInt(c.SourceDateEpoch, 10)
	}

	c.Jobs = runtime.NumCPU()
	if v := get("JOBS", ""); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1024 {
			return nil, bad("JOBS", "want an integer from 1 to 1024, got %q", v)
		}
		c.Jobs = n
	}

	for _, p := range splitList(get("PLATFORMS", "linux/amd64")) {
		if err := checkPlatform(p); err != nil {
			return nil, bad("PLATFORMS", "%v", err)
		}
		c.Platforms = append(c.Platforms, p)
	}
	if len(c.Platforms) == 0 {
		return nil, bad("PLATFORMS", "empty list")
	}

	var err error
	if c.ImageMirrors, err = ParseMirrors(get("IMAGE_MIRRORS", "")); err != nil {
		return nil, bad("IMAGE_MIRRORS", "%v", err)
	}
	for _, h := range splitList(get("INSECURE_REGISTRIES", "")) {
		if err := checkHostPath(h); err != nil {
			return nil, bad("INSECURE_REGISTRIES", "%v", err)
		}
		c.InsecureRegistries = append(c.InsecureRegistries, h)
	}
	if c.RepoMirrors, err = parsePairs(get("REPO_MIRRORS", ""), checkRepoName, CheckRepoURL); err != nil {
		return nil, bad("REPO_MIRRORS", "%v", err)
	}
	c.Steps = get("STEPS", "")
	c.Force = get("FORCE", "")
	switch v := get("DRY_RUN", ""); v {
	case "", "0", "false":
	case "1", "true":
		c.DryRun = true
	default:
		return nil, bad("DRY_RUN", "want 1 or 0, got %q", v)
	}
	switch v := get("COMPLETENESS", "fail"); v {
	case "fail":
	case "report":
		c.CompletenessReportOnly = true
	default:
		return nil, bad("COMPLETENESS", "want fail or report, got %q", v)
	}
	c.VagrantProvider = get("VAGRANT_PROVIDER", DefaultVagrantProvider)
	if !vagrantNameRE.MatchString(c.VagrantProvider) {
		return nil, bad("VAGRANT_PROVIDER", "want a provider name such as virtualbox or libvirt, got %q", c.VagrantProvider)
	}
	if c.VagrantUpArgs, err = VagrantArgs(get("VAGRANT_UP_ARGS", DefaultVagrantUpArgs), c.VagrantProvider); err != nil {
		return nil, bad("VAGRANT_UP_ARGS", "%v", err)
	}
	c.VagrantSnapshotName = get("VAGRANT_SNAPSHOT_NAME", "")
	if n := c.VagrantSnapshotName; n != "" && !vagrantSnapshotRE.MatchString(n) {
		return nil, bad("VAGRANT_SNAPSHOT_NAME", "want letters, digits, '.', '_' or '-', not starting with '-', got %q", n)
	}
	return c, nil
}

// gitCommitTime is the default SOURCE_DATE_EPOCH: the same checkout then
// always builds the same bytes, without anyone having to set it.
func gitCommitTime(root string) int64 {
	out, err := exec.Command("git", "-C", root, "log", "-1", "--format=%ct").Output()
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parsePairs(s string, checkKey, checkVal func(string) error) (map[string]string, error) {
	m := map[string]string{}
	for _, f := range splitList(s) {
		k, v, ok := strings.Cut(f, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("entry %q is not KEY=VALUE", f)
		}
		if err := checkKey(k); err != nil {
			return nil, err
		}
		if err := checkVal(v); err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("%q is given twice", k)
		}
		m[k] = v
	}
	return m, nil
}
