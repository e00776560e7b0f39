//go:build tools

// Package tools pins the Hatchet engine binaries that set-up builds. The
// official embedded sidecar module is not served by every Go module proxy, so
// set-up builds hatchet-lite (engine and API in one process) plus the
// migration and admin tools from the engine module itself, at the version
// required in go.mod, with every checksum recorded in go.sum.
package tools

import (
	_ "github.com/hatchet-dev/hatchet/cmd/hatchet-admin"
	_ "github.com/hatchet-dev/hatchet/cmd/hatchet-lite"
	_ "github.com/hatchet-dev/hatchet/cmd/hatchet-migrate"
)
