// Package cdxtest validates CycloneDX documents in tests.
package cdxtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metalk8s/buildchain/internal/testenv"
)

// validator checks a CycloneDX JSON document against the schema that
// cyclonedx-go ships (the specification's own), with python3-jsonschema,
// an implementation independent of the library that wrote it.
const validator = `
import json, sys
import jsonschema
d = sys.argv[1]
def load(n):
    with open(d + "/" + n) as f:
        return json.load(f)
bom = load("bom-1.7.schema.json")
res = [(bom["$id"], bom)]
for n, id in (("spdx.schema.json", "spdx.schema.json"), ("jsf-0.82.schemax.json", "jsf-0.82.schema.json")):
    res.append(("http://cyclonedx.org/schema/" + id, load(n)))
# Not shipped by the library; only cryptoProperties refer to it.
res.append(("http://cyclonedx.org/schema/cryptography-defs.schema.json", {}))
try:  # jsonschema >= 4.18
    import referencing, referencing.jsonschema
    reg = referencing.Registry().with_resources(
        (u, referencing.Resource.from_contents(c, default_specification=referencing.jsonschema.DRAFT7)) for u, c in res)
    v = jsonschema.Draft7Validator(bom, registry=reg, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
except ImportError:  # Debian 12's 4.10
    resolver = jsonschema.RefResolver.from_schema(bom, store=dict(res))
    v = jsonschema.Draft7Validator(bom, resolver=resolver, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
errs = sorted(v.iter_errors(json.load(sys.stdin)), key=lambda e: list(e.path))
for e in errs:
    print("/".join(map(str, e.path)), e.message)
sys.exit(1 if errs else 0)
`

func schemaDir(t testing.TB) string {
	t.Helper()
	out, err := exec.Command(testenv.Need(t, "go")[0], "list", "-m", "-f", "{{.Dir}}", "github.com/CycloneDX/cyclonedx-go").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "schema")
}

// Validate checks doc against the CycloneDX 1.7 JSON schema. It skips (or
// fails, with METALK8S_REQUIRE_TOOLS=1) when python3-jsonschema is missing.
func Validate(t testing.TB, doc []byte) (string, error) {
	t.Helper()
	// Debian's python3 first: python3-jsonschema is what hostdeps installs.
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		py = testenv.Need(t, "python3")[0]
	}
	if exec.Command(py, "-c", "import jsonschema").Run() != nil {
		if os.Getenv("METALK8S_REQUIRE_TOOLS") == "1" {
			t.Fatal("python3-jsonschema is required")
		}
		t.Skip("python3-jsonschema is missing")
	}
	cmd := exec.Command(py, "-c", validator, schemaDir(t))
	cmd.Stdin = strings.NewReader(string(doc))
	out, err := cmd.CombinedOutput()
	return string(out), err
}
