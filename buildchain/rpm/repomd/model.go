// Package repomd is the model of yum repository metadata (repomd.xml and
// the primary, filelists and other documents) and reads it from upstream
// repositories: plain, gzip, xz or zstd compressed.
//
// The XML vocabulary is createrepo's: namespace
// http://linux.duke.edu/metadata/common for primary, .../filelists,
// .../other and .../repo for repomd.xml, with rpm: elements from
// http://linux.duke.edu/metadata/rpm.
package repomd

import (
	"strings"

	"github.com/metalk8s/buildchain/buildchain/rpm/evr"
)

// Namespaces of the createrepo XML documents.
const (
	NSCommon    = "http://linux.duke.edu/metadata/common"
	NSRPM       = "http://linux.duke.edu/metadata/rpm"
	NSFilelists = "http://linux.duke.edu/metadata/filelists"
	NSOther     = "http://linux.duke.edu/metadata/other"
	NSRepo      = "http://linux.duke.edu/metadata/repo"
)

// Dep is one rpm:entry of provides, requires, conflicts, obsoletes or a
// weak dependency. Flags is the createrepo spelling (EQ, LT, GT, LE, GE) or
// empty for an unversioned dependency.
type Dep struct {
	Name  string `xml:"name,attr"`
	Flags string `xml:"flags,attr,omitempty"`
	Epoch string `xml:"epoch,attr,omitempty"`
	Ver   string `xml:"ver,attr,omitempty"`
	Rel   string `xml:"rel,attr,omitempty"`
	Pre   bool   `xml:"pre,attr,omitempty"`
}

// EVR returns the version part of d.
func (d Dep) EVR() evr.EVR { return evr.EVR{Epoch: d.Epoch, Version: d.Ver, Release: d.Rel} }

// String formats d as rpm prints it: "name >= 1:2-3".
func (d Dep) String() string {
	f, _ := evr.ParseFlags(d.Flags)
	if f == 0 {
		return d.Name
	}
	return d.Name + " " + f.Op() + " " + d.EVR().String()
}

// File is one file of a package; Type is "", "dir" or "ghost".
type File struct {
	Path string
	Type string
}

// Changelog is one changelog entry.
type Changelog struct {
	Author string
	Date   int64
	Text   string
}

// Package is everything createrepo records about one RPM.
type Package struct {
	Name, Arch           string
	Epoch, Ver, Rel      string
	ChecksumType         string // "sha256"
	Checksum             string // hex; also the pkgid
	Summary, Description string
	Packager, URL        string
	TimeFile, TimeBuild  int64
	SizePackage          int64
	SizeInstalled        int64
	SizeArchive          int64
	Location             string // href relative to the repository root
	LocationBase         string // xml:base, when the package lives elsewhere
	License, Vendor      string
	Group, BuildHost     string
	SourceRPM            string
	HeaderStart          int64
	HeaderEnd            int64

	Provides, Requires, Conflicts, Obsoletes    []Dep
	Recommends, Suggests, Supplements, Enhances []Dep
	Files                                       []File // all files (filelists); primary lists only IsPrimaryFile ones
	Changelogs                                  []Changelog
}

// EVR returns the package's epoch, version and release.
func (p *Package) EVR() evr.EVR { return evr.EVR{Epoch: p.Epoch, Version: p.Ver, Release: p.Rel} }

// NEVRA is name-[epoch:]version-release.arch, the way dnf prints packages.
func (p *Package) NEVRA() string { return p.Name + "-" + p.EVR().String() + "." + p.Arch }

// IsPrimaryFile reports whether createrepo lists path in primary.xml as
// well as in filelists.xml: files under /etc, any bin/ directory and
// /usr/lib/sendmail. Clients resolve file requires on these without
// downloading filelists.
func IsPrimaryFile(path string) bool {
	return strings.HasPrefix(path, "/etc/") || strings.Contains(path, "bin/") || path == "/usr/lib/sendmail"
}
