package targets

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/metalk8s/buildchain/buildchain/build"
	"github.com/metalk8s/buildchain/buildchain/fsutil"
	"github.com/metalk8s/buildchain/buildchain/imagebuild"
	"github.com/metalk8s/buildchain/buildchain/step"
	"github.com/metalk8s/buildchain/buildchain/yamlstrict"
)

// ExamplesDir is where the project keeps the Node manifests of chapter
// 4.3.1 that the ISO ships under examples/.
const ExamplesDir = "examples/nodes"

// examples copies the Node manifests of ExamplesDir into the ISO root's
// examples/, with the version placeholder (imagebuild.VersionPlaceholder,
// the one local images use) replaced by the product version: the
// metalk8s.scality.com/version label must name the ISO's own version. A
// project without the directory ships no examples.
func examples(ctx context.Context, b *build.Session) error {
	src := filepath.Join(b.Cfg.ProjectRoot, filepath.FromSlash(ExamplesDir))
	if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	info, err := b.Info()
	if err != nil {
		return err
	}
	version := info.Version.String()
	out := filepath.Join(b.Cfg.RootDir(), "examples")
	return b.Engine.Run(ctx, step.Step{
		Name:    "examples",
		Inputs:  []step.Input{step.Tree(src), step.Value("version", version)},
		Outputs: []string{out},
		Run: func(context.Context) error {
			files, err := RenderExamples(src, version)
			if err != nil {
				return err
			}
			tmp, err := fsutil.TempDir(out)
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			for name, data := range files {
				if err := os.WriteFile(filepath.Join(tmp, name), data, 0o644); err != nil {
					return err
				}
			}
			return fsutil.PublishDir(tmp, out)
		},
	})
}

// RenderExamples reads the *.yaml files of dir (other files, such as a
// README, are not shipped) and returns them by name with the version
// filled in. Each must be YAML whose documents are Node objects with a
// name: the installer's users apply them as they are.
func RenderExamples(dir, version string) (map[string][]byte, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".yaml") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		file := filepath.Join(dir, name)
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		data = bytes.ReplaceAll(data, []byte(imagebuild.VersionPlaceholder), []byte(version))
		docs := 0
		err = yamlstrict.Documents(file, data, func(root *yaml.Node) error {
			docs++
			var obj struct {
				APIVersion string `yaml:"apiVersion"`
				Kind       string `yaml:"kind"`
				Metadata   struct {
					Name string `yaml:"name"`
				} `yaml:"metadata"`
			}
			if err := root.Decode(&obj); err != nil {
				return yamlstrict.Errorf(file, root, "%v", err)
			}
			if obj.APIVersion != "v1" || obj.Kind != "Node" || obj.Metadata.Name == "" {
				return yamlstrict.Errorf(file, root, "want a v1 Node with a metadata.name, got apiVersion %q kind %q name %q", obj.APIVersion, obj.Kind, obj.Metadata.Name)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if docs == 0 {
			return nil, yamlstrict.At(file, 0, "no Node manifest")
		}
		if bytes.Contains(data, []byte("{{")) {
			return nil, yamlstrict.At(file, 0, "the only placeholder is %s", imagebuild.VersionPlaceholder)
		}
		out[name] = data
	}
	return out, nil
}
