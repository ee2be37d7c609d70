package iso

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// UpdateSHA256SUM sets the line for name in a sha256sum-format file,
// replacing any previous line for it and keeping the others, atomically.
func UpdateSHA256SUM(sumFile, name, sum string) error {
	old, err := os.ReadFile(sumFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("iso: %w", err)
	}
	out := updateSums(old, name, sum)
	tmp, err := os.CreateTemp(filepath.Dir(sumFile), ".SHA256SUM.tmp-*")
	if err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return fmt.Errorf("iso: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("iso: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	if err := os.Rename(tmp.Name(), sumFile); err != nil {
		return fmt.Errorf("iso: %w", err)
	}
	return nil
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
