package distref

import (
	"strings"
	"testing"
)

func TestGrammar(t *testing.T) {
	for _, s := range []string{"a", "library/nginx", "a.b_c__d--e/f", "0/1"} {
		if !ValidName(s) {
			t.Errorf("ValidName(%q) = false", s)
		}
	}
	for _, s := range []string{"", "A", "a/", "/a", "a//b", "a..b", "../etc", "a b", "a;b", "a_", "-a", "a/{x}", strings.Repeat("a", 256)} {
		if ValidName(s) {
			t.Errorf("ValidName(%q) = true", s)
		}
	}
	for _, s := range []string{"v1", "1.0", "_x", "A-b.c_d", strings.Repeat("a", 128)} {
		if !ValidTag(s) {
			t.Errorf("ValidTag(%q) = false", s)
		}
	}
	for _, s := range []string{"", ".x", "-x", "a;b", "a b", "a/b", strings.Repeat("a", 129)} {
		if ValidTag(s) {
			t.Errorf("ValidTag(%q) = true", s)
		}
	}
	d := "sha256:" + strings.Repeat("ab", 32)
	if !ValidDigest(d) || ValidDigest(d+"x") || ValidDigest(strings.ToUpper(d)) || ValidDigest("sha512:"+strings.Repeat("a", 64)) {
		t.Error("ValidDigest")
	}
	for s, want := range map[string]bool{"docker.io/library/nginx": true, "127.0.0.1:5000/a": true, "localhost/a": true, "[::1]:5000/a": true, "library/nginx": false, "docker.io/": false, "docker.io/A": false} {
		if _, _, ok := SplitSource(s); ok != want {
			t.Errorf("SplitSource(%q) ok = %v", s, ok)
		}
	}
}

func FuzzName(f *testing.F) {
	for _, s := range []string{"library/nginx", "a..b", "a/b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// The checks that give reasons agree with the predicates.
		if (CheckName(s) == nil) != ValidName(s) || (CheckTag(s) == nil) != ValidTag(s) || (CheckDigest(s) == nil) != ValidDigest(s) {
			t.Fatalf("Check* and Valid* disagree on %q", s)
		}
		if ValidName(s) && (strings.Contains(s, "..") || strings.ContainsAny(s, " ;{}$'\"\n\\") || strings.HasPrefix(s, "/")) {
			t.Fatalf("unsafe name %q accepted", s)
		}
		if ValidTag(s) && strings.ContainsAny(s, "/ ;{}$'\"\n\\") {
			t.Fatalf("unsafe tag %q accepted", s)
		}
	})
}

func TestCheck(t *testing.T) {
	good := "sha256:" + strings.Repeat("0", 64)
	for _, s := range []string{"", "a", "library/nginx", "A", "a..b", strings.Repeat("a", 256)} {
		if (CheckName(s) == nil) != ValidName(s) {
			t.Errorf("CheckName(%q) = %v, ValidName says %v", s, CheckName(s), ValidName(s))
		}
	}
	for _, s := range []string{"", "1.0", ".x", "a;b", strings.Repeat("a", 129)} {
		if (CheckTag(s) == nil) != ValidTag(s) {
			t.Errorf("CheckTag(%q) = %v, ValidTag says %v", s, CheckTag(s), ValidTag(s))
		}
	}
	for s, want := range map[string]string{
		good:                                "",
		"md5:abc":                           `algorithm "md5"`,
		"sha256:abc":                        "wrong number of hex digits: 3",
		"sha256:" + strings.Repeat("A", 64): "lower-case",
		"abc":                               "no algorithm",
	} {
		err := CheckDigest(s)
		if (err == nil) != (want == "") || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckDigest(%q) = %v, want %q", s, err, want)
		}
	}
}
