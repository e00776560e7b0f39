package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// testPool connects to SUPPORT_ENGINE_TEST_DATABASE_URL (setup/hatchet.sh
// --test passes set-up's database); the tests that need one skip without it,
// except under CI=true, where a missing database is a failure. They take
// advisory locks under a random key only, so any database does.
func testPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	url := os.Getenv("SUPPORT_ENGINE_TEST_DATABASE_URL")
	if url == "" && os.Getenv("CI") == "true" {
		t.Fatal("SUPPORT_ENGINE_TEST_DATABASE_URL is not set (CI=true: no skipping)")
	}
	if url == "" {
		t.Skip("SUPPORT_ENGINE_TEST_DATABASE_URL is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// lockedByFirst is two pools on the test database (two engines), a random
// key, and the first pool's lock on it.
func lockedByFirst(t *testing.T) (ctx context.Context, first, second *pgxpool.Pool, key int64, lock *soleLock) {
	t.Helper()
	first, second = testPool(t), testPool(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	key = rand.Int64()
	lock, err := holdSoleInstanceLock(ctx, first, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, first, second, key, lock
}

func TestTheSoleInstanceLockAdmitsOneEngine(t *testing.T) {
	ctx, first, second, key, lock := lockedByFirst(t)
	// The lock stays with its session, not with whichever connection the
	// pool hands out next: the first engine's other queries do not free it.
	for i := 0; i < 3; i++ {
		if _, err := first.Exec(ctx, `SELECT 1`); err != nil {
			t.Fatal(err)
		}
	}
	if secondLock, err := holdSoleInstanceLock(ctx, second, key, 300*time.Millisecond); !errors.Is(err, errAnotherEngine) {
		if secondLock != nil {
			secondLock.Release() // else closing the pool would wait for its connection
		}
		lock.Release()
		t.Fatalf("second engine: %v, want errAnotherEngine", err)
	}
	lock.Release()
	again, err := holdSoleInstanceLock(ctx, second, key, 0)
	if err != nil {
		t.Fatalf("after the first engine stopped: %v", err)
	}
	again.Release()
	// Released means gone from the first pool too: no pooled session keeps it
	// (the server ends a closed session a moment after the client).
	held := -1
	for deadline := time.Now().Add(5 * time.Second); held != 0 && time.Now().Before(deadline); {
		if err := first.QueryRow(ctx, `SELECT count(*) FROM (`+advisoryLockRows+`) l`, key).Scan(&held); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if held != 0 {
		t.Fatalf("%d sessions still hold the lock", held)
	}
}

func TestCheckPortFreeFailsOnABoundPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := checkPortFree(addr); err == nil {
		t.Fatalf("%s is bound, checkPortFree said free", addr)
	}
	_ = ln.Close()
	if err := checkPortFree(addr); err != nil {
		t.Fatalf("%s free again: %v", addr, err)
	}
}

// lockBackend is the server process of the session holding key.
func lockBackend(t *testing.T, ctx context.Context, pool *pgxpool.Pool, key int64) int {
	t.Helper()
	var pid int
	if err := pool.QueryRow(ctx, `SELECT pid FROM (`+advisoryLockRows+`) l WHERE l.granted`, key).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestALockWhoseSessionEndedIsTakenAgainOrLost(t *testing.T) {
	ctx, _, second, key, lock := lockedByFirst(t)
	defer lock.Release()

	// The session ends (PostgreSQL restarted, the connection killed): the
	// next check takes the lock again.
	if _, err := second.Exec(ctx, `SELECT pg_terminate_backend($1)`, lockBackend(t, ctx, second, key)); err != nil {
		t.Fatal(err)
	}
	if err := lock.check(ctx); err != nil {
		t.Fatalf("after the session ended: %v", err)
	}
	if other, err := holdSoleInstanceLock(ctx, second, key, 0); !errors.Is(err, errAnotherEngine) {
		if other != nil {
			other.Release()
		}
		t.Fatalf("a second engine after the retake: %v, want errAnotherEngine", err)
	}

	// Ended again, and another engine takes the lock first: the engine is told.
	if _, err := second.Exec(ctx, `SELECT pg_terminate_backend($1)`, lockBackend(t, ctx, second, key)); err != nil {
		t.Fatal(err)
	}
	var other *soleLock
	for deadline := time.Now().Add(5 * time.Second); other == nil; {
		var err error
		other, err = holdSoleInstanceLock(ctx, second, key, 0)
		if err != nil && !time.Now().Before(deadline) {
			t.Fatalf("the other engine never got the lock: %v", err)
		}
	}
	defer other.Release()
	if err := lock.check(ctx); !errors.Is(err, errAnotherEngine) {
		t.Fatalf("after another engine took the lock: %v, want errAnotherEngine", err)
	}
}
