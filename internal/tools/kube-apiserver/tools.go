//go:build tools

// Package tools pins the kube-apiserver command for go mod tidy; it is
// never compiled into anything.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
