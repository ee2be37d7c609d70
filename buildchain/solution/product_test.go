package solution

import (
	"errors"
	"strings"
	"testing"
)

func TestParseProduct(t *testing.T) {
	good := "NAME=Example\nVERSION=1.0.0-dev\nREQUIRE_METALK8S=\">=2.0\"\nARCHIVE_LAYOUT_VERSION=1\n"
	p, err := ParseProduct([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "Example" || p.Version != "1.0.0-dev" || p.RequireMetalK8s != ">=2.0" || p.ID() != "example-1.0.0-dev" || p.VolumeID() != "Example 1.0.0-dev" {
		t.Fatalf("got %+v", p)
	}
	full := good + "# build facts\n\nGIT=v1.0.0-3-gabcdef0-dirty\nBUILD_TIMESTAMP=2024-01-02T03:04:05Z\nX_VENDOR='ACME Corp'\n"
	if p, err = ParseProduct([]byte(full)); err != nil || p.Git != "v1.0.0-3-gabcdef0-dirty" || p.Extra["X_VENDOR"] != "ACME Corp" {
		t.Fatalf("got %+v, %v", p, err)
	}
	for _, tc := range []struct{ text, want string }{
		{"", "NAME is missing"},
		{strings.Replace(good, "NAME=Example\n", "", 1), "NAME is missing"},
		{strings.Replace(good, `">=2.0"`, `"2.0 or later"`, 1), "REQUIRE_METALK8S"},
		{strings.Replace(good, `">=2.0"`, `>=2.0`, 1), "must be quoted"},
		{strings.Replace(good, `">=2.0"`, `">=2.0`, 1), "unterminated"},
		{strings.Replace(good, `">=2.0"`, `"$(reboot)"`, 1), "may not hold"},
		{strings.Replace(good, "1.0.0-dev", "1.0", 1), "VERSION"},
		{strings.Replace(good, "1.0.0-dev", "1.0.0+build", 1), "VERSION"},
		{strings.Replace(good, "ARCHIVE_LAYOUT_VERSION=1", "ARCHIVE_LAYOUT_VERSION=2", 1), "only 1"},
		{good + "NAME=Other\n", "line 5: NAME is already set on line 1"},
		{good + "name=x\n", "invalid key"},
		{good + "JUNK\n", "want KEY=VALUE"},
		{good + "BUILD_TIMESTAMP=yesterday\n", "BUILD_TIMESTAMP"},
		{strings.Replace(good, "Example", "-bad", 1), "NAME"},
		{strings.Replace(good, "Example", "A-very-long-solution-name-here", 1), "32"},
		{"\xff", "UTF-8"},
		// Keys a shell acts on, extra keys without the X_ prefix, CR.
		{good + "PS4='$(touch pwned)'\n", `line 5: key "PS4"`},
		{good + "VENDOR='ACME Corp'\n", `line 5: key "VENDOR"`},
		{strings.ReplaceAll(good, "\n", "\r\n"), "line 1: carriage return"},
	} {
		_, err := ParseProduct([]byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseProduct(%q) = %v, want an error with %q", tc.text, err, tc.want)
		}
		var pe ProductErrors
		if err != nil && !errors.As(err, &pe) {
			t.Errorf("error %T is not ProductErrors", err)
		}
	}
	// Every problem is reported, not the first only.
	_, err = ParseProduct([]byte("NAME=-x\nVERSION=x\nREQUIRE_METALK8S=\"?\"\n"))
	var pe ProductErrors
	if !errors.As(err, &pe) || len(pe) != 4 {
		t.Errorf("want 4 problems (NAME, VERSION, REQUIRE_METALK8S, ARCHIVE_LAYOUT_VERSION missing), got %v", err)
	}
}

func TestRenderRoundTrip(t *testing.T) {
	p := Product{Name: "My Solution", Version: "2.1.0-rc.1", RequireMetalK8s: ">=2.0,<3", LayoutVersion: "1",
		Git: "abc", BuildTimestamp: "2024-01-02T03:04:05Z", Extra: map[string]string{"X_VENDOR": "ACME Corp"}}
	data, err := p.Render()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseProduct(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	if got.Name != p.Name || got.RequireMetalK8s != p.RequireMetalK8s || got.Extra["X_VENDOR"] != "ACME Corp" || got.ID() != "my-solution-2.1.0-rc.1" {
		t.Fatalf("round trip: %+v", got)
	}
	// Single quotes: nothing inside them means anything to a shell.
	want := "NAME='My Solution'\nVERSION=2.1.0-rc.1\nREQUIRE_METALK8S='>=2.0,<3'\nARCHIVE_LAYOUT_VERSION=1\nGIT=abc\nBUILD_TIMESTAMP=2024-01-02T03:04:05Z\nX_VENDOR='ACME Corp'\n"
	if string(data) != want {
		t.Errorf("render:\n%s\nwant\n%s", data, want)
	}
	p.Extra = map[string]string{"PATH": "/tmp"}
	if _, err := p.Render(); err == nil || !strings.Contains(err.Error(), `key "PATH"`) {
		t.Errorf("render with PATH: %v", err)
	}
	p.Extra, p.Git = nil, "it's $(x)"
	if _, err := p.Render(); err == nil {
		t.Errorf("render of a GIT product.txt cannot hold: no error")
	}
}

func TestConstraint(t *testing.T) {
	for _, tc := range []struct {
		c, v string
		ok   bool
	}{
		{">=2.0", "2.0.0", true},
		{">=2.0", "1.9.9", false},
		{">=2.0", "2.0.0-dev", false},
		{">=2.0,<3.0", "2.9.1", true},
		{">=2.0,<3.0", "3.0.0", false},
		{"==2.1.*", "2.1.7", true},
		{"==2.1.*", "2.2.0", false},
		{"!=2.1.*", "2.2.0", true},
		{"~=2.1", "2.9.0", true},
		{"~=2.1", "3.0.0", false},
		{"~=2.1.3", "2.1.9", true},
		{"~=2.1.3", "2.2.0", false},
		{"2.0.1", "2.0.1", true},
		{"> 2.0.0-dev", "2.0.0", true},
		{"<2.0.0", "2.0.0-rc1", true},
	} {
		c, err := ParseConstraint(tc.c)
		if err != nil {
			t.Fatalf("%q: %v", tc.c, err)
		}
		if got := c.Allows(tc.v); got != tc.ok {
			t.Errorf("%q allows %q = %v, want %v", tc.c, tc.v, got, tc.ok)
		}
	}
	for _, bad := range []string{"", ">=", "2.0 or later", ">=2.0;<3", ">>2", "~=2", ">=2.*", ">=02.0", ",>=2", "=>2.0"} {
		if _, err := ParseConstraint(bad); err == nil {
			t.Errorf("ParseConstraint(%q) accepted", bad)
		}
	}
}

// FuzzParseProduct: no panic; whatever parses renders back to an equal
// product; the errors always carry a message.
func FuzzParseProduct(f *testing.F) {
	f.Add([]byte("NAME=Example\nVERSION=1.0.0-dev\nREQUIRE_METALK8S=\">=2.0\"\nARCHIVE_LAYOUT_VERSION=1\n"))
	f.Add([]byte("NAME='My App'\nVERSION=2.0.0\nREQUIRE_METALK8S=\"~=2.4,!=2.4.1\"\nARCHIVE_LAYOUT_VERSION=1\nGIT=abc\nBUILD_TIMESTAMP=2024-01-02T03:04:05Z\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProduct(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		data, err = p.Render()
		if err != nil {
			t.Fatalf("parsed product does not render: %v", err)
		}
		q, err := ParseProduct(data)
		if err != nil {
			t.Fatalf("rendered product does not parse: %v\n%s", err, data)
		}
		if again, err := q.Render(); err != nil || string(again) != string(data) {
			t.Fatalf("render is not stable:\n%s\n%s", data, again)
		}
		if _, err := ParseConstraint(p.RequireMetalK8s); err != nil {
			t.Fatal(err)
		}
	})
}
