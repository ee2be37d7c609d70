package testenv

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// logBuffer keeps a server's output for the failure message.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() < 1<<20 {
		l.buf.Write(p)
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startDaemon runs cmd until the test ends and waits until url answers.
func startDaemon(t testing.TB, cmd *exec.Cmd, url string) {
	t.Helper()
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	// Its own process group, so that stopping it also stops the worker
	// processes that nginx forks (they hold our output pipe open).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("%s exited at start: %v\n%s", cmd.Path, err, logs)
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer on %s: %v\n%s", cmd.Path, url, err, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Registry is a Distribution registry (Debian's docker-registry) on loopback.
type Registry struct {
	Host string // 127.0.0.1:PORT
	Dir  string // its storage
}

// StartRegistry starts docker-registry with a temporary config and
// storage; it stands in for the upstream registries the image lists name.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	bin := Need(t, "docker-registry")[0]
	dir := t.TempDir()
	port := FreePort(t)
	host := fmt.Sprintf("127.0.0.1:%d", port)
	conf := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), host)
	confPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, exec.Command(bin, "serve", confPath), "http://"+host+"/v2/")
	return &Registry{Host: host, Dir: dir}
}

// Nginx is an nginx started by a test.
type Nginx struct {
	URL    string // http://127.0.0.1:PORT
	Port   int
	Prefix string // the -p directory
}

// NginxConfig is inserted into a minimal nginx.conf. HTTP goes in the http
// block, Server in the one server block listening on 127.0.0.1:PORT.
type NginxConfig struct {
	HTTP   string
	Server string
	// User, when set, is the "user" directive's value: the user (and
	// group) the workers of a root master run as, e.g. UnprivilegedUser's.
	// Unset, workers of a root master run as root.
	User string
}

// NginxConf renders the full nginx.conf for prefix and port.
func NginxConf(prefix string, port int, c NginxConfig) string {
	// Workers of a root master drop to nobody, who cannot read a test's
	// 0700 temp dirs; tests run as root here, so keep workers as root.
	user := ""
	if c.User != "" {
		user = "user " + c.User + ";"
	} else if os.Geteuid() == 0 {
		user = "user root root;"
	}
	return fmt.Sprintf(`daemon off;
%[5]s
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    types { application/octet-stream bin; }
    default_type application/octet-stream;
    sendfile on;
    %[3]s
    server {
        listen 127.0.0.1:%[2]d;
        %[4]s
    }
}
`, prefix, port, c.HTTP, c.Server, user)
}

// StartNginx checks the config with `nginx -t`, then serves it until the
// test ends.
func StartNginx(t testing.TB, c NginxConfig) *Nginx {
	t.Helper()
	bin := Need(t, "nginx")[0]
	prefix := t.TempDir()
	if err := os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	conf := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(conf, []byte(NginxConf(prefix, port, c)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-p", prefix, "-c", conf).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t rejected the config: %v\n%s\n%s", err, out, NginxConf(prefix, port, c))
	}
	n := &Nginx{URL: fmt.Sprintf("http://127.0.0.1:%d", port), Port: port, Prefix: prefix}
	startDaemon(t, exec.Command(bin, "-p", prefix, "-c", conf, "-g", "error_log stderr warn;"), n.URL+"/")
	return n
}

// UnprivilegedUser returns "USER GROUP" for nginx's user directive: nobody
// and its primary group. Its workers then read files through the "other"
// permission bits only, as on a node. It skips the test when the test does
// not run as root (workers cannot change user then) or nobody is missing.
func UnprivilegedUser(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("nginx workers can only run as another user when the tests run as root")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	if u.Uid == "0" {
		t.Skip("nobody is root here")
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Skipf("group %s of nobody: %v", u.Gid, err)
	}
	return u.Username + " " + g.Name
}

// OpenToOthers makes dir and every directory above it up to / searchable by
// others (adds o+x, and o+r on dir itself), so that an unprivileged nginx
// worker can reach a test's tree: t.TempDir makes 0700 directories.
func OpenToOthers(t testing.TB, dir string) {
	t.Helper()
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		add := os.FileMode(0o001)
		if d == dir {
			add = 0o005
		}
		if fi.Mode().Perm()&add != add {
			if err := os.Chmod(d, fi.Mode().Perm()|add); err != nil {
				t.Fatal(err)
			}
		}
		if d == filepath.Dir(d) {
			return
		}
	}
}
