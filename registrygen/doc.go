// Package registrygen serves skopeo dir: image trees (ROOT/<name>/<tag>/)
// as a read-only Docker Registry v2 / OCI distribution registry, the Go
// replacement of MetalK8s' static-container-registry.py.
//
// Generate (and WriteConfig, WriteConfigFile, GenerateRoot) writes the
// nginx location blocks that map the pull API onto the files, for one
// server block; NewHandler returns an http.Handler with the same routes,
// status codes, headers and bodies, for development and tests. Both start
// from Scan, which checks every name, tag and digest against the
// distribution grammar (distref, plus registrygen's stricter policy, see
// validate.go) and reads every image directory through dirlayout before
// anything is emitted.
//
// Template is the one definition of a registry configuration template
// (names under RepositoryPlaceholder, files under RegistryRootPlaceholder):
// the Solution tool writes an archive's registry-config.inc.j2 with it, and
// the Solution validator regenerates it from the archive (through io/fs, so
// an ISO image is read in place) and requires the archive's copy to be
// identical. ScanFS is Scan over any io/fs file system. See docs/registrygen.md for the routes and the nginx mapping.
package registrygen
