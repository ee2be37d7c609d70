package repogen

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/metalk8s/buildchain/buildchain/rpm/rpmfile"
)

// FuzzParseHeaders holds the in-place header parser of a run's first read
// to rpmfile.Read, the streaming reader it stands in for: given the whole
// input, both accept the same inputs and find the same headers at the same
// offsets; given a prefix, the in-place parser either declines (the
// streaming reader then takes over) or agrees.
func FuzzParseHeaders(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		slow, err := rpmfile.Read(bytes.NewReader(data))
		for _, b := range [][]byte{data, data[:min(len(data), int(cut))]} {
			fast := parseHeaders(b)
			if fast == nil {
				if len(b) == len(data) && err == nil {
					t.Fatalf("rpmfile.Read reads the headers, parseHeaders declines")
				}
				continue
			}
			if err != nil {
				t.Fatalf("parseHeaders reads what rpmfile.Read refuses: %v", err)
			}
			if fast.HeaderStart != slow.HeaderStart || fast.HeaderEnd != slow.HeaderEnd ||
				!bytes.Equal(fast.Signature.Raw, slow.Signature.Raw) || !bytes.Equal(fast.Header.Raw, slow.Header.Raw) {
				t.Fatalf("parseHeaders: header at %d-%d, rpmfile.Read: %d-%d", fast.HeaderStart, fast.HeaderEnd, slow.HeaderStart, slow.HeaderEnd)
			}
			for _, tag := range []uint32{rpmfile.TagName, rpmfile.TagBaseNames, rpmfile.TagFileModes} {
				a, errA := fast.Header.Strings(tag)
				b, errB := slow.Header.Strings(tag)
				if !reflect.DeepEqual(a, b) || (errA == nil) != (errB == nil) {
					t.Fatalf("tag %d: %q against %q", tag, a, b)
				}
			}
		}
	})
}
