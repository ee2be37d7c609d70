// Package isomanifest owns the manifest of every file on the MetalK8s ISO:
// its path, size and SHA-256. It lives at the ISO root as MANIFEST.sha256,
// in the format `sha256sum -c` reads (GNU coreutils skips lines starting
// with '#'), so a mounted ISO can be checked with nothing but coreutils;
// the size of each file rides on a "#size" comment line just before it,
// so a verifier rejects a truncated or padded file before hashing it:
//
//	# metalk8s-iso-manifest v1
//	#size 12 product.txt
//	9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  product.txt
//
// Paths are relative to the ISO root, slash-separated, sorted bytewise,
// and never hold a newline or a backslash (sha256sum would escape them).
// The manifest does not list itself, nor its detached signature.
package isomanifest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// Name is the manifest's path at the ISO root.
const Name = "MANIFEST.sha256"

// SignatureName is the path of the manifest's detached signature, when
// the build signs it.
const SignatureName = Name + ".asc"

const header = "# metalk8s-iso-manifest v1"

// Entry is one file.
type Entry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lower-case hex
}

// Excluded reports whether p is one of the files the manifest never lists.
func Excluded(p string) bool { return p == Name || p == SignatureName }

func checkPath(p string) error {
	if p == "" || !fs.ValidPath(p) || p == "." {
		return fmt.Errorf("invalid path %q", p)
	}
	if strings.ContainsAny(p, "\n\r\\") {
		return fmt.Errorf("path %q holds a newline or a backslash, which sha256sum would escape", p)
	}
	return nil
}

func checkSum(s string) error {
	if len(s) != 64 {
		return fmt.Errorf("sha256 %q is not 64 hex digits", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("sha256 %q is not lower-case hex", s)
		}
	}
	return nil
}

// Marshal writes entries in the manifest format. Entries must be valid
// and sorted by path with no duplicate; Marshal checks it rather than
// sort, so that a caller's bug cannot go unnoticed.
func Marshal(entries []Entry) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(header + "\n")
	for i, e := range entries {
		if err := checkPath(e.Path); err != nil {
			return nil, err
		}
		if Excluded(e.Path) {
			return nil, fmt.Errorf("%s: the manifest cannot list itself or its signature", e.Path)
		}
		if err := checkSum(e.SHA256); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Path, err)
		}
		if e.Size < 0 {
			return nil, fmt.Errorf("%s: negative size %d", e.Path, e.Size)
		}
		if i > 0 && entries[i-1].Path >= e.Path {
			return nil, fmt.Errorf("%s: entries not sorted or duplicated (after %s)", e.Path, entries[i-1].Path)
		}
		fmt.Fprintf(&b, "#size %d %s\n%s  %s\n", e.Size, e.Path, e.SHA256, e.Path)
	}
	return b.Bytes(), nil
}

// Parse reads a manifest; name is where it came from, for errors, which
// name the line.
func Parse(name string, data []byte) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s:%d: %s", name, line, fmt.Sprintf(format, a...))
	}
	var pending *Entry
	for sc.Scan() {
		line++
		l := sc.Text()
		switch {
		case line == 1:
			if l != header {
				return nil, bad("not a MetalK8s ISO manifest (want %q first)", header)
			}
		case strings.HasPrefix(l, "#size "):
			if pending != nil {
				return nil, bad("size of %s not followed by its checksum", pending.Path)
			}
			n, p, ok := strings.Cut(l[len("#size "):], " ")
			if !ok {
				return nil, bad("want \"#size <bytes> <path>\"")
			}
			size, err := strconv.ParseInt(n, 10, 64)
			if err != nil || size < 0 || strconv.FormatInt(size, 10) != n {
				return nil, bad("bad size %q", n)
			}
			pending = &Entry{Path: p, Size: size}
		case strings.HasPrefix(l, "#"):
			// Comments are for people; sha256sum skips them too.
		default:
			if pending == nil {
				return nil, bad("checksum line without a #size line before it")
			}
			sum, p, ok := strings.Cut(l, "  ")
			if !ok {
				return nil, bad("want \"<sha256>  <path>\"")
			}
			if p != pending.Path {
				return nil, bad("checksum of %q follows the size of %q", p, pending.Path)
			}
			if err := checkSum(sum); err != nil {
				return nil, bad("%s: %v", p, err)
			}
			if err := checkPath(p); err != nil {
				return nil, bad("%v", err)
			}
			if Excluded(p) {
				return nil, bad("%s: the manifest cannot list itself or its signature", p)
			}
			if n := len(out); n > 0 && out[n-1].Path >= p {
				return nil, bad("%s: not sorted or listed twice (after %s)", p, out[n-1].Path)
			}
			pending.SHA256 = sum
			out = append(out, *pending)
			pending = nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	if line == 0 {
		return nil, fmt.Errorf("%s: empty manifest", name)
	}
	if pending != nil {
		return nil, bad("size of %s not followed by its checksum", pending.Path)
	}
	return out, nil
}

// HashFunc returns the SHA-256 (hex) of the file at path p of fsys; Build
// takes one so that a caller can reuse the hash of a file it knows did
// not change.
type HashFunc func(fsys fs.FS, p string, fi fs.FileInfo) (string, error)

// HashFile reads p from fsys and hashes it.
func HashFile(fsys fs.FS, p string, _ fs.FileInfo) (string, error) {
	f, err := fsys.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Build lists every file of fsys but the excluded ones. Symbolic links
// are followed (fs.Open does, as sha256sum does): the ISO stores them as
// Rock Ridge links, and what matters to the installer is what it reads
// through them. A nil hash is HashFile.
func Build(fsys fs.FS, hash HashFunc) ([]Entry, error) {
	if hash == nil {
		hash = HashFile
	}
	var out []Entry
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || Excluded(p) {
			return nil
		}
		fi, err := fs.Stat(fsys, p)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return fmt.Errorf("%s: a link to a directory cannot be listed", p)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: %s is not a regular file", p, fi.Mode().Type())
		}
		if err := checkPath(p); err != nil {
			return err
		}
		sum, err := hash(fsys, p, fi)
		if err != nil {
			return err
		}
		out = append(out, Entry{Path: p, Size: fi.Size(), SHA256: sum})
		return nil
	})
	if err != nil {
		return nil, err
	}
	// WalkDir visits in lexical order per directory, which is not bytewise
	// order of whole paths ("a/b" < "a.b" but "a" dir is walked first).
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Problem is one way fsys differs from the manifest.
type Problem struct {
	Path string
	Msg  string
}

func (p Problem) Error() string { return p.Path + ": " + p.Msg }

// Verify checks fsys against entries file by file: every listed file must
// exist with its size and checksum, and no other file may exist. It
// reports every problem, each naming its path, joined in path order.
func Verify(fsys fs.FS, entries []Entry) error {
	var probs []error
	want := make(map[string]Entry, len(entries))
	for _, e := range entries {
		want[e.Path] = e
	}
	seen := map[string]bool{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			probs = append(probs, Problem{p, err.Error()})
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || Excluded(p) {
			return nil
		}
		e, ok := want[p]
		if !ok {
			probs = append(probs, Problem{p, "not in the manifest"})
			return nil
		}
		seen[p] = true
		fi, err := fs.Stat(fsys, p)
		if err != nil {
			probs = append(probs, Problem{p, err.Error()})
			return nil
		}
		if !fi.Mode().IsRegular() {
			probs = append(probs, Problem{p, fi.Mode().Type().String() + " is not a regular file"})
			return nil
		}
		if fi.Size() != e.Size {
			probs = append(probs, Problem{p, fmt.Sprintf("size %d, manifest says %d", fi.Size(), e.Size)})
			return nil
		}
		sum, err := HashFile(fsys, p, fi)
		if err != nil {
			probs = append(probs, Problem{p, err.Error()})
		} else if sum != e.SHA256 {
			probs = append(probs, Problem{p, fmt.Sprintf("sha256 %s, manifest says %s", sum, e.SHA256)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !seen[e.Path] {
			probs = append(probs, Problem{e.Path, "listed in the manifest but missing"})
		}
	}
	sort.SliceStable(probs, func(i, j int) bool {
		var a, b Problem
		errors.As(probs[i], &a)
		errors.As(probs[j], &b)
		return a.Path < b.Path
	})
	return errors.Join(probs...)
}

// VerifyFS reads the manifest at the root of fsys and verifies fsys
// against it: what the installer runs on a mounted ISO.
func VerifyFS(fsys fs.FS) error {
	data, err := fs.ReadFile(fsys, Name)
	if err != nil {
		return err
	}
	entries, err := Parse(Name, data)
	if err != nil {
		return err
	}
	return Verify(fsys, entries)
}
