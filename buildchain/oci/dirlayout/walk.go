package dirlayout

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// Walk reads every image directory below root in fsys (a tree of
// <name>/<version>/ directories, as images/ on an ISO) and calls fn with
// each, in lexical order. Image directories are not descended into. A
// missing root holds no image. The first error, from reading (prefixed
// "image <path>:") or from fn, stops the walk.
func Walk(ctx context.Context, fsys fs.FS, root string, opts Options, fn func(*Dir) error) error {
	return fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		entries, err := fs.ReadDir(fsys, p)
		if err != nil {
			return err
		}
		if !IsImageDir(entries) {
			return nil
		}
		dir, err := ReadEntries(ctx, fsys, p, entries, opts)
		if err != nil {
			return fmt.Errorf("image %s: %w", p, err)
		}
		if err := fn(dir); err != nil {
			return err
		}
		return fs.SkipDir
	})
}
