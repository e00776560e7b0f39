// Empty: its presence lets apihandler.go declare a function without a body
// (go:linkname); see there.
