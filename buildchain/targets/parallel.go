package targets

import (
	"context"
	"errors"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/metalk8s/buildchain/buildchain/build"
)

// parallelParts runs independent parts of a build (images, packages, the
// Salt tree) at once, up to JOBS, as `./doit.sh -n` did. It returns the
// parts that are not built yet, in the order given, and the first other
// error in that order, so that what a run reports does not depend on which
// part finished first. Every part runs to its end even when another fails.
// In a plan they run one after the other: a plan is cheap, and its steps
// belong to the target that declares them first.
func parallelParts(ctx context.Context, b *build.Session, parts ...Target) (missing []error, err error) {
	errs := make([]error, len(parts))
	if b.Engine.Planning() || b.Cfg.Jobs <= 1 {
		for i, p := range parts {
			errs[i] = p(ctx, b)
		}
	} else {
		var g errgroup.Group
		g.SetLimit(b.Cfg.Jobs)
		var mu sync.Mutex
		for i, p := range parts {
			g.Go(func() error {
				e := p(ctx, b)
				mu.Lock()
				errs[i] = e
				mu.Unlock()
				return nil
			})
		}
		g.Wait()
	}
	for _, e := range errs {
		switch {
		case e == nil:
		case errors.Is(e, build.ErrNotBuiltYet):
			missing = append(missing, e)
		case err == nil:
			err = e
		}
	}
	return missing, err
}
