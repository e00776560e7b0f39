// Command support-engine runs what hatchet-lite runs (the Hatchet engine, its
// REST API and the dashboard's static files) from the same engine module, but
// with every listener bound to one address, 127.0.0.1 unless
// HATCHET_ENGINE_BIND_ADDRESS says otherwise, and with the seed's well-known
// admin password refused.
//
// Listeners (all on the bind address):
//   - gRPC on SERVER_GRPC_PORT (the engine's own server, bind address forced);
//   - one HTTP port, SERVER_PORT, serving the REST API under /api, the engine's
//     probes under /healthz/ (live, ready, version) and the dashboard
//     everywhere else, to known Host names only (frontdoor.go) (its pages asked for at 127.0.0.1 or [::1] are
//     redirected to localhost when the session cookie is for localhost, see
//     toCookieDomain). hatchet-lite needs four ports for this (API, static
//     files, the proxy in front of both, health), each on every interface;
//   - Prometheus only if the configuration enables it (its address gets the
//     bind host when it names none).
//
// Environment, besides the engine's own SERVER_* / DATABASE_* variables:
//
//	HATCHET_ENGINE_BIND_ADDRESS     address every listener binds (127.0.0.1)
//	HATCHET_DASHBOARD_DIR           built dashboard (index.html + assets); when
//	                                missing, a page saying so is served instead
//	HATCHET_ADMIN_CREDENTIALS_FILE  {"email","password"} of the dashboard admin:
//	                                the user's password is set to it before any
//	                                port opens (see admin.go)
//	HATCHET_ENGINE_SOLE_INSTANCE    "true": this is the only engine on the
//	                                database, so leases and partitions found at
//	                                start are released and tenants assigned at
//	                                once (see takeover.go); a second engine on
//	                                the database then refuses to start (the
//	                                advisory lock soleInstanceLockKey); default false
//	HATCHET_ENGINE_ALLOWED_HOSTS    names the HTTP port answers besides loopback,
//	                                the bind address and the hosts of SERVER_URL,
//	                                HATCHET_DASHBOARD_URL and the cookie domain;
//	                                others get 421 (DNS rebinding, see frontdoor.go)
//	HATCHET_ENGINE_INSTANCE         sent back in the probes' Support-Engine-Instance
//	                                header: the sidecar's proof it reached this engine
//	HATCHET_ENGINE_PARENT_PID       stop (as on SIGTERM) once this process is no
//	                                longer the parent (see parent.go)
//
// `support-engine admin-credentials -file F` creates that file once with a
// generated password (mode 0600) and prints ADMIN_EMAIL=/ADMIN_PASSWORD= lines
// for the seed step. `support-engine sidecar-token -config D -tenant-id T -file F`
// prints the API token the sidecar hands its clients: the one kept in F while
// the engine accepts it for 30 more days, else a new 90-day one (see token.go).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/hatchet-dev/hatchet/api/v1/server/run"
	"github.com/hatchet-dev/hatchet/cmd/hatchet-engine/engine"
	"github.com/hatchet-dev/hatchet/pkg/config/loader"
	"github.com/hatchet-dev/hatchet/pkg/config/server"
)

// Version is stamped in by the build (-X main.Version=...).
var Version = "v0.1.0-alpha.0"

// Patches names the setup/hatchet/patches applied to the engine module this
// binary was built from (-X main.Patches=...); empty for an unpatched build.
var Patches = ""

func main() {
	os.Exit(runCommand(os.Args[1:], serve))
}

// runCommand dispatches the command line; serveEngine runs the engine.
func runCommand(args []string, serveEngine func(configDir string) error) int {
	if len(args) > 0 && args[0] == "admin-credentials" {
		return adminCredentialsCommand(args[1:])
	}
	if len(args) > 0 && args[0] == "sidecar-token" {
		return sidecarTokenCommand(args[1:])
	}

	fs := flag.NewFlagSet("support-engine", flag.ContinueOnError)
	configDir := fs.String("config", "", "the engine's config directory (server.yaml, keys)")
	printVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	// Anything else is a mistake (a misspelt command, a flag after an
	// argument): running the engine anyway would start a full engine on the
	// database instead of doing what was asked.
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "support-engine: unknown command %q (commands: admin-credentials, sidecar-token; "+
			"no command runs the engine)\n", fs.Arg(0))
		fs.Usage()
		return 2
	}

	if *printVersion {
		fmt.Println(Version)
		if Patches != "" {
			fmt.Println("patched:", Patches)
		}
		return 0
	}
	if err := serveEngine(*configDir); err != nil {
		log.Printf("support-engine: %v", err)
		return 1
	}
	return 0
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// lockDown returns the config override that keeps every listener the engine
// opens itself on the bind address.
func lockDown(bind string) loader.ServerConfigFileOverride {
	return func(scf *server.ServerConfigFile) {
		scf.SecurityCheck.Enabled = false // as hatchet-lite: no calls home
		scf.Runtime.GRPCBindAddress = bind
		if ip := net.ParseIP(bind); ip != nil && ip.To4() == nil {
			scf.Runtime.GRPCBindAddress = "[" + bind + "]" // the gRPC server formats "%s:%d"
		}
		// The engine's health server listens on ":<port>" (every interface);
		// its probes are served on our own listener instead.
		scf.Runtime.Healthcheck = false
		services := scf.Services[:0:0]
		for _, s := range scf.Services {
			if s != "health" { // the same server, for the legacy service list
				services = append(services, s)
			}
		}
		scf.Services = services
		if scf.Prometheus.Enabled {
			if host, port, err := net.SplitHostPort(scf.Prometheus.Address); err == nil && host == "" {
				scf.Prometheus.Address = net.JoinHostPort(bind, port)
			}
		}
	}
}

func serve(configDir string) error {
	bind := envOr("HATCHET_ENGINE_BIND_ADDRESS", "127.0.0.1")
	if net.ParseIP(bind) == nil {
		return fmt.Errorf("HATCHET_ENGINE_BIND_ADDRESS=%q is not an IP address", bind)
	}

	// As hatchet-lite: the Postgres message queue unless one is configured.
	_, kindSet := os.LookupEnv("SERVER_MSGQUEUE_KIND")
	_, rabbitSet := os.LookupEnv("SERVER_MSGQUEUE_RABBITMQ_URL")
	_, legacyKindSet := os.LookupEnv("SERVER_TASKQUEUE_KIND")
	_, legacyRabbitSet := os.LookupEnv("SERVER_TASKQUEUE_RABBITMQ_URL")
	if !kindSet && !rabbitSet && !legacyKindSet && !legacyRabbitSet {
		if err := os.Setenv("SERVER_MSGQUEUE_KIND", "postgres"); err != nil {
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, orphaned, err := stopWithParent(ctx)
	if err != nil {
		return err
	}
	defer orphaned()

	override := lockDown(bind)
	cf := loader.NewConfigLoader(configDir)
	configCleanup, sc, err := cf.CreateServerFromConfig(Version, override)
	if err != nil {
		return fmt.Errorf("loading the server config: %w", err)
	}
	defer func() {
		if err := configCleanup(); err != nil {
			log.Printf("support-engine: config cleanup: %v", err)
		}
	}()

	sole := os.Getenv("HATCHET_ENGINE_SOLE_INSTANCE") == "true"
	if sole {
		// Before anything is written: a second engine on this database stops here.
		lock, err := holdSoleInstanceLock(ctx, sc.Pool, soleInstanceLockKey, 3*time.Second)
		if err != nil {
			return fmt.Errorf("taking the sole-instance lock: %w", err)
		}
		defer lock.Release() // after the engine has stopped (defers run last-in first-out)
		go lock.Watch(ctx, 15*time.Second, stop)
	}

	if file := os.Getenv("HATCHET_ADMIN_CREDENTIALS_FILE"); file != "" {
		if err := enforceAdminPassword(ctx, sc, file); err != nil {
			return fmt.Errorf("admin credentials: %w", err)
		}
	}

	// Both ports before the takeover below: an engine that cannot listen must
	// leave the database as it found it. Requests wait in the listen queue
	// until the handler is ready.
	addr := net.JoinHostPort(bind, strconv.Itoa(sc.Runtime.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	defer ln.Close()
	if err := checkPortFree(net.JoinHostPort(bind, strconv.Itoa(sc.Runtime.GRPCPort))); err != nil {
		return fmt.Errorf("the gRPC port: %w", err)
	}

	if sole {
		if err := releaseStaleOwnership(ctx, sc); err != nil {
			return fmt.Errorf("releasing a previous engine's leases: %w", err)
		}
	}

	api, err := apiHandler(run.NewAPIServer(sc))
	if err != nil {
		return fmt.Errorf("building the REST API: %w", err)
	}

	grpcAddr := net.JoinHostPort(dialHost(bind), strconv.Itoa(sc.Runtime.GRPCPort))
	mux := http.NewServeMux()
	mux.Handle("/api/", refuseDefaultLogin(api))
	mux.Handle("/api", api)
	registerProbes(mux, sc, grpcAddr)
	mux.Handle("/", toCookieDomain(dashboardHandler(os.Getenv("HATCHET_DASHBOARD_DIR"), sc),
		sc.Auth.ConfigFile.Cookie.Domain))

	handler := frontDoor(mux, hostAllowlistFromEnv(bind), os.Getenv("HATCHET_ENGINE_INSTANCE"))
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	sc.Logger.Info().Msgf("support-engine: API and dashboard on http://%s, gRPC on %s:%d",
		addr, bind, sc.Runtime.GRPCPort)

	engineDone := make(chan error, 1)
	go func() { engineDone <- engine.Run(ctx, cf, Version, override) }()
	if sole {
		go assignTenantsEarly(ctx, sc)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-engineDone:
		runErr = fmt.Errorf("engine stopped: %v", err)
		engineDone = nil
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			runErr = fmt.Errorf("HTTP server: %w", err)
		}
	}
	stop()

	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	if engineDone != nil {
		select {
		case err := <-engineDone:
			if err != nil && runErr == nil {
				runErr = fmt.Errorf("engine: %w", err)
			}
		case <-time.After(60 * time.Second):
			log.Printf("support-engine: the engine did not stop within 60 s")
		}
	}
	return runErr
}

// dialHost is where probes reach a listener bound to bind.
func dialHost(bind string) string {
	if ip := net.ParseIP(bind); ip != nil && ip.IsUnspecified() {
		if ip.To4() != nil {
			return "127.0.0.1"
		}
		return "::1"
	}
	return bind
}
