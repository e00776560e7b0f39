package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestAnOrphanedEngineStops(t *testing.T) {
	var ppid atomic.Int64
	ppid.Store(4242)
	gone := make(chan struct{})
	go watchParent(context.Background(), 4242, func() int { return int(ppid.Load()) }, 5*time.Millisecond,
		func() { close(gone) })
	select {
	case <-gone:
		t.Fatal("stopped while the parent lives")
	case <-time.After(50 * time.Millisecond):
	}
	ppid.Store(1) // the sidecar was killed: re-parented to init
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("not stopped after the parent went")
	}
}

func TestAParentGoneBeforeTheWatchStopsAtOnce(t *testing.T) {
	gone := make(chan struct{})
	go watchParent(context.Background(), 4242, func() int { return 1 }, time.Hour, func() { close(gone) })
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("not stopped")
	}
}

func TestTheParentWatchIsOnlyForTheSidecar(t *testing.T) {
	t.Setenv("HATCHET_ENGINE_PARENT_PID", "")
	ctx, cancel, err := stopWithParent(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	time.Sleep(20 * time.Millisecond)
	if ctx.Err() != nil {
		t.Fatal("a hand-run engine was stopped")
	}
	t.Setenv("HATCHET_ENGINE_PARENT_PID", "x")
	if _, _, err := stopWithParent(context.Background()); err == nil {
		t.Fatal("a bad pid was accepted")
	}
}

func TestASidecarThatIsItsNamespacesInitIsNotWatched(t *testing.T) {
	// In a container the sidecar may be pid 1; this process's parent is then 1
	// for as long as it lives, and the engine must start.
	t.Setenv("HATCHET_ENGINE_PARENT_PID", "1")
	ctx, cancel, err := stopWithParent(context.Background())
	if err != nil {
		t.Fatalf("refused a sidecar that is pid 1: %v", err)
	}
	defer cancel()
	time.Sleep(20 * time.Millisecond)
	if ctx.Err() != nil {
		t.Fatal("stopped at once")
	}
}
