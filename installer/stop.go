package installer

import (
	"context"
	"fmt"

	"github.com/metalk8s/buildchain/installer/change"
	"github.com/metalk8s/buildchain/installer/serve"
)

// Stopper is a Server that can stop the repository service. It is a
// separate interface so that the Servers written before it (stand-ins
// included) need not change; a Server without it makes `stop` fail.
type Stopper interface {
	// Stop stops the repository service if it runs, through tx; a
	// service that is not running is no change.
	Stop(ctx context.Context, tx *change.Tx) error
}

// stop stops the repository service and changes nothing else: what is
// installed stays mounted and configured, and `serve` starts it again.
// A private --root (the demo, tests) has no systemd to stop its nginx.
func (r *runner) stop(ctx context.Context) error {
	if err := r.p.need("server"); err != nil {
		return err
	}
	s, ok := r.p.Server.(Stopper)
	if !ok {
		return fmt.Errorf("the repository server %T cannot stop the service", r.p.Server)
	}
	return s.Stop(ctx, r.tx)
}

// Stop stops the nginx of the root's pid file.
func (nginxServer) Stop(_ context.Context, tx *change.Tx) error { return serve.Stop(tx) }
