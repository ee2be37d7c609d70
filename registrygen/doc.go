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
// The Solution tool writes an archive's template with
//
//	GenerateRoot(imagesDir, "{{ repository }}", "{{ registry_root }}", OmitConstants)
//
// and the ISO build the product's config with a literal prefix and server
// root. See docs/registrygen.md for the routes and the nginx mapping.
package registrygen
