package repogen

import (
	"fmt"
	"os"
	"time"
)

// tracer is a local debugging aid, never committed.
func tracer(prefix string) func(string) {
	t0 := time.Now()
	on := os.Getenv("REPOGEN_TRACE") != ""
	return func(what string) {
		if on {
			fmt.Fprintf(os.Stderr, "%s%8.2f ms %s\n", prefix, float64(time.Since(t0).Microseconds())/1000, what)
		}
	}
}
