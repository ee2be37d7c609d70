package solution

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/metalk8s/buildchain/buildchain/yamlstrict"
)

// k8sObject is a Kubernetes object read from a manifest file.
type k8sObject struct {
	APIVersion, Kind, Name string
	Line                   int
	Node                   *yaml.Node
}

// parseK8s reads every document of a manifest file as a Kubernetes object:
// a mapping with apiVersion, kind and metadata.name. Empty documents are
// skipped, as kubectl does. It returns the objects and every problem, each
// prefixed by its line.
func parseK8s(data []byte) ([]k8sObject, []string) {
	var objs []k8sObject
	var probs []string
	err := yamlstrict.Documents("", data, func(root *yaml.Node) error {
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			return nil
		}
		if root.Kind != yaml.MappingNode {
			probs = append(probs, fmt.Sprintf("line %d: a Kubernetes object is a mapping, not %s", root.Line, yamlstrict.Describe(root)))
			return nil
		}
		o := k8sObject{Line: root.Line, Node: root}
		var missing []string
		if o.APIVersion = scalar(root, "apiVersion"); o.APIVersion == "" {
			missing = append(missing, "apiVersion")
		}
		if o.Kind = scalar(root, "kind"); o.Kind == "" {
			missing = append(missing, "kind")
		}
		if md := field(root, "metadata"); md != nil && md.Kind == yaml.MappingNode {
			o.Name = scalar(md, "name")
		}
		if o.Name == "" {
			missing = append(missing, "metadata.name")
		}
		if len(missing) > 0 {
			probs = append(probs, fmt.Sprintf("line %d: object without %s", root.Line, strings.Join(missing, ", ")))
			return nil
		}
		objs = append(objs, o)
		return nil
	})
	var ye *yamlstrict.Error
	if errors.As(err, &ye) {
		// The caller names the file; a syntax error ends the stream, as
		// the decoder cannot resynchronise after one.
		if ye.Line > 0 {
			probs = append(probs, fmt.Sprintf("line %d: %s", ye.Line, ye.Msg))
		} else {
			probs = append(probs, ye.Msg)
		}
	} else if err != nil {
		probs = append(probs, err.Error())
	}
	return objs, probs
}

// field returns the value of key in a mapping node.
func field(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// scalar returns a non-empty string scalar field, or "".
func scalar(m *yaml.Node, key string) string {
	v := field(m, key)
	if v == nil || v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
		return ""
	}
	return v.Value
}

// imageRef is an image a pod template names.
type imageRef struct {
	Ref  string
	Line int
}

// imageRefs finds the image of every container, init container and
// ephemeral container anywhere in an object (Deployments, StatefulSets,
// Jobs, CronJobs and bare Pods alike).
func imageRefs(n *yaml.Node) []imageRef {
	var out []imageRef
	var walk func(n *yaml.Node, depth int)
	walk = func(n *yaml.Node, depth int) {
		if n == nil || depth > 64 {
			return
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, val := n.Content[i].Value, n.Content[i+1]
				if (k == "containers" || k == "initContainers" || k == "ephemeralContainers") && val.Kind == yaml.SequenceNode {
					for _, c := range val.Content {
						if img := field(c, "image"); img != nil && img.Kind == yaml.ScalarNode {
							out = append(out, imageRef{img.Value, img.Line})
						}
					}
					continue
				}
				walk(val, depth+1)
			}
		case yaml.SequenceNode, yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, depth+1)
			}
		}
	}
	walk(n, 0)
	return out
}

// splitRef splits an image reference into its repository path, tag and
// digest. A reference with neither tag nor digest means tag "latest".
func splitRef(ref string) (repo, tag, digest string) {
	repo = ref
	if i := strings.Index(repo, "@"); i >= 0 {
		repo, digest = repo[:i], repo[i+1:]
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	if tag == "" && digest == "" {
		tag = "latest"
	}
	return repo, tag, digest
}

// yamlCheck parses every manifest under operator/deploy and ui/, checks the
// kinds 12.3.1 implies, and that each image a workload names is shipped.
func (v *validator) yamlCheck() {
	for _, n := range v.a.nodes() {
		inOperator := strings.HasPrefix(n.Path, OperatorDir+"/")
		inUI := strings.HasPrefix(n.Path, "ui/")
		ext := path.Ext(n.Path)
		if (!inOperator && !inUI) || !n.Mode.IsRegular() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		data, err := readSmall(v.a, n, maxYAMLSize)
		if err != nil {
			v.bad(n.Path, err.Error())
			continue
		}
		objs, probs := parseK8s(data)
		for _, p := range probs {
			v.bad(n.Path, p)
		}
		if len(objs) == 0 && len(probs) == 0 {
			v.bad(n.Path, "holds no Kubernetes object")
		}
		isCRD := strings.HasPrefix(n.Path, CRDsDir+"/")
		for _, o := range objs {
			if isCRD {
				v.checkCRD(n.Path, o)
			}
		}
		switch n.Path {
		case OperatorDir + "/role.yaml":
			v.wantKinds(n.Path, objs, "Role", "ClusterRole")
		case OperatorDir + "/role_binding.yaml":
			v.wantKinds(n.Path, objs, "RoleBinding", "ClusterRoleBinding")
		case OperatorDir + "/service_account.yaml":
			v.wantKinds(n.Path, objs, "ServiceAccount")
		case UIDeployment:
			v.wantKinds(n.Path, objs, "Deployment")
		}
		if n.Path == OperatorDir+"/operator.yaml" || n.Path == UIDeployment {
			for _, o := range objs {
				for _, r := range imageRefs(o.Node) {
					if msg := v.resolveRef(r.Ref); msg != "" {
						v.bad(n.Path, fmt.Sprintf("line %d: %s", r.Line, msg))
					}
				}
			}
		}
	}
}

func (v *validator) wantKinds(p string, objs []k8sObject, kinds ...string) {
	found := false
	for _, o := range objs {
		for _, k := range kinds {
			found = found || o.Kind == k
		}
	}
	if !found && len(objs) > 0 {
		v.bad(p, fmt.Sprintf("holds no %s", strings.Join(kinds, " or ")))
	}
}

// checkCRD checks an object under crds/ is a CustomResourceDefinition of
// apiextensions.k8s.io named <plural>.<group>, as the API server requires.
func (v *validator) checkCRD(p string, o k8sObject) {
	if o.Kind != "CustomResourceDefinition" || !strings.HasPrefix(o.APIVersion, "apiextensions.k8s.io/") {
		v.bad(p, fmt.Sprintf("line %d: %s %s (%s) under crds/; want apiextensions.k8s.io CustomResourceDefinition objects only", o.Line, o.Kind, o.Name, o.APIVersion))
		return
	}
	spec := field(o.Node, "spec")
	group := scalar(spec, "group")
	plural := scalar(field(spec, "names"), "plural")
	if group == "" || plural == "" {
		v.bad(p, fmt.Sprintf("line %d: CustomResourceDefinition %s has no spec.group or spec.names.plural", o.Line, o.Name))
		return
	}
	if o.Name != plural+"."+group {
		v.bad(p, fmt.Sprintf("line %d: CustomResourceDefinition is named %q; the API server requires <spec.names.plural>.<spec.group> = %q", o.Line, o.Name, plural+"."+group))
	}
}

// resolveRef finds the archive image a reference names. The registry and
// repository prefix in front of the image name are MetalK8s's to choose
// (12.2.4: operators must not rely on them), so the reference matches an
// image when its repository path ends with the image name and its tag is
// the image version (or its digest the manifest digest).
func (v *validator) resolveRef(ref string) string {
	repo, tag, digest := splitRef(ref)
	var names []string
	for _, im := range v.rep.Images {
		if repo != im.Name && !strings.HasSuffix(repo, "/"+im.Name) {
			continue
		}
		names = append(names, im.Name+":"+im.Version)
		if (tag == "" || tag == im.Version) && (digest == "" || digest == im.Digest) {
			return ""
		}
	}
	if len(names) > 0 {
		return fmt.Sprintf("image %q is not in the archive: images/ has %s", ref, strings.Join(names, ", "))
	}
	want := path.Base(repo) + "/" + tag
	if tag == "" {
		want = path.Base(repo) + " with manifest " + digest
	}
	return fmt.Sprintf("image %q is not in the archive (no images/.../%s/)", ref, want)
}
