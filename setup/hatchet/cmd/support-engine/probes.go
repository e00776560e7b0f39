package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"time"

	"github.com/hatchet-dev/hatchet/pkg/config/server"
)

// registerProbes serves the engine's probes (what its health server offers on
// its own port) under /healthz/ on the shared listener:
//
//	/healthz/live     the database and the message queue answer
//	/healthz/ready    live, and the engine's gRPC server accepts connections
//	/healthz/version  {"version": "<engine version>"}
func registerProbes(mux *http.ServeMux, sc *server.ServerConfig, grpcAddr string) {
	healthy := func(r *http.Request) bool {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		return sc.MessageQueueV1.IsReady() && sc.V1.Health().IsHealthy(ctx)
	}
	status := func(w http.ResponseWriter, ok bool) {
		w.Header().Set("Cache-Control", "no-store")
		if ok {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}

	mux.HandleFunc("GET /healthz/live", func(w http.ResponseWriter, r *http.Request) {
		status(w, healthy(r))
	})
	mux.HandleFunc("GET /healthz/ready", func(w http.ResponseWriter, r *http.Request) {
		if !healthy(r) {
			status(w, false)
			return
		}
		conn, err := (&net.Dialer{Timeout: 2 * time.Second}).DialContext(r.Context(), "tcp", grpcAddr)
		if err == nil {
			_ = conn.Close()
		}
		status(w, err == nil)
	})
	mux.HandleFunc("GET /healthz/version", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"version": sc.Version})
	})
}
