// Package installer is the companion installer's program: the command
// line of metalk8s-installer, and the orchestration of its commands over
// the pieces that do the work (verify, mount, serve, deploy, configure;
// see Pieces). Every run takes the lock, logs its command line and its
// changes, makes them through one change.Tx, prints the change report,
// and rolls every change back when anything fails, so the host keeps its
// previous working state. See docs/installer.md.
package installer

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/metalk8s/buildchain/installer/change"
	"github.com/metalk8s/buildchain/installer/mount"
	"github.com/metalk8s/buildchain/internal/cli"
)

// Name is the command's name, in messages and the RPM.
const Name = "metalk8s-installer"

// Usage is the command's usage, printed by -h and on a bad command line.
const Usage = `usage: metalk8s-installer [global flags] COMMAND [args]

commands:
  bootstrap             verify, mount and serve every archive of bootstrap.yaml products.metalk8s
  archive add PATH      verify, mount, persist and serve one MetalK8s archive (ISO or directory)
  archive remove PATH   undo archive add
  solution add ISO      validate, mount, serve and deploy a Solution archive
  solution remove ISO   undo solution add
  serve                 regenerate the repository service's configuration from what is installed
  stop                  stop the repository service (nginx); what is installed stays, serve starts it again
  version               print the version

global flags (before or after the command):
  --root DIR            every node path under DIR (default /)
  --dry-run             report what would change, change nothing
  --log-file FILE       append the log to FILE (default /var/log/metalk8s/installer.log under --root;
                        under --dry-run only an explicit FILE is written)
  --verbose             log to stderr too
  --no-wait             fail at once if another run holds the lock (default: wait for it)
  --kubeconfig FILE     deploy Solutions' CRDs and UI through this API (default: write manifests)
  --listen ADDR         repository service address HOST:PORT (default from bootstrap.yaml, or 127.0.0.1:8080)
  --mount-method M      auto (default: kernel, then fuse, then fuseiso), kernel, fuse or fuseiso
  --trusted-key FILE    archives must be signed by this OpenPGP key (repeatable): the ISO's .asc
                        and its MANIFEST.sha256.asc are checked

PATH, ISO and FILE are paths on this machine, relative ones from the
current directory; paths the installer knows itself and those in
bootstrap.yaml are node paths under --root.
Exit status: 0 done (or nothing to do), 1 failed (every change rolled back), 2 bad command line.
`

// Options are the global flags.
type Options struct {
	Root        string
	DryRun      bool
	LogFile     string // "" for the default
	Verbose     bool
	NoWait      bool
	Kubeconfig  string
	Listen      string
	MountMethod mount.Method
	TrustedKeys []string
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// Main is the command's main: cmd/metalk8s-installer calls it with the
// function that wires the real pieces.
func Main(wire Wire) {
	cli.Main(Name, func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		return Run(ctx, args, stdout, stderr, wire)
	})
}

// command is one command line's command and its operands.
type command struct {
	name     string   // "archive add", "serve", ...
	operands []string // PATH or ISO
}

var commands = map[string]int{ // name -> number of operands
	"bootstrap": 0, "archive add": 1, "archive remove": 1,
	"solution add": 1, "solution remove": 1, "serve": 0, "stop": 0, "version": 0, "help": 0,
}

// Parse reads a command line: global flags anywhere, "--" ends them.
func Parse(args []string) (Options, command, error) {
	var o Options
	fs := flag.NewFlagSet(Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.Root, "root", "/", "")
	fs.BoolVar(&o.DryRun, "dry-run", false, "")
	fs.StringVar(&o.LogFile, "log-file", "", "")
	fs.BoolVar(&o.Verbose, "verbose", false, "")
	fs.BoolVar(&o.NoWait, "no-wait", false, "")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "")
	fs.StringVar(&o.Listen, "listen", "", "")
	method := fs.String("mount-method", "", "")
	var keys listFlag
	fs.Var(&keys, "trusted-key", "")
	var words []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return o, command{}, err
			}
			return o, command{}, cli.Usagef("%v", err)
		}
		if fs.NArg() == 0 {
			break
		}
		// After "--" every word is an operand.
		if len(args) > fs.NArg() && args[len(args)-fs.NArg()-1] == "--" {
			words = append(words, fs.Args()...)
			break
		}
		words = append(words, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(words) == 0 {
		return o, command{}, cli.Usagef("no command")
	}
	c := command{name: words[0]}
	rest := words[1:]
	if words[0] == "archive" || words[0] == "solution" {
		if len(words) < 2 {
			return o, command{}, cli.Usagef("%s: want %s add|remove PATH", words[0], words[0])
		}
		c.name, rest = words[0]+" "+words[1], words[2:]
	}
	n, ok := commands[c.name]
	if !ok {
		return o, command{}, cli.Usagef("unknown command %q", c.name)
	}
	if len(rest) != n {
		return o, command{}, cli.Usagef("%s takes %d operand(s), got %d: %q", c.name, n, len(rest), rest)
	}
	c.operands = rest
	for i, p := range c.operands {
		if p == "" {
			return o, command{}, cli.Usagef("%s: empty path", c.name)
		}
		abs, err := filepath.Abs(p) // relative paths from here, not from / (MetalK8s #3082)
		if err != nil {
			return o, command{}, err
		}
		c.operands[i] = abs
	}
	var err error
	if o.MountMethod, err = mount.ParseMethod(*method); err != nil {
		return o, command{}, cli.Usagef("--mount-method: %v", err)
	}
	for _, k := range keys {
		if k == "" {
			return o, command{}, cli.Usagef("--trusted-key: empty path")
		}
		abs, err := filepath.Abs(k)
		if err != nil {
			return o, command{}, err
		}
		o.TrustedKeys = append(o.TrustedKeys, abs)
	}
	if o.Listen != "" {
		if err := checkListen(o.Listen); err != nil {
			return o, command{}, cli.Usagef("--listen %q: %v", o.Listen, err)
		}
	}
	for _, p := range []*string{&o.Root, &o.LogFile, &o.Kubeconfig} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return o, command{}, err
		}
		*p = abs
	}
	if o.Root == "" {
		return o, command{}, cli.Usagef("--root: empty")
	}
	return o, c, nil
}

// checkListen accepts HOST:PORT with an IP or a host name and a port
// number: it goes into an nginx listen directive.
func checkListen(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	if host == "" || net.ParseIP(host) != nil {
		return nil
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || strings.Trim(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" ||
			label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host %q is neither an IP address nor a host name", host)
		}
	}
	return nil
}

// Run runs one command line. wire makes the pieces once the options are
// known; nil wires none, and the commands that need them say what has not
// landed.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, wire Wire) error {
	// The FUSE server of a mount: a daemon the installer and the mount's
	// unit start, outside any run (no lock, no log, no report).
	if len(args) > 0 && args[0] == mount.ServeFUSECommand {
		if len(args) != 3 {
			return cli.Usagef("%s ISO MOUNTPOINT", mount.ServeFUSECommand)
		}
		return mount.ServeFUSE(args[1], args[2])
	}
	o, c, err := Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, Usage)
		return err
	}
	if err != nil {
		fmt.Fprint(stderr, Usage)
		return err
	}
	switch c.name {
	case "help":
		fmt.Fprint(stdout, Usage)
		return nil
	case "version":
		fmt.Fprintln(stdout, Version())
		return nil
	}
	return execute(ctx, o, c, stdout, stderr, wire, args)
}

func execute(ctx context.Context, o Options, c command, stdout, stderr io.Writer, wire Wire, args []string) (err error) {
	if fi, err := os.Stat(o.Root); err != nil || !fi.IsDir() {
		return fmt.Errorf("--root %s: not a directory", o.Root)
	}
	tx := change.New(o.Root, o.DryRun)

	logPath := o.LogFile
	if logPath == "" && !o.DryRun {
		logPath = tx.Path(DefaultLogPath)
	}
	var verbose io.Writer
	if o.Verbose {
		verbose = stderr
	}
	log, err := OpenLog(logPath, verbose)
	if err != nil {
		return err
	}
	defer log.Close()
	dry := ""
	if o.DryRun {
		dry = ", dry run"
	}
	log.Printf("%s %s (root %s%s)", Name, quoteArgs(args), o.Root, dry)

	lock, err := AcquireLock(ctx, tx.Path(LockPath), o.NoWait, io.MultiWriter(stderr, logOnly{log}))
	if err != nil {
		log.Printf("failed: %v", err)
		return err
	}
	defer lock.Unlock()

	var p Pieces
	if wire != nil {
		if p, err = wire(Env{Root: o.Root, DryRun: o.DryRun, Kubeconfig: o.Kubeconfig, Listen: o.Listen, Log: log,
			MountMethod: o.MountMethod, TrustedKeys: o.TrustedKeys}); err != nil {
			log.Printf("failed: %v", err)
			return err
		}
		if p.Close != nil {
			defer p.Close()
		}
	}
	r := &runner{tx: tx, p: p, log: log, opts: o}
	err = r.run(ctx, c)
	if err == nil {
		for _, e := range tx.Entries() {
			log.Printf("%s %s", e.Kind, e.What)
		}
		tx.Print(stdout)
		var sum strings.Builder
		tx.Print(&sum)
		lines := strings.Split(strings.TrimSpace(sum.String()), "\n")
		log.Printf("done: %s", lines[len(lines)-1])
		return nil
	}
	return r.fail(c, err, stderr)
}

// logOnly writes to the log file only, for lines that also go to stderr.
type logOnly struct{ l *Logger }

func (w logOnly) Write(p []byte) (int, error) {
	w.l.mu.Lock()
	stderr := w.l.stderr
	w.l.stderr = nil
	w.l.mu.Unlock()
	n, err := w.l.Write(p)
	w.l.mu.Lock()
	w.l.stderr = stderr
	w.l.mu.Unlock()
	return n, err
}

// fail rolls the run's changes back and says so, in the log and in the
// error the command exits with.
func (r *runner) fail(c command, err error, stderr io.Writer) error {
	r.log.Printf("failed: %v", err)
	done := r.tx.Entries()
	var undone []change.Entry
	for _, e := range done {
		if e.Kind != change.Unchanged {
			undone = append(undone, e)
		}
	}
	if r.tx.DryRun {
		return fmt.Errorf("%s: %w (dry run: nothing was changed)", c.name, err)
	}
	rbErr := r.tx.Rollback()
	for _, e := range undone {
		r.log.Printf("rolled back: %s %s", e.Kind, e.What)
	}
	if rbErr != nil {
		r.log.Printf("rollback failed: %v", rbErr)
		for _, e := range undone {
			fmt.Fprintf(stderr, "  %-9s %s\n", e.Kind, e.What)
		}
		return fmt.Errorf("%s: %w\nrolling back failed too: %v\nthe changes above may be left on the host; see the log", c.name, err, rbErr)
	}
	if len(undone) == 0 {
		return fmt.Errorf("%s: %w (nothing was changed)", c.name, err)
	}
	r.log.Printf("rolled back %d change(s): the host is as it was", len(undone))
	return fmt.Errorf("%s: %w\nevery change was rolled back (%d): the host is as it was", c.name, err, len(undone))
}

// quoteArgs spells args so that the log line can be pasted into a shell.
func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,@+") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}
