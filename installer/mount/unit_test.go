package mount

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/installer/change"
)

func TestEscapePathMatchesSystemd(t *testing.T) {
	cases := []string{"/srv/scality/metalk8s-2.0.0", "/", "/srv/scality/example-solution-1.0.0-dev", "/a b/c", "/.hidden/x", "/x/.y", "/ü/%", "/a:b_c.d", "/srv//x/"}
	tool, err := exec.LookPath("systemd-escape")
	for _, p := range cases {
		got := EscapePath(p)
		if err == nil {
			out, e := exec.Command(tool, "--path", p).Output()
			if e != nil {
				t.Fatalf("systemd-escape --path %q: %v", p, e)
			}
			if want := strings.TrimSpace(string(out)); got != want {
				t.Errorf("EscapePath(%q) = %q, systemd-escape says %q", p, got, want)
			}
		}
		back, e := UnescapePath(got)
		if e != nil || back != filepath.Clean(p) {
			t.Errorf("UnescapePath(%q) = %q, %v; want %q", got, back, e, filepath.Clean(p))
		}
	}
	if err != nil {
		t.Log("systemd-escape not installed: checked the round trip only")
	}
	for _, bad := range []string{"", "-a", "a-", "a--b", `a\x2`, `a\x2D`, `a\y20`, `\x2fb`} {
		if p, err := UnescapePath(bad); err == nil {
			t.Errorf("UnescapePath(%q) = %q, want an error", bad, p)
		}
	}
}

func TestUnitText(t *testing.T) {
	name, text, err := Unit("/var/tmp/iso dir/metalk8s.iso", "/srv/scality/metalk8s-2.0.0", Kernel, false, UnitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if name != `srv-scality-metalk8s\x2d2.0.0.mount` {
		t.Errorf("name %q", name)
	}
	for _, want := range []string{"\n[Mount]\nWhat=/var/tmp/iso dir/metalk8s.iso\nWhere=/srv/scality/metalk8s-2.0.0\nType=iso9660\nOptions=ro,loop\n", "WantedBy=local-fs.target\n"} {
		if !bytes.Contains(text, []byte(want)) {
			t.Errorf("kernel unit lacks %q:\n%s", want, text)
		}
	}
	if bytes.Contains(text, []byte("RequiresMountsFor")) {
		t.Errorf("a directory with a space went into RequiresMountsFor:\n%s", text)
	}
	_, text, _ = Unit("/dev/sr0", "/srv/scality/metalk8s-2.0.0", Kernel, true, UnitOptions{})
	if !bytes.Contains(text, []byte("What=/dev/sr0\n")) || !bytes.Contains(text, []byte("Options=ro\n")) {
		t.Errorf("CD-ROM unit:\n%s", text)
	}
	_, text, _ = Unit("/srv/archives/x", "/srv/scality/x-1.0.0", Dir, false, UnitOptions{})
	if !bytes.Contains(text, []byte("Type=none\nOptions=bind,ro\n")) || !bytes.Contains(text, []byte("RequiresMountsFor=/srv/archives\n")) {
		t.Errorf("directory unit:\n%s", text)
	}
	name, text, err = Unit("/srv/100%/$HOME.iso", "/srv/scality/metalk8s-2.0.0", FUSE, false, UnitOptions{Installer: "/usr/bin/metalk8s-installer"})
	if err != nil {
		t.Fatal(err)
	}
	if name != `metalk8s-fuse-srv-scality-metalk8s\x2d2.0.0.service` {
		t.Errorf("FUSE unit name %q", name)
	}
	if want := `ExecStart="/usr/bin/metalk8s-installer" "fuse-serve" "/srv/100%%/$$HOME.iso" "/srv/scality/metalk8s-2.0.0"`; !bytes.Contains(text, []byte(want+"\n")) {
		t.Errorf("FUSE unit lacks %s:\n%s", want, text)
	}
	if _, _, err := Unit("/srv/x.iso", "/srv/scality/m-1", FUSE, false, UnitOptions{}); err == nil {
		t.Error("a FUSE unit without the installer's path was rendered")
	}
	for _, bad := range []string{"/srv/x\n.iso", "/srv/x\\.iso", " /srv/x.iso"} {
		if _, _, err := Unit(bad, "/srv/scality/m-1", Kernel, false, UnitOptions{}); err == nil {
			t.Errorf("source %q written into a unit", bad)
		}
	}
}

// TestUnitsVerify runs systemd-analyze verify on every kind of unit, with
// the sources and programs they name present.
func TestUnitsVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian's systemd package)")
	}
	dir := t.TempDir()
	isoPath := filepath.Join(dir, "metalk8s.iso")
	os.WriteFile(isoPath, nil, 0o644)
	installer := filepath.Join(dir, "metalk8s-installer")
	os.WriteFile(installer, []byte("#!/bin/sh\n"), 0o755)
	fuseiso, _ := exec.LookPath("fuseiso")
	fusermount, _ := exec.LookPath("fusermount")
	if fuseiso == "" || fusermount == "" {
		fuseiso, fusermount = installer, installer
	}
	units := t.TempDir()
	var names []string
	for _, m := range []Method{Kernel, Dir, FUSE, FuseISO} {
		src := isoPath
		if m == Dir {
			src = dir
		}
		name, text, err := Unit(src, "/srv/scality/metalk8s-2.0.0", m, false, UnitOptions{Installer: installer, Fuseiso: fuseiso, Fusermount: fusermount})
		if err != nil {
			t.Fatal(err)
		}
		// One directory per unit: the kernel and directory units share a name.
		d := filepath.Join(units, string(m))
		os.Mkdir(d, 0o755)
		p := filepath.Join(d, name)
		os.WriteFile(p, text, 0o644)
		names = append(names, p)
	}
	for _, p := range names {
		out, err := exec.Command(sa, "verify", "--man=no", p).CombinedOutput()
		// Outside a booted systemd, verify may warn about the host; an
		// error about the unit itself names the file.
		if err != nil || bytes.Contains(out, []byte(filepath.Base(p)+":")) {
			t.Errorf("systemd-analyze verify %s: %v\n%s\n%s", filepath.Base(p), err, out, must(os.ReadFile(p)))
		}
	}
}

func must(b []byte, _ error) []byte { return b }

func TestPersistAndUnpersist(t *testing.T) {
	root := t.TempDir()
	target := "/srv/scality/metalk8s-2.0.0"
	o := UnitOptions{Installer: "/usr/bin/metalk8s-installer"}
	unit := filepath.Join(root, UnitDir, MountUnitName(target))
	link := filepath.Join(root, UnitDir, "local-fs.target.wants", MountUnitName(target))

	tx := change.New(root, false)
	if err := Persist(tx, "/var/lib/metalk8s.iso", target, Kernel, false, o); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(unit); err != nil || !bytes.Contains(b, []byte("Where="+target+"\n")) {
		t.Fatalf("unit: %v\n%s", err, b)
	}
	if fi, _ := os.Stat(unit); fi.Mode().Perm() != 0o644 {
		t.Errorf("unit mode %v", fi.Mode())
	}
	if l, err := os.Readlink(link); err != nil || l != filepath.Join(UnitDir, MountUnitName(target)) {
		t.Fatalf("enable link: %q %v", l, err)
	}
	tx2 := change.New(root, false)
	if err := Persist(tx2, "/var/lib/metalk8s.iso", target, Kernel, false, o); err != nil || tx2.Changed() {
		t.Fatalf("second Persist: %v, changed=%v %v", err, tx2.Changed(), tx2.Entries())
	}
	// Moving to FUSE replaces the mount unit by the service.
	tx3 := change.New(root, false)
	if err := Persist(tx3, "/var/lib/metalk8s.iso", target, FUSE, false, o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(unit); err == nil {
		t.Error("mount unit left beside the FUSE service")
	}
	if _, err := os.Lstat(link); err == nil {
		t.Error("mount unit's enable link left")
	}
	svcLink := filepath.Join(root, UnitDir, "multi-user.target.wants", ServiceUnitName(target))
	if _, err := os.Readlink(svcLink); err != nil {
		t.Fatalf("service not enabled: %v", err)
	}
	// Rolling that back restores the mount unit and its link.
	if err := tx3.Rollback(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Readlink(link); err != nil {
		t.Fatalf("rollback lost the mount unit's link: %v", err)
	}
	if _, err := os.Lstat(svcLink); err == nil {
		t.Fatal("rollback left the service link")
	}

	rm := change.New(root, false)
	if err := Unpersist(rm, target); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{unit, link} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s left after Unpersist", p)
		}
	}
	again := change.New(root, false)
	if err := Unpersist(again, target); err != nil || again.Changed() {
		t.Fatalf("second Unpersist: %v changed=%v", err, again.Changed())
	}
	dry := change.New(root, true)
	if err := Persist(dry, "/var/lib/metalk8s.iso", target, Kernel, false, o); err != nil || !dry.Changed() {
		t.Fatalf("dry Persist: %v", err)
	}
	if _, err := os.Lstat(unit); err == nil {
		t.Fatal("dry run wrote the unit")
	}
}
