package repomd

import (
	"bytes"
	"compress/gzip"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

func readPrimaryFixture(t testing.TB) []byte {
	data, err := os.ReadFile("testdata/primary.xml")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func collect(parse func([]byte, func(*Package) error) error, data []byte) ([]*Package, error) {
	var ps []*Package
	err := parse(data, func(p *Package) error { ps = append(ps, p); return nil })
	return ps, err
}

func std(data []byte, fn func(*Package) error) error {
	return parsePrimaryStd(bytes.NewReader(data), fn)
}

func TestParsePrimaryFixture(t *testing.T) {
	data := readPrimaryFixture(t)
	fast, err := collect(parsePrimaryBytes, data)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := collect(std, data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fast, ref) {
		t.Fatalf("fast and encoding/xml readers differ:\n%+v\n%+v", fast[0], ref[0])
	}
	if len(fast) != 2 || fast[0].Name != "alpha" || len(fast[0].Requires) == 0 || fast[0].Summary != `Alpha <tool> & friends` {
		t.Fatalf("unexpected packages: %+v", fast[0])
	}
}

func TestDecompress(t *testing.T) {
	data := readPrimaryFixture(t)
	var gz, x, z bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(data)
	gw.Close()
	xw, _ := xz.NewWriter(&x)
	xw.Write(data)
	xw.Close()
	zw, _ := zstd.NewWriter(&z)
	zw.Write(data)
	zw.Close()
	for name, b := range map[string][]byte{"p.xml.gz": gz.Bytes(), "p.xml.xz": x.Bytes(), "p.xml.zst": z.Bytes(), "p.xml": data} {
		r, err := Decompress(name, bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ps, err := collectReader(r)
		if err != nil || len(ps) != 2 {
			t.Fatalf("%s: %d packages, %v", name, len(ps), err)
		}
	}
	if _, err := Decompress("p.xml.xz", bytes.NewReader(gz.Bytes())); err == nil || !strings.Contains(err.Error(), "not xz") {
		t.Fatalf("mislabelled file: %v", err)
	}
}

func collectReader(r interface{ Read([]byte) (int, error) }) ([]*Package, error) {
	var ps []*Package
	err := ParsePrimary(r, func(p *Package) error { ps = append(ps, p); return nil })
	return ps, err
}

func TestMalformed(t *testing.T) {
	for name, doc := range map[string]string{
		"unclosed":     `<metadata><package type="rpm"><name>a</name>`,
		"wrong root":   `<repomd></repomd>`,
		"no checksum":  `<metadata><package><name>a</name><arch>noarch</arch><version ver="1" rel="1"/><location href="a.rpm"/></package></metadata>`,
		"bad entity":   `<metadata><package><name>a&bogus;</name></package></metadata>`,
		"bad number":   `<metadata><package><name>a</name><size package="12x"/></package></metadata>`,
		"mismatch":     `<metadata><package><name>a</arch></package></metadata>`,
		"empty":        ``,
		"hex checksum": `<metadata><package><name>a</name><arch>noarch</arch><version ver="1" rel="1"/><checksum type="sha256">zz</checksum><location href="a.rpm"/></package></metadata>`,
	} {
		if _, err := collect(parsePrimaryBytes, []byte(doc)); err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.Contains(err.Error(), "primary.xml") {
			t.Errorf("%s: error %q does not say which document", name, err)
		}
	}
	_, err := collect(parsePrimaryBytes, []byte("<metadata>\n<package>\n<name>a</nme>\n</package></metadata>"))
	if err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("error does not name the line: %v", err)
	}
	for name, doc := range map[string]string{
		"no primary":  `<repomd><data type="other"><location href="repodata/o.xml.gz"/></data></repomd>`,
		"escape":      `<repomd><data type="primary"><checksum type="sha256">ab</checksum><location href="../../etc/passwd"/></data></repomd>`,
		"not xml":     `{"json": true}`,
		"wrong root":  `<metadata/>`,
		"no checksum": `<repomd><data type="primary"><location href="repodata/p.xml.gz"/></data></repomd>`,
	} {
		if _, err := ParseRepomd(strings.NewReader(doc)); err == nil {
			t.Errorf("repomd %s: no error", name)
		}
	}
}

// FuzzParsePrimary holds the fast reader to encoding/xml: whenever both
// accept a document they must agree on every package, and neither may
// panic.
func FuzzParsePrimary(f *testing.F) {
	f.Add(readPrimaryFixture(f))
	f.Add([]byte(`<metadata><package><name>a</name><arch>noarch</arch><version epoch="0" ver="1" rel="1"/><checksum type="sha256">ab</checksum><location href="a.rpm"/><format><rpm:requires><rpm:entry name="b" flags="GE" ver="1"/></rpm:requires><file type="dir">/etc/x</file></format></package></metadata>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ferr := collect(parsePrimaryBytes, data)
		ref, rerr := collect(std, data)
		if ferr == nil && rerr == nil && !reflect.DeepEqual(fast, ref) {
			t.Fatalf("readers disagree on %q:\nfast %+v\nstd  %+v", data, fast, ref)
		}
	})
}

func FuzzParseRepomd(f *testing.F) {
	f.Add([]byte(`<repomd xmlns="http://linux.duke.edu/metadata/repo"><revision>1</revision><data type="primary"><checksum type="sha256">ab</checksum><location href="repodata/p.xml.gz"/><size>1</size></data></repomd>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		md, err := ParseRepomd(bytes.NewReader(data))
		if err == nil && md.Data("primary") == nil {
			t.Fatal("accepted a repomd without primary")
		}
	})
}
