package repomd

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Repomd is a parsed repomd.xml.
type Repomd struct {
	Revision string     `xml:"revision"`
	Entries  []DataFile `xml:"data"`
}

// DataFile is one <data> entry of repomd.xml.
type DataFile struct {
	Type         string   `xml:"type,attr"`
	Checksum     Checksum `xml:"checksum"`
	OpenChecksum Checksum `xml:"open-checksum"`
	Location     string   `xml:"-"`
	Loc          struct {
		Href string `xml:"href,attr"`
	} `xml:"location"`
	Timestamp int64 `xml:"timestamp"`
	Size      int64 `xml:"size"`
	OpenSize  int64 `xml:"open-size"`
}

// Checksum is a typed hex digest.
type Checksum struct {
	Type  string `xml:"type,attr"`
	Value string `xml:",chardata"`
}

// Data returns the entry of the given type, or nil.
func (r *Repomd) Data(typ string) *DataFile {
	for i := range r.Entries {
		if r.Entries[i].Type == typ {
			return &r.Entries[i]
		}
	}
	return nil
}

// ParseRepomd reads repomd.xml. It checks what a reader relies on: a
// primary entry with a location and a checksum.
func ParseRepomd(r io.Reader) (*Repomd, error) {
	var md Repomd
	d := xml.NewDecoder(r)
	var root struct {
		XMLName xml.Name
		Repomd
	}
	if err := d.Decode(&root); err != nil {
		return nil, fmt.Errorf("repomd.xml: %w", err)
	}
	if root.XMLName.Local != "repomd" {
		return nil, fmt.Errorf("repomd.xml: root element is <%s>, want <repomd>", root.XMLName.Local)
	}
	md = root.Repomd
	for i := range md.Entries {
		e := &md.Entries[i]
		e.Location = e.Loc.Href
		e.Checksum.Value = strings.TrimSpace(e.Checksum.Value)
		e.OpenChecksum.Value = strings.TrimSpace(e.OpenChecksum.Value)
		if e.Location == "" {
			return nil, fmt.Errorf("repomd.xml: <data type=%q> has no location", e.Type)
		}
		if strings.HasPrefix(e.Location, "/") || strings.Contains("/"+e.Location+"/", "/../") {
			return nil, fmt.Errorf("repomd.xml: <data type=%q> location %q leaves the repository", e.Type, e.Location)
		}
	}
	p := md.Data("primary")
	if p == nil {
		return nil, errors.New("repomd.xml: no primary data")
	}
	if p.Checksum.Value == "" || p.Checksum.Type == "" {
		return nil, errors.New("repomd.xml: primary data has no checksum")
	}
	return &md, nil
}

// Decompress returns a reader of the decompressed content of a metadata
// file, chosen by its name's extension (.gz, .xz, .zst, .bz2 or none) and
// checked against the magic bytes, so a mislabelled file is an error
// rather than garbage.
func Decompress(name string, r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(6)
	want := func(m []byte, what string) error {
		if !bytes.HasPrefix(magic, m) {
			return fmt.Errorf("%s: not %s data (bad magic)", name, what)
		}
		return nil
	}
	switch {
	case strings.HasSuffix(name, ".gz"):
		if err := want([]byte{0x1f, 0x8b}, "gzip"); err != nil {
			return nil, err
		}
		return gzip.NewReader(br)
	case strings.HasSuffix(name, ".xz"):
		if err := want([]byte{0xfd, '7', 'z', 'X', 'Z', 0}, "xz"); err != nil {
			return nil, err
		}
		return xz.NewReader(br)
	case strings.HasSuffix(name, ".zst"):
		if err := want([]byte{0x28, 0xb5, 0x2f, 0xfd}, "zstd"); err != nil {
			return nil, err
		}
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	case strings.HasSuffix(name, ".bz2"):
		if err := want([]byte("BZh"), "bzip2"); err != nil {
			return nil, err
		}
		return bzip2.NewReader(br), nil
	case strings.HasSuffix(name, ".xml"):
		return br, nil
	}
	return nil, fmt.Errorf("%s: unknown compression", name)
}

type xmlPackage struct {
	Type    string `xml:"type,attr"`
	Name    string `xml:"name"`
	Arch    string `xml:"arch"`
	Version struct {
		Epoch string `xml:"epoch,attr"`
		Ver   string `xml:"ver,attr"`
		Rel   string `xml:"rel,attr"`
	} `xml:"version"`
	Checksum struct {
		Type  string `xml:"type,attr"`
		Value string `xml:",chardata"`
	} `xml:"checksum"`
	Summary     string `xml:"summary"`
	Description string `xml:"description"`
	Packager    string `xml:"packager"`
	URL         string `xml:"url"`
	Time        struct {
		File  int64 `xml:"file,attr"`
		Build int64 `xml:"build,attr"`
	} `xml:"time"`
	Size struct {
		Package   int64 `xml:"package,attr"`
		Installed int64 `xml:"installed,attr"`
		Archive   int64 `xml:"archive,attr"`
	} `xml:"size"`
	Location struct {
		Base string `xml:"http://www.w3.org/XML/1998/namespace base,attr"`
		Href string `xml:"href,attr"`
	} `xml:"location"`
	Format struct {
		License     string `xml:"license"`
		Vendor      string `xml:"vendor"`
		Group       string `xml:"group"`
		BuildHost   string `xml:"buildhost"`
		SourceRPM   string `xml:"sourcerpm"`
		HeaderRange struct {
			Start int64 `xml:"start,attr"`
			End   int64 `xml:"end,attr"`
		} `xml:"header-range"`
		Provides    []xmlDep  `xml:"provides>entry"`
		Requires    []xmlDep  `xml:"requires>entry"`
		Conflicts   []xmlDep  `xml:"conflicts>entry"`
		Obsoletes   []xmlDep  `xml:"obsoletes>entry"`
		Recommends  []xmlDep  `xml:"recommends>entry"`
		Suggests    []xmlDep  `xml:"suggests>entry"`
		Supplements []xmlDep  `xml:"supplements>entry"`
		Enhances    []xmlDep  `xml:"enhances>entry"`
		Files       []xmlFile `xml:"file"`
	} `xml:"format"`
}

type xmlDep struct {
	Name  string `xml:"name,attr"`
	Flags string `xml:"flags,attr"`
	Epoch string `xml:"epoch,attr"`
	Ver   string `xml:"ver,attr"`
	Rel   string `xml:"rel,attr"`
	Pre   string `xml:"pre,attr"`
}

type xmlFile struct {
	Type string `xml:"type,attr"`
	Path string `xml:",chardata"`
}

func convDeps(in []xmlDep) []Dep {
	if len(in) == 0 {
		return nil
	}
	out := make([]Dep, len(in))
	for i, d := range in {
		out[i] = Dep{Name: d.Name, Flags: d.Flags, Epoch: d.Epoch, Ver: d.Ver, Rel: d.Rel, Pre: d.Pre == "1" || d.Pre == "true"}
	}
	return out
}

// parsePrimaryStd is the encoding/xml reader of primary.xml. ParsePrimary
// is a faster hand-written one; this one stays as the reference the
// differential fuzz test compares it with.
func parsePrimaryStd(r io.Reader, fn func(*Package) error) error {
	d := xml.NewDecoder(r)
	n := 0
	seenRoot := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if !seenRoot {
				return errors.New("primary.xml: no <metadata> element")
			}
			return nil
		}
		if err != nil {
			line, _ := d.InputPos()
			return fmt.Errorf("primary.xml line %d: %w", line, err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "metadata":
			seenRoot = true
			continue
		case "package":
		default:
			line, _ := d.InputPos()
			return fmt.Errorf("primary.xml line %d: unexpected element <%s>", line, se.Name.Local)
		}
		if !seenRoot {
			return errors.New("primary.xml: <package> outside <metadata>")
		}
		n++
		var x xmlPackage
		if err := d.DecodeElement(&x, &se); err != nil {
			line, _ := d.InputPos()
			return fmt.Errorf("primary.xml line %d (package %d): %w", line, n, err)
		}
		p := &Package{
			Name: strings.TrimSpace(x.Name), Arch: strings.TrimSpace(x.Arch),
			Epoch: x.Version.Epoch, Ver: x.Version.Ver, Rel: x.Version.Rel,
			ChecksumType: x.Checksum.Type, Checksum: strings.TrimSpace(x.Checksum.Value),
			Summary: x.Summary, Description: x.Description, Packager: x.Packager, URL: x.URL,
			TimeFile: x.Time.File, TimeBuild: x.Time.Build,
			SizePackage: x.Size.Package, SizeInstalled: x.Size.Installed, SizeArchive: x.Size.Archive,
			Location: x.Location.Href, LocationBase: x.Location.Base,
			License: x.Format.License, Vendor: x.Format.Vendor, Group: x.Format.Group,
			BuildHost: x.Format.BuildHost, SourceRPM: x.Format.SourceRPM,
			HeaderStart: x.Format.HeaderRange.Start, HeaderEnd: x.Format.HeaderRange.End,
			Provides: convDeps(x.Format.Provides), Requires: convDeps(x.Format.Requires),
			Conflicts: convDeps(x.Format.Conflicts), Obsoletes: convDeps(x.Format.Obsoletes),
			Recommends: convDeps(x.Format.Recommends), Suggests: convDeps(x.Format.Suggests),
			Supplements: convDeps(x.Format.Supplements), Enhances: convDeps(x.Format.Enhances),
		}
		for _, f := range x.Format.Files {
			p.Files = append(p.Files, File{Path: strings.TrimSpace(f.Path), Type: f.Type})
		}
		if err := checkPackage(n, p); err != nil {
			return err
		}
		if err := fn(p); err != nil {
			return err
		}
	}
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return s != ""
}

func checkPackage(n int, p *Package) error {
	if p.Name == "" || p.Ver == "" || p.Arch == "" || p.Location == "" {
		return fmt.Errorf("primary.xml package %d (%q): missing name, version, arch or location", n, p.Name)
	}
	if p.Checksum == "" || p.ChecksumType == "" {
		return fmt.Errorf("primary.xml package %d (%s): no checksum", n, p.NEVRA())
	}
	if !isHex(p.Checksum) {
		return fmt.Errorf("primary.xml package %d (%s): checksum %q is not hex", n, p.NEVRA(), p.Checksum)
	}
	return nil
}
