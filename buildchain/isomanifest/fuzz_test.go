package isomanifest

import (
	"strings"
	"testing"
)

// FuzzParse feeds manifests, which the installer reads from a medium it
// does not trust yet, to Parse. Seeds are below and in
// testdata/fuzz/FuzzParse. Run with:
//
//	go test ./buildchain/isomanifest -run '^$' -fuzz '^FuzzParse$' -fuzztime 2m
func FuzzParse(f *testing.F) {
	sum := strings.Repeat("0", 64)
	for _, s := range []string{
		header + "\n",
		header + "\n#size 3 a\n" + sum + "  a\n#size 0 b/c\n" + sum + "  b/c\n",
		header + "\n# comment\n#size 1 x y\n" + sum + "  x y\n",
		header + "\n#size 1 x\n" + sum + " *x\n",
		header + "\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := Parse("fuzz", data)
		if err != nil {
			return
		}
		out, err := Marshal(entries)
		if err != nil {
			t.Fatalf("parsed entries do not marshal: %v", err)
		}
		back, err := Parse("again", out)
		if err != nil {
			t.Fatalf("marshalled manifest does not parse: %v\n%s", err, out)
		}
		if len(back) != len(entries) {
			t.Fatalf("round trip: %d entries, want %d", len(back), len(entries))
		}
		for i := range back {
			if back[i] != entries[i] {
				t.Fatalf("round trip: %+v, want %+v", back[i], entries[i])
			}
		}
	})
}
