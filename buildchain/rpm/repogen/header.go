package repogen

import (
	"fmt"
	"strconv"

	"github.com/metalk8s/buildchain/buildchain/rpm/evr"
	"github.com/metalk8s/buildchain/buildchain/rpm/repomd"
	"github.com/metalk8s/buildchain/buildchain/rpm/rpmfile"
)

// Dependency flag bits beyond the comparison (rpmds.h).
const (
	sensePrereq     = 1 << 6
	senseScriptPre  = 1 << 9
	senseScriptPost = 1 << 10
	fileGhost       = 1 << 6
	modeTypeMask    = 0o170000
	modeDir         = 0o040000
	changelogLimit  = 10 // createrepo_c's default --changelog-limit
)

// FromHeader builds the repodata entry of an RPM from its parsed headers.
// The caller fills Checksum, Location, SizePackage and TimeFile, which come
// from the file rather than the header.
func FromHeader(rp *rpmfile.Package) (*repomd.Package, error) {
	h, sig := rp.Header, rp.Signature
	p := &repomd.Package{
		Name:        h.String(rpmfile.TagName),
		Ver:         h.String(rpmfile.TagVersion),
		Rel:         h.String(rpmfile.TagRelease),
		Arch:        h.String(rpmfile.TagArch),
		Summary:     h.String(rpmfile.TagSummary),
		Description: h.String(rpmfile.TagDescription),
		Packager:    h.String(rpmfile.TagPackager),
		URL:         h.String(rpmfile.TagURL),
		License:     h.String(rpmfile.TagLicense),
		Vendor:      h.String(rpmfile.TagVendor),
		Group:       h.String(rpmfile.TagGroup),
		BuildHost:   h.String(rpmfile.TagBuildHost),
		SourceRPM:   h.String(rpmfile.TagSourceRPM),
		HeaderStart: rp.HeaderStart,
		HeaderEnd:   rp.HeaderEnd,
		Epoch:       "0",
	}
	if p.Name == "" || p.Ver == "" || p.Rel == "" {
		return nil, fmt.Errorf("header has no name, version or release")
	}
	if h.Has(rpmfile.TagSourcePackage) || p.SourceRPM == "" && p.Arch == "" {
		return nil, fmt.Errorf("%s is a source package", p.Name)
	}
	if e, ok := h.Int(rpmfile.TagEpoch); ok {
		p.Epoch = strconv.FormatInt(e, 10)
	}
	p.TimeBuild, _ = h.Int(rpmfile.TagBuildTime)
	if v, ok := h.Int(rpmfile.TagLongSize); ok {
		p.SizeInstalled = v
	} else {
		p.SizeInstalled, _ = h.Int(rpmfile.TagSize)
	}
	// rpm reports the payload size from the signature header.
	if v, ok := sig.Int(271); ok {
		p.SizeArchive = v
	} else if v, ok := sig.Int(rpmfile.SigPayloadSize); ok {
		p.SizeArchive = v
	} else {
		p.SizeArchive, _ = h.Int(rpmfile.TagArchiveSize)
	}

	files, err := fileList(h)
	if err != nil {
		return nil, err
	}
	p.Files = files
	// Requires identical to one of the package's own provides (rpm adds
	// one per %config file) are left out, as createrepo_c does.
	provided := map[string]bool{}
	if names, err := h.Strings(rpmfile.TagProvideName); err == nil {
		flags, _ := h.Ints(rpmfile.TagProvideFlags)
		vers, _ := h.Strings(rpmfile.TagProvideVersion)
		for i, n := range names {
			if i < len(flags) && i < len(vers) {
				provided[depKey(n, flags[i], vers[i])] = true
			}
		}
	}
	own := make(map[string]bool, len(files))
	for _, f := range files {
		own[f.Path] = true
	}

	type depTags struct {
		dst              *[]repomd.Dep
		name, flags, ver uint32
		isRequires       bool
	}
	for _, d := range []depTags{
		{&p.Provides, rpmfile.TagProvideName, rpmfile.TagProvideFlags, rpmfile.TagProvideVersion, false},
		{&p.Requires, rpmfile.TagRequireName, rpmfile.TagRequireFlags, rpmfile.TagRequireVersion, true},
		{&p.Conflicts, rpmfile.TagConflictName, rpmfile.TagConflictFlags, rpmfile.TagConflictVersion, false},
		{&p.Obsoletes, rpmfile.TagObsoleteName, rpmfile.TagObsoleteFlags, rpmfile.TagObsoleteVersion, false},
		{&p.Suggests, rpmfile.TagSuggestName, rpmfile.TagSuggestFlags, rpmfile.TagSuggestVersion, false},
		{&p.Enhances, rpmfile.TagEnhanceName, rpmfile.TagEnhanceFlags, rpmfile.TagEnhanceVersion, false},
		{&p.Recommends, rpmfile.TagRecommendName, rpmfile.TagRecommendFlags, rpmfile.TagRecommendVer, false},
		{&p.Supplements, rpmfile.TagSupplementName, rpmfile.TagSupplementFlags, rpmfile.TagSupplementVer, false},
	} {
		names, err := h.Strings(d.name)
		if err != nil {
			return nil, err
		}
		flags, err := h.Ints(d.flags)
		if err != nil {
			return nil, err
		}
		vers, err := h.Strings(d.ver)
		if err != nil {
			return nil, err
		}
		if len(flags) < len(names) || len(vers) < len(names) {
			return nil, fmt.Errorf("dependency tag %d: %d names but %d flags and %d versions", d.name, len(names), len(flags), len(vers))
		}
		seen := map[repomd.Dep]bool{}
		for i, n := range names {
			dep := repomd.Dep{Name: n, Flags: evr.Flags(flags[i]).String()}
			if d.isRequires {
				// Like createrepo_c: rpmlib() features are rpm's own business,
				// and a package needs no help finding its own primary files.
				if len(n) > 7 && n[:7] == "rpmlib(" {
					continue
				}
				if n != "" && n[0] == '/' && own[n] && repomd.IsPrimaryFile(n) {
					continue
				}
				if provided[depKey(n, flags[i], vers[i])] {
					continue
				}
				dep.Pre = flags[i]&(sensePrereq|senseScriptPre|senseScriptPost) != 0
			}
			if vers[i] != "" {
				e := evr.Parse(vers[i])
				dep.Epoch, dep.Ver, dep.Rel = e.Epoch, e.Version, e.Release
				if dep.Epoch == "" {
					dep.Epoch = "0"
				}
			}
			if seen[dep] {
				continue
			}
			seen[dep] = true
			*d.dst = append(*d.dst, dep)
		}
	}

	names, err := h.Strings(rpmfile.TagChangelogName)
	if err != nil {
		return nil, err
	}
	times, err := h.Ints(rpmfile.TagChangelogTime)
	if err != nil {
		return nil, err
	}
	texts, err := h.Strings(rpmfile.TagChangelogText)
	if err != nil {
		return nil, err
	}
	n := min(len(names), len(times), len(texts), changelogLimit)
	// The header holds the newest entry first; createrepo writes the
	// newest changelogLimit entries oldest first.
	for i := n - 1; i >= 0; i-- {
		p.Changelogs = append(p.Changelogs, repomd.Changelog{Author: names[i], Date: times[i], Text: texts[i]})
	}
	if err := controlError(p); err != nil {
		return nil, err
	}
	return p, nil
}

func fileList(h *rpmfile.Header) ([]repomd.File, error) {
	base, err := h.Strings(rpmfile.TagBaseNames)
	if err != nil {
		return nil, err
	}
	var paths []string
	if len(base) > 0 {
		dirs, err := h.Strings(rpmfile.TagDirNames)
		if err != nil {
			return nil, err
		}
		idx, err := h.Ints(rpmfile.TagDirIndexes)
		if err != nil {
			return nil, err
		}
		if len(idx) != len(base) {
			return nil, fmt.Errorf("%d file names but %d directory indexes", len(base), len(idx))
		}
		paths = make([]string, len(base))
		for i, b := range base {
			if idx[i] < 0 || idx[i] >= int64(len(dirs)) {
				return nil, fmt.Errorf("file %q has directory index %d of %d", b, idx[i], len(dirs))
			}
			paths[i] = dirs[idx[i]] + b
		}
	} else {
		if paths, err = h.Strings(rpmfile.TagOldFilenames); err != nil {
			return nil, err
		}
	}
	modes, err := h.Ints(rpmfile.TagFileModes)
	if err != nil {
		return nil, err
	}
	flags, err := h.Ints(rpmfile.TagFileFlags)
	if err != nil {
		return nil, err
	}
	files := make([]repomd.File, len(paths))
	for i, fp := range paths {
		files[i].Path = fp
		switch {
		case i < len(modes) && modes[i]&modeTypeMask == modeDir:
			files[i].Type = "dir"
		case i < len(flags) && flags[i]&fileGhost != 0:
			files[i].Type = "ghost"
		}
	}
	return files, nil
}

func depKey(name string, flags int64, ver string) string {
	return name + "\x00" + evr.Flags(flags).String() + "\x00" + ver
}

// controlAt returns the index of the first control character of s that
// createrepo_c refuses (below 0x20, other than tab, LF and CR), or -1.
func controlAt(s string) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return i
		}
	}
	return -1
}

// controlError names the first string of p holding a control character
// createrepo_c refuses, or returns nil. createrepo_c refuses such a package
// (cr_Package_contains_forbidden_control_chars), and XML 1.0 cannot carry
// the characters: dropping them would publish another name, so a file
// /usr/bin/py\x01thon would provide /usr/bin/python. The fields checked
// are createrepo_c's, descriptions and changelogs included.
func controlError(p *repomd.Package) error {
	bad := func(field, s string) error {
		i := controlAt(s)
		if i < 0 {
			return nil
		}
		shown := s
		if len(s) > 120 {
			// A description or changelog: show where, not all.
			shown = s[max(i-60, 0):min(i+60, len(s))]
		}
		return fmt.Errorf("package %s: %s %q holds the control character %#02x; createrepo_c refuses such a package too",
			nevra(p), field, shown, s[i])
	}
	for _, f := range [...]struct{ name, val string }{
		{"name", p.Name}, {"arch", p.Arch}, {"epoch", p.Epoch}, {"version", p.Ver}, {"release", p.Rel},
		{"summary", p.Summary}, {"description", p.Description}, {"URL", p.URL}, {"license", p.License},
		{"vendor", p.Vendor}, {"group", p.Group}, {"build host", p.BuildHost}, {"source RPM", p.SourceRPM},
		{"packager", p.Packager}, {"location", p.Location}, {"location base", p.LocationBase},
	} {
		if err := bad(f.name, f.val); err != nil {
			return err
		}
	}
	for _, ds := range [...]struct {
		kind string
		deps []repomd.Dep
	}{
		{"provide", p.Provides}, {"require", p.Requires}, {"conflict", p.Conflicts}, {"obsolete", p.Obsoletes},
		{"suggest", p.Suggests}, {"enhance", p.Enhances}, {"recommend", p.Recommends}, {"supplement", p.Supplements},
	} {
		for _, d := range ds.deps {
			if err := bad(ds.kind, d.Name); err != nil {
				return err
			}
			for _, v := range [...]string{d.Epoch, d.Ver, d.Rel} {
				if controlAt(v) >= 0 {
					return bad(ds.kind+" "+strconv.Quote(d.Name)+" version", v)
				}
			}
		}
	}
	for _, f := range p.Files {
		if err := bad("file", f.Path); err != nil {
			return err
		}
	}
	for _, c := range p.Changelogs {
		if err := bad("changelog author", c.Author); err != nil {
			return err
		}
		if controlAt(c.Text) >= 0 {
			return bad("changelog text of "+strconv.Quote(c.Author), c.Text)
		}
	}
	return nil
}

func nevra(p *repomd.Package) string {
	return p.Name + "-" + p.Epoch + ":" + p.Ver + "-" + p.Rel + "." + p.Arch
}
