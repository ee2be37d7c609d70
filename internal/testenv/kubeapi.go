package testenv

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/metalk8s/buildchain/internal/kubebuild"
)

// KubeAPIServerVersion is the Kubernetes release whose kube-apiserver the
// installer's tests talk to. internal/tools/kube-apiserver/go.mod pins it
// (with its staging modules at the matching v0.x release).
const KubeAPIServerVersion = kubebuild.Version

// coldBuildBudget is how much test time a cold kube-apiserver build needs
// at most on CI's 2 cores (measured ~6.5 min, doubled for a loaded
// machine). With less left before the -timeout deadline, NeedKubeAPI
// fails at once with how to prebuild, rather than being killed mid-build.
const coldBuildBudget = 13 * time.Minute

// KubeAPI is a running etcd and kube-apiserver on 127.0.0.1, the way
// controller-runtime's envtest runs them: a real API server with no
// kubelet, controller-manager or scheduler, so objects are stored and
// validated but nothing reconciles them (a Deployment gets no Pods).
type KubeAPI struct {
	// URL is the API server's https URL, https://127.0.0.1:PORT.
	URL string
	// Kubeconfig is a kubeconfig file for a cluster admin (group
	// system:masters, token authentication) trusting the test CA.
	Kubeconfig string
	// Token is that admin's bearer token.
	Token string
	// CAFile is the PEM CA that signed the serving certificate.
	CAFile string
	// Dir holds the certificates, keys, etcd's data and the logs.
	Dir string
}

// NeedKubeAPI starts etcd (Debian's etcd-server) and kube-apiserver
// KubeAPIServerVersion, built from internal/tools/kube-apiserver into the
// user cache directory on first use (a cold build takes about 6.5 min on
// 2 cores; it is logged as it goes), waits until /readyz answers ok, and
// stops both when the test ends. METALK8S_KUBE_APISERVER names a prebuilt
// binary instead. A missing etcd or go skips the test, or fails it when
// Required.
func NeedKubeAPI(t testing.TB) *KubeAPI {
	t.Helper()
	etcd := Need(t, "etcd")[0]
	apiserver := KubeAPIServerBinary(t)

	dir := t.TempDir()
	k := &KubeAPI{Dir: dir}
	pki, err := writeKubePKI(dir)
	if err != nil {
		t.Fatalf("kube-apiserver certificates: %v", err)
	}
	k.CAFile, k.Token = pki.caFile, pki.token

	etcdURL := startEtcd(t, etcd, dir)

	port := freePort(t)
	k.URL = "https://127.0.0.1:" + strconv.Itoa(port)
	args := []string{
		"--advertise-address=127.0.0.1",
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--etcd-servers=" + etcdURL,
		"--tls-cert-file=" + pki.certFile,
		"--tls-private-key-file=" + pki.keyFile,
		"--client-ca-file=" + pki.caFile,
		"--token-auth-file=" + pki.tokenFile,
		"--service-account-key-file=" + pki.saPub,
		"--service-account-signing-key-file=" + pki.saKey,
		"--service-account-issuer=" + k.URL,
		"--service-cluster-ip-range=10.96.0.0/12",
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		// No controller-manager creates the default service account, so the
		// admission plugin would refuse every Pod template that needs it.
		"--disable-admission-plugins=ServiceAccount",
		"--anonymous-auth=false",
		"--cert-dir=" + filepath.Join(dir, "cert-dir"),
	}
	startLogged(t, "kube-apiserver", filepath.Join(dir, "kube-apiserver.log"), apiserver, args...)

	k.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(k.Kubeconfig, kubeconfig(k.URL, pki.caPEM, k.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	k.waitReady(t)
	return k
}

// waitReady polls /readyz until it answers 200, or the server exits.
func (k *KubeAPI) waitReady(t testing.TB) {
	t.Helper()
	ca, err := os.ReadFile(k.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		Timeout:   5 * time.Second,
	}
	defer client.CloseIdleConnections()
	var last string
	for {
		req, _ := http.NewRequest(http.MethodGet, k.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+k.Token)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		if exited(k.Dir, "kube-apiserver") {
			t.Fatalf("kube-apiserver exited before it was ready; log:\n%s", tail(filepath.Join(k.Dir, "kube-apiserver.log")))
		}
		if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
			if dl, ok := d.Deadline(); ok && time.Until(dl) < 30*time.Second {
				t.Fatalf("kube-apiserver not ready before the test deadline (last /readyz: %s); log:\n%s", last, tail(filepath.Join(k.Dir, "kube-apiserver.log")))
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startEtcd runs a single-member etcd on two free 127.0.0.1 ports and
// returns its client URL once /health says so.
func startEtcd(t testing.TB, etcd, dir string) string {
	t.Helper()
	client := "http://127.0.0.1:" + strconv.Itoa(freePort(t))
	peer := "http://127.0.0.1:" + strconv.Itoa(freePort(t))
	startLogged(t, "etcd", filepath.Join(dir, "etcd.log"), etcd,
		"--name=default",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+client,
		"--advertise-client-urls="+client,
		"--listen-peer-urls="+peer,
		"--initial-advertise-peer-urls="+peer,
		"--initial-cluster=default="+peer,
	)
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	for {
		resp, err := hc.Get(client + "/health")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"health":"true"`)) {
				return client
			}
		}
		if exited(dir, "etcd") {
			t.Fatalf("etcd exited before it was healthy; log:\n%s", tail(filepath.Join(dir, "etcd.log")))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var exitedMu sync.Mutex
var exitedProcs = map[string]bool{}

func exited(dir, name string) bool {
	exitedMu.Lock()
	defer exitedMu.Unlock()
	return exitedProcs[dir+"\x00"+name]
}

// startLogged starts a server with its output in logFile, and stops it
// (SIGTERM, then SIGKILL) when the test ends.
func startLogged(t testing.TB, name, logFile, prog string, args ...string) {
	t.Helper()
	log, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prog, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	done := make(chan struct{})
	key := filepath.Dir(logFile) + "\x00" + name
	go func() {
		cmd.Wait()
		exitedMu.Lock()
		exitedProcs[key] = true
		exitedMu.Unlock()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(unix.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		log.Close()
		exitedMu.Lock()
		delete(exitedProcs, key)
		exitedMu.Unlock()
		if t.Failed() {
			t.Logf("%s log (%s):\n%s", name, logFile, tail(logFile))
		}
	})
}

// tail returns the last lines of a log, for failure messages.
func tail(p string) string {
	data, _ := os.ReadFile(p)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago, as
// envtest picks its ports.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type kubePKI struct {
	caFile, certFile, keyFile, tokenFile, saPub, saKey string
	caPEM                                              []byte
	token                                              string
}

// writeKubePKI makes a throwaway CA, a serving certificate for 127.0.0.1
// and localhost, a service-account key pair and a token file with one
// cluster admin.
func writeKubePKI(dir string) (*kubePKI, error) {
	p := &kubePKI{
		caFile:    filepath.Join(dir, "ca.crt"),
		certFile:  filepath.Join(dir, "apiserver.crt"),
		keyFile:   filepath.Join(dir, "apiserver.key"),
		tokenFile: filepath.Join(dir, "tokens.csv"),
		saPub:     filepath.Join(dir, "sa.pub"),
		saKey:     filepath.Join(dir, "sa.key"),
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "metalk8s-test-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})

	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, net.IPv4(10, 96, 0, 1)},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	srvKeyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return nil, err
	}
	saKeyDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return nil, err
	}
	saPubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return nil, err
	}
	p.token = hex.EncodeToString(tok)
	files := map[string][]byte{
		p.caFile:    p.caPEM,
		p.certFile:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		p.keyFile:   pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: srvKeyDER}),
		p.saKey:     pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: saKeyDER}),
		p.saPub:     pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPubDER}),
		p.tokenFile: []byte(p.token + `,admin,admin-uid,"system:masters"` + "\n"),
	}
	for f, data := range files {
		if err := os.WriteFile(f, data, 0o600); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func kubeconfig(server string, caPEM []byte, token string) []byte {
	// JSON is YAML, and needs no quoting rules beyond strconv.Quote's.
	return fmt.Appendf(nil, `{
  "apiVersion": "v1",
  "kind": "Config",
  "clusters": [{"name": "test", "cluster": {"server": %q, "certificate-authority-data": %q}}],
  "users": [{"name": "admin", "user": {"token": %q}}],
  "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
  "current-context": "test"
}
`, server, base64.StdEncoding.EncodeToString(caPEM), token)
}

// KubeAPIServerBinary returns kube-apiserver KubeAPIServerVersion, building
// it on first use into the user cache directory (os.UserCacheDir, the
// directory that also holds GOCACHE and testenv's qemu initramfs, which CI
// keeps between runs):
// metalk8s-buildchain/kube-apiserver/<version>-<go version>-<go.sum digest>/.
// Test binaries running in parallel build it once: the first takes a lock,
// the others wait on it. The Go build cache makes a rebuild after a cache
// key change (new Go release) mostly a link.
func KubeAPIServerBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("METALK8S_KUBE_APISERVER"); p != "" {
		return p
	}
	Need(t, "go")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tools, err := kubebuild.FindTools(wd)
	if err != nil {
		t.Fatal(err)
	}
	bin, ok, err := kubebuild.Cached(tools)
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		return bin
	}
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok && time.Until(dl) < coldBuildBudget {
			t.Fatalf("kube-apiserver %s is not built yet and a cold build needs up to %v, but the test deadline is in %v: "+
				"run with -timeout 25m, or prebuild it once: go -C %s build -o %s k8s.io/kubernetes/cmd/kube-apiserver "+
				"(`go run mage.go test` does; or point METALK8S_KUBE_APISERVER at a kube-apiserver binary)",
				KubeAPIServerVersion, coldBuildBudget, time.Until(dl).Round(time.Second), tools, bin)
		}
	}
	bin, err = kubebuild.Binary(context.Background(), tools, tlogWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// tlogWriter sends the build's progress to the test log and to stderr,
// so that a long cold build does not look hung.
type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	os.Stderr.Write(p)
	return len(p), nil
}
