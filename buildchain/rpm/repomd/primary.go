package repomd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ParsePrimary reads the packages of a primary.xml document and calls fn
// for each. Errors name the line and the package's position.
func ParsePrimary(r io.Reader, fn func(*Package) error) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("primary.xml: %w", err)
	}
	return parsePrimaryBytes(data, fn)
}

func parsePrimaryBytes(data []byte, fn func(*Package) error) error {
	s := &scanner{b: data}
	var t token
	var stack []string // open element local names
	var p *Package
	var deps *[]Dep
	var text []byte
	var fileType string
	n := 0
	seenRoot := false
	intern := map[string]string{}
	str := func(b []byte) string {
		// Dependency names repeat across packages; share their strings.
		if v, ok := intern[string(b)]; ok {
			return v
		}
		v := string(b)
		intern[v] = v
		return v
	}
	num := func(a xattr) (int64, error) {
		if len(a.value) == 0 {
			return 0, nil
		}
		v, err := strconv.ParseInt(string(a.value), 10, 64)
		if err != nil {
			return 0, s.errorf("<%s>: %s=%q is not a number", t.name, a.name, a.value)
		}
		return v, nil
	}
	for {
		if err := s.next(&t); err != nil {
			return fmt.Errorf("primary.xml %w", err)
		}
		switch t.kind {
		case tokEOF:
			if len(stack) > 0 {
				return fmt.Errorf("primary.xml: document ends inside <%s>", stack[len(stack)-1])
			}
			if !seenRoot {
				return errors.New("primary.xml: no <metadata> element")
			}
			return nil
		case tokText:
			if p != nil {
				text = append(text, t.text...)
			} else if len(bytes.TrimSpace(t.text)) > 0 {
				return fmt.Errorf("primary.xml %w", s.errorf("text outside <package>"))
			}
		case tokStart:
			name := string(t.name)
			depth := len(stack)
			switch {
			case depth == 0:
				if name != "metadata" || seenRoot {
					return fmt.Errorf("primary.xml %w", s.errorf("root element is <%s>, want <metadata>", name))
				}
				seenRoot = true
			case depth == 1:
				if name != "package" {
					return fmt.Errorf("primary.xml %w", s.errorf("unexpected element <%s>", name))
				}
				n++
				p = &Package{}
			case p == nil:
				return fmt.Errorf("primary.xml %w", s.errorf("unexpected element <%s>", name))
			}
			text = text[:0]
			if p != nil && depth >= 2 {
				parent := stack[depth-1]
				switch name {
				case "version":
					if depth == 2 {
						for _, a := range t.attrs {
							switch string(a.name) {
							case "epoch":
								p.Epoch = string(a.value)
							case "ver":
								p.Ver = string(a.value)
							case "rel":
								p.Rel = string(a.value)
							}
						}
					}
				case "checksum":
					for _, a := range t.attrs {
						if string(a.name) == "type" {
							p.ChecksumType = string(a.value)
						}
					}
				case "time":
					for _, a := range t.attrs {
						v, err := num(a)
						if err != nil {
							return fmt.Errorf("primary.xml %w", err)
						}
						switch string(a.name) {
						case "file":
							p.TimeFile = v
						case "build":
							p.TimeBuild = v
						}
					}
				case "size":
					for _, a := range t.attrs {
						v, err := num(a)
						if err != nil {
							return fmt.Errorf("primary.xml %w", err)
						}
						switch string(a.name) {
						case "package":
							p.SizePackage = v
						case "installed":
							p.SizeInstalled = v
						case "archive":
							p.SizeArchive = v
						}
					}
				case "location":
					for _, a := range t.attrs {
						switch string(a.name) {
						case "href":
							p.Location = string(a.value)
						case "xml:base":
							p.LocationBase = string(a.value)
						}
					}
				case "header-range":
					for _, a := range t.attrs {
						v, err := num(a)
						if err != nil {
							return fmt.Errorf("primary.xml %w", err)
						}
						switch string(a.name) {
						case "start":
							p.HeaderStart = v
						case "end":
							p.HeaderEnd = v
						}
					}
				case "provides", "requires", "conflicts", "obsoletes", "recommends", "suggests", "supplements", "enhances":
					if parent == "format" {
						deps = depList(p, name)
					}
				case "entry":
					if deps != nil {
						var d Dep
						for _, a := range t.attrs {
							switch string(a.name) {
							case "name":
								d.Name = str(a.value)
							case "flags":
								d.Flags = str(a.value)
							case "epoch":
								d.Epoch = str(a.value)
							case "ver":
								d.Ver = str(a.value)
							case "rel":
								d.Rel = str(a.value)
							case "pre":
								d.Pre = string(a.value) == "1" || string(a.value) == "true"
							}
						}
						*deps = append(*deps, d)
					}
				case "file":
					fileType = ""
					for _, a := range t.attrs {
						if string(a.name) == "type" {
							fileType = string(a.value)
						}
					}
				}
			}
			if t.selfClose {
				if err := endElement(p, stack, name, nil, ""); err != nil {
					return err
				}
				if name == "package" {
					return fmt.Errorf("primary.xml package %d: empty <package/>", n)
				}
				if isDepList(name) {
					deps = nil
				}
				continue
			}
			stack = append(stack, name)
		case tokEnd:
			name := string(t.name)
			if len(stack) == 0 || stack[len(stack)-1] != name {
				want := "nothing"
				if len(stack) > 0 {
					want = "</" + stack[len(stack)-1] + ">"
				}
				return fmt.Errorf("primary.xml %w", s.errorf("</%s> where %s was expected", name, want))
			}
			stack = stack[:len(stack)-1]
			if p == nil {
				continue
			}
			if err := endElement(p, stack, name, text, fileType); err != nil {
				return err
			}
			if isDepList(name) {
				deps = nil
			}
			text = text[:0]
			if name == "package" && len(stack) == 1 {
				if err := checkPackage(n, p); err != nil {
					return err
				}
				if err := fn(p); err != nil {
					return err
				}
				p = nil
			}
		}
	}
}

func isDepList(name string) bool {
	switch name {
	case "provides", "requires", "conflicts", "obsoletes", "recommends", "suggests", "supplements", "enhances":
		return true
	}
	return false
}

func depList(p *Package, name string) *[]Dep {
	switch name {
	case "provides":
		return &p.Provides
	case "requires":
		return &p.Requires
	case "conflicts":
		return &p.Conflicts
	case "obsoletes":
		return &p.Obsoletes
	case "recommends":
		return &p.Recommends
	case "suggests":
		return &p.Suggests
	case "supplements":
		return &p.Supplements
	case "enhances":
		return &p.Enhances
	}
	return nil
}

// endElement stores the text of a closed element; stack holds its parents.
func endElement(p *Package, stack []string, name string, text []byte, fileType string) error {
	if p == nil || len(stack) < 2 {
		return nil
	}
	parent := stack[len(stack)-1]
	switch {
	case parent == "package":
		switch name {
		case "name":
			p.Name = strings.TrimSpace(string(text))
		case "arch":
			p.Arch = strings.TrimSpace(string(text))
		case "checksum":
			p.Checksum = strings.TrimSpace(string(text))
		case "summary":
			p.Summary = string(text)
		case "description":
			p.Description = string(text)
		case "packager":
			p.Packager = string(text)
		case "url":
			p.URL = string(text)
		}
	case parent == "format":
		switch name {
		case "license":
			p.License = string(text)
		case "vendor":
			p.Vendor = string(text)
		case "group":
			p.Group = string(text)
		case "buildhost":
			p.BuildHost = string(text)
		case "sourcerpm":
			p.SourceRPM = string(text)
		case "file":
			p.Files = append(p.Files, File{Path: strings.TrimSpace(string(text)), Type: fileType})
		}
	}
	return nil
}

// ParseFilelists reads filelists.xml and calls fn with each package's
// pkgid and complete file list. Dependency resolution needs it only for
// file requirements outside the primary set of paths.
func ParseFilelists(r io.Reader, fn func(pkgid string, files []File) error) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("filelists.xml: %w", err)
	}
	s := &scanner{b: data}
	var t token
	var pkgid, fileType string
	var files []File
	var text []byte
	depth := 0
	inFile := false
	end := func(name []byte) error {
		depth--
		if depth < 0 {
			return fmt.Errorf("filelists.xml %w", s.errorf("unbalanced </%s>", name))
		}
		switch {
		case depth == 2 && inFile:
			files = append(files, File{Path: strings.TrimSpace(string(text)), Type: fileType})
			inFile = false
		case depth == 1 && string(name) == "package":
			if pkgid == "" {
				return fmt.Errorf("filelists.xml %w", s.errorf("<package> without pkgid"))
			}
			return fn(pkgid, files)
		}
		return nil
	}
	for {
		if err := s.next(&t); err != nil {
			return fmt.Errorf("filelists.xml %w", err)
		}
		switch t.kind {
		case tokEOF:
			if depth != 0 {
				return errors.New("filelists.xml: document ends inside an element")
			}
			return nil
		case tokText:
			if inFile {
				text = append(text, t.text...)
			}
		case tokStart:
			name := string(t.name)
			if depth == 1 && name == "package" {
				pkgid, files = "", nil
				for _, a := range t.attrs {
					if string(a.name) == "pkgid" {
						pkgid = string(a.value)
					}
				}
			}
			if depth == 2 && name == "file" {
				inFile, fileType, text = true, "", text[:0]
				for _, a := range t.attrs {
					if string(a.name) == "type" {
						fileType = string(a.value)
					}
				}
			}
			depth++
			// <x/> is <x></x>: an empty <file/> is a file with an empty
			// path and <package pkgid="..."/> a package without files,
			// as encoding/xml reads them.
			if t.selfClose {
				if err := end(t.name); err != nil {
					return err
				}
			}
		case tokEnd:
			if err := end(t.name); err != nil {
				return err
			}
		}
	}
}
