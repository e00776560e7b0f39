//go:build tools

// Package tools pins the Hatchet engine tools that set-up builds. The
// official embedded sidecar module is not served by every Go module proxy, so
// set-up builds the migration and admin tools from the engine module itself,
// at the version required in go.mod, with every checksum recorded in go.sum;
// the engine itself runs as ./cmd/support-engine, built from the same module.
package tools

import (
	_ "github.com/hatchet-dev/hatchet/cmd/hatchet-admin"
	_ "github.com/hatchet-dev/hatchet/cmd/hatchet-migrate"
)
