package mount

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// kernelMounter mounts through the kernel's iso9660 driver: a CD-ROM
// directly, an ISO file on a loop device it sets up itself (no losetup or
// mount(8): the static installer runs in an initramfs with busybox).
type kernelMounter struct{}

func (kernelMounter) Method() Method { return Kernel }

func (kernelMounter) Mount(source, target string) error {
	fi, err := os.Stat(source)
	if err != nil {
		return err
	}
	dev := source
	if fi.Mode().IsRegular() {
		loop, err := attachLoop(source)
		if err != nil {
			return err
		}
		// The loop device is set to clear itself when its last user goes:
		// this descriptor now, the mount later (or now, if it fails).
		defer loop.Close()
		dev = loop.Name()
	} else if fi.Mode()&os.ModeDevice == 0 {
		return fmt.Errorf("%s is neither a file nor a block device", source)
	}
	err = unix.Mount(dev, target, "iso9660", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, "")
	if errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("mount(2) of %s: this kernel has no iso9660 file system (module isofs)", dev)
	}
	if err != nil {
		return fmt.Errorf("mount(2) of %s as iso9660: %w", dev, err)
	}
	return nil
}

// attachLoop binds a free loop device to the file, read-only and
// auto-clearing, and returns it open.
func attachLoop(file string) (*os.File, error) {
	img, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("loop devices: %w", err)
	}
	defer ctl.Close()
	var last error
	// Another process may take the free device between the two calls.
	for try := 0; try < 16; try++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("LOOP_CTL_GET_FREE: %w", err)
		}
		name := fmt.Sprintf("/dev/loop%d", n)
		loop, err := os.OpenFile(name, os.O_RDONLY, 0)
		if errors.Is(err, os.ErrNotExist) {
			// A container's /dev may lack the node the kernel just made.
			if err := unix.Mknod(name, unix.S_IFBLK|0o660, int(unix.Mkdev(7, uint32(n)))); err != nil {
				return nil, fmt.Errorf("creating %s: %w", name, err)
			}
			loop, err = os.OpenFile(name, os.O_RDONLY, 0)
		}
		if err != nil {
			return nil, err
		}
		cfg := unix.LoopConfig{Fd: uint32(img.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR
		copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], file)
		err = unix.IoctlLoopConfigure(int(loop.Fd()), &cfg)
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
			// Before Linux 5.8: attach, then set the flags.
			if err = unix.IoctlSetInt(int(loop.Fd()), unix.LOOP_SET_FD, int(img.Fd())); err == nil {
				if err = unix.IoctlLoopSetStatus64(int(loop.Fd()), &cfg.Info); err != nil {
					unix.IoctlSetInt(int(loop.Fd()), unix.LOOP_CLR_FD, 0)
				}
			}
		}
		if errors.Is(err, unix.EBUSY) {
			loop.Close()
			last = err
			continue
		}
		if err != nil {
			loop.Close()
			return nil, fmt.Errorf("attaching %s to %s: %w", file, name, err)
		}
		return loop, nil
	}
	return nil, fmt.Errorf("no free loop device: %w", last)
}
