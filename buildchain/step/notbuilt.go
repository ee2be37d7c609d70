package step

import (
	"errors"
	"fmt"
)

// ErrNotBuiltYet marks a target or step whose capability has not landed.
// They fail with it rather than pretend to have built something. It lives
// here, beside the engine, so that library packages can return it without
// depending on the run context (build).
var ErrNotBuiltYet = errors.New("not built yet")

// NotBuiltYet is the error of a capability that is missing.
func NotBuiltYet(what, issue string) error {
	return fmt.Errorf("%s: %w (%s)", what, ErrNotBuiltYet, issue)
}
