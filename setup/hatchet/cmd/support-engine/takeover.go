package main

// A fresh engine process takes over from the one before it at once.
//
// The engine spreads tenants over partitions and hands queues, concurrency
// strategies and outbox topics to one engine instance at a time through
// leases. All of these expire on slow timers, because upstream assumes
// several engines share a database and must not steal from a live one:
//
//   - a stopped engine's outbox topics (one per concurrency strategy, i.e. our
//     per-ticket cancel-in-progress and per-customer round robin) stay leased
//     for a 30 s grace, or until its consumer session lapses after a crash, so
//     the first run of every such strategy blocks until then;
//   - queue, worker and strategy leases ("Lease") live 30 s;
//   - a crashed engine's partitions keep their tenants until they are a
//     minute without heartbeat, and a fresh controller or worker partition
//     receives tenants only 10 s / 30 s after start.
//
// The embedded engine is the only engine on its database (the sidecar keeps
// keys and state per database), so with HATCHET_ENGINE_SOLE_INSTANCE=true
// every lease and partition found at start belongs to a process that is gone:
// they are released before the engine starts, and the tenants are assigned to
// the new partitions as soon as they exist instead of on the timers.
//
// "Gone" is checked, not assumed: a second engine started on the same
// database by mistake would otherwise release the running one's partitions
// and only then fail on its ports, leaving the running engine scheduling
// nothing until its own timers notice. So the engine first takes the
// database's sole-instance lock (held until it exits) and binds its ports,
// and releases nothing unless both succeed.

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"sync"
	"time"

	"github.com/hatchet-dev/hatchet/pkg/config/server"
	"github.com/jackc/pgx/v5/pgxpool"
)

// soleInstanceLockKey is the PostgreSQL advisory lock (session level) an
// engine with HATCHET_ENGINE_SOLE_INSTANCE=true holds on its database for as
// long as it runs: the bytes of "SupEngin", 0x537570456e67696e =
// 6013836320930490734. The engine's own advisory locks (its concurrency
// functions, pg_advisory_xact_lock(1000000 * strategy id + sort id)) share
// the key space but never reach this value. Anyone can look for it:
//
//	SELECT pid FROM pg_locks WHERE locktype = 'advisory'
//	  AND ((classid::bigint << 32) | objid::bigint) = 6013836320930490734;
const soleInstanceLockKey int64 = 0x537570456e67696e

// advisoryLockRows selects the pg_locks rows of the advisory lock $1 (a
// bigint key is split over classid and objid).
const advisoryLockRows = `SELECT pid, granted FROM pg_locks WHERE locktype = 'advisory'
	AND ((classid::bigint << 32) | objid::bigint) = $1`

var errAnotherEngine = errors.New("another engine is running on this database " +
	"(it holds the sole-instance lock; HATCHET_ENGINE_SOLE_INSTANCE=true): stop it first")

// soleLock is the sole-instance lock an engine holds: the advisory lock key
// on a connection of its own, kept out of the pool (the lock lives as long as
// that session).
type soleLock struct {
	pool     *pgxpool.Pool
	key      int64
	mu       sync.Mutex
	conn     *pgxpool.Conn // nil while the lock is to be taken again, or released
	released bool
}

// holdSoleInstanceLock takes the advisory lock key on a connection of its own
// from pool until Release; the process ending ends it as well. A lock still
// held after patience is errAnotherEngine: the server ends the session of an
// engine that just exited or crashed a moment after it is gone.
func holdSoleInstanceLock(ctx context.Context, pool *pgxpool.Pool, key int64, patience time.Duration) (*soleLock, error) {
	deadline := time.Now().Add(patience)
	for {
		conn, err := tryLock(ctx, pool, key)
		if err != nil {
			return nil, err
		}
		if conn != nil {
			return &soleLock{pool: pool, key: key, conn: conn}, nil
		}
		if !time.Now().Before(deadline) {
			return nil, errAnotherEngine
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// tryLock returns a connection holding the lock, or nil when another session has it.
func tryLock(ctx context.Context, pool *pgxpool.Pool, key int64) (*pgxpool.Conn, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&locked); err != nil {
		conn.Release()
		return nil, err
	}
	if !locked {
		conn.Release()
		return nil, nil
	}
	return conn, nil
}

// Watch checks every interval that the lock's session is still there: a
// session that ends (PostgreSQL restarted, the connection killed) takes the
// lock with it, and a second engine could then start and release this one's
// partitions. The lock is taken again on a new connection; if another engine
// has it meanwhile, lost is called (the engine stops). While the database
// cannot be reached the check waits for the next interval.
func (l *soleLock) Watch(ctx context.Context, interval time.Duration, lost func()) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if errors.Is(l.check(ctx), errAnotherEngine) {
			lost()
			return
		}
	}
}

func (l *soleLock) check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return nil
	}
	checkCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if l.conn != nil {
		var held bool
		err := l.conn.QueryRow(checkCtx, `SELECT EXISTS (SELECT 1 FROM (`+advisoryLockRows+`) l
			WHERE l.pid = pg_backend_pid() AND l.granted)`, l.key).Scan(&held)
		if err == nil && held {
			return nil
		}
		// The session is gone (or no longer holds it): take the lock again.
		_ = l.conn.Conn().Close(checkCtx)
		l.conn.Release()
		l.conn = nil
	}
	conn, err := tryLock(checkCtx, l.pool, l.key)
	if err != nil {
		log.Printf("support-engine: the sole-instance lock's session ended; cannot take it again yet: %v", err)
		return nil // the next check tries again
	}
	if conn == nil {
		log.Printf("support-engine: the sole-instance lock's session ended and another engine took the lock: stopping")
		return errAnotherEngine
	}
	log.Printf("support-engine: the sole-instance lock's session ended; took the lock again")
	l.conn = conn
	return nil
}

// Release unlocks before it returns (closing alone frees the lock only when
// the server gets round to ending the session), then closes the connection,
// so that the pool discards it rather than reusing it.
func (l *soleLock) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.released = true
	if l.conn == nil {
		return
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = l.conn.Exec(closeCtx, `SELECT pg_advisory_unlock($1)`, l.key)
	_ = l.conn.Conn().Close(closeCtx)
	l.conn.Release()
	l.conn = nil
}

// checkPortFree fails when addr cannot be bound now (another engine, or
// anything else, listens there). The engine binds it itself later.
func checkPortFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ln.Close()
}

// releaseStaleOwnership frees everything a previous engine process left
// behind. It runs before the engine starts, so nothing of ours is affected,
// and only with the sole-instance lock held and the ports bound, so nothing
// of a running engine's either.
func releaseStaleOwnership(ctx context.Context, sc *server.ServerConfig) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tx, err := sc.Pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	for _, stmt := range []string{
		// Tenants of deleted partitions get NULL (ON DELETE SET NULL).
		`DELETE FROM "ControllerPartition"`,
		`DELETE FROM "SchedulerPartition"`,
		`DELETE FROM "TenantWorkerPartition"`,
		`DELETE FROM "Lease"`,
		// pgoutbox creates its schema on the engine's first start.
		`DO $$ BEGIN
		   IF to_regclass('outbox.consumer_sessions') IS NOT NULL THEN
		     UPDATE outbox.consumer_sessions SET expires_at = now() - interval '1 second'
		       WHERE expires_at > now();
		   END IF;
		   IF to_regclass('outbox.topics') IS NOT NULL THEN
		     UPDATE outbox.topics SET exclusive_consumer_expires_at = now() - interval '1 second'
		       WHERE exclusive_consumer_id IS NOT NULL;
		   END IF;
		 END $$`,
	} {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", firstLine(stmt), err)
		}
	}
	return tx.Commit(ctx)
}

// assignTenantsEarly gives the tenants left without a partition to the
// engine's new partitions as soon as each exists (upstream does it 10 s after
// start for controllers, 30 s for worker partitions; schedulers at once).
func assignTenantsEarly(ctx context.Context, sc *server.ServerConfig) {
	tenants := sc.V1.Tenant()
	pending := map[string]func(context.Context) error{
		"ControllerPartition":   tenants.RebalanceInactiveControllerPartitions,
		"SchedulerPartition":    tenants.RebalanceInactiveSchedulerPartitions,
		"TenantWorkerPartition": tenants.RebalanceInactiveTenantWorkerPartitions,
	}
	deadline := time.Now().Add(2 * time.Minute)
	for len(pending) > 0 && time.Now().Before(deadline) {
		for table, rebalance := range pending {
			var n int
			q := fmt.Sprintf(`SELECT count(*) FROM %q WHERE "lastHeartbeat" > now() - interval '1 minute'`, table)
			if err := sc.Pool.QueryRow(ctx, q).Scan(&n); err != nil || n == 0 {
				continue
			}
			if err := rebalance(ctx); err != nil {
				sc.Logger.Warn().Err(err).Msgf("support-engine: assigning tenants to the new %s", table)
				continue
			}
			delete(pending, table)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
