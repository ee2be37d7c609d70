// Command mkiso writes an ISO 9660 image of a directory, with Rock Ridge
// and Joliet, the way MetalK8s used to call mkisofs:
//
//	mkiso -o OUT.iso -V 'Name 1.0' [-R] [-J] [-joliet-long] [-iso-level 3]
//	      [-uid 0] [-gid 0] [-implantisomd5] [-no-sha256sum] DIR
//
// mkisofs spellings are accepted too: -output, -volid, -rock, -joliet, -l,
// -full-iso9660-filenames, -input-charset utf-8 and -output-charset utf-8
// (names are always UTF-8 and primary names always use 31 characters).
// The image is reproducible when SOURCE_DATE_EPOCH is set.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/metalk8s/buildchain/buildchain/iso"
	"github.com/metalk8s/buildchain/internal/cli"
)

// Exit codes follow the Go convention (the flag package's, and go's own
// commands'): 0 on success and for -h, 2 for a usage error, 1 when the
// image could not be written.
func main() { cli.Main("mkiso", run) }

type idFlag struct {
	v   **uint32
	set bool
}

func (f *idFlag) String() string { return "" }
func (f *idFlag) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return fmt.Errorf("not a numeric ID: %q", s)
	}
	v := uint32(n)
	*f.v = &v
	return nil
}

type charsetFlag struct{}

func (charsetFlag) String() string { return "utf-8" }
func (charsetFlag) Set(s string) error {
	if !strings.EqualFold(s, "utf-8") && !strings.EqualFold(s, "utf8") {
		return fmt.Errorf("only utf-8 is supported, not %q", s)
	}
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mkiso", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts iso.Options
	var out string
	var level int
	var quiet bool
	for _, n := range []string{"o", "output"} {
		fs.StringVar(&out, n, "", "output image `path` (required)")
	}
	for _, n := range []string{"V", "volid"} {
		fs.StringVar(&opts.VolumeID, n, "", "volume `ID`, e.g. 'MetalK8s 2.0.0' (at most 32 characters)")
	}
	for _, n := range []string{"R", "rock"} {
		fs.BoolVar(&opts.RockRidge, n, false, "add Rock Ridge records")
	}
	for _, n := range []string{"J", "joliet"} {
		fs.BoolVar(&opts.Joliet, n, false, "add a Joliet tree")
	}
	fs.BoolVar(&opts.JolietLong, "joliet-long", false, "allow Joliet names of 103 characters (implies -J)")
	fs.IntVar(&level, "iso-level", 3, "ISO 9660 conformance `level`; only 3 is supported")
	var full bool
	for _, n := range []string{"l", "full-iso9660-filenames"} {
		fs.BoolVar(&full, n, true, "31-character primary names (always on)")
	}
	fs.Var(&idFlag{v: &opts.UID}, "uid", "store every file with owner `uid`")
	fs.Var(&idFlag{v: &opts.GID}, "gid", "store every file with group `gid`")
	fs.Var(charsetFlag{}, "input-charset", "source name `charset` (utf-8 only)")
	fs.Var(charsetFlag{}, "output-charset", "Rock Ridge name `charset` (utf-8 only)")
	fs.StringVar(&opts.SystemID, "sysid", "", "system `ID` (default LINUX)")
	for _, n := range []string{"A", "appid"} {
		fs.StringVar(&opts.ApplicationID, n, "", "application `ID`")
	}
	for _, n := range []string{"publisher"} {
		fs.StringVar(&opts.PublisherID, n, "", "publisher `ID`")
	}
	fs.BoolVar(&opts.ImplantMD5, "implantisomd5", false, "implant an MD5 checkisomd5 can verify")
	fs.BoolVar(&opts.NoChecksumFile, "no-sha256sum", false, "do not record the image in SHA256SUM next to it")
	fs.BoolVar(&quiet, "quiet", false, "print nothing on success")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mkiso -o OUT.iso -V 'Name 1.0' [-R] [-J] [-joliet-long] [-iso-level 3] [-uid N] [-gid N] DIR")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		// The flag package has printed the error and the usage.
		return cli.UsageError{}
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return cli.Usagef("exactly one source directory is needed")
	}
	if out == "" {
		return cli.Usagef("-o is required")
	}
	if level != 3 {
		return cli.Usagef("-iso-level %d: only level 3 is supported", level)
	}
	res, err := iso.Write(ctx, out, fs.Arg(0), opts)
	if err != nil {
		return err
	}
	if !quiet {
		fmt.Fprintf(stdout, "%s: %d bytes, %d files in %d extents (%d bytes shared)", out, res.Size, res.Files, res.Extents, res.SharedBytes)
		if res.SHA256 != "" {
			fmt.Fprintf(stdout, ", sha256 %s", res.SHA256)
		}
		if res.MD5 != "" {
			fmt.Fprintf(stdout, ", implanted md5 %s", res.MD5)
		}
		fmt.Fprintln(stdout)
	}
	return nil
}
