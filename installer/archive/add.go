package archive

import (
	"github.com/metalk8s/buildchain/installer/change"
	"github.com/metalk8s/buildchain/installer/mount"
)

// Mount mounts the opened, verified archive read-only at its MountPoint
// and makes that mount come back at boot: steps 4 and 5 of `archive add`,
// and the mount of `solution add`. Both go through tx.
func (a *Archive) Mount(tx *change.Tx, mo mount.Options, uo mount.UnitOptions) (mount.Method, error) {
	m, err := mount.Ensure(tx, a.Path, a.MountPoint(), mo)
	if err != nil {
		return "", err
	}
	if m == mount.Auto {
		// A dry run does not try the methods, so it cannot say which unit.
		tx.Record(change.Added, "systemd unit for mount "+a.MountPoint()+" (its kind depends on the method that mounts)")
		return m, nil
	}
	if err := mount.Persist(tx, a.Path, a.MountPoint(), m, a.Kind == BlockDevice, uo); err != nil {
		return "", err
	}
	return m, nil
}

// Unmount undoes Mount, unit first: the caller rolls tx back on an
// error, which puts the unit back along with the mount.
func (a *Archive) Unmount(tx *change.Tx, mo mount.Options) error {
	if err := mount.Unpersist(tx, a.MountPoint()); err != nil {
		return err
	}
	return mount.Remove(tx, a.Path, a.MountPoint(), mo)
}
