package installer

import (
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/installer/change"
)

func TestStateRoundTrip(t *testing.T) {
	tx := change.New(t.TempDir(), false)
	s := State{}
	s.Put(Archive{Kind: KindSolution, Name: "example-solution", Version: "1.0.0", Source: "/isos/ex.iso", Digest: "sha256:ab"})
	s.Put(Archive{Kind: KindMetalK8s, Name: "metalk8s", Version: "2.0.0-dev", Source: "/isos/mk.iso"})
	if err := s.Save(tx); err != nil {
		t.Fatal(err)
	}
	got, err := LoadState(tx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Archives) != 2 || got.Archives[0].Name != "metalk8s" || got.Archives[1].Digest != "sha256:ab" {
		t.Fatalf("round trip: %+v", got)
	}
}

func TestParseStateRefuses(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{`{"version":2,"archives":[]}`, "version 2"},
		{`{"version":1,"archives":[],"x":1}`, `unknown field "x"`},
		{`{"version":1,"archives":[]} {}`, "data after"},
		{`{"version":1,"archives":[{"kind":"metalk8s","name":"../etc","version":"1","source":"/a"}]}`, "archives[0]: archive /a: name"},
		{`{"version":1,"archives":[{"kind":"metalk8s","name":"m","version":"..","source":"/a"}]}`, "version"},
		{`{"version":1,"archives":[{"kind":"metalk8s","name":"m","version":"1/2","source":"/a"}]}`, "version"},
		{`{"version":1,"archives":[{"kind":"other","name":"m","version":"1","source":"/a"}]}`, "kind"},
		{`{"version":1,"archives":[{"kind":"metalk8s","name":"m","version":"1","source":"a"}]}`, "absolute"},
		{`{"version":1,"archives":[{"kind":"metalk8s","name":"m","version":"1","source":"/a"},{"kind":"solution","name":"m","version":"1","source":"/b"}]}`, "listed twice"},
	} {
		_, err := ParseState("archives.json", []byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "archives.json: ") {
			t.Errorf("%s: err = %v, want one naming the file and %q", tc.data, err, tc.want)
		}
	}
}

// FuzzParseState: whatever the file holds, parsing never panics, and an
// accepted state names only mount points directly under /srv/scality.
func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"version":1,"archives":[{"kind":"metalk8s","name":"metalk8s","version":"2.0.0","source":"/a.iso"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseState("f", data)
		if err != nil {
			return
		}
		for _, a := range s.Archives {
			mp := a.MountPoint()
			rest := strings.TrimPrefix(mp, "/srv/scality/")
			if rest == mp || rest == "" || strings.Contains(rest, "/") || rest == "." || rest == ".." || strings.ContainsAny(mp, " ;{}'\"\\\n$") {
				t.Fatalf("accepted mount point %q", mp)
			}
		}
	})
}
