// Command solution builds, validates and inspects MetalK8s Solution archives
// (docs chapter 12; see docs/solutions.md):
//
//	solution build [-o ISO] [--cache DIR] [--mirror HOST=MIRROR]... [--insecure HOST]... [--platform OS/ARCH] [--git DESC] SRC
//	solution validate [--json] ISO|DIR
//	solution inspect [--json] ISO|DIR
//
// SRC is a solution.yaml, a directory holding one, or a directory laid out
// as an archive. validate exits 1 when the archive has problems, and 2 on
// usage or I/O errors.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/metalk8s/buildchain/buildchain/config"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/solution"
	"github.com/metalk8s/buildchain/internal/cli"
)

const usage = `usage:
  solution build [-o ISO] [--cache DIR] [--mirror HOST=MIRROR]... [--insecure HOST]... [--platform OS/ARCH] [--git DESC] SRC
  solution validate [--json] ISO|DIR
  solution inspect [--json] ISO|DIR

SRC is a solution.yaml, a directory holding one, or a directory laid out as
an archive. SOURCE_DATE_EPOCH sets every date of the archive; IMAGE_MIRRORS
(docker.io=127.0.0.1:5000,...) is the default of --mirror.
`

// errProblems means validation found problems (printed already): exit
// status 1, as for any other failure.
var errProblems = fmt.Errorf("the archive has problems: %w", cli.ErrSilent)

func main() {
	cli.Main("solution", func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		err := run(ctx, args, stdout, stderr)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
		}
		return err
	})
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return cli.Usagef("no command")
	}
	switch args[0] {
	case "build":
		return build(ctx, args[1:], stdout, stderr)
	case "validate":
		return validate(ctx, args[1:], stdout)
	case "inspect":
		return inspect(ctx, args[1:], stdout)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return cli.UsageError{Err: fmt.Errorf("unknown command %q", args[0])}
}

// parse parses flags that may come before or after the one operand.
func parse(fs *flag.FlagSet, args []string) (string, error) {
	fs.SetOutput(io.Discard)
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return "", err
			}
			return "", cli.UsageError{Err: fmt.Errorf("%s: %w\n%s", fs.Name(), err, usage)}
		}
		if fs.NArg() == 0 {
			break
		}
		operands = append(operands, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(operands) != 1 {
		return "", cli.UsageError{Err: fmt.Errorf("%s takes exactly one operand, got %d\n%s", fs.Name(), len(operands), usage)}
	}
	return operands[0], nil
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func build(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	out := fs.String("o", "", "output ISO (default: ./<name>-<version>.iso)")
	cache := fs.String("cache", "", "blob cache directory (default: the user cache directory)")
	platform := fs.String("platform", "linux/amd64", "platform of the images")
	git := fs.String("git", "", "GIT value of product.txt (default: git describe of the source)")
	var mirrors, insecure listFlag
	fs.Var(&mirrors, "mirror", "registry mirror HOST=MIRROR (repeatable; default IMAGE_MIRRORS)")
	fs.Var(&insecure, "insecure", "registry host reached over plain HTTP (repeatable)")
	src, err := parse(fs, args)
	if err != nil {
		return err
	}
	// Flags and IMAGE_MIRRORS go through the parser the mage build uses,
	// so both refuse a mirror that is not a registry host the same way.
	mirrorsFrom := "IMAGE_MIRRORS"
	mirrorList := os.Getenv("IMAGE_MIRRORS")
	if len(mirrors) > 0 {
		mirrorsFrom, mirrorList = "--mirror", strings.Join(mirrors, ",")
	}
	mm, err := config.ParseMirrors(mirrorList)
	if err != nil {
		return fmt.Errorf("%s: %w", mirrorsFrom, err)
	}
	if *out == "" {
		name, err := defaultOutput(src)
		if err != nil {
			return err
		}
		*out = name
	}
	if *cache == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("no cache directory (set --cache): %w", err)
		}
		*cache = filepath.Join(dir, "metalk8s-solution", "blobs")
	}
	res, err := solution.BuildArchive(ctx, src, solution.BuildOptions{
		Output: *out, CacheDir: *cache, Git: *git, Mirrors: mm, Insecure: insecure,
		Platform: *platform, Log: stderr,
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res.ISO)
	return nil
}

// defaultOutput names the ISO after the source's NAME and VERSION.
func defaultOutput(src string) (string, error) {
	if fi, err := os.Stat(src); err == nil && fi.IsDir() {
		if _, err := os.Stat(filepath.Join(src, solution.SourceFile)); os.IsNotExist(err) {
			data, err := os.ReadFile(filepath.Join(src, solution.ProductFile))
			if err != nil {
				return "", err
			}
			p, err := solution.ParseProduct(data)
			if err != nil {
				return "", fmt.Errorf("%s: %w", filepath.Join(src, solution.ProductFile), err)
			}
			return p.ID() + ".iso", nil
		}
	}
	s, err := solution.LoadSource(src)
	if err != nil {
		return "", err
	}
	return solution.MachineName(s.Name) + "-" + s.Version + ".iso", nil
}

func validate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	p, err := parse(fs, args)
	if err != nil {
		return err
	}
	rep, err := solution.Validate(ctx, p)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		for _, pr := range rep.Problems {
			fmt.Fprintf(stdout, "%s: %s\n", p, pr)
		}
		if rep.OK() {
			fmt.Fprintf(stdout, "%s: valid Solution archive %s (%d images)\n", p, rep.Product.ID(), len(rep.Images))
		} else {
			fmt.Fprintf(stdout, "%s: %d problem(s)\n", p, len(rep.Problems))
		}
	}
	if !rep.OK() {
		return errProblems
	}
	return nil
}

func inspect(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	p, err := parse(fs, args)
	if err != nil {
		return err
	}
	rep, err := solution.Validate(ctx, p)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, rep)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Archive:\t%s (%s)\n", rep.Archive, rep.Format)
	if rep.VolumeID != "" {
		fmt.Fprintf(tw, "Volume ID:\t%s\n", rep.VolumeID)
	}
	if pr := rep.Product; pr != nil {
		fmt.Fprintf(tw, "Name:\t%s\n", pr.Name)
		fmt.Fprintf(tw, "Version:\t%s\n", pr.Version)
		fmt.Fprintf(tw, "Requires MetalK8s:\t%s\n", pr.RequireMetalK8s)
		fmt.Fprintf(tw, "Layout version:\t%s\n", pr.LayoutVersion)
		if pr.Git != "" {
			fmt.Fprintf(tw, "Git:\t%s\n", pr.Git)
		}
		if pr.BuildTimestamp != "" {
			fmt.Fprintf(tw, "Built:\t%s\n", pr.BuildTimestamp)
		}
		if pr.Name != "" && pr.Version != "" {
			fmt.Fprintf(tw, "Repository:\t%s\n", pr.ID())
		}
	}
	fmt.Fprintf(tw, "UI:\t%v\n", rep.UI)
	fmt.Fprintf(tw, "Problems:\t%d (run validate for details)\n", len(rep.Problems))
	tw.Flush()
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tVERSION\tDIGEST\tSIZE\tBLOBS\tTYPE")
	var total int64
	for _, im := range rep.Images {
		total += im.Size
		typ := shortType(im.MediaType)
		if len(im.Platforms) > 0 {
			typ += " " + strings.Join(im.Platforms, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", im.Name, im.Version, im.Digest, oci.HumanBytes(im.Size), im.Blobs, typ)
	}
	fmt.Fprintf(tw, "%d images\t\t\t%s\t\t\n", len(rep.Images), oci.HumanBytes(total))
	return tw.Flush()
}

func shortType(mt string) string {
	switch mt {
	case "application/vnd.oci.image.manifest.v1+json":
		return "oci-manifest"
	case "application/vnd.oci.image.index.v1+json":
		return "oci-index"
	case "application/vnd.docker.distribution.manifest.v2+json":
		return "docker-v2s2"
	case "application/vnd.docker.distribution.manifest.list.v2+json":
		return "docker-list"
	}
	return mt
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // ">=2.0" stays readable
	return enc.Encode(v)
}
