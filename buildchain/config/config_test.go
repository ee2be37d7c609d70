package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseDotEnv(t *testing.T) {
	src := `# comment
export PROJECT_NAME="Metal K8s" # trailing
BUILD_ROOT = _build
JOBS='4'

IMAGE_MIRRORS=docker.io=127.0.0.1:5000,quay.io=127.0.0.1:5000 # mirrors
REPO_MIRRORS="base=http://127.0.0.1:8080/\"x\""
`
	got, err := ParseDotEnv(".env", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{"PROJECT_NAME", "Metal K8s", 2},
		{"BUILD_ROOT", "_build", 3},
		{"JOBS", "4", 4},
		{"IMAGE_MIRRORS", "docker.io=127.0.0.1:5000,quay.io=127.0.0.1:5000", 6},
		{"REPO_MIRRORS", `base=http://127.0.0.1:8080/"x"`, 7},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseDotEnvErrorsNameFileAndLine(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"PROJECT_NAME=x\nNOPE", `.env:2: want KEY=VALUE`},
		{"\n\nBUILDROOT=x", `.env:3: unknown key "BUILDROOT"`},
		{"JOBS=\"4", `.env:1: JOBS: unterminated double quote`},
		{"JOBS='4", `.env:1: JOBS: unterminated single quote`},
		{"JOBS='4' 5", `.env:1: JOBS: unexpected "5"`},
		{"JOBS=1\nJOBS=2", `.env:2: JOBS is already set on line 1`},
		{"1JOBS=2", `.env:1: invalid key`},
		{`JOBS="\q"`, `.env:1: JOBS: unknown escape`},
	} {
		_, err := ParseDotEnv(".env", []byte(tc.src))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.src, err, tc.want)
		}
	}
}

func TestLoadEnvironmentOverridesDotEnv(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, ".env"), []byte("JOBS=3\nBUILD_ROOT=out\nSOURCE_DATE_EPOCH=100\n"), 0o644)
	t.Setenv("JOBS", "7")
	t.Setenv("IMAGE_MIRRORS", "docker.io=127.0.0.1:5000/mirror")
	for _, k := range []string{"BUILD_ROOT", "SOURCE_DATE_EPOCH", "PLATFORMS", "PROJECT_NAME"} {
		os.Unsetenv(k)
	}
	c, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	if c.Jobs != 7 || c.BuildRoot != filepath.Join(root, "out") || c.SourceDateEpoch != 100 {
		t.Fatalf("got jobs=%d root=%s epoch=%d", c.Jobs, c.BuildRoot, c.SourceDateEpoch)
	}
	if c.ImageMirrors["docker.io"] != "127.0.0.1:5000/mirror" || c.Platforms[0] != "linux/amd64" {
		t.Fatalf("got %v %v", c.ImageMirrors, c.Platforms)
	}
}

func TestLoadRejectsBadValues(t *testing.T) {
	for key, tc := range map[string]struct{ val, want string }{
		"JOBS":              {"0", "JOBS: want an integer"},
		"SOURCE_DATE_EPOCH": {"yesterday", "SOURCE_DATE_EPOCH: want a non-negative"},
		"IMAGE_MIRRORS":     {"docker.io=bad host", `"bad host" is not a registry host`},
		"REPO_MIRRORS":      {"base=ftp://x", "want an http, https or file URL"},
		"PLATFORMS":         {"linux", `"linux" is not os/arch`},
		"DRY_RUN":           {"maybe", "DRY_RUN: want 1 or 0"},
	} {
		t.Run(key, func(t *testing.T) {
			root := t.TempDir()
			os.WriteFile(filepath.Join(root, ".env"), []byte(key+"="+tc.val+"\n"), 0o644)
			os.Unsetenv(key)
			_, err := Load(root)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), ".env:1") {
				t.Fatalf("got %v, want %q at .env:1", err, tc.want)
			}
		})
	}
}

func TestLoadStepsForceDryRun(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, ".env"), []byte("STEPS=images/pull:*\nDRY_RUN=1\n"), 0o644)
	t.Setenv("FORCE", "*:1.0")
	os.Unsetenv("STEPS")
	os.Unsetenv("DRY_RUN")
	c, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	if c.Steps != "images/pull:*" || c.Force != "*:1.0" || !c.DryRun {
		t.Fatalf("got steps=%q force=%q dry=%v", c.Steps, c.Force, c.DryRun)
	}
}

// .env.example must document exactly the keys the buildchain reads.
func TestEnvExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#?([A-Z_]+)=`).FindAllStringSubmatch(string(data), -1) {
		documented[m[1]] = true
	}
	for _, k := range Keys {
		if !documented[k.Name] {
			t.Errorf(".env.example does not document %s", k.Name)
		}
		delete(documented, k.Name)
	}
	for k := range documented {
		t.Errorf(".env.example documents unknown key %s", k)
	}
	// Uncommented, the example must itself parse.
	uncommented := regexp.MustCompile(`(?m)^#([A-Z_]+=)`).ReplaceAllString(string(data), "$1")
	if _, err := ParseDotEnv(".env.example", []byte(uncommented)); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseDotEnv(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.env")
	for _, s := range seeds {
		data, _ := os.ReadFile(s)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ParseDotEnv("fuzz.env", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.env:") {
				t.Fatalf("error does not name file:line: %v", err)
			}
			return
		}
		lines := strings.Count(string(data), "\n") + 1
		for _, e := range entries {
			if e.Line < 1 || e.Line > lines {
				t.Fatalf("line %d out of range", e.Line)
			}
		}
	})
}

func TestParseEpoch(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1700000000": 1700000000} {
		got, err := ParseEpoch(in)
		if err != nil || got.Unix() != want || got.Location() != time.UTC {
			t.Errorf("ParseEpoch(%q) = %v, %v; want %d UTC", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "yesterday", "1.5", " 1", "0x10", "99999999999999999999"} {
		if _, err := ParseEpoch(in); err == nil || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
			t.Errorf("ParseEpoch(%q) = %v, want an error naming SOURCE_DATE_EPOCH", in, err)
		}
	}
	t.Setenv("SOURCE_DATE_EPOCH", "")
	if _, ok, err := EpochFromEnv(); ok || err != nil {
		t.Errorf("empty SOURCE_DATE_EPOCH: ok=%v err=%v, want unset", ok, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "42")
	if e, ok, err := EpochFromEnv(); !ok || err != nil || e.Unix() != 42 {
		t.Errorf("SOURCE_DATE_EPOCH=42: %v %v %v", e, ok, err)
	}
}

func TestParseMirrors(t *testing.T) {
	m, err := ParseMirrors(" docker.io=127.0.0.1:5000/mirror , quay.io=[::1]:5000")
	if err != nil || len(m) != 2 || m["docker.io"] != "127.0.0.1:5000/mirror" || m["quay.io"] != "[::1]:5000" {
		t.Fatalf("ParseMirrors: %v %v", m, err)
	}
	for in, want := range map[string]string{
		"docker.io=bad host":            `"bad host" is not a registry host`,
		"docker.io=a,docker.io=b":       `"docker.io" is given twice`,
		"docker.io/library=127.0.0.1":   `"docker.io/library" is not a registry host`,
		"docker.io=127.0.0.1:5000/a//b": `path component ""`,
		"=127.0.0.1":                    `is not KEY=VALUE`,
	} {
		if _, err := ParseMirrors(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseMirrors(%q) = %v, want %q", in, err, want)
		}
	}
}
