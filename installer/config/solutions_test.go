package config

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/installer/change"
)

// handWritten has what a person leaves in the file: comments everywhere,
// a blank line, quoting, and keys in their own order.
const handWritten = `# Solutions of the lab cluster.
# Owner: storage team.
kind: SolutionsConfiguration   # what this is
apiVersion: solutions.metalk8s.scality.com/v1alpha1

active:
  example-solution: 1.0.0  # pinned until QA signs off
  'storage': "2.1.0-rc.1"

# ISOs on the Bootstrap node.
archives:
    -   /srv/iso/example-solution-1.0.0.iso   # from the release page
    # the storage one is built nightly
    - "/srv/iso/storage 2.1.0.iso"
# end of file
`

func mustParse(t *testing.T, src string) *Solutions {
	t.Helper()
	s, err := ParseSolutions("s.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseSolutions(t *testing.T) {
	s := mustParse(t, handWritten)
	if s.APIVersion != SolutionsAPIVersion ||
		!slices.Equal(s.Archives, []string{"/srv/iso/example-solution-1.0.0.iso", "/srv/iso/storage 2.1.0.iso"}) ||
		!maps.Equal(s.Active, map[string]string{"example-solution": "1.0.0", "storage": "2.1.0-rc.1"}) {
		t.Errorf("got %+v", s)
	}
	if got := s.ActiveNames(); !slices.Equal(got, []string{"example-solution", "storage"}) {
		t.Errorf("ActiveNames %v", got)
	}
	// The shape the 2.0 docs sketch (12.1.2).
	legacy := mustParse(t, "apiVersion: metalk8s.scality.com/v1alpha1\nkind: SolutionsConfiguration\nsolutions:\n  - /solutions/storage_1.0.0.iso\n  - /other_solutions/computing.iso\n")
	if legacy.APIVersion != DocsSolutionsAPIVersion || len(legacy.Archives) != 2 || len(legacy.Active) != 0 {
		t.Errorf("legacy: %+v", legacy)
	}
	// Empty and null collections are empty.
	for _, src := range []string{"archives: []\nactive: {}\n", "archives:\nactive:\n", ""} {
		s := mustParse(t, "apiVersion: "+SolutionsAPIVersion+"\nkind: SolutionsConfiguration\n"+src)
		if len(s.Archives) != 0 || len(s.Active) != 0 {
			t.Errorf("%q: %+v", src, s)
		}
	}
}

func TestSolutionsRules(t *testing.T) {
	const head = "apiVersion: solutions.metalk8s.scality.com/v1alpha1\nkind: SolutionsConfiguration\n"
	for _, c := range []struct {
		name, src string
		want      []string
	}{
		{"empty", "", []string{"s.yaml: holds no document; want a SolutionsConfiguration"}},
		{"syntax", head + "archives: [\n", []string{"s.yaml:3: invalid YAML"}},
		{"two documents", head + "---\na: 1\n", []string{"s.yaml:3: only one YAML document"}},
		{"alias", head + "archives: &a [/x.iso]\nactive: *a\n", []string{"s.yaml:3: YAML anchors and aliases are not allowed"}},
		{"api version", "apiVersion: v1\nkind: SolutionsConfiguration\n", []string{`s.yaml:1: apiVersion: "v1" is not supported; want "solutions.metalk8s.scality.com/v1alpha1"`}},
		{"not a mapping", "[a, b]\n", []string{"s.yaml:1: want a mapping, got a list"}},
		{"missing header", "archives: []\n", []string{"s.yaml:1: apiVersion: is required", "s.yaml:1: kind: is required"}},
		{"kind", "apiVersion: solutions.metalk8s.scality.com/v1alpha1\nkind: Solutions\n", []string{`s.yaml:2: kind: "Solutions" is not supported`}},
		{"unknown field", head + "solutions: []\n", []string{"s.yaml:3: solutions: unknown field (known: apiVersion, kind, archives, active)"}},
		{"legacy has no active", "apiVersion: metalk8s.scality.com/v1alpha1\nkind: SolutionsConfiguration\nactive: {}\n", []string{"s.yaml:3: active: unknown field (known: apiVersion, kind, solutions)"}},
		{"duplicate field", head + "archives: []\narchives: []\n", []string{"s.yaml:4: archives: given twice (first on line 3)"}},
		{"archives scalar", head + "archives: /x.iso\n", []string{"s.yaml:3: archives: want a list of archive paths, got the scalar \"/x.iso\""}},
		{"archive relative", head + "archives:\n  - /a.iso\n  - ./b.iso\n", []string{`s.yaml:5: archives[1]: "./b.iso" is relative; write the absolute path`}},
		{"archive unclean", head + "archives: [/srv//a.iso]\n", []string{`s.yaml:3: archives[0]: "/srv//a.iso" is not clean; write "/srv/a.iso"`}},
		{"archive twice", head + "archives: [/a.iso, /a.iso]\n", []string{`archives[1]: "/a.iso" is listed twice (first at archives[0])`}},
		{"archive number", head + "archives: [{a: b}]\n", []string{"s.yaml:3: archives[0]: want a string, got a mapping"}},
		{"legacy archive", "apiVersion: metalk8s.scality.com/v1alpha1\nkind: SolutionsConfiguration\nsolutions: [x.iso]\n", []string{`s.yaml:3: solutions[0]: "x.iso" is relative`}},
		{"active list", head + "active: [a]\n", []string{"s.yaml:3: active: want a mapping of Solution names to versions, got a list"}},
		{"active upper", head + "active:\n  Example: 1.0.0\n", []string{`s.yaml:4: active.Example: "Example" is not a Solution machine name; write "example"`}},
		{"active bad name", head + "active:\n  'a b': 1.0.0\n", []string{`active.a b: "a b" is not a Solution machine name; write "a-b"`}},
		{"active bad version", head + "active:\n  example: 1.0\n", []string{`s.yaml:4: active.example: version "1.0" is not a version`}},
		{"active null version", head + "active:\n  example:\n", []string{"s.yaml:4: active.example: want a string, got nothing"}},
		{"active twice", head + "active:\n  a: 1.0.0\n  a: 1.0.1\n", []string{"s.yaml:5: active.a: given twice (first on line 4)"}},
		{"active key list", head + "active:\n  [a]: 1.0.0\n", []string{"s.yaml:4: active: want a string, got a list"}},
		{"several", head + "archives: [a.iso, /b/../c.iso]\nactive: {X: y}\nextra: 1\n", []string{
			`s.yaml:3: archives[0]: "a.iso" is relative`, `s.yaml:3: archives[1]: "/b/../c.iso" is not clean`,
			`s.yaml:4: active.X: "X" is not a Solution machine name`, "s.yaml:5: extra: unknown field"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseSolutions("s.yaml", []byte(c.src))
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %v (%T) is not an Errors", err, err)
			}
			if len(es) != len(c.want) {
				t.Errorf("%d problems, want %d:\n%v", len(es), len(c.want), err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
		})
	}
}

// edit runs one edit and checks it reports a change and how it was made.
func edit(t *testing.T, s *Solutions, surgical bool, f func() (bool, error)) {
	t.Helper()
	ch, err := f()
	if err != nil || !ch {
		t.Fatalf("edit: changed=%v err=%v", ch, err)
	}
	if s.surgical != surgical {
		t.Errorf("edit made surgically=%v, want %v:\n%s", s.surgical, surgical, s.data)
	}
}

func TestEditsKeepTheFile(t *testing.T) {
	s := mustParse(t, handWritten)
	edit(t, s, true, func() (bool, error) { return s.AddArchive("/srv/iso/new one.iso") })
	want := strings.Replace(handWritten, "    - \"/srv/iso/storage 2.1.0.iso\"\n", "    - \"/srv/iso/storage 2.1.0.iso\"\n    - /srv/iso/new one.iso\n", 1)
	if string(s.Bytes()) != want {
		t.Fatalf("after AddArchive:\n%s\nwant:\n%s", s.Bytes(), want)
	}
	edit(t, s, true, func() (bool, error) { return s.RemoveArchive("/srv/iso/new one.iso") })
	if string(s.Bytes()) != handWritten {
		t.Fatalf("add then remove:\n%s", s.Bytes())
	}
	// The first archive, with its odd spacing and comment, goes; the
	// comment above the second stays.
	edit(t, s, true, func() (bool, error) { return s.RemoveArchive("/srv/iso/example-solution-1.0.0.iso") })
	if want := strings.Replace(handWritten, "    -   /srv/iso/example-solution-1.0.0.iso   # from the release page\n", "", 1); string(s.Bytes()) != want {
		t.Fatalf("remove first:\n%s", s.Bytes())
	}
	s = mustParse(t, handWritten)
	edit(t, s, true, func() (bool, error) { return s.SetActive("storage", "2.1.0") })
	if want := strings.Replace(handWritten, `'storage': "2.1.0-rc.1"`, `'storage': 2.1.0`, 1); string(s.Bytes()) != want {
		t.Fatalf("SetActive existing:\n%s", s.Bytes())
	}
	edit(t, s, true, func() (bool, error) { return s.SetActive("example-solution", "1.1.0") })
	if !strings.Contains(string(s.Bytes()), "  example-solution: 1.1.0  # pinned until QA signs off\n") {
		t.Fatalf("SetActive lost the comment:\n%s", s.Bytes())
	}
	s = mustParse(t, handWritten)
	edit(t, s, true, func() (bool, error) { return s.SetActive("computing", "3.0.0") })
	if want := strings.Replace(handWritten, "  'storage': \"2.1.0-rc.1\"\n", "  'storage': \"2.1.0-rc.1\"\n  computing: 3.0.0\n", 1); string(s.Bytes()) != want {
		t.Fatalf("SetActive new:\n%s", s.Bytes())
	}
	edit(t, s, true, func() (bool, error) { return s.Deactivate("computing") })
	if string(s.Bytes()) != handWritten {
		t.Fatalf("SetActive then Deactivate:\n%s", s.Bytes())
	}
}

func TestEditsNoChangeIsByteIdentical(t *testing.T) {
	s := mustParse(t, handWritten)
	for _, f := range []func() (bool, error){
		func() (bool, error) { return s.AddArchive("/srv/iso/example-solution-1.0.0.iso") },
		func() (bool, error) { return s.RemoveArchive("/srv/iso/absent.iso") },
		func() (bool, error) { return s.SetActive("storage", "2.1.0-rc.1") },
		func() (bool, error) { return s.Deactivate("absent") },
	} {
		if ch, err := f(); ch || err != nil {
			t.Errorf("no-op edit: changed=%v err=%v", ch, err)
		}
	}
	if string(s.Bytes()) != handWritten || s.edited {
		t.Fatalf("no-op edits changed the text:\n%s", s.Bytes())
	}
}

func TestEditsRefuseBadInput(t *testing.T) {
	s := mustParse(t, handWritten)
	for _, p := range []string{"rel.iso", "/a/../b.iso", "", "/a\nb.iso"} {
		if _, err := s.AddArchive(p); err == nil {
			t.Errorf("AddArchive(%q) accepted", p)
		}
	}
	for _, nv := range [][2]string{{"Example", "1.0.0"}, {"example", "1.0"}, {"ex ample", "1.0.0"}, {"example", "1.0.0\n"}} {
		if _, err := s.SetActive(nv[0], nv[1]); err == nil {
			t.Errorf("SetActive(%q, %q) accepted", nv[0], nv[1])
		}
	}
	if string(s.Bytes()) != handWritten {
		t.Fatal("a refused edit changed the text")
	}
}

func TestEditsOtherShapes(t *testing.T) {
	const head = "apiVersion: solutions.metalk8s.scality.com/v1alpha1\nkind: SolutionsConfiguration\n"
	for _, c := range []struct {
		name, src string
		surgical  bool
		afterAdd  string // "" when Add then Remove must restore the bytes
	}{
		{"empty flow", head + "archives: []  # none yet\nactive: {}\n", true, ""},
		{"empty flow crlf", strings.ReplaceAll(head+"archives: []\nactive: {}\n", "\n", "\r\n"), true, ""},
		{"block at column 0", head + "archives:\n- /a.iso\nactive: {}\n", true, ""},
		{"last line without newline", head + "active: {}\narchives:\n  - /a.iso", true, ""},
		{"missing keys", head, true, head + "archives:\n  - /new.iso\n"},
		{"null values", head + "archives:\nactive:\n", true, head + "archives:\n  - /new.iso\nactive:\n"},
		{"flow list", head + "# keep me\narchives: [/a.iso, /b.iso]  # two\nactive: {x: 1.0.0}\n", false, "x"},
		{"flow root", "{apiVersion: " + SolutionsAPIVersion + ", kind: SolutionsConfiguration}\n", false, "x"},
		{"multi-line item", head + "archives:\n  - /a\n    b.iso\n", false, "x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := mustParse(t, c.src)
			edit(t, s, c.surgical, func() (bool, error) { return s.AddArchive("/new.iso") })
			if !slices.Contains(s.Archives, "/new.iso") {
				t.Fatalf("not added: %v", s.Archives)
			}
			if c.afterAdd != "" && c.afterAdd != "x" && string(s.Bytes()) != c.afterAdd {
				t.Errorf("after add:\n%q\nwant\n%q", s.Bytes(), c.afterAdd)
			}
			if ch, err := s.RemoveArchive("/new.iso"); !ch || err != nil {
				t.Fatalf("remove: %v %v", ch, err)
			}
			if c.surgical && !s.surgical {
				t.Errorf("remove went through the node tree")
			}
			if c.afterAdd == "" && string(s.Bytes()) != c.src {
				t.Errorf("add then remove:\n%q\nwant\n%q", s.Bytes(), c.src)
			}
			orig := mustParse(t, c.src)
			if !slices.Equal(s.Archives, orig.Archives) {
				t.Errorf("archives %v, want %v", s.Archives, orig.Archives)
			}
			if ch, err := s.SetActive("new", "1.0.0"); !ch || err != nil {
				t.Fatalf("SetActive: %v %v", ch, err)
			}
			if s.Active["new"] != "1.0.0" {
				t.Fatalf("not active: %v", s.Active)
			}
			if strings.Contains(c.src, "# keep me") && !strings.Contains(string(s.Bytes()), "# keep me") {
				t.Errorf("the node-tree edit lost a comment:\n%s", s.Bytes())
			}
		})
	}
}

func TestLegacyFile(t *testing.T) {
	src := "# from MetalK8s 2.0\napiVersion: metalk8s.scality.com/v1alpha1  # old\nkind: SolutionsConfiguration\nsolutions:\n  - /solutions/storage_1.0.0.iso\n"
	s := mustParse(t, src)
	edit(t, s, true, func() (bool, error) { return s.AddArchive("/solutions/computing.iso") })
	if s.APIVersion != DocsSolutionsAPIVersion || !strings.Contains(string(s.Bytes()), "solutions:\n  - /solutions/storage_1.0.0.iso\n  - /solutions/computing.iso\n") {
		t.Fatalf("add to a legacy file:\n%s", s.Bytes())
	}
	edit(t, s, true, func() (bool, error) { return s.SetActive("storage", "1.0.0") })
	want := "# from MetalK8s 2.0\napiVersion: solutions.metalk8s.scality.com/v1alpha1  # old\nkind: SolutionsConfiguration\narchives:\n  - /solutions/storage_1.0.0.iso\n  - /solutions/computing.iso\nactive:\n  storage: 1.0.0\n"
	if string(s.Bytes()) != want {
		t.Fatalf("SetActive on a legacy file:\n%s\nwant:\n%s", s.Bytes(), want)
	}
}

func TestOpenSaveThroughTx(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "etc/metalk8s/solutions.yaml")

	// Nothing to do on a missing file: it stays missing.
	tx := change.New(root, false)
	s, err := OpenSolutions(tx, SolutionsPath)
	if err != nil {
		t.Fatal(err)
	}
	if ch, _ := s.RemoveArchive("/a.iso"); ch {
		t.Fatal("removed from nothing")
	}
	if ch, err := s.Save(tx, SolutionsPath); ch || err != nil || tx.Changed() {
		t.Fatalf("save without edits: %v %v", ch, err)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("file created without an edit")
	}

	// Dry run reports and writes nothing.
	tx = change.New(root, true)
	s, _ = OpenSolutions(tx, SolutionsPath)
	s.AddArchive("/srv/iso/example-solution-1.0.0.iso")
	if ch, err := s.Save(tx, SolutionsPath); !ch || err != nil {
		t.Fatalf("dry save: %v %v", ch, err)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("dry run wrote the file")
	}

	add := func() *change.Tx {
		tx := change.New(root, false)
		s, err := OpenSolutions(tx, SolutionsPath)
		if err != nil {
			t.Fatal(err)
		}
		s.AddArchive("/srv/iso/example-solution-1.0.0.iso")
		if _, err := s.Save(tx, SolutionsPath); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	if tx := add(); !tx.Changed() {
		t.Fatal("first add reports no change")
	}
	data, _ := os.ReadFile(file)
	// A new file takes the docs' shape (12.1.2).
	want := strings.Replace(newSolutions, "solutions: []\n", "solutions:\n  - /srv/iso/example-solution-1.0.0.iso\n", 1)
	if string(data) != want {
		t.Fatalf("created file:\n%s\nwant:\n%s", data, want)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	if tx := add(); tx.Changed() {
		var b bytes.Buffer
		tx.Print(&b)
		t.Fatalf("second add changed something:\n%s", b.String())
	}

	// A hand-set mode is kept; a rollback puts the bytes back.
	os.Chmod(file, 0o600)
	tx = change.New(root, false)
	s, _ = OpenSolutions(tx, SolutionsPath)
	s.RemoveArchive("/srv/iso/example-solution-1.0.0.iso")
	s.Save(tx, SolutionsPath)
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode not kept: %v", fi.Mode().Perm())
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(file); string(got) != want {
		t.Fatalf("rollback left:\n%s", got)
	}
}

func TestOpenInvalidLeavesFile(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "etc/metalk8s/solutions.yaml")
	os.MkdirAll(filepath.Dir(file), 0o755)
	bad := "apiVersion: solutions.metalk8s.scality.com/v1alpha1\nkind: SolutionsConfiguration\narchives: [\n"
	os.WriteFile(file, []byte(bad), 0o644)
	_, err := OpenSolutions(change.New(root, false), SolutionsPath)
	if err == nil || !strings.HasPrefix(err.Error(), file+":3: invalid YAML") {
		t.Fatalf("error %v does not name file:line", err)
	}
	if got, _ := os.ReadFile(file); string(got) != bad {
		t.Fatal("invalid file changed")
	}
	os.Remove(file)
	os.Symlink("/etc/hostname", file)
	if _, err := OpenSolutions(change.New(root, false), SolutionsPath); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("symlink: %v", err)
	}
}

func TestEditsQuoteWhatYAMLWouldRetype(t *testing.T) {
	s := mustParse(t, newSolutions)
	for _, name := range []string{"true", "123", "null"} {
		if _, err := s.SetActive(name, "1.0.0"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddArchive("/srv/iso/a: b #c.iso"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`  "true": 1.0.0`, `  "123": 1.0.0`, `  "null": 1.0.0`, `  - '/srv/iso/a: b #c.iso'`} {
		if !strings.Contains(string(s.Bytes()), want+"\n") {
			t.Errorf("missing %q in:\n%s", want, s.Bytes())
		}
	}
	again := mustParse(t, string(s.Bytes()))
	if again.Active["true"] != "1.0.0" || again.Active["123"] != "1.0.0" || again.Active["null"] != "1.0.0" || again.Archives[0] != "/srv/iso/a: b #c.iso" {
		t.Errorf("read back %+v", again)
	}
}

func TestEmptyFlowWithOddSpacing(t *testing.T) {
	// "archives:   []" still gets a line edit; removing the last item
	// writes the one-space form.
	src := "apiVersion: solutions.metalk8s.scality.com/v1alpha1\nkind: SolutionsConfiguration\n# list\narchives:   []   # none\n"
	s := mustParse(t, src)
	edit(t, s, true, func() (bool, error) { return s.AddArchive("/a.iso") })
	edit(t, s, true, func() (bool, error) { return s.RemoveArchive("/a.iso") })
	if want := strings.Replace(src, "archives:   []   # none", "archives: []   # none", 1); string(s.Bytes()) != want {
		t.Errorf("got %q, want %q", s.Bytes(), want)
	}
}
