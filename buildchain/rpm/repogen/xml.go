package repogen

import (
	"strconv"
	"unicode/utf8"

	"github.com/metalk8s/buildchain/buildchain/rpm/repomd"
)

// The XML is written by hand rather than through encoding/xml: it is the
// hot loop of a repodata run, and byte-for-byte control of each package's
// fragment is what lets an incremental run splice old fragments back in.

const (
	primaryHead   = `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<metadata xmlns="` + repomd.NSCommon + `" xmlns:rpm="` + repomd.NSRPM + `" packages="`
	primaryTail   = "</metadata>\n"
	filelistsHead = `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<filelists xmlns="` + repomd.NSFilelists + `" packages="`
	filelistsTail = "</filelists>\n"
	otherHead     = `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<otherdata xmlns="` + repomd.NSOther + `" packages="`
	otherTail     = "</otherdata>\n"
)

// esc appends s escaped for XML text or attribute values. Invalid UTF-8 is
// read as Latin-1 (what old packages used), and characters XML 1.0 cannot
// carry are dropped, so one odd changelog cannot make the repo unreadable.
func esc(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		r := make([]rune, 0, len(s))
		for i := 0; i < len(s); i++ {
			r = append(r, rune(s[i]))
		}
		s = string(r)
	}
	for _, c := range s {
		switch {
		case c == '&':
			b = append(b, "&amp;"...)
		case c == '<':
			b = append(b, "&lt;"...)
		case c == '>':
			b = append(b, "&gt;"...)
		case c == '"':
			b = append(b, "&quot;"...)
		case c == '\r':
			b = append(b, "&#13;"...)
		case c < 0x20 && c != '\t' && c != '\n', c == 0xFFFE, c == 0xFFFF, c >= 0xD800 && c < 0xE000:
			// not representable in XML 1.0
		case c < utf8.RuneSelf:
			b = append(b, byte(c))
		default:
			b = utf8.AppendRune(b, c)
		}
	}
	return b
}

func attr(b []byte, name, val string) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, `="`...)
	b = esc(b, val)
	return append(b, '"')
}

func attrInt(b []byte, name string, v int64) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, `="`...)
	b = strconv.AppendInt(b, v, 10)
	return append(b, '"')
}

func elem(b []byte, indent, name, text string) []byte {
	b = append(b, indent...)
	b = append(b, '<')
	b = append(b, name...)
	b = append(b, '>')
	b = esc(b, text)
	b = append(b, "</"...)
	b = append(b, name...)
	return append(b, ">\n"...)
}

func version(b []byte, p *repomd.Package) []byte {
	b = append(b, "  <version"...)
	b = attr(b, "epoch", p.Epoch)
	b = attr(b, "ver", p.Ver)
	b = attr(b, "rel", p.Rel)
	return append(b, "/>\n"...)
}

// AppendPrimary appends p's <package> element of primary.xml.
func AppendPrimary(b []byte, p *repomd.Package) []byte {
	b = append(b, "<package type=\"rpm\">\n"...)
	b = elem(b, "  ", "name", p.Name)
	b = elem(b, "  ", "arch", p.Arch)
	b = version(b, p)
	b = append(b, "  <checksum"...)
	b = attr(b, "type", p.ChecksumType)
	b = append(b, ` pkgid="YES">`...)
	b = append(b, p.Checksum...)
	b = append(b, "</checksum>\n"...)
	b = elem(b, "  ", "summary", p.Summary)
	b = elem(b, "  ", "description", p.Description)
	b = elem(b, "  ", "packager", p.Packager)
	b = elem(b, "  ", "url", p.URL)
	b = append(b, "  <time"...)
	b = attrInt(b, "file", p.TimeFile)
	b = attrInt(b, "build", p.TimeBuild)
	b = append(b, "/>\n  <size"...)
	b = attrInt(b, "package", p.SizePackage)
	b = attrInt(b, "installed", p.SizeInstalled)
	b = attrInt(b, "archive", p.SizeArchive)
	b = append(b, "/>\n  <location"...)
	if p.LocationBase != "" {
		b = attr(b, "xml:base", p.LocationBase)
	}
	b = attr(b, "href", p.Location)
	b = append(b, "/>\n  <format>\n"...)
	b = elem(b, "    ", "rpm:license", p.License)
	b = elem(b, "    ", "rpm:vendor", p.Vendor)
	b = elem(b, "    ", "rpm:group", p.Group)
	b = elem(b, "    ", "rpm:buildhost", p.BuildHost)
	b = elem(b, "    ", "rpm:sourcerpm", p.SourceRPM)
	b = append(b, "    <rpm:header-range"...)
	b = attrInt(b, "start", p.HeaderStart)
	b = attrInt(b, "end", p.HeaderEnd)
	b = append(b, "/>\n"...)
	b = deps(b, "rpm:provides", p.Provides)
	b = deps(b, "rpm:requires", p.Requires)
	b = deps(b, "rpm:conflicts", p.Conflicts)
	b = deps(b, "rpm:obsoletes", p.Obsoletes)
	b = deps(b, "rpm:suggests", p.Suggests)
	b = deps(b, "rpm:enhances", p.Enhances)
	b = deps(b, "rpm:recommends", p.Recommends)
	b = deps(b, "rpm:supplements", p.Supplements)
	for _, f := range p.Files {
		if repomd.IsPrimaryFile(f.Path) {
			b = file(b, f)
		}
	}
	return append(b, "  </format>\n</package>\n"...)
}

func file(b []byte, f repomd.File) []byte {
	b = append(b, "    <file"...)
	if f.Type != "" {
		b = attr(b, "type", f.Type)
	}
	b = append(b, '>')
	b = esc(b, f.Path)
	return append(b, "</file>\n"...)
}

func deps(b []byte, name string, ds []repomd.Dep) []byte {
	if len(ds) == 0 {
		return b
	}
	b = append(b, "    <"...)
	b = append(b, name...)
	b = append(b, ">\n"...)
	for _, d := range ds {
		b = append(b, "      <rpm:entry"...)
		b = attr(b, "name", d.Name)
		if d.Flags != "" {
			b = attr(b, "flags", d.Flags)
		}
		if d.Epoch != "" {
			b = attr(b, "epoch", d.Epoch)
		}
		if d.Ver != "" {
			b = attr(b, "ver", d.Ver)
		}
		if d.Rel != "" {
			b = attr(b, "rel", d.Rel)
		}
		if d.Pre {
			b = append(b, ` pre="1"`...)
		}
		b = append(b, "/>\n"...)
	}
	b = append(b, "    </"...)
	b = append(b, name...)
	return append(b, ">\n"...)
}

func pkgOpen(b []byte, p *repomd.Package) []byte {
	b = append(b, "<package"...)
	b = attr(b, "pkgid", p.Checksum)
	b = attr(b, "name", p.Name)
	b = attr(b, "arch", p.Arch)
	b = append(b, ">\n"...)
	return version(b, p)
}

// AppendFilelists appends p's <package> element of filelists.xml.
func AppendFilelists(b []byte, p *repomd.Package) []byte {
	b = pkgOpen(b, p)
	for _, f := range p.Files {
		b = append(b, "  <file"...)
		if f.Type != "" {
			b = attr(b, "type", f.Type)
		}
		b = append(b, '>')
		b = esc(b, f.Path)
		b = append(b, "</file>\n"...)
	}
	return append(b, "</package>\n"...)
}

// AppendOther appends p's <package> element of other.xml.
func AppendOther(b []byte, p *repomd.Package) []byte {
	b = pkgOpen(b, p)
	for _, c := range p.Changelogs {
		b = append(b, "  <changelog"...)
		b = attr(b, "author", c.Author)
		b = attrInt(b, "date", c.Date)
		b = append(b, '>')
		b = esc(b, c.Text)
		b = append(b, "</changelog>\n"...)
	}
	return append(b, "</package>\n"...)
}
