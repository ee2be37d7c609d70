package repomd

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

type filelistsPkg struct {
	ID    string
	Files []File
}

func collectFilelists(data []byte) ([]filelistsPkg, error) {
	var out []filelistsPkg
	err := ParseFilelists(bytes.NewReader(data), func(id string, files []File) error {
		out = append(out, filelistsPkg{id, files})
		return nil
	})
	return out, err
}

// stdFilelists reads filelists.xml with encoding/xml, with the same
// structure rules as ParseFilelists: packages are the children of the
// root, files the children of a package.
func stdFilelists(data []byte) ([]filelistsPkg, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	var out []filelistsPkg
	var cur filelistsPkg
	var text strings.Builder
	var fileType string
	depth, inFile := 0, false
	for {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if depth != 0 {
					return nil, errors.New("document ends inside an element")
				}
				return out, nil
			}
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 1 && t.Name.Local == "package" {
				cur = filelistsPkg{}
				for _, a := range t.Attr {
					if a.Name.Local == "pkgid" {
						cur.ID = a.Value
					}
				}
			}
			if depth == 2 && t.Name.Local == "file" {
				inFile, fileType = true, ""
				text.Reset()
				for _, a := range t.Attr {
					if a.Name.Local == "type" {
						fileType = a.Value
					}
				}
			}
			depth++
		case xml.CharData:
			if inFile {
				text.Write(t)
			}
		case xml.EndElement:
			depth--
			switch {
			case depth == 2 && inFile:
				cur.Files = append(cur.Files, File{Path: strings.TrimSpace(text.String()), Type: fileType})
				inFile = false
			case depth == 1 && t.Name.Local == "package":
				if cur.ID == "" {
					return nil, errors.New("package without pkgid")
				}
				out = append(out, cur)
			}
		}
	}
}

// FuzzParseFilelists holds the filelists reader to encoding/xml: whenever
// both accept a document they must report the same packages and files.
func FuzzParseFilelists(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0" encoding="UTF-8"?>
<filelists xmlns="http://linux.duke.edu/metadata/filelists" packages="2">
<package pkgid="ab12" name="a" arch="x86_64"><version epoch="0" ver="1" rel="1"/><file>/usr/bin/a</file><file type="dir">/etc/a</file><file type="ghost">/var/log/a&amp;b</file></package>
<package pkgid="cd34" name="b" arch="noarch"><version epoch="1" ver="2" rel="3"/></package>
</filelists>`))
	f.Add([]byte(`<filelists><package pkgid="x"><file><![CDATA[/a b]]></file><!-- c --></package></filelists>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ferr := collectFilelists(data)
		ref, rerr := stdFilelists(data)
		if ferr == nil && rerr == nil && !reflect.DeepEqual(fast, ref) {
			t.Fatalf("readers disagree on %q:\nfast %+v\nstd  %+v", data, fast, ref)
		}
	})
}
