// Command repogen writes yum repository metadata for a directory of RPMs,
// like createrepo_c: DIR/repodata/{primary,filelists,other}.xml.gz and
// repomd.xml, optionally signed as repomd.xml.asc.
//
//	go run ./cmd/repogen [--update] [--workers N] [--sign-key KEY] DIR
//
// SOURCE_DATE_EPOCH, when set, fixes every timestamp of the output.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/metalk8s/buildchain/buildchain/config"
	"github.com/metalk8s/buildchain/buildchain/rpm/pgp"
	"github.com/metalk8s/buildchain/buildchain/rpm/repogen"
	"github.com/metalk8s/buildchain/internal/cli"
)

func main() { cli.Main("repogen", run) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("repogen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	update := fs.Bool("update", false, "reuse the entries of unchanged packages from the existing repodata")
	workers := fs.Int("workers", runtime.NumCPU(), "packages read in parallel")
	signKey := fs.String("sign-key", "", "armored OpenPGP private key; writes repodata/repomd.xml.asc")
	quiet := fs.Bool("quiet", false, "print nothing on success")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: repogen [--update] [--workers N] [--sign-key KEY] DIR")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return cli.FlagError(err)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return cli.Usagef("want exactly one DIR, got %d arguments", fs.NArg())
	}
	// A run is short and its live heap small. An --update allocates a few
	// MiB: the default GOGC would collect for nothing, a visible share of
	// a run of tens of milliseconds. A full run allocates its live heap
	// many times over, and every page of heap growth is a page fault in a
	// new process (costly in VMs): the default GOGC reuses memory sooner
	// and costs less. GOGC in the environment still wins.
	if *update && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	dir := fs.Arg(0)
	if st, err := os.Stat(dir); err != nil {
		return err
	} else if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	opt := repogen.Options{Workers: *workers, Incremental: *update}
	if t, ok, err := config.EpochFromEnv(); err != nil {
		return err
	} else if ok {
		opt.Epoch = &t
	}
	if *signKey != "" {
		s, err := pgp.LoadSigner(*signKey)
		if err != nil {
			return err
		}
		opt.Sign = func(md []byte) ([]byte, error) {
			t := time.Now()
			if opt.Epoch != nil {
				t = *opt.Epoch
			}
			return s.SignArmored(md, t)
		}
	}
	start := time.Now()
	st, err := repogen.Generate(ctx, dir, opt)
	if err != nil {
		return err
	}
	if !*quiet {
		fmt.Fprintf(stdout, "repogen: %s: %d packages (%d read, %d reused) in %s\n", dir, st.Packages, st.Read, st.Reused, time.Since(start).Round(time.Millisecond))
	}
	return nil
}
