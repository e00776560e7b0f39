package main

import (
	"net/http"
	_ "unsafe" // for go:linkname

	"github.com/labstack/echo/v4"

	"github.com/hatchet-dev/hatchet/api/v1/server/run"
)

// The REST API's echo instance, fully registered but not started.
//
// APIServer.Run builds it with the unexported getCoreEchoService and then
// starts it with e.Start(":<port>"), which listens on every interface, and
// nothing exported hands the instance out before that. So it is reached by
// its linker name. The linker does not check the signature: setup/hatchet.sh
// checks the declaration in the pinned module's source before building and
// stops with an error when it differs from the one below.
//
//go:linkname coreEchoService github.com/hatchet-dev/hatchet/api/v1/server/run.(*APIServer).getCoreEchoService
func coreEchoService(t *run.APIServer) (*echo.Echo, error)

// apiHandler returns the REST API as an http.Handler listening nowhere yet:
// every route and middleware that APIServer.Run registers (Run adds no
// extensions when called without options, as hatchet-lite and hatchet-api
// call it).
func apiHandler(t *run.APIServer) (http.Handler, error) {
	e, err := coreEchoService(t)
	if err != nil {
		return nil, err
	}
	return e, nil
}
