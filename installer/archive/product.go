package archive

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/metalk8s/buildchain/buildchain/distref"
	"github.com/metalk8s/buildchain/buildchain/product"
	"github.com/metalk8s/buildchain/buildchain/solution"
)

// ProductFile is the archive's identity file, at its root.
const ProductFile = "product.txt"

// Product is what the installer takes from product.txt.
type Product struct {
	Name    string // NAME, as written ("MetalK8s", "example-solution")
	Version string // VERSION
	Fields  []product.Field
}

// ID is <name>-<version>, the name lower-cased with spaces as dashes as
// MetalK8s's Salt modules and solution.MachineName make it: the mount
// point's last element and the repository prefix.
func (p Product) ID() string { return solution.MachineName(p.Name) + "-" + p.Version }

// VolumeID is the volume identifier both writers give an archive:
// "<NAME> <VERSION>" (buildchain/targets for MetalK8s, buildchain/solution
// for Solutions, 12.2.1), exactly, since the ISO writer refuses to cut it.
func (p Product) VolumeID() string { return p.Name + " " + p.Version }

// Get returns a field's value, or "".
func (p Product) Get(key string) string {
	for _, f := range p.Fields {
		if f.Key == key {
			return f.Value
		}
	}
	return ""
}

// ParseProduct reads product.txt (the grammar package product owns) and
// checks what the installer relies on: NAME and VERSION are set, the ID
// they give is a single path element and registry name component, and,
// for an ISO (volumeID != ""), the volume ID is "<NAME> <VERSION>". file
// names the product.txt in errors.
func ParseProduct(file string, data []byte, volumeID string) (Product, error) {
	fields, err := product.Parse(data)
	if err != nil {
		return Product{}, fmt.Errorf("%s: %w", file, err)
	}
	p := Product{Fields: fields}
	p.Name, p.Version = p.Get("NAME"), p.Get("VERSION")
	var errs []error
	for _, k := range []string{"NAME", "VERSION"} {
		if p.Get(k) == "" {
			errs = append(errs, fmt.Errorf("%s: %s is missing or empty", file, k))
		}
	}
	if len(errs) > 0 {
		return p, errors.Join(errs...)
	}
	if id := p.ID(); !distref.ValidComponent(id) || len(id) > 128 {
		return p, fmt.Errorf("%s: NAME %q and VERSION %q give %q, which is not a valid mount point name and registry name component (lower-case letters, digits, '.', '_' and '-' between them)", file, p.Name, p.Version, id)
	}
	if volumeID != "" && volumeID != p.VolumeID() {
		return p, fmt.Errorf("%s says NAME %q VERSION %q, so the volume ID must be %q, but the image's is %q: refusing an archive whose identity disagrees with itself", file, p.Name, p.Version, p.VolumeID(), volumeID)
	}
	return p, nil
}

func (a *Archive) readProduct() error {
	file := a.Path + ": " + ProductFile
	data, err := fs.ReadFile(a.FS, ProductFile)
	if err != nil {
		return fmt.Errorf("archive %s: no %s: %w", a.Path, ProductFile, err)
	}
	vol := ""
	if a.Image != nil {
		vol = a.Image.VolumeID
		if vol == "" {
			vol = " " // an empty volume ID matches no product
		}
	}
	p, err := ParseProduct(file, data, vol)
	if err != nil {
		return err
	}
	a.Product = p
	return nil
}
