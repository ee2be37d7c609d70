package config

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// ParseEpoch parses a SOURCE_DATE_EPOCH value: a non-negative integer
// number of seconds since 1970, as reproducible-builds.org defines it.
// Every tool that reads the variable goes through here, so they all refuse
// the same values with the same words.
func ParseEpoch(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH: want a non-negative integer number of seconds, got %q", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

// EpochFromEnv reads SOURCE_DATE_EPOCH from the environment. ok is false
// when it is unset or empty, which the specification says to treat alike.
func EpochFromEnv() (t time.Time, ok bool, err error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Time{}, false, nil
	}
	t, err = ParseEpoch(s)
	return t, err == nil, err
}

// ParseMirrors parses an IMAGE_MIRRORS value: comma-separated
// REGISTRY=MIRROR pairs, where REGISTRY is a registry host[:port] and
// MIRROR a host[:port] optionally followed by a repository path prefix.
// A host that is not one would otherwise reach the fetcher as part of a
// reference and fail there, far from the setting that caused it.
func ParseMirrors(s string) (map[string]string, error) {
	return parsePairs(s, checkHost, checkHostPath)
}
