package mount

import (
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkFUSERead reads a 64 MB file through the go-fuse server (a
// fresh mount each time, so the kernel's cache of the FUSE file is cold;
// the image file itself is in the page cache) against reading the image.
//
//	go test -run XXX -bench FUSERead -benchtime 5x ./installer/mount
func BenchmarkFUSERead(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("mounting needs root")
	}
	src := b.TempDir()
	buf := make([]byte, 64<<20)
	rand.Read(buf)
	os.WriteFile(filepath.Join(src, "big.rpm"), buf, 0o644)
	isoPath := filepath.Join(b.TempDir(), "b.iso")
	writeISOTB(b, src, isoPath)
	b.Run("fuse", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for i := 0; i < b.N; i++ {
			mnt := b.TempDir()
			srv, err := MountFUSE(isoPath, mnt)
			if err != nil {
				b.Fatal(err)
			}
			f, _ := os.Open(filepath.Join(mnt, "big.rpm"))
			n, err := io.Copy(io.Discard, f)
			f.Close()
			srv.Unmount()
			if err != nil || n != int64(len(buf)) {
				b.Fatalf("read %d: %v", n, err)
			}
		}
	})
	b.Run("image-file", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for i := 0; i < b.N; i++ {
			f, _ := os.Open(isoPath)
			io.Copy(io.Discard, io.LimitReader(f, int64(len(buf))))
			f.Close()
		}
	})
}
