package rpmfile

import (
	"bytes"
	"os"
	"testing"
)

func TestReadFixture(t *testing.T) {
	data, err := os.ReadFile("testdata/gamma.rpm")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if n := p.Header.String(TagName); n != "gamma" {
		t.Fatalf("name %q", n)
	}
	if p.HeaderStart%8 != 0 || p.HeaderEnd <= p.HeaderStart || p.HeaderEnd > int64(len(data)) {
		t.Fatalf("header range %d-%d of %d bytes", p.HeaderStart, p.HeaderEnd, len(data))
	}
	if !bytes.Equal(data[p.HeaderStart:p.HeaderEnd], p.Header.Raw) {
		t.Fatal("Raw is not the bytes of the header range")
	}
	// Truncated anywhere inside the headers: an error, never a panic.
	for _, n := range []int{0, 10, 95, 96, 100, 120, int(p.HeaderStart) - 1, int(p.HeaderEnd) - 1} {
		if _, err := Read(bytes.NewReader(data[:n])); err == nil {
			t.Errorf("truncated at %d: no error", n)
		}
	}
}

// FuzzRead feeds arbitrary bytes to the header reader and every accessor.
func FuzzRead(f *testing.F) {
	if data, err := os.ReadFile("testdata/gamma.rpm"); err == nil {
		f.Add(data[:min(len(data), 8192)])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Read(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, h := range []*Header{p.Signature, p.Header} {
			for tag := range h.entries {
				h.Strings(tag)
				h.Ints(tag)
				h.Bytes(tag)
			}
		}
	})
}
