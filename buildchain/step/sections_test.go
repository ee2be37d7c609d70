package step

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestReportSections(t *testing.T) {
	dir := t.TempDir()
	e := New(dir, nil)
	p := filepath.Join(dir, "build-report.json")
	if err := e.WriteReport(p); err != nil {
		t.Fatal(err)
	}
	plain, _ := os.ReadFile(p)
	if string(plain) != "{\n  \"steps\": null\n}\n" {
		t.Fatalf("a report without sections changed: %q", plain)
	}
	e.SetSection("sizes", map[string]int{"iso": 3})
	if err := e.WriteReport(p); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Sizes map[string]int `json:"sizes"`
		Steps []Result       `json:"steps"`
	}
	data, _ := os.ReadFile(p)
	if err := json.Unmarshal(data, &doc); err != nil || doc.Sizes["iso"] != 3 {
		t.Fatalf("%v %s", err, data)
	}
	e.SetSection("sizes", nil)
	e.WriteReport(p)
	if again, _ := os.ReadFile(p); string(again) != string(plain) {
		t.Fatalf("removed section left: %s", again)
	}
}
