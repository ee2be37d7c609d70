package repogen

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"testing"
)

func TestMembersRoundTrip(t *testing.T) {
	var doc bytes.Buffer
	var parts [][]byte
	for i := 0; i < 5; i++ {
		p := []byte(fmt.Sprintf("<package n=%d>%s</package>\n", i, bytes.Repeat([]byte("x"), i*1000)))
		parts = append(parts, p)
		doc.Write(compressMember(p, sha256.Sum256(p)))
	}
	// The standard library reads the chain as one gzip stream.
	zr, err := gzip.NewReader(bytes.NewReader(doc.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(all, bytes.Join(parts, nil)) {
		t.Fatalf("gzip reader: %v", err)
	}
	content, byHash, ok := splitMembers(doc.Bytes(), 0)
	if !ok || !bytes.Equal(content, all) || len(byHash) != 5 {
		t.Fatalf("splitMembers: ok=%v, %d members", ok, len(byHash))
	}
	for _, p := range parts {
		if !bytes.Equal(byHash[sha256.Sum256(p)], compressMember(p, sha256.Sum256(p))) {
			t.Fatal("member bytes are not reproducible")
		}
	}
	// A plain single-member gzip is not taken for ours.
	var plain bytes.Buffer
	zw := gzip.NewWriter(&plain)
	zw.Write(all)
	zw.Close()
	if _, _, ok := splitMembers(plain.Bytes(), 0); ok {
		t.Fatal("plain gzip accepted as members")
	}
	// A corrupted member is refused, not half-read.
	bad := append([]byte(nil), doc.Bytes()...)
	bad[len(bad)-3] ^= 0xff
	if _, _, ok := splitMembers(bad, 0); ok {
		t.Fatal("corrupt member accepted")
	}
}

// TestChunkBoundsStable: inserting one package changes at most the chunk
// it lands in (boundaries depend only on each href).
func TestChunkBoundsStable(t *testing.T) {
	var hrefs []string
	for i := 0; i < 2000; i++ {
		hrefs = append(hrefs, fmt.Sprintf("pkg-%05d-1.x86_64.rpm", i*2))
	}
	chunks := func(h []string) map[string]bool {
		m := map[string]bool{}
		start := 0
		for _, end := range chunkBounds(h) {
			m[fmt.Sprint(h[start:end])] = true
			start = end
		}
		return m
	}
	before := chunks(hrefs)
	if len(before) < 2000/256 {
		t.Fatalf("%d chunks", len(before))
	}
	ins := append(append(append([]string(nil), hrefs[:1001]...), "pkg-02001-1.x86_64.rpm"), hrefs[1001:]...)
	after := chunks(ins)
	changed := 0
	for c := range after {
		if !before[c] {
			changed++
		}
	}
	if changed > 2 {
		t.Fatalf("inserting one package changed %d chunks", changed)
	}
}
