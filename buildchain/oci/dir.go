package oci

import (
	"fmt"

	"github.com/metalk8s/buildchain/buildchain/oci/dirlayout"
)

// WriteDir lays out res, whose content Fetch, StoreImage or a copy put
// in c verified, as the dir: tree at dir, atomically (see
// dirlayout.Write): every file is a hard link to its entry in c. Every
// image of an ISO root, the MetalK8s one or a Solution's, from a registry
// or built, reaches it this way.
func WriteDir(dir string, res *Resolved, c Cache) error {
	if err := dirlayout.Write(dir, &res.Contents, c); err != nil {
		return fmt.Errorf("image %s:%s: %w", res.Image.Name, res.Image.Version, err)
	}
	return nil
}
