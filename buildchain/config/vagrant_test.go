package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestVagrantDefaults(t *testing.T) {
	for _, k := range []string{"VAGRANT_PROVIDER", "VAGRANT_UP_ARGS", "VAGRANT_SNAPSHOT_NAME"} {
		t.Setenv(k, "")
	}
	c, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--provision", "--no-destroy-on-error", "--parallel", "--provider", "virtualbox"}
	if c.VagrantProvider != "virtualbox" || !reflect.DeepEqual(c.VagrantUpArgs, want) || c.VagrantSnapshotName != "" {
		t.Fatalf("got provider %q args %q snapshot %q", c.VagrantProvider, c.VagrantUpArgs, c.VagrantSnapshotName)
	}
}

func TestVagrantFromDotEnv(t *testing.T) {
	dir := t.TempDir()
	for _, k := range []string{"VAGRANT_PROVIDER", "VAGRANT_UP_ARGS", "VAGRANT_SNAPSHOT_NAME"} {
		os.Unsetenv(k) // t.Setenv would set them, and the environment wins over .env
	}
	env := "export VAGRANT_PROVIDER=libvirt\n" +
		"export VAGRANT_UP_ARGS=\"--provision --provider ${VAGRANT_PROVIDER} bootstrap\"\n" +
		"VAGRANT_SNAPSHOT_NAME=bootstrap-ready\n"
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--provision", "--provider", "libvirt", "bootstrap"}
	if c.VagrantProvider != "libvirt" || !reflect.DeepEqual(c.VagrantUpArgs, want) || c.VagrantSnapshotName != "bootstrap-ready" {
		t.Fatalf("got provider %q args %q snapshot %q", c.VagrantProvider, c.VagrantUpArgs, c.VagrantSnapshotName)
	}
}

func TestVagrantRejectsShellSyntax(t *testing.T) {
	for _, tc := range []struct{ key, val, want string }{
		{"VAGRANT_PROVIDER", "virtualbox;reboot", "VAGRANT_PROVIDER"},
		{"VAGRANT_PROVIDER", "--provision", "VAGRANT_PROVIDER"},
		{"VAGRANT_UP_ARGS", "--provision; rm -rf /", `"--provision;"`},
		{"VAGRANT_UP_ARGS", "--provider $(id)", `"$(id)"`},
		{"VAGRANT_UP_ARGS", "--provider $HOME", `"$HOME"`},
		{"VAGRANT_UP_ARGS", "--provider $VAGRANT_PROVIDERS", `"$VAGRANT_PROVIDERS"`},
		{"VAGRANT_UP_ARGS", "'--provision'", `"'--provision'"`},
		{"VAGRANT_UP_ARGS", "a|b", `"a|b"`},
		{"VAGRANT_UP_ARGS", "`id`", "`id`"},
		{"VAGRANT_UP_ARGS", "node*", `"node*"`},
		{"VAGRANT_SNAPSHOT_NAME", "-f", "VAGRANT_SNAPSHOT_NAME"},
		{"VAGRANT_SNAPSHOT_NAME", "a b", "VAGRANT_SNAPSHOT_NAME"},
		{"VAGRANT_SNAPSHOT_NAME", "a/../b", "VAGRANT_SNAPSHOT_NAME"},
	} {
		t.Run(tc.key+"="+tc.val, func(t *testing.T) {
			for _, k := range []string{"VAGRANT_PROVIDER", "VAGRANT_UP_ARGS", "VAGRANT_SNAPSHOT_NAME"} {
				t.Setenv(k, "")
			}
			t.Setenv(tc.key, tc.val)
			_, err := Load(t.TempDir())
			if err == nil {
				t.Fatalf("%s=%q accepted", tc.key, tc.val)
			}
			if !strings.Contains(err.Error(), "environment variable "+tc.key) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %s and %s", err, tc.key, tc.want)
			}
		})
	}
}

// FuzzVagrantArgs: whatever VAGRANT_UP_ARGS holds, an accepted argument is
// one plain word that no shell would split or expand.
func FuzzVagrantArgs(f *testing.F) {
	f.Fuzz(func(t *testing.T, s, provider string) {
		if !vagrantNameRE.MatchString(provider) {
			return
		}
		args, err := VagrantArgs(s, provider)
		if err != nil {
			return
		}
		if len(args) > len(strings.Fields(s)) {
			t.Fatalf("%q: %d arguments from %d words", s, len(args), len(strings.Fields(s)))
		}
		for _, a := range args {
			if a == "" || strings.ContainsAny(a, " \t\n\r;|&$`'\"\\*?[](){}<>~!#") {
				t.Fatalf("%q: argument %q holds shell syntax", s, a)
			}
		}
	})
}
