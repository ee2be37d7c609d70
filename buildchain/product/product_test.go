package product

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseVersion(t *testing.T) {
	v, err := ParseVersion("VERSION", []byte("VERSION_MAJOR=2\nVERSION_MINOR=0\n# c\nVERSION_PATCH=1\nVERSION_SUFFIX=-rc1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if v.String() != "2.0.1-rc1" || v.Short() != "2.0" || !v.Development() {
		t.Fatalf("got %+v", v)
	}
	for src, want := range map[string]string{
		"VERSION_MAJOR=2\nVERSION_MINOR=x\n":                                       "VERSION:2: VERSION_MINOR: invalid value",
		"VERSION_MAJOR=2\nFOO=1\n":                                                 `VERSION:2: want VERSION_`,
		"VERSION_MAJOR=2\nVERSION_MAJOR=3\n":                                       "VERSION:2: VERSION_MAJOR is set twice",
		"VERSION_MAJOR=2\nVERSION_MINOR=0\n":                                       "VERSION: VERSION_PATCH is missing",
		"VERSION_MAJOR=2\nVERSION_MINOR=0\nVERSION_PATCH=0\nVERSION_SUFFIX=; rm\n": "VERSION:4: VERSION_SUFFIX: invalid value",
	} {
		if _, err := ParseVersion("VERSION", []byte(src)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", src, err, want)
		}
	}
}

func TestProductTxtIsDeterministic(t *testing.T) {
	v, err := ReadVersion("../../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	i := Info{Name: "MetalK8s", Version: v, Git: "abc", Built: time.Unix(1700000000, 0), Host: "build-1.example"}
	data, err := i.ProductTxt()
	if err != nil {
		t.Fatal(err)
	}
	got := string(data)
	want := "NAME=MetalK8s\nVERSION=" + v.String() + "\nSHORT_VERSION=" + v.Short() + "\nGIT=abc\nDEVELOPMENT_RELEASE=1\nBUILD_TIMESTAMP=2023-11-14T22:13:20Z\nBUILD_HOST=build-1.example\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func FuzzParseVersion(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*")
	for _, s := range seeds {
		data, _ := os.ReadFile(s)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseVersion("V", data)
		if err != nil {
			return
		}
		// Whatever parses is safe in a file name and a volume ID.
		if strings.ContainsAny(v.String(), " /;$\n\"'") {
			t.Fatalf("unsafe version %q accepted", v)
		}
	})
}
