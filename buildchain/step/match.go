package step

import "strings"

// Match reports whether the step name matches pattern, as chapter 9.4.5's
// selections do: "*" matches any run of characters, "/" and ":" included
// (images/pull:* selects every image fetch, *:fetch one kind of step
// across all images); every other character matches itself. An empty
// pattern matches every step.
func Match(pattern, name string) bool {
	if pattern == "" {
		return true
	}
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == name
	}
	if !strings.HasPrefix(name, parts[0]) {
		return false
	}
	name = name[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		// Leftmost match of each middle part leaves the most room for the
		// rest: the greedy choice is safe for plain "*" globs.
		i := strings.Index(name, p)
		if i < 0 {
			return false
		}
		name = name[i+len(p):]
	}
	return len(name) >= len(last) && strings.HasSuffix(name, last)
}
