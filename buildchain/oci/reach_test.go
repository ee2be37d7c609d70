package oci

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
)

func TestUnreachable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	notFound := &net.DNSError{Err: "no such host", Name: "registry.invalid", IsNotFound: true}
	tempDNS := &net.DNSError{Err: "server misbehaving", Name: "quay.io", IsTemporary: true}
	noRoute := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ENETUNREACH)}
	for _, c := range []struct {
		err         error
		unreachable bool
		retried     bool
	}{
		{refused, true, true}, // a registry restarting refuses for a moment
		{fmt.Errorf("Get \"https://x/v2/\": %w", notFound), true, false},
		{noRoute, true, false},
		{tempDNS, false, true},
		{errors.New("unexpected status 500"), false, true},
		{&DigestError{}, false, false},
	} {
		var ue *UnreachableError
		if got := errors.As(unreachable("h:5000", c.err), &ue); got != c.unreachable {
			t.Errorf("unreachable(%v) = %v, want %v", c.err, got, c.unreachable)
		}
		if got := transient(c.err); got != c.retried {
			t.Errorf("transient(%v) = %v, want %v", c.err, got, c.retried)
		}
	}
	if transient(&UnreachableError{Host: "h", Err: notFound}) {
		t.Error("an unresolvable host is retried")
	}
	joined := errors.Join(
		fmt.Errorf("image a: %w", &UnreachableError{Host: "quay.io", Err: notFound}),
		fmt.Errorf("image b: %w", &UnreachableError{Host: "docker.io", Err: refused}),
		fmt.Errorf("image c: %w", &UnreachableError{Host: "quay.io", Err: notFound}),
		errors.New("image d: digest mismatch"),
	)
	if got := fmt.Sprint(UnreachableHosts(joined)); got != "[docker.io quay.io]" {
		t.Errorf("UnreachableHosts = %s", got)
	}
}
