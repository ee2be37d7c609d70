package testenv

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
)

// FuzzKernelImage: the bzImage header and ELF note readers take any bytes
// without panicking, and a payload they return lies inside the image.
func FuzzKernelImage(f *testing.F) {
	f.Add(make([]byte, 0x250))
	f.Fuzz(func(t *testing.T, data []byte) {
		if p, err := bzImagePayload(data); err == nil && (len(p) == 0 || !bytes.Contains(data, p)) {
			t.Fatalf("payload of %d bytes is not a slice of the image", len(p))
		}
		_ = hasPVHEntry(data)
	})
}

// TestKernelImageSeeds: the seeds are what they claim, so the fuzzer
// starts from inputs that reach past the first checks.
func TestKernelImageSeeds(t *testing.T) {
	h := make([]byte, 1024+16)
	h[0x1f1] = 1
	copy(h[0x202:], "HdrS")
	h[0x206], h[0x207] = 0x0f, 0x02
	h[0x24c] = 6
	copy(h[1024:], "\xfd7zXZ\x00")
	if p, err := bzImagePayload(h); err != nil || string(p) != "\xfd7zXZ\x00" {
		t.Errorf("bzImagePayload: %q, %v", p, err)
	}
	seed, err := os.ReadFile("testdata/fuzz/FuzzKernelImage/elf-pvh-note")
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSuffix(strings.Split(string(seed), "\n")[1], ")")
	elfData, err := strconv.Unquote(strings.TrimPrefix(line, "[]byte("))
	if err != nil {
		t.Fatal(err)
	}
	if err := hasPVHEntry([]byte(elfData)); err != nil {
		t.Errorf("the ELF seed: %v", err)
	}
	if err := hasPVHEntry([]byte(strings.Replace(elfData, "Xen", "Xem", 1))); err == nil {
		t.Error("a note named Xem passed for Xen's")
	}
}
