package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"
)

// stopWithParent returns a context that is cancelled, as SIGTERM cancels it,
// once the process named by HATCHET_ENGINE_PARENT_PID is no longer this
// process's parent. setup/hatchet-sidecar sets it to its own pid: a sidecar
// that is SIGKILLed runs no trap, and its engine, re-parented to init, would
// otherwise keep the ports while `support-agent engine status` says no engine
// runs and the next `engine start` fails on them. An engine run by hand
// (variable unset) is left alone.
//
// The parent is polled (os.Getppid) rather than asked for with
// PR_SET_PDEATHSIG: that signal is tied to the OS thread that set it, and Go
// may retire that thread while the process lives on.
func stopWithParent(ctx context.Context) (context.Context, context.CancelFunc, error) {
	ctx, cancel := context.WithCancel(ctx)
	value := os.Getenv("HATCHET_ENGINE_PARENT_PID")
	if value == "" {
		return ctx, cancel, nil
	}
	parent, err := strconv.Atoi(value)
	if err != nil || parent < 1 {
		cancel()
		return nil, nil, fmt.Errorf("HATCHET_ENGINE_PARENT_PID=%q is not a parent's pid", value)
	}
	if parent == 1 {
		// The sidecar is the pid namespace's init (a container's entrypoint):
		// when it goes, the namespace and this process go with it.
		return ctx, cancel, nil
	}
	go watchParent(ctx, parent, os.Getppid, time.Second, func() {
		log.Printf("support-engine: parent process %d is gone: stopping", parent)
		cancel()
	})
	return ctx, cancel, nil
}

// watchParent calls gone once getppid stops returning parent (also when it
// never did: the parent died before the watch began), checking every interval
// until ctx ends.
func watchParent(ctx context.Context, parent int, getppid func() int, interval time.Duration, gone func()) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		if getppid() != parent {
			gone()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
