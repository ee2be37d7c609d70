package repogen

import (
	"reflect"
	"strings"
	"testing"
)

// TestIndexRoundTrip: decodeIndex reads back exactly what encode wrote,
// whatever the hrefs hold, and refuses any truncation of it.
func TestIndexRoundTrip(t *testing.T) {
	sum := strings.Repeat("0123456789abcdef", 4)
	ix := index{
		Version: indexVersion,
		Repomd:  sum,
		Docs:    map[string]indexDoc{},
		Packages: []indexPackage{
			{Href: "a b.rpm", Pkgid: sum, Size: 1, Time: -5},
			{Href: "d/\"q\"\n\x00\xff é.rpm", Pkgid: sum, Size: 1 << 40, Time: 1700000000},
		},
	}
	for i, typ := range docTypes {
		ix.Docs[typ] = indexDoc{Checksum: sum, Parts: []indexPart{
			{Sum: sum, Off: 0, Len: 50, State: []byte("state\x00" + typ)},
			{Off: 50, Len: 0, State: []byte{byte(i)}},
			{Sum: sum, Off: 50, Len: 60, State: []byte{}},
		}}
	}
	data := ix.encode()
	got, ok := decodeIndex(data)
	if !ok {
		t.Fatalf("decodeIndex refuses\n%s", data)
	}
	// An empty state decodes as empty, not nil.
	for _, typ := range docTypes {
		got.Docs[typ].Parts[2].State = []byte{}
	}
	if !reflect.DeepEqual(got, ix) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, ix)
	}
	for n := 0; n < len(data); n++ {
		if _, ok := decodeIndex(data[:n]); ok {
			t.Fatalf("decodeIndex accepts the first %d of %d bytes", n, len(data))
		}
	}
	if _, ok := decodeIndex(append(data, '\n')); ok {
		t.Fatal("decodeIndex accepts trailing data")
	}
}

// FuzzDecodeIndex: the index reader never panics, and what it accepts is
// exactly what encode writes for the index it read (one spelling per
// index, so nothing unexpected passes as an index).
func FuzzDecodeIndex(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, ok := decodeIndex(data)
		if !ok {
			return
		}
		if again := ix.encode(); string(again) != string(data) {
			t.Fatalf("decodeIndex accepts\n%q\nwhich encodes as\n%q", data, again)
		}
	})
}
