package installer_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/installer"
	"github.com/metalk8s/buildchain/installer/change"
	"github.com/metalk8s/buildchain/installer/serve"
	"github.com/metalk8s/buildchain/internal/cli"
	"github.com/metalk8s/buildchain/internal/testenv"
)

// stop stops the nginx serve started in a private root, and nothing else;
// a dry run and a second stop change nothing; serve starts it again; a
// Server that cannot stop is named.
func TestStop(t *testing.T) {
	nginx := testenv.Need(t, "nginx")[0]
	if nginx != "/usr/sbin/nginx" {
		t.Skipf("nginx is %s; the installer runs /usr/sbin/nginx", nginx)
	}
	root := t.TempDir()
	testenv.OpenToOthers(t, root)
	t.Cleanup(func() { serve.Stop(change.New(root, false)) })
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	run := func(wire installer.Wire, args ...string) result {
		var stdout, stderr bytes.Buffer
		err := installer.Run(context.Background(), append([]string{"--root", root, "--listen", listen}, args...), &stdout, &stderr, wire)
		var msg bytes.Buffer
		return result{err, cli.ExitCode(installer.Name, err, &msg), stdout.String(), stderr.String() + msg.String()}
	}
	master := func() int {
		data, err := os.ReadFile(filepath.Join(root, serve.PidFile))
		if err != nil {
			return 0
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !bytes.Contains(cmd, []byte("nginx")) {
			return 0
		}
		return pid
	}
	listening := func() bool {
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	if r := run(withRealServer, "serve"); r.code != 0 || master() == 0 || !listening() {
		t.Fatalf("serve: %d %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
	before := tree(t, root)
	if r := run(withRealServer, "--dry-run", "stop"); r.code != 0 || !strings.Contains(r.stdout, "nginx stopped") || master() == 0 {
		t.Fatalf("dry-run stop: %d %v (nginx %d)\n%s%s", r.code, r.err, master(), r.stdout, r.stderr)
	}
	pid := master()
	if r := run(withRealServer, "stop"); r.code != 0 || !strings.Contains(r.stdout, "removed   service metalk8s-repositories (nginx stopped)") {
		t.Fatalf("stop: %d %v\n%s%s", r.code, r.err, r.stdout, r.stderr)
	}
	// master() reads /proc/PID/cmdline: empty for an exited master not yet
	// reaped by its parent (init), which is gone all the same.
	if master() != 0 || listening() {
		t.Fatalf("nginx %d still runs after stop", pid)
	}
	// Nothing else changed but logs: the configuration stays (the pid
	// file is nginx's, removed as it exits).
	var changed []string
	for _, d := range diff(before, tree(t, root)) {
		if !strings.HasPrefix(d[1:], "var/log/") {
			changed = append(changed, d)
		}
	}
	if len(changed) != 1 || changed[0] != "-run/metalk8s/repositories-nginx.pid" {
		t.Errorf("stop changed more than nginx: %q", changed)
	}
	if r := run(withRealServer, "stop"); r.code != 0 || !strings.Contains(r.stdout, "no changes") {
		t.Fatalf("second stop: %d %v\n%s", r.code, r.err, r.stdout)
	}
	if r := run(withRealServer, "serve"); r.code != 0 || master() == 0 {
		t.Fatalf("serve after stop: %d %v\n%s", r.code, r.err, r.stderr)
	}
	if r := run(withReal, "stop"); r.code != 1 || !strings.Contains(r.stderr, "cannot stop the service") || master() == 0 {
		t.Fatalf("stop through a Server without Stop: %d\n%s", r.code, r.stderr)
	}
}
