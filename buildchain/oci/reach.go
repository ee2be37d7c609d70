package oci

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"syscall"
)

// UnreachableError is a registry host that could not be reached at all: its
// name does not resolve, there is no route to it, or nothing accepts
// connections there. Every image from that host fails the same way, so the
// caller can say which hosts need a mirror instead of repeating one network
// error per image; the hopeless cases (see hopeless) are not even retried.
type UnreachableError struct {
	Host string // the host dialled, after mirroring
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("registry %s is unreachable: %v", e.Host, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// hopeless reports whether err is a failure that no retry can mend: a
// name that does not resolve, or no route to the network. A refused
// connection is not one of them: a registry being restarted refuses for a
// moment.
func hopeless(err error) bool {
	var dns *net.DNSError
	if errors.As(err, &dns) && dns.IsNotFound {
		return true
	}
	return errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH)
}

// unreachable wraps err in an UnreachableError when it is a failure to
// resolve or to connect to host, and returns it unchanged otherwise.
// Timeouts are left alone: a slow registry may answer on a retry.
func unreachable(host string, err error) error {
	if err == nil {
		return nil
	}
	var ue *UnreachableError
	if errors.As(err, &ue) {
		return err
	}
	var dns *net.DNSError
	if errors.As(err, &dns) && (dns.IsNotFound || !dns.IsTemporary && !dns.IsTimeout) {
		return &UnreachableError{Host: host, Err: err}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" && !op.Timeout() {
		return &UnreachableError{Host: host, Err: err}
	}
	return err
}

// UnreachableHosts returns, sorted and once each, the hosts of every
// UnreachableError joined in err.
func UnreachableHosts(err error) []string {
	seen := map[string]bool{}
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var ue *UnreachableError
		if errors.As(err, &ue) {
			seen[ue.Host] = true
		}
	}
	walk(err)
	return slices.Sorted(maps.Keys(seen))
}
