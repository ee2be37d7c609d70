package iso

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/metalk8s/buildchain/buildchain/fsutil"
)

// UpdateSHA256SUM sets the line for name in a sha256sum-format file,
// replacing any previous line for it and keeping the others. The file is
// replaced atomically (mode 0644), and the read-modify-write runs under
// the lock file beside it (see lockSums), so that concurrent writers into
// one directory, in this process or others, each keep their line.
func UpdateSHA256SUM(sumFile, name, sum string) error {
	l, err := lockSums(filepath.Dir(sumFile))
	if err != nil {
		return err
	}
	defer l.Unlock()
	return updateSHA256SUM(sumFile, name, sum)
}

// LookupSHA256SUM returns the digest that the sha256sum-format file
// sumFile records for name, or "" when the file or the line is missing.
// Names are compared as UpdateSHA256SUM writes them, escapes undone.
func LookupSHA256SUM(sumFile, name string) (string, error) {
	data, err := os.ReadFile(sumFile)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("iso: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if sum, file, ok := parseSumLine(line); ok && file == name {
			return sum, nil
		}
	}
	return "", nil
}

// updateSHA256SUM is UpdateSHA256SUM for a caller holding the lock.
func updateSHA256SUM(sumFile, name, sum string) error {
	old, err := os.ReadFile(sumFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("iso: %w", err)
	}
	if err := fsutil.WriteFile(sumFile, updateSums(old, name, sum), 0o644); err != nil {
		return fmt.Errorf("iso: updating %s: %w", sumFile, err)
	}
	return nil
}

// sumLockName is the lock file that orders the writers of a directory's
// images and SHA256SUM. It exists only while one of them holds it (see
// fsutil.LockFile), and is hidden like the temporary files.
const sumLockName = ".SHA256SUM.lock"

// lockSums takes the lock of the image directory dir, waiting for other
// writers.
func lockSums(dir string) (*fsutil.FileLock, error) {
	l, err := fsutil.LockFile(filepath.Join(dir, sumLockName))
	if err != nil {
		return nil, fmt.Errorf("iso: %w", err)
	}
	return l, nil
}

// updateSums returns the contents of a SHA256SUM file with the line for
// name set to sum. The existing file is outside input (written by hand,
// by sha256sum, or by other tools), so lines that do not parse are kept
// as they are, and names are compared after undoing sha256sum's escapes.
func updateSums(old []byte, name, sum string) []byte {
	var out bytes.Buffer
	for _, line := range strings.Split(string(old), "\n") {
		if line == "" {
			continue
		}
		if _, file, ok := parseSumLine(line); ok && file == name {
			continue
		}
		out.WriteString(line + "\n")
	}
	out.WriteString(sumLine(sum, name))
	return out.Bytes()
}

// sumEscaper and sumUnescaper are GNU sha256sum's (coreutils 9) escapes
// for names holding a backslash, a newline or a carriage return; such a
// line starts with a backslash.
var (
	sumEscaper   = strings.NewReplacer("\\", "\\\\", "\n", "\\n", "\r", "\\r")
	sumUnescaper = strings.NewReplacer("\\\\", "\\", "\\n", "\n", "\\r", "\r")
)

// sumLine formats one line of sha256sum's text-mode output.
func sumLine(sum, name string) string {
	if strings.ContainsAny(name, "\\\n\r") {
		return "\\" + sum + "  " + sumEscaper.Replace(name) + "\n"
	}
	return sum + "  " + name + "\n"
}

// parseSumLine splits a line of sha256sum output ("SUM  NAME", or
// "SUM *NAME" in binary mode, with a leading backslash when NAME is
// escaped) into the digest and the name.
func parseSumLine(line string) (sum, name string, ok bool) {
	escaped := strings.HasPrefix(line, "\\")
	if escaped {
		line = line[1:]
	}
	sum, rest, found := strings.Cut(line, " ")
	if !found || sum == "" || rest == "" || rest[0] != ' ' && rest[0] != '*' {
		return "", "", false
	}
	name = rest[1:]
	if escaped {
		name = sumUnescaper.Replace(name)
	}
	return sum, name, true
}
