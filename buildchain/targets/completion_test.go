package targets

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/internal/testenv"
)

// The bash script completes targets and step names, colons included, for
// both `mage` and `go run mage.go`; the zsh one parses.
func TestCompletionScripts(t *testing.T) {
	bash := testenv.Need(t, "bash")[0]
	root := t.TempDir()
	list := "- name: alpha\n  version: \"1.0\"\n  source: docker.io/library/alpha\n  digest: sha256:" + strings.Repeat("a", 64) + "\n"
	os.WriteFile(filepath.Join(root, "images.yaml"), []byte(list), 0o644)
	t.Setenv("BUILD_ROOT", filepath.Join(root, "dist"))
	t.Setenv("IMAGES_FILE", filepath.Join(root, "images.yaml"))
	t.Setenv("PACKAGES_FILE", filepath.Join(root, "none.yaml"))
	t.Setenv("SOURCE_DATE_EPOCH", "1")
	names := []string{"iso", "images", "clean", "clean:images", "steps", "info", "completion"}
	if err := Completion(t.Context(), root, "fish", names, new(bytes.Buffer)); err == nil {
		t.Fatal("fish accepted")
	}
	var script bytes.Buffer
	if err := Completion(t.Context(), root, "bash", names, &script); err != nil {
		t.Fatal(err)
	}
	sp := filepath.Join(root, "c.bash")
	os.WriteFile(sp, script.Bytes(), 0o644)
	complete := func(line string) string {
		t.Helper()
		words := strings.Fields(line)
		cword := len(words) - 1
		if strings.HasSuffix(line, " ") {
			cword++
		}
		prog := `source "$1"; COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}; read -ra COMP_WORDS <<< "$2"; COMP_CWORD=$3; ` +
			`if [[ ${COMP_WORDS[0]} == go ]]; then _metalk8s_buildchain_go; else _metalk8s_buildchain; fi; echo "${COMPREPLY[*]}"`
		out, err := exec.Command(bash, "-c", prog, "bash", sp, line, strconv.Itoa(cword)).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for line, want := range map[string]string{
		"mage cl":                       "clean clean:images",
		"mage clean:i":                  "images",
		"mage info images/pull:al":      "alpha:1.0",
		"mage steps images/d":           "images/dedup",
		"go run mage.go info images/pu": "images/pull:alpha:1.0",
		"go run mage.go completion z":   "zsh",
		"go build ./cm":                 "",
	} {
		if got := complete(line); got != want {
			t.Errorf("%q completes to %q, want %q", line, got, want)
		}
	}
	script.Reset()
	if err := Completion(t.Context(), root, "zsh", names, &script); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(script.String(), "images/pull:alpha:1.0") || !strings.Contains(script.String(), "compdef _metalk8s_buildchain mage") {
		t.Fatalf("zsh script:\n%s", script.String())
	}
	if zsh, err := exec.LookPath("zsh"); err == nil {
		zp := filepath.Join(root, "c.zsh")
		os.WriteFile(zp, script.Bytes(), 0o644)
		if out, err := exec.Command(zsh, "-n", zp).CombinedOutput(); err != nil {
			t.Fatalf("zsh -n: %v\n%s", err, out)
		}
	}
}
