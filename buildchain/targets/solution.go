package targets

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/buildchain/product"
	"github.com/metalk8s/buildchain/buildchain/solution"
	"github.com/metalk8s/buildchain/buildchain/step"
)

// Solution builds the example Solution archive (examples/solution) into the
// build root, with its SHA256SUM line, as the step "solution:<name>-<version>".
func Solution(ctx context.Context, b *build.Session) error {
	root := b.Cfg.ProjectRoot
	src := filepath.Join(root, solution.ExampleDir)
	s, err := solution.LoadSource(src)
	if err != nil {
		return err
	}
	base := solution.MachineName(s.Name) + "-" + s.Version + ".iso"
	out := filepath.Join(b.Cfg.BuildRoot, base)
	sums := filepath.Join(b.Cfg.BuildRoot, "SHA256SUM")
	// Resolved once, so that the input and product.txt's GIT agree.
	git := product.GitDescribe(src)
	opts := solution.BuildOptions{
		Output:   out,
		CacheDir: b.BlobCache().Dir,
		Epoch:    b.Cfg.Epoch(),
		Git:      git,
		Mirrors:  b.Cfg.ImageMirrors,
		Insecure: b.Cfg.InsecureRegistries,
		Log:      b.Log,
	}
	return b.Engine.Run(ctx, step.Step{
		Name: "solution:" + strings.TrimSuffix(base, ".iso"),
		Inputs: []step.Input{
			step.Tree(src),
			// The Solution's programs are built in the project's module.
			step.File(filepath.Join(root, "go.mod")),
			step.File(filepath.Join(root, "go.sum")),
			step.Value("go", goVersion()),
			step.Value("epoch", b.Cfg.Epoch().String()),
			step.Value("git", git),
			step.Value("mirrors", pairs(b.Cfg.ImageMirrors)),
			step.Value("insecure", strings.Join(b.Cfg.InsecureRegistries, ",")),
		},
		Outputs: []string{out},
		// The ISO's line, not the whole file: the iso step writes its own
		// line there too, which must not make this step re-run.
		Fingerprint: func() (string, error) { return iso.LookupSHA256SUM(sums, base) },
		Run: func(ctx context.Context) error {
			res, err := solution.BuildArchive(ctx, src, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(b.Log, "solution: %s\n", res.ISO)
			return nil
		},
	})
}

func pairs(m map[string]string) string {
	l := make([]string, 0, len(m))
	for k, v := range m {
		l = append(l, k+"="+v)
	}
	sort.Strings(l)
	return strings.Join(l, ",")
}

// goVersion is the toolchain that builds the project's binaries: a new one
// may build other bytes.
func goVersion() string {
	v, _ := exec.Command("go", "env", "GOVERSION").Output()
	return strings.TrimSpace(string(v))
}
