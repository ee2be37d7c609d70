package isomanifest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/internal/testenv"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func manifestOf(t *testing.T, root string) []Entry {
	t.Helper()
	entries, err := Build(os.DirFS(root), nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, Name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return entries
}

var tree = map[string]string{
	"product.txt":            "NAME=MetalK8s\n",
	"a/b":                    "x",
	"a.b":                    "y", // sorts before "a/b" bytewise, after it in a walk
	"images/alpha/1.0/blob":  strings.Repeat("z", 10000),
	"packages/redhat/x/repo": "",
}

func TestRoundTripAndSha256sum(t *testing.T) {
	root := writeTree(t, tree)
	entries := manifestOf(t, root)
	if len(entries) != len(tree) {
		t.Fatalf("%d entries, want %d: %+v", len(entries), len(tree), entries)
	}
	data, _ := os.ReadFile(filepath.Join(root, Name))
	back, err := Parse(Name, data)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Marshal(back)
	if string(again) != string(data) {
		t.Fatalf("round trip changed the manifest:\n%s\n%s", data, again)
	}
	if err := VerifyFS(os.DirFS(root)); err != nil {
		t.Fatal(err)
	}
	// The format is sha256sum's: coreutils itself is the oracle.
	tools := testenv.Need(t, "sha256sum")
	cmd := exec.Command(tools[0], "--strict", "-c", Name)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(root, "a/b"), []byte("X"), 0o644)
	cmd = exec.Command(tools[0], "--strict", "-c", Name)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "a/b: FAILED") {
		t.Fatalf("sha256sum -c accepted a flipped byte: %v\n%s", err, out)
	}
}

func TestVerifyNamesThePath(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		change     func(root string)
	}{
		{"flipped byte", "images/alpha/1.0/blob: sha256", func(root string) {
			p := filepath.Join(root, "images/alpha/1.0/blob")
			b, _ := os.ReadFile(p)
			b[5000] ^= 1
			os.WriteFile(p, b, 0o644)
		}},
		{"truncated", "a.b: size 0, manifest says 1", func(root string) {
			os.WriteFile(filepath.Join(root, "a.b"), nil, 0o644)
		}},
		{"missing", "a/b: listed in the manifest but missing", func(root string) {
			os.Remove(filepath.Join(root, "a/b"))
		}},
		{"extra", "images/extra: not in the manifest", func(root string) {
			os.WriteFile(filepath.Join(root, "images/extra"), nil, 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := writeTree(t, tree)
			manifestOf(t, root)
			tc.change(root)
			err := VerifyFS(os.DirFS(root))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if strings.Count(err.Error(), "\n") != 0 {
				t.Fatalf("one change, several problems: %v", err)
			}
		})
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	sum := strings.Repeat("a", 64)
	for _, tc := range []struct{ in, want string }{
		{"", "empty manifest"},
		{"hello\n", ":1: not a MetalK8s ISO manifest"},
		{header + "\n" + sum + "  x\n", ":2: checksum line without a #size"},
		{header + "\n#size 1 x\n" + sum + "  y\n", `:3: checksum of "y" follows the size of "x"`},
		{header + "\n#size -1 x\n", ":2: bad size"},
		{header + "\n#size 01 x\n", ":2: bad size"},
		{header + "\n#size 1 x\n", ":2: size of x not followed"},
		{header + "\n#size 1 x\n" + strings.Repeat("A", 64) + "  x\n", ":3: x: sha256"},
		{header + "\n#size 1 ../x\n" + sum + "  ../x\n", `:3: invalid path "../x"`},
		{header + "\n#size 1 y\n" + sum + "  y\n#size 1 x\n" + sum + "  x\n", ":5: x: not sorted"},
		{header + "\n#size 1 " + Name + "\n" + sum + "  " + Name + "\n", ":3: MANIFEST.sha256: the manifest cannot list itself"},
	} {
		_, err := Parse("m", []byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestMarshalRefusesBadEntries(t *testing.T) {
	sum := strings.Repeat("a", 64)
	for _, es := range [][]Entry{
		{{Path: "b", SHA256: sum}, {Path: "a", SHA256: sum}},
		{{Path: "a", SHA256: sum}, {Path: "a", SHA256: sum}},
		{{Path: "a\nb", SHA256: sum}},
		{{Path: `a\b`, SHA256: sum}},
		{{Path: "a", SHA256: "xyz"}},
		{{Path: "a", Size: -1, SHA256: sum}},
		{{Path: Name, SHA256: sum}},
	} {
		if _, err := Marshal(es); err == nil {
			t.Errorf("Marshal(%+v) accepted", es)
		}
	}
}

func TestBuildRefusesNamesSha256sumWouldEscape(t *testing.T) {
	root := writeTree(t, map[string]string{`a\b`: "x"})
	if _, err := Build(os.DirFS(root), nil); err == nil || !strings.Contains(err.Error(), "backslash") {
		t.Fatalf("got %v", err)
	}
}
