package repogen_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metalk8s/buildchain/buildchain/rpm/pgp"
	"github.com/metalk8s/buildchain/buildchain/rpm/repogen"
	"github.com/metalk8s/buildchain/buildchain/rpm/repomd"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmtest"
	"github.com/metalk8s/buildchain/internal/testenv"
)

var epoch = time.Unix(rpmtest.Epoch+1000, 0).UTC()

// repoContents is the parsed content of a repodata, keyed by pkgid, with
// the fields that legitimately differ between generators cleared.
type repoContents struct {
	Primary   map[string]*repomd.Package
	Filelists map[string][]repomd.File
	Other     map[string][]repomd.Changelog
}

func readDoc(t *testing.T, dir, typ string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	md, err := repomd.ParseRepomd(f)
	if err != nil {
		t.Fatal(err)
	}
	d := md.Data(typ)
	if d == nil {
		t.Fatalf("%s: no %s in repomd.xml", dir, typ)
	}
	zf, err := os.Open(filepath.Join(dir, d.Location))
	if err != nil {
		t.Fatal(err)
	}
	defer zf.Close()
	r, err := repomd.Decompress(d.Location, zf)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseRepo(t *testing.T, dir string) repoContents {
	t.Helper()
	c := repoContents{Primary: map[string]*repomd.Package{}, Filelists: map[string][]repomd.File{}, Other: map[string][]repomd.Changelog{}}
	err := repomd.ParsePrimary(bytes.NewReader(readDoc(t, dir, "primary")), func(p *repomd.Package) error {
		p.TimeFile = 0 // the file's mtime, not a property of the package
		c.Primary[p.Checksum] = p
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var fl struct {
		Packages []struct {
			PkgID string `xml:"pkgid,attr"`
			Files []struct {
				Type string `xml:"type,attr"`
				Path string `xml:",chardata"`
			} `xml:"file"`
		} `xml:"package"`
	}
	if err := xml.Unmarshal(readDoc(t, dir, "filelists"), &fl); err != nil {
		t.Fatal(err)
	}
	for _, p := range fl.Packages {
		var files []repomd.File
		for _, f := range p.Files {
			files = append(files, repomd.File{Path: f.Path, Type: f.Type})
		}
		c.Filelists[p.PkgID] = files
	}
	var ot struct {
		Packages []struct {
			PkgID      string `xml:"pkgid,attr"`
			Changelogs []struct {
				Author string `xml:"author,attr"`
				Date   int64  `xml:"date,attr"`
				Text   string `xml:",chardata"`
			} `xml:"changelog"`
		} `xml:"package"`
	}
	if err := xml.Unmarshal(readDoc(t, dir, "other"), &ot); err != nil {
		t.Fatal(err)
	}
	for _, p := range ot.Packages {
		var cl []repomd.Changelog
		for _, e := range p.Changelogs {
			cl = append(cl, repomd.Changelog{Author: e.Author, Date: e.Date, Text: e.Text})
		}
		c.Other[p.PkgID] = cl
	}
	return c
}

func generate(t *testing.T, dir string, opt repogen.Options) repogen.Stats {
	t.Helper()
	if opt.Epoch == nil {
		opt.Epoch = &epoch
	}
	st, err := repogen.Generate(context.Background(), dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// manySpecs adds packages that exercise the rest of the format: many
// changelog entries (createrepo keeps 10), weak dependencies of every
// kind, odd characters, scriptlet prerequisites and primary directories.
func manySpecs() []rpmtest.Spec {
	var cl strings.Builder
	for i := 0; i < 13; i++ {
		fmt.Fprintf(&cl, "* Mon Jan %02d 2024 Dev Ünïcode <dev@example.com> - 1.%d\n- entry %d with <markup> & \"quotes\"\n\n", 28-i, 20-i, i)
	}
	return append(rpmtest.Standard(), rpmtest.Spec{Name: "epsilon", Version: "3.0~rc1", Release: "0.1", Arch: "x86_64", Body: `Requires: alpha = 2:1.0-1
Requires: beta < 2
Requires: epsilon(api) >= 1:2.0
Requires: epsilon(other) = 1
Requires(post): /bin/sh
Supplements: gamma
Enhances: beta
Provides: /usr/libexec/epsilon-compat
Provides: epsilon(api) >= 1:2.0
%description
Line one.
Line two with tab	and ampersand &amp; literal.
%install
mkdir -p %{buildroot}/etc/epsilon.d %{buildroot}/usr/libexec %{buildroot}/opt/eps/bin
echo e > %{buildroot}/usr/libexec/epsilon
echo x > %{buildroot}/opt/eps/bin/tool
%post
true
%files
%dir /etc/epsilon.d
/usr/libexec/epsilon
/opt/eps/bin/tool
%changelog
` + cl.String()})
}

// TestEquivalentToCreaterepo compares, once parsed, our repodata with
// createrepo_c's for the same RPMs: packages, versions, every dependency
// list, file lists, changelogs, sizes and header ranges.
func TestEquivalentToCreaterepo(t *testing.T) {
	createrepo := testenv.Need(t, "createrepo_c")[0]
	src := rpmtest.BuildRPMs(t, manySpecs()...)
	ours, theirs := t.TempDir(), t.TempDir()
	rpmtest.Copy(t, src, ours)
	rpmtest.Copy(t, src, theirs)
	if out, err := exec.Command(createrepo, "--no-database", theirs).CombinedOutput(); err != nil {
		t.Fatalf("createrepo_c: %v\n%s", err, out)
	}
	st := generate(t, ours, repogen.Options{})
	if st.Packages != len(manySpecs()) || st.Read != st.Packages {
		t.Fatalf("stats %+v", st)
	}
	// createrepo_c itself reads our documents (multi-member gzip) back.
	if out, err := exec.Command(createrepo, "--update", "--no-database", ours).CombinedOutput(); err != nil {
		t.Fatalf("createrepo_c --update over our repodata: %v\n%s", err, out)
	}
	generate(t, ours, repogen.Options{})
	a, b := parseRepo(t, ours), parseRepo(t, theirs)
	if len(a.Primary) != len(b.Primary) {
		t.Fatalf("we list %d packages, createrepo_c %d", len(a.Primary), len(b.Primary))
	}
	for id, want := range b.Primary {
		got := a.Primary[id]
		if got == nil {
			t.Errorf("package %s (%s) missing from our primary", want.NEVRA(), id)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("primary entry of %s differs:\n ours:   %+v\n theirs: %+v", want.NEVRA(), *got, *want)
		}
		if !reflect.DeepEqual(a.Filelists[id], b.Filelists[id]) {
			t.Errorf("filelists of %s differ:\n ours:   %v\n theirs: %v", want.NEVRA(), a.Filelists[id], b.Filelists[id])
		}
		if !reflect.DeepEqual(a.Other[id], b.Other[id]) {
			t.Errorf("changelogs of %s differ:\n ours:   %v\n theirs: %v", want.NEVRA(), a.Other[id], b.Other[id])
		}
	}
}

func repodataFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	entries, err := os.ReadDir(filepath.Join(dir, "repodata"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, "repodata", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func touchAll(t *testing.T, dir string, tm time.Time) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".rpm") {
			if err := os.Chtimes(filepath.Join(dir, e.Name()), tm, tm); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestDeterministicAndIncremental checks that two runs on the same input
// give the same bytes, that an update after one changed package reuses
// every other entry, and that its result equals a full run's.
func TestDeterministicAndIncremental(t *testing.T) {
	src := rpmtest.BuildRPMs(t, rpmtest.Standard()...)
	a, b := t.TempDir(), t.TempDir()
	rpmtest.Copy(t, src, a)
	rpmtest.Copy(t, src, b)
	old := time.Unix(rpmtest.Epoch, 0)
	touchAll(t, a, old)
	touchAll(t, b, old)
	key := rpmtest.GPGKey(t, "repo-signer", "rsa2048")
	signer, err := pgp.LoadSigner(key.SecretPath)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(md []byte) ([]byte, error) { return signer.SignArmored(md, epoch) }
	generate(t, a, repogen.Options{Sign: sign})
	generate(t, b, repogen.Options{Sign: sign, Workers: 1})
	fa, fb := repodataFiles(t, a), repodataFiles(t, b)
	if !reflect.DeepEqual(fa, fb) {
		t.Fatalf("two runs differ: %v vs %v", keys(fa), keys(fb))
	}
	if _, ok := fa["repomd.xml.asc"]; !ok {
		t.Fatal("no repomd.xml.asc")
	}

	// Replace gamma by a new build of a different version.
	gamma2 := rpmtest.BuildRPMs(t, rpmtest.Spec{Name: "gamma", Version: "0.2", Release: "1", Arch: "x86_64", Body: "%install\nmkdir -p %{buildroot}/usr/sbin\necho g2 > %{buildroot}/usr/sbin/gamma-helper\n%files\n/usr/sbin/gamma-helper\n"})
	for _, d := range []string{a, b} {
		os.Remove(filepath.Join(d, "gamma-0.1-1.x86_64.rpm"))
		rpmtest.Copy(t, gamma2, d)
		touchAll(t, d, old)
	}
	// The replaced file keeps size and mtime of nothing old: its href is new.
	st := generate(t, a, repogen.Options{Incremental: true, Sign: sign})
	if st.Reused != 3 || st.Read != 1 {
		t.Errorf("incremental run: %+v, want 3 reused and 1 read", st)
	}
	generate(t, b, repogen.Options{Sign: sign})
	if fa, fb := repodataFiles(t, a), repodataFiles(t, b); !reflect.DeepEqual(fa, fb) {
		t.Errorf("incremental result differs from a full run: %v vs %v", keys(fa), keys(fb))
	}

	// Same href, same size and mtime, but changed content: with a known
	// checksum the entry must not be reused.
	p := filepath.Join(a, "beta-1.2-3.el7.noarch.rpm")
	data, _ := os.ReadFile(p)
	data[len(data)-1] ^= 0xff
	os.WriteFile(p, data, 0o644)
	os.Chtimes(p, old, old)
	_, err = repogen.Generate(context.Background(), a, repogen.Options{Epoch: &epoch, Incremental: true, Checksums: map[string]string{"beta-1.2-3.el7.noarch.rpm": strings.Repeat("0", 64)}})
	if err == nil || !strings.Contains(err.Error(), "beta-1.2-3.el7.noarch.rpm") || !strings.Contains(err.Error(), "expected") {
		t.Errorf("changed content with a known checksum: err = %v", err)
	}
}

func keys(m map[string][]byte) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

// TestSignatureVerifiesWithGPG checks repomd.xml.asc with gpg itself.
func TestSignatureVerifiesWithGPG(t *testing.T) {
	gpg := testenv.Need(t, "gpg")[0]
	key := rpmtest.GPGKey(t, "repo-signer", "rsa2048")
	signer, err := pgp.LoadSigner(key.SecretPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rpmtest.Copy(t, rpmtest.BuildRPMs(t, rpmtest.Standard()...), dir)
	generate(t, dir, repogen.Options{Sign: func(md []byte) ([]byte, error) { return signer.SignArmored(md, epoch) }})
	home := t.TempDir()
	run := func(args ...string) {
		out, err := exec.Command(gpg, append([]string{"--batch", "--homedir", home}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("gpg %v: %v\n%s", args, err, out)
		}
	}
	run("--import", key.PublicPath)
	run("--verify", filepath.Join(dir, "repodata", "repomd.xml.asc"), filepath.Join(dir, "repodata", "repomd.xml"))
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run() })
}

// TestDnfInstalls has dnf resolve and install from our repodata into an
// empty installroot, with gpgcheck and repo_gpgcheck on and our key.
func TestDnfInstalls(t *testing.T) {
	testenv.Short(t, "runs dnf")
	dnf := testenv.Need(t, "dnf", "rpmsign")[0]
	key := rpmtest.GPGKey(t, "repo-signer", "rsa2048")
	signer, err := pgp.LoadSigner(key.SecretPath)
	if err != nil {
		t.Fatal(err)
	}
	signed := rpmtest.Sign(t, key, rpmtest.BuildRPMs(t, rpmtest.Standard()...), false)
	dir := t.TempDir()
	rpmtest.Copy(t, signed, dir)
	generate(t, dir, repogen.Options{Sign: func(md []byte) ([]byte, error) { return signer.SignArmored(md, epoch) }})
	n := testenv.StartNginx(t, testenv.NginxConfig{Server: "root " + dir + ";"})
	root, cache := t.TempDir(), t.TempDir()
	conf := filepath.Join(t.TempDir(), "dnf.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`[main]
reposdir=/nonexistent
cachedir=%s
install_weak_deps=False
[fixture]
name=fixture
baseurl=%s/
gpgcheck=1
repo_gpgcheck=1
gpgkey=file://%s
`, cache, n.URL, key.PublicPath)), 0o644)
	out, err := exec.Command(dnf, "-y", "-c", conf, "--installroot", root, "--releasever", "7", "install", "alpha").CombinedOutput()
	if err != nil {
		t.Fatalf("dnf install: %v\n%s", err, out)
	}
	q, err := exec.Command("rpm", "--root", root, "-qa", "--qf", "%{NAME}\n").Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(q))
	sort.Strings(got)
	// gpg-pubkey is the repository key dnf imported to check the packages.
	if want := []string{"alpha", "beta", "gamma", "gpg-pubkey"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("installed %v, want %v\n%s", got, want, out)
	}
}

// TestBadInput: a corrupt RPM is an error naming it, and the repodata that
// was there stays complete and untouched.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	rpmtest.Copy(t, rpmtest.BuildRPMs(t, rpmtest.Standard()...), dir)
	generate(t, dir, repogen.Options{})
	before := repodataFiles(t, dir)
	bad := filepath.Join(dir, "zz-corrupt-1-1.x86_64.rpm")
	data, _ := os.ReadFile(filepath.Join(dir, "beta-1.2-3.el7.noarch.rpm"))
	os.WriteFile(bad, data[:200], 0o644)
	_, err := repogen.Generate(context.Background(), dir, repogen.Options{Epoch: &epoch})
	if err == nil || !strings.Contains(err.Error(), "zz-corrupt-1-1.x86_64.rpm") {
		t.Fatalf("corrupt RPM: err = %v", err)
	}
	if after := repodataFiles(t, dir); !reflect.DeepEqual(before, after) {
		t.Fatal("a failed run changed the repodata")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("litter left: %s", e.Name())
		}
	}
	os.WriteFile(bad, []byte("not an rpm at all, but long enough to read a lead from it: "+strings.Repeat("x", 100)), 0o644)
	if _, err := repogen.Generate(context.Background(), dir, repogen.Options{}); err == nil || !strings.Contains(err.Error(), "not an RPM") {
		t.Fatalf("garbage file: err = %v", err)
	}
}

// TestReadersNeverSeeHalfRepodata keeps reading repomd.xml while runs
// replace the repodata: it must always be there and complete.
func TestReadersNeverSeeHalfRepodata(t *testing.T) {
	dir := t.TempDir()
	rpmtest.Copy(t, rpmtest.BuildRPMs(t, rpmtest.Standard()...), dir)
	generate(t, dir, repogen.Options{})
	var stop atomic.Bool
	var wg sync.WaitGroup
	var failures atomic.Int64
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				f, err := os.Open(filepath.Join(dir, "repodata", "repomd.xml"))
				if err != nil {
					failures.Add(1)
					continue
				}
				if _, err := repomd.ParseRepomd(f); err != nil {
					failures.Add(1)
				}
				f.Close()
			}
		}()
	}
	for i := 0; i < 20; i++ {
		tm := epoch.Add(time.Duration(i) * time.Second)
		if _, err := repogen.Generate(context.Background(), dir, repogen.Options{Epoch: &tm}); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("readers saw a missing or partial repomd.xml %d times", n)
	}
}
