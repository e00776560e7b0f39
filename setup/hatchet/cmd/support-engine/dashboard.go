package main

import (
	"fmt"
	"html"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hatchet-dev/hatchet/cmd/hatchet-staticfileserver/staticfileserver"
	"github.com/hatchet-dev/hatchet/pkg/config/server"
)

// dashboardHandler serves the built dashboard in dir with upstream's static
// file server (index.html rendered as a Go template, unknown paths fall back
// to it). A missing or broken build never stops the engine: a page saying so
// is served instead (status 503), and the API stays up.
func dashboardHandler(dir string, sc *server.ServerConfig) http.Handler {
	if dir == "" {
		return missingDashboard("HATCHET_DASHBOARD_DIR is not set")
	}
	// Serve the build the link points to now: setup/dashboard.sh swaps the
	// link on a rebuild and never deletes a build an engine holds (holdBuild),
	// so a running engine keeps serving one consistent build.
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return missingDashboard(fmt.Sprintf("no dashboard build at %s", dir))
	}
	if _, err := os.Stat(filepath.Join(resolved, "index.html")); err != nil {
		return missingDashboard(fmt.Sprintf("no index.html in %s", resolved))
	}
	if err := holdBuild(resolved); err != nil {
		sc.Logger.Warn().Msgf("support-engine: a rebuild may delete the dashboard in %s: %v", resolved, err)
	}
	h, err := staticServer(resolved)
	if err != nil {
		sc.Logger.Error().Msgf("support-engine: dashboard in %s unusable: %v", resolved, err)
		return missingDashboard(fmt.Sprintf("the dashboard build in %s is unusable: %v", resolved, err))
	}
	sc.Logger.Info().Msgf("support-engine: serving the dashboard from %s", resolved)
	return h
}

// toCookieDomain sends a browser that opens a dashboard page at a loopback
// IP (http://127.0.0.1:8080/, the form the API URL takes) to the same page on
// localhost when the session cookie's domain is localhost: a browser stores
// no localhost cookie from a response of 127.0.0.1, so the login would
// succeed and the next page fall back to the login form. The API and the
// probes answer at any host, as their clients expect.
func toCookieDomain(next http.Handler, cookieDomain string) http.Handler {
	if !strings.EqualFold(strings.TrimPrefix(cookieDomain, "."), "localhost") {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page := (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
			r.URL.Path != "/api" && !strings.HasPrefix(r.URL.Path, "/api/") &&
			!strings.HasPrefix(r.URL.Path, "/healthz/")
		host, port, err := net.SplitHostPort(r.Host)
		if err != nil { // no port
			host, port = strings.TrimSuffix(strings.TrimPrefix(r.Host, "["), "]"), ""
		}
		if ip := net.ParseIP(host); page && ip != nil && ip.IsLoopback() {
			target := "http://localhost"
			if port != "" {
				target += ":" + port
			}
			http.Redirect(w, r, target+r.URL.RequestURI(), http.StatusFound)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// buildStamp is the file setup/dashboard.sh writes into every build.
const buildStamp = ".support-agent-build.json"

// heldBuild keeps the descriptor holding the served build's lock open for the
// process's life (an unreferenced *os.File is closed by its finalizer).
var heldBuild *os.File

// holdBuild takes a shared flock on the build's stamp for as long as this
// process lives: setup/dashboard.sh deletes an old build only when it can
// lock that file exclusively, so a build a running engine serves stays, and
// the lock goes with the engine however it ends (no record to go stale).
func holdBuild(dir string) error {
	f, err := os.Open(filepath.Join(dir, buildStamp))
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("locking %s: %w", buildStamp, err)
	}
	heldBuild = f
	return nil
}

// staticServer builds upstream's handler, which panics on an index.html that
// does not parse as a template, behind staticGuard.
func staticServer(dir string) (h http.Handler, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return staticGuard(dir, staticfileserver.NewStaticFileServer(dir, "/")), nil
}

// staticGuard answers 404 where upstream's server would answer with a file
// that is not the dashboard's or with the wrong thing: dot-files (the build
// stamp), directory listings (/assets/), and missing files under /assets/,
// which upstream answers with index.html, so a page asking a build for a
// chunk it lacks gets HTML as JavaScript instead of a clean failure. Unknown
// page paths still get index.html (the app's own routes).
func staticGuard(dir string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		clean := path.Clean("/" + r.URL.Path)
		if strings.Contains(clean, "/.") {
			http.NotFound(w, r)
			return
		}
		if clean != "/" {
			info, err := os.Stat(filepath.Join(dir, filepath.FromSlash(clean)))
			if (err == nil && info.IsDir()) || (err != nil && strings.HasPrefix(clean, "/assets/")) {
				http.NotFound(w, r)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func missingDashboard(reason string) http.Handler {
	page := fmt.Sprintf(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hatchet dashboard not available</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>The dashboard is not available</h1>
<p>%s.</p>
<p>Build it with <code>make setup</code> (<code>setup/dashboard.sh</code>) and restart the engine.
The engine and its REST API (under <code>/api</code>) run without it.</p>
</body></html>
`, html.EscapeString(reason))
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(page))
	})
}
