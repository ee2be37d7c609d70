package solution

import (
	"context"
	"io"
	"path/filepath"
	"time"
)

// ExampleDir is where the example Solution lives in the project.
const ExampleDir = "examples/solution"

// BuildExample builds the project's example Solution into
// buildRoot/example-solution-<version>.iso (with its SHA256SUM line), using
// the blob cache of the main build (buildRoot/cache/blobs). It needs no
// network: the example's images are built from its Go programs. An epoch of
// zero means SOURCE_DATE_EPOCH, else the current time. It is what
// `go run mage.go solution` runs.
func BuildExample(ctx context.Context, projectRoot, buildRoot string, epoch time.Time, log io.Writer) (string, error) {
	src := filepath.Join(projectRoot, ExampleDir)
	s, err := LoadSource(src)
	if err != nil {
		return "", err
	}
	out := filepath.Join(buildRoot, MachineName(s.Name)+"-"+s.Version+".iso")
	res, err := BuildArchive(ctx, src, BuildOptions{
		Output:   out,
		CacheDir: filepath.Join(buildRoot, "cache", "blobs"),
		Epoch:    epoch,
		Log:      log,
	})
	if err != nil {
		return "", err
	}
	return res.ISO, nil
}
