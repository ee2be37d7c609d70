package targets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/completeness"
	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/isomanifest"
	"github.com/metalk8s/buildchain/buildchain/isosbom"
	"github.com/metalk8s/buildchain/buildchain/rpm/depsolve"
	"github.com/metalk8s/buildchain/buildchain/rpm/pkglist"
	"github.com/metalk8s/buildchain/buildchain/salttree"
	"github.com/metalk8s/buildchain/buildchain/step"
)

// checkedBeforeIso is beforeIso behind the completeness check: nothing
// is written about an ISO root that is found incomplete.
func checkedBeforeIso(ctx context.Context, b *build.Session, populated error) error {
	if err := completenessCheck(ctx, b, populated); err != nil {
		return err
	}
	return beforeIso(ctx, b)
}

// completenessCheck fails the build before the ISO is written when the
// root is not complete both ways (docs/integrity.md), and records the
// report as the "completeness" section of build-report.json. Its step
// writes the report beside the ISO (not in the root), so that a re-run
// with nothing changed is up to date and still reports. When parts of the
// root are not built yet (populated != nil) the target fails anyway and
// the check would only repeat it, so it is skipped, saying so.
func completenessCheck(ctx context.Context, b *build.Session, populated error) error {
	if populated != nil {
		fmt.Fprintln(b.Log, "completeness: not checked, the ISO root is not complete yet")
		return nil
	}
	root := b.Cfg.RootDir()
	out := filepath.Join(b.Cfg.BuildRoot, "completeness.json")
	// Every entry of the root but what beforeIso writes after this check,
	// which would otherwise make every re-run stale.
	written := map[string]bool{isosbom.Name: true, isomanifest.Name: true, isomanifest.SignatureName: true}
	entries, err := os.ReadDir(root)
	if err != nil && !(b.Engine.Planning() && errors.Is(err, fs.ErrNotExist)) {
		return err
	}
	var inputs []step.Input
	for _, e := range entries {
		if !written[e.Name()] {
			inputs = append(inputs, step.Stat(filepath.Join(root, e.Name())))
		}
	}
	inputs = append(inputs, step.File(b.Cfg.PackagesFile), step.Value("repo-mirrors", mirrorsValue(b.Cfg.RepoMirrors)))
	err = b.Engine.Run(ctx, step.Step{
		Name:    "completeness",
		Inputs:  inputs,
		Outputs: []string{out},
		Run: func(ctx context.Context) error {
			r, err := runCompleteness(ctx, b)
			if err != nil {
				return err
			}
			if err := r.Err(); err != nil {
				if !b.Cfg.CompletenessReportOnly {
					// No report file: a failed check must run again.
					b.Engine.SetSection("completeness", r)
					return err
				}
				fmt.Fprintf(b.Log, "%v\n(COMPLETENESS=report: the ISO is written anyway)\n", err)
			}
			data, err := json.MarshalIndent(r, "", "  ")
			if err != nil {
				return err
			}
			return fsutil.WriteFile(out, append(data, '\n'), 0o644)
		},
	})
	if err != nil || b.Engine.Planning() {
		return err
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	var r completeness.Report
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%s: %w", out, err)
	}
	verdict := "complete"
	if !r.OK() {
		verdict = "NOT complete (COMPLETENESS=report)"
	}
	fmt.Fprintf(b.Log, "completeness: %d image(s) on the ISO, %d reference(s), %d package(s) checked: %s\n", r.Images, r.References, r.Packages, verdict)
	b.Engine.SetSection("completeness", &r)
	return nil
}

func runCompleteness(ctx context.Context, b *build.Session) (*completeness.Report, error) {
	py, err := salttree.Python()
	if err != nil {
		return nil, err
	}
	external, err := externalRepos(ctx, b)
	if err != nil {
		return nil, err
	}
	return completeness.Check(ctx, completeness.Options{Root: b.Cfg.RootDir(), Python: py, External: external})
}

// externalRepos are packages.yaml's external repositories, as mirrored:
// they satisfy the dependencies a node installs from its base OS.
func externalRepos(ctx context.Context, b *build.Session) ([]depsolve.Repo, error) {
	list, err := pkglist.Load(b.Cfg.PackagesFile)
	if err != nil {
		return nil, err
	}
	if err := list.ApplyMirrors(b.Cfg.RepoMirrors); err != nil {
		return nil, err
	}
	var out []depsolve.Repo
	for _, rc := range list.Repos {
		if rc.Kind != pkglist.External || rc.BaseURL == "" {
			continue
		}
		r, err := completeness.FetchRepo(ctx, http.DefaultClient, rc.Name, rc.BaseURL)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func mirrorsValue(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var s string
	for _, k := range keys {
		s += k + "=" + m[k] + "\n"
	}
	return s
}
