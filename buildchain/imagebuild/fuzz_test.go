package imagebuild

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/distref"
)

// FuzzParse feeds arbitrary bytes to the definition parser. It must never
// panic; every error is an *Error naming the file; and whatever it accepts
// satisfies the rules Build relies on, so that a definition that loads
// cannot write outside its image paths or read outside the project.
// Seeds: the definitions under testdata/ and images/, plus
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	seeds = append(seeds, "../../images/metalk8s-utils/image.yaml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(testDef))
	f.Add([]byte(onBase))

	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse("fuzz.yaml", data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.File != "fuzz.yaml" || e.Line < 0 || !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error %q (%T) does not name the file", err, err)
			}
			return
		}
		again, err := Parse("fuzz.yaml", data)
		if err != nil || !reflect.DeepEqual(d, again) {
			t.Fatalf("parsing twice differs: %v", err)
		}
		if !nameRE.MatchString(d.Name) || (d.Version != ProductVersion && !distref.ValidTag(d.Version)) {
			t.Fatalf("accepted name %q version %q", d.Name, d.Version)
		}
		if d.Platform.OS == "" || d.Platform.Architecture == "" {
			t.Fatalf("accepted platform %+v", d.Platform)
		}
		if d.Base != nil && (checkSource(d.Base.Source) != nil || !distref.ValidDigest(d.Base.Digest.String())) {
			t.Fatalf("accepted base %+v", d.Base)
		}
		if d.Base == nil && len(d.Layers) == 0 {
			t.Fatal("accepted a scratch image without layers")
		}
		for _, l := range d.Layers {
			for _, fl := range l.Files {
				if fl.Mode&^0o777 != 0 || fl.Mode&0o400 == 0 {
					t.Fatalf("accepted file mode %v", fl.Mode)
				}
				if b, ok := fl.Binary(); ok {
					if b != "*" && !cliRE.MatchString(b) {
						t.Fatalf("accepted binary %q", b)
					}
				} else if checkRel(fl.Src) != nil || strings.HasPrefix(fl.Src, "../") {
					t.Fatalf("accepted src %q", fl.Src)
				}
				if target := fl.Target("x"); checkAbs(target) != nil {
					t.Fatalf("accepted dst %q (target %q)", fl.Dst, target)
				}
			}
			for _, dir := range l.Dirs {
				if checkAbs(dir.Path) != nil || !dir.Mode.IsDir() || dir.Mode.Perm()&0o500 != 0o500 {
					t.Fatalf("accepted dir %+v", dir)
				}
			}
		}
		for _, in := range d.Inputs("/project")[1:] {
			if !strings.HasPrefix(in, "/project/") {
				t.Fatalf("input %q is outside the project", in)
			}
		}
		for _, e := range d.Config.Env {
			if k, _, ok := strings.Cut(e, "="); !ok || !envKeyRE.MatchString(k) {
				t.Fatalf("accepted env %q", e)
			}
		}
		for k, v := range d.Config.Labels {
			if !labelRE.MatchString(k) || checkPlaceholders(v) != nil {
				t.Fatalf("accepted label %q=%q", k, v)
			}
		}
		if w := d.Config.WorkingDir; w != "" && w != "/" && checkAbs(w) != nil {
			t.Fatalf("accepted workdir %q", w)
		}
	})
}
