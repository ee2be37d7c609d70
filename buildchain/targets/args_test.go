package targets

import (
	"os"
	"strings"
	"testing"
)

func TestDryRunArgs(t *testing.T) {
	for _, c := range []struct {
		in, want string
		dry      bool
	}{
		{"mage clean -n", "mage clean", true},
		{"mage -n clean:images", "mage clean:images", true},
		{"mage clean:stamps --dry-run", "mage clean:stamps", true},
		{"mage clean", "mage clean", false},
		{"mage iso -n", "mage iso -n", false},
	} {
		os.Unsetenv("DRY_RUN")
		t.Setenv("DRY_RUN", "")
		os.Unsetenv("DRY_RUN")
		got := strings.Join(DryRunArgs(strings.Fields(c.in)), " ")
		_, dry := os.LookupEnv("DRY_RUN")
		if got != c.want || dry != c.dry {
			t.Errorf("%q: got %q dry=%v, want %q dry=%v", c.in, got, dry, c.want, c.dry)
		}
	}
}
