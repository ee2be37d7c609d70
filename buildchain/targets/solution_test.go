package targets

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/step"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// copyProject copies what the solution target reads of the project: the
// module files and the example Solution.
func copyProject(t *testing.T, dst string) {
	t.Helper()
	src, _ := filepath.Abs("../..")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"go.mod", "go.sum", "VERSION", "examples/solution"} {
		err := filepath.Walk(filepath.Join(src, rel), func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			r, _ := filepath.Rel(src, p)
			if fi.IsDir() {
				return os.MkdirAll(filepath.Join(dst, r), 0o755)
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, r), data, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// The solution target is a step: a second run is up to date; a changed file
// of examples/solution makes it run again.
func TestSolutionTargetIsAStep(t *testing.T) {
	testenv.Short(t, "builds the example Solution twice")
	root := filepath.Join(t.TempDir(), "project")
	copyProject(t, root)
	t.Setenv("BUILD_ROOT", "dist")
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	t.Setenv("IMAGE_MIRRORS", "")
	run := func() (step.Result, string) {
		t.Helper()
		b, log := openSession(t, root)
		defer b.Close()
		if err := Solution(context.Background(), b); err != nil {
			t.Fatalf("%v\n%s", err, log)
		}
		res := b.Engine.Results()
		if len(res) != 1 || res[0].Step != "solution:example-solution-1.0.0" {
			t.Fatalf("results %+v", res)
		}
		if !strings.Contains(log.String(), res[0].Step) {
			t.Fatalf("no report line for %s:\n%s", res[0].Step, log)
		}
		return res[0], log.String()
	}
	iso := filepath.Join(root, "dist", "example-solution-1.0.0.iso")
	sums := filepath.Join(root, "dist", "SHA256SUM")
	if r, log := run(); r.Status != step.Ran {
		t.Fatalf("first run: %s\n%s", r.Status, log)
	}
	first := fileSHA256(t, iso)
	if data, _ := os.ReadFile(sums); !strings.HasSuffix(string(data), "  example-solution-1.0.0.iso\n") {
		t.Fatalf("SHA256SUM: %q", data)
	}
	if r, log := run(); r.Status != step.UpToDate {
		t.Fatalf("second run: %s, want up to date\n%s", r.Status, log)
	}

	// Another step's line in SHA256SUM does not matter; losing ours does.
	f, _ := os.OpenFile(sums, os.O_APPEND|os.O_WRONLY, 0)
	io.WriteString(f, strings.Repeat("0", 64)+"  metalk8s.iso\n")
	f.Close()
	if r, _ := run(); r.Status != step.UpToDate {
		t.Fatalf("after another ISO's line was added: %s, want up to date", r.Status)
	}
	// Losing the line re-runs the step: see step.TestFingerprintRerunsTheStep.

	page := filepath.Join(root, "examples", "solution", "ui", "static", "index.html")
	data, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(page, append(data, "<!-- changed -->\n"...), 0o644)
	if r, log := run(); r.Status != step.Ran {
		t.Fatalf("after a change of %s: %s, want ran\n%s", page, r.Status, log)
	}
	if fileSHA256(t, iso) == first {
		t.Fatal("the archive did not change with its UI page")
	}
}
