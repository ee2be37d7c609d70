package oci

import "github.com/metalk8s/buildchain/buildchain/cas"

// Cache is the content-addressed store of blobs and manifests under
// dir/sha256/<hex>, shared with the RPM fetcher (package cas). Only
// verified content is ever put in place, so a file there is trusted by its
// name on later runs.
type Cache = cas.Store

// DigestError says that content did not match what it was pinned to.
type DigestError = cas.DigestError

// DigestOf returns the sha256 digest of data.
func DigestOf(data []byte) string { return cas.Digest(data) }
