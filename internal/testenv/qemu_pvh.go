package testenv

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
)

// pvhKernel returns the uncompressed kernel (vmlinux) inside a bzImage,
// cached in dir. qemu boots it directly through its PVH entry point, which
// skips the decompressor: under software emulation, unpacking Debian's
// xz-compressed kernel takes seconds of every boot (about as long as the
// rest of the boot on a loaded machine). It fails when the image is not a
// bzImage with a payload it can unpack, or the kernel has no PVH entry;
// the caller then boots the bzImage.
func pvhKernel(dir, vmlinuz string) (string, error) {
	fi, err := os.Stat(vmlinuz)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(fmt.Appendf(nil, "%s %d %d", vmlinuz, fi.Size(), fi.ModTime().UnixNano()))
	path := filepath.Join(dir, "vmlinux-"+hex.EncodeToString(h[:])[:16])
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	img, err := os.ReadFile(vmlinuz)
	if err != nil {
		return "", err
	}
	payload, err := bzImagePayload(img)
	if err != nil {
		return "", fmt.Errorf("%s: %v", vmlinuz, err)
	}
	vmlinux, err := unpackPayload(payload)
	if err != nil {
		return "", fmt.Errorf("%s: %v", vmlinuz, err)
	}
	if err := hasPVHEntry(vmlinux); err != nil {
		return "", fmt.Errorf("%s: %v", vmlinuz, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".vmlinux-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(vmlinux); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(tmp.Name(), path)
}

// bzImagePayload returns the compressed kernel of a bzImage, as the x86
// boot protocol (2.08 and later) locates it: payload_offset and
// payload_length, counted from the protected-mode code that follows the
// setup sectors.
func bzImagePayload(img []byte) ([]byte, error) {
	if len(img) < 0x250 || string(img[0x202:0x206]) != "HdrS" {
		return nil, errors.New("not a bzImage (no HdrS header)")
	}
	if v := binary.LittleEndian.Uint16(img[0x206:]); v < 0x208 {
		return nil, fmt.Errorf("boot protocol %#x has no payload fields", v)
	}
	setup := int(img[0x1f1])
	if setup == 0 {
		setup = 4
	}
	off := (setup+1)*512 + int(binary.LittleEndian.Uint32(img[0x248:]))
	n := int(binary.LittleEndian.Uint32(img[0x24c:]))
	if off < 0 || n <= 0 || off+n > len(img) {
		return nil, fmt.Errorf("payload at %d+%d is outside the %d-byte image", off, n, len(img))
	}
	return img[off : off+n], nil
}

// unpackPayload decompresses what Debian's kernels use: xz (with the x86
// BCJ filter, which only xz-utils unpacks), zstd or gzip. The kernel's
// build appends the uncompressed size after the stream; each reader
// stops at the end of its stream.
func unpackPayload(p []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(p, []byte("\xfd7zXZ\x00")):
		xz, err := exec.LookPath("xz")
		if err != nil {
			return nil, fmt.Errorf("xz-compressed kernel: %v", err)
		}
		cmd := exec.Command(xz, "-dc", "--single-stream")
		cmd.Stdin = bytes.NewReader(p)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("xz -d: %v: %s", err, stderr.Bytes())
		}
		return out, nil
	case bytes.HasPrefix(p, []byte("\x28\xb5\x2f\xfd")):
		d, err := zstd.NewReader(bytes.NewReader(p), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		return io.ReadAll(d)
	case bytes.HasPrefix(p, []byte("\x1f\x8b")):
		z, err := gzip.NewReader(bytes.NewReader(p))
		if err != nil {
			return nil, err
		}
		z.Multistream(false)
		return io.ReadAll(z)
	}
	return nil, fmt.Errorf("kernel payload compressed in a format not handled here (starts % x)", p[:min(len(p), 6)])
}

// hasPVHEntry checks that vmlinux is an ELF kernel with the Xen note
// XEN_ELFNOTE_PHYS32_ENTRY (18), the entry point qemu boots it through.
func hasPVHEntry(vmlinux []byte) error {
	f, err := elf.NewFile(bytes.NewReader(vmlinux))
	if err != nil {
		return fmt.Errorf("unpacked kernel: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		data, err := io.ReadAll(p.Open())
		if err != nil {
			return err
		}
		for len(data) >= 12 {
			namesz := int(f.ByteOrder.Uint32(data))
			descsz := int(f.ByteOrder.Uint32(data[4:]))
			typ := f.ByteOrder.Uint32(data[8:])
			name := data[12:]
			if namesz > len(name) {
				break
			}
			if typ == 18 && string(bytes.TrimRight(name[:namesz], "\x00")) == "Xen" {
				return nil
			}
			next := 12 + (namesz+3)&^3 + (descsz+3)&^3
			if next > len(data) || next <= 0 {
				break
			}
			data = data[next:]
		}
	}
	return errors.New("unpacked kernel has no PVH entry point (CONFIG_PVH)")
}
