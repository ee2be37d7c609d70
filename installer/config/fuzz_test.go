package config

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Seeds on disk are under testdata/fuzz/<FuzzName>; these add the test
// files of this package so the fuzzers start from every rule's shape.

// problemsNameFile checks err is an Errors whose problems all name file.
func problemsNameFile(t *testing.T, err error, file string) {
	var es Errors
	if !errors.As(err, &es) || len(es) == 0 {
		t.Fatalf("error %v (%T) is not a non-empty Errors", err, err)
	}
	for _, p := range es {
		if p.File != file || !strings.HasPrefix(p.Error(), file) || p.Msg == "" {
			t.Fatalf("problem %q does not name the file", p)
		}
	}
}

// FuzzParseBootstrap: nothing panics, every refusal lists problems that
// name the file, and what is accepted holds every rule.
func FuzzParseBootstrap(f *testing.F) {
	f.Add([]byte(validBootstrap))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBootstrap("b.yaml", data)
		if err != nil {
			problemsNameFile(t, err, "b.yaml")
			return
		}
		n := b.Networks
		if len(n.ControlPlane) == 0 || len(n.WorkloadPlane) == 0 || len(b.Products.MetalK8s) == 0 || b.CA.Minion == "" || b.APIServer.Host == "" {
			t.Fatalf("accepted with a required field empty: %v", b)
		}
		if n.Pods.Overlaps(n.Services) || n.Pods.Addr().Is4() != n.Services.Addr().Is4() {
			t.Fatalf("accepted pods %s with services %s", n.Pods, n.Services)
		}
		for _, p := range append(slices.Clone(n.ControlPlane), n.WorkloadPlane...) {
			if p.Overlaps(n.Pods) || p.Overlaps(n.Services) || p != p.Masked() || p.Addr().Is4() != n.Pods.Addr().Is4() {
				t.Fatalf("accepted plane %s with pods %s, services %s", p, n.Pods, n.Services)
			}
		}
		if b.APIServer.Addr.IsValid() && !inAny(b.APIServer.Addr, n.ControlPlane) {
			t.Fatalf("accepted API host %s outside %v", b.APIServer.Addr, n.ControlPlane)
		}
		for _, p := range b.Products.MetalK8s {
			if CheckArchivePath(p) != nil {
				t.Fatalf("accepted archive %q", p)
			}
		}
	})
}

// FuzzParseSolutions: nothing panics, refusals name the file, accepted
// values hold the rules.
func FuzzParseSolutions(f *testing.F) {
	f.Add([]byte(handWritten))
	f.Add([]byte(newSolutions))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSolutions("s.yaml", data)
		if err != nil {
			problemsNameFile(t, err, "s.yaml")
			return
		}
		for _, p := range s.Archives {
			if CheckArchivePath(p) != nil {
				t.Fatalf("accepted archive %q", p)
			}
		}
		for n, v := range s.Active {
			if CheckActive(n, v) != nil {
				t.Fatalf("accepted active %q: %q", n, v)
			}
		}
	})
}

// restorable: the top-level key is there with a non-null value, and an
// empty flow value is written "key: []" (or "{}") with one space, the
// form a removal of the last item writes back.
func restorable(data []byte, key string) bool {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return false
	}
	v := topValue(doc.Content[0], key)
	if v == nil || isNull(v) {
		return false
	}
	if len(v.Content) == 0 {
		t, _, k, v, ok := topEntry(data, key)
		if !ok || k == nil {
			return false
		}
		colon, start, _, ok := t.emptyFlow(k, v, map[yaml.Kind]string{yaml.SequenceNode: "[]", yaml.MappingNode: "{}"}[v.Kind])
		return ok && start == colon+2
	}
	return true
}

// FuzzSolutionsEdit: on any file that checks, adding an archive then
// removing it, and activating a Solution then deactivating it, give back
// the same configuration, and the same bytes whenever the list or map
// was there and both edits were made in the text. Refused input changes
// nothing.
func FuzzSolutionsEdit(f *testing.F) {
	f.Add([]byte(handWritten), "/srv/iso/x.iso", "new", "1.0.0")
	f.Add([]byte(newSolutions), "/srv/iso/a b.iso", "example", "2.0.0-rc.1")
	f.Add([]byte("apiVersion: metalk8s.scality.com/v1alpha1\nkind: SolutionsConfiguration\nsolutions:\n  - /a.iso\n"), "/b.iso", "b", "0.1.0")
	f.Fuzz(func(t *testing.T, data []byte, path, name, version string) {
		orig, err := ParseSolutions("s.yaml", data)
		if err != nil {
			return
		}
		s, _ := ParseSolutions("s.yaml", data)
		if slices.Contains(orig.Archives, path) {
			return
		}
		added, err := s.AddArchive(path)
		if CheckArchivePath(path) != nil {
			if err == nil || added || string(s.Bytes()) != string(data) {
				t.Fatalf("bad path %q: added=%v err=%v", path, added, err)
			}
		} else {
			if err != nil || !added || !slices.Contains(s.Archives, path) {
				t.Fatalf("AddArchive(%q): %v %v\n%s", path, added, err, s.Bytes())
			}
			addSurgical := s.surgical
			removed, err := s.RemoveArchive(path)
			if err != nil || !removed || !slices.Equal(s.Archives, orig.Archives) || !mapsEqual(s.Active, orig.Active) {
				t.Fatalf("RemoveArchive(%q): %v %v; archives %v, want %v", path, removed, err, s.Archives, orig.Archives)
			}
			if addSurgical && s.surgical && restorable(data, s.listKey()) && string(s.Bytes()) != string(data) {
				t.Fatalf("add then remove %q changed the bytes:\n%q\nwant\n%q", path, s.Bytes(), data)
			}
		}
		if _, ok := orig.Active[name]; ok || orig.APIVersion != SolutionsAPIVersion {
			return
		}
		s, _ = ParseSolutions("s.yaml", data)
		set, err := s.SetActive(name, version)
		if CheckActive(name, version) != nil {
			if err == nil || set || string(s.Bytes()) != string(data) {
				t.Fatalf("bad active %q %q: set=%v err=%v", name, version, set, err)
			}
			return
		}
		if err != nil || !set || s.Active[name] != version {
			t.Fatalf("SetActive(%q, %q): %v %v\n%s", name, version, set, err, s.Bytes())
		}
		setSurgical := s.surgical
		if ch, err := s.Deactivate(name); err != nil || !ch || !mapsEqual(s.Active, orig.Active) || !slices.Equal(s.Archives, orig.Archives) {
			t.Fatalf("Deactivate(%q): %v %v; active %v", name, ch, err, s.Active)
		}
		if setSurgical && s.surgical && restorable(data, "active") && string(s.Bytes()) != string(data) {
			t.Fatalf("activate then deactivate %q changed the bytes:\n%q\nwant\n%q", name, s.Bytes(), data)
		}
	})
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
