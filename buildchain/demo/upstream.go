package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/oci"
	"github.com/metalk8s/buildchain/buildchain/rpm/pkglist"
)

// Upstreams are the local stand-ins for the upstream registries and yum
// repositories: a docker-registry and an nginx on 127.0.0.1, with their
// data under Dir.
type Upstreams struct {
	Dir          string
	RegistryHost string // 127.0.0.1:PORT
	RepoURL      string // http://127.0.0.1:PORT/, serving a directory per repository
	KeyFile      string // the armored private key that signed the repos
	Images       []Image
	Packages     []Package

	lists Lists
	mu    sync.Mutex
	procs []*daemon // running
	pids  []int     // every server ever started
}

// StartUpstreams generates the fixture from seed under dir, named after
// the real lists, and serves it. The caller must call Stop, also when
// StartUpstreams fails.
func StartUpstreams(ctx context.Context, dir string, lists Lists, seed uint64, s Sizes, log io.Writer) (*Upstreams, error) {
	u := &Upstreams{Dir: dir, lists: lists}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return u, err
	}
	data, err := os.ReadFile(lists.ImagesFile)
	if err != nil {
		return u, err
	}
	imageList, err := oci.ParseList(lists.ImagesFile, data)
	if err != nil {
		return u, err
	}
	pkgs, err := pkglist.Load(lists.PackagesFile)
	if err != nil {
		return u, err
	}
	bins, err := LookPrograms("docker-registry", "nginx")
	if err != nil {
		return u, err
	}
	var regPort int
	regPort, err = freePort()
	if err != nil {
		return u, err
	}
	u.RegistryHost = fmt.Sprintf("127.0.0.1:%d", regPort)
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n",
		filepath.Join(dir, "registry", "data"), u.RegistryHost)
	regConf := filepath.Join(dir, "registry", "config.yml")
	if err := fsutil.WriteFile(regConf, []byte(conf), 0o644); err != nil {
		return u, err
	}
	if err := u.start(ctx, exec.Command(bins[0], "serve", regConf), "http://"+u.RegistryHost+"/v2/"); err != nil {
		return u, err
	}
	// The images are pushed while the repositories are built.
	pushed := make(chan error, 1)
	go func() {
		var err error
		u.Images, err = pushImages(ctx, u.RegistryHost, imageList, seed, s)
		pushed <- err
	}()
	waitPushed := func() error {
		if pushed == nil {
			return nil
		}
		err := <-pushed
		pushed = nil
		return err
	}
	// Stop must not race the pushes: every return below waits for them.
	defer waitPushed()

	repos := filepath.Join(dir, "repos")
	u.KeyFile = filepath.Join(dir, "signing-key.asc")
	signer, err := writeKey(u.KeyFile, seed)
	if err != nil {
		return u, err
	}
	pub, err := signer.PublicKeyArmored()
	if err != nil {
		return u, err
	}
	if err := fsutil.WriteFile(filepath.Join(repos, "RPM-GPG-KEY-demo"), pub, 0o644); err != nil {
		return u, err
	}
	if u.Packages, err = buildRepos(ctx, repos, pkgs, seed, s, signer); err != nil {
		return u, err
	}
	webPort, err := freePort()
	if err != nil {
		return u, err
	}
	u.RepoURL = fmt.Sprintf("http://127.0.0.1:%d/", webPort)
	prefix := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755); err != nil {
		return u, err
	}
	nginxConf := filepath.Join(prefix, "nginx.conf")
	if err := fsutil.WriteFile(nginxConf, []byte(nginxConfig(prefix, repos, webPort)), 0o644); err != nil {
		return u, err
	}
	if err := u.start(ctx, exec.Command(bins[1], "-p", prefix, "-c", nginxConf), u.RepoURL+"RPM-GPG-KEY-demo"); err != nil {
		return u, err
	}
	if err := waitPushed(); err != nil {
		return u, err
	}
	fmt.Fprintf(log, "demo: upstream registry %s (%d images), yum repositories %s (%d packages)\n", u.RegistryHost, len(u.Images), u.RepoURL, len(u.Packages))
	return u, nil
}

// nginxConfig serves root read-only. Workers of a root master would
// drop to nobody, who may not traverse a build root under /root or a
// 0700 temporary directory; this nginx only listens on loopback and
// serves files the build just made, so they keep the master's user.
func nginxConfig(prefix, root string, port int) string {
	user := ""
	if os.Geteuid() == 0 {
		user = "user root root;"
	}
	return fmt.Sprintf(`daemon off;
%[4]s
worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    server {
        listen 127.0.0.1:%[3]d;
        root %[2]s;
        location / { limit_except GET { deny all; } }
    }
}
`, prefix, root, port, user)
}

// LookPrograms finds programs in PATH or in the sbin directories, where
// Debian puts nginx and which a user's PATH often lacks.
func LookPrograms(names ...string) ([]string, error) {
	var out, missing []string
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
				if fi, serr := os.Stat(filepath.Join(d, n)); serr == nil && fi.Mode()&0o111 != 0 {
					p, err = filepath.Join(d, n), nil
					break
				}
			}
		}
		if err != nil {
			missing = append(missing, n)
			continue
		}
		out = append(out, p)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("demo: %s not installed (Debian packages %s; `go run mage.go demo` installs them)", strings.Join(missing, ", "), strings.Join(Packages, " "))
	}
	return out, nil
}

// Packages are the Debian packages the demo runs: the upstream stand-ins.
// Everything else (RPMs, signatures, repodata, images) is made in Go.
var Packages = []string{"docker-registry", "nginx-light"}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// daemon is one started server and its process group.
type daemon struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
	log    *tail
}

// start runs cmd in a process group of its own (nginx forks workers;
// they go with it), killed with us if we die first, and waits until url
// answers.
func (u *Upstreams) start(ctx context.Context, cmd *exec.Cmd, url string) error {
	d := &daemon{cmd: cmd, exited: make(chan struct{}), log: &tail{}}
	cmd.Stdout, cmd.Stderr = d.log, d.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("demo: starting %s: %w", cmd.Path, err)
	}
	go func() { d.err = cmd.Wait(); close(d.exited) }()
	u.mu.Lock()
	u.procs = append(u.procs, d)
	u.pids = append(u.pids, cmd.Process.Pid)
	u.mu.Unlock()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-d.exited:
			return fmt.Errorf("demo: %s exited at start: %v\n%s", cmd.Path, d.err, d.log)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: %s did not answer on %s: %v\n%s", cmd.Path, url, err, d.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PIDs are the process group ids of every server started, running or
// stopped, for checking that Stop left nothing behind.
func (u *Upstreams) PIDs() []int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]int(nil), u.pids...)
}

// Stop terminates every server and its workers and waits for them, then
// removes Dir. It may be called more than once.
func (u *Upstreams) Stop() error {
	u.mu.Lock()
	procs := u.procs
	u.procs = nil
	u.mu.Unlock()
	for _, d := range procs {
		pg := -d.cmd.Process.Pid
		syscall.Kill(pg, syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(pg, syscall.SIGKILL)
			<-d.exited
		}
		// The workers of the group may outlive the master by a moment.
		syscall.Kill(pg, syscall.SIGKILL)
	}
	if u.Dir == "" {
		return nil
	}
	return os.RemoveAll(u.Dir)
}

// tail keeps the end of a server's output for error messages.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 16<<10 {
		t.buf = t.buf[len(t.buf)-16<<10:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
