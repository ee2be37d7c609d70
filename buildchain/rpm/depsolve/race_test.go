//go:build race

package depsolve

// The race detector slows code down 5-10x; timing targets are checked in
// normal builds only.
func init() { raceEnabled = true }
