// Command registrygen writes the nginx configuration that serves skopeo
// dir: image trees as a read-only Docker Registry v2 / OCI distribution
// registry, or serves them itself.
//
//	registrygen [--name-prefix P] [--server-root R] [--omit-constants | --only-constants] [-o FILE] [ROOT...]
//	registrygen serve [--listen 127.0.0.1:5000] [--name-prefix P] ROOT...
//
// The first form takes static-container-registry's flags, with the same
// meaning; ROOT defaults to the current directory. Flags may follow ROOT,
// as argparse allows.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/metalk8s/buildchain/internal/cli"
	"github.com/metalk8s/buildchain/registrygen"
)

func main() { cli.Main("registrygen", execute) }

// run is the whole command with its exit status; serve stops when ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return cli.ExitCode("registrygen", execute(ctx, args, stdout, stderr), stderr)
}

func execute(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "serve" {
		return serve(ctx, args[1:], stderr)
	}
	return generate(args, stdout, stderr)
}

// parseInterspersed parses flags found anywhere in args, returning the
// positional arguments; "--" ends flag parsing.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, cli.FlagError(err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs.Parse stops at the first positional argument, or after "--".
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func generate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("registrygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	prefix := fs.String("name-prefix", "", "optional `PREFIX` added to every image name (may be a {{ variable }} placeholder)")
	serverRoot := fs.String("server-root", "", "`PATH` nginx serves the images from: an absolute path, an nginx $variable or a {{ variable }} placeholder, optionally followed by a path (default: ROOT's absolute path; only with one ROOT)")
	omit := fs.Bool("omit-constants", false, "do not write the locations shared by all roots (/v2/, errors), to include this config beside others")
	only := fs.Bool("only-constants", false, "write only the locations shared by all roots, to include once")
	out := fs.String("o", "", "write the config to `FILE` atomically instead of stdout")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: registrygen [--name-prefix P] [--server-root R] [--omit-constants | --only-constants] [-o FILE] [ROOT...]\n"+
			"       registrygen serve [--listen 127.0.0.1:5000] [--name-prefix P] ROOT...\n\n")
		fs.PrintDefaults()
	}
	roots, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if *omit && *only {
		return cli.UsageError{Err: errors.New("--omit-constants and --only-constants are mutually exclusive")}
	}
	if len(roots) == 0 {
		roots = []string{"."}
	}
	if *serverRoot != "" && len(roots) > 1 {
		return cli.UsageError{Err: errors.New("--server-root applies to one ROOT; generate one config per root (with --omit-constants) to give each its own")}
	}
	cfg := registrygen.Config{Constants: registrygen.WithConstants}
	switch {
	case *omit:
		cfg.Constants = registrygen.OmitConstants
	case *only:
		cfg.Constants = registrygen.OnlyConstants
	}
	for _, r := range roots {
		cfg.Roots = append(cfg.Roots, registrygen.Root{Dir: r, NamePrefix: *prefix, ServerRoot: *serverRoot})
	}
	if *out != "" {
		return registrygen.WriteConfigFile(*out, cfg)
	}
	return registrygen.WriteConfig(stdout, cfg)
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("registrygen serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:5000", "`ADDRESS` to listen on")
	prefix := fs.String("name-prefix", "", "optional `PREFIX` added to every image name")
	roots, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(roots) == 0 {
		roots = []string{"."}
	}
	var rs []registrygen.Root
	for _, r := range roots {
		rs = append(rs, registrygen.Root{Dir: r, NamePrefix: *prefix})
	}
	h, err := registrygen.NewHandler(rs...)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "registrygen: serving %v on http://%s/v2/\n", roots, l.Addr())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
