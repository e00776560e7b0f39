package main

import (
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// instanceHeader carries HATCHET_ENGINE_INSTANCE (a random value
// setup/hatchet-sidecar makes for each start) on the probes' responses: the
// sidecar's readiness check compares it, so an engine another start already
// runs on the same port is never taken for its own.
const instanceHeader = "Support-Engine-Instance"

// hostAllowlist is which Host headers the HTTP port answers. A browser sends
// the name it looked up: a web page whose name an attacker re-points at
// 127.0.0.1 (DNS rebinding) would otherwise reach the API and the dashboard
// as same-origin, and every request it makes stores a 30-day session row.
// Answered: no Host, loopback names and addresses, the bind address (any IP
// address when bound to every interface: a rebinding needs a name), and the
// names of SERVER_URL, HATCHET_DASHBOARD_URL, SERVER_AUTH_COOKIE_DOMAIN and
// HATCHET_ENGINE_ALLOWED_HOSTS (comma- or space-separated, e.g. the name a
// proxy in front of the engine is reached at).
type hostAllowlist struct {
	bind  net.IP
	names map[string]bool
}

func hostAllowlistFromEnv(bind string) hostAllowlist {
	var names []string
	for _, v := range []string{os.Getenv("SERVER_URL"), os.Getenv("HATCHET_DASHBOARD_URL")} {
		if u, err := url.Parse(v); err == nil && u.Hostname() != "" {
			names = append(names, u.Hostname())
		}
	}
	names = append(names, os.Getenv("SERVER_AUTH_COOKIE_DOMAIN"))
	names = append(names, strings.FieldsFunc(os.Getenv("HATCHET_ENGINE_ALLOWED_HOSTS"), func(r rune) bool {
		return r == ',' || r == ' '
	})...)
	return newHostAllowlist(bind, names)
}

func newHostAllowlist(bind string, names []string) hostAllowlist {
	a := hostAllowlist{bind: net.ParseIP(bind), names: map[string]bool{}}
	for _, n := range names {
		if n = normalHost(strings.TrimPrefix(strings.TrimSpace(n), ".")); n != "" {
			a.names[n] = true
		}
	}
	return a
}

// normalHost is host without port, brackets, case or trailing dot.
func normalHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

func (a hostAllowlist) allows(hostHeader string) bool {
	host := normalHost(hostHeader)
	if host == "" || host == "localhost" || strings.HasSuffix(host, ".localhost") || a.names[host] {
		return true // browsers resolve *.localhost to loopback themselves
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback() || ip.Equal(a.bind) || (a.bind != nil && a.bind.IsUnspecified())
	}
	return false
}

// frontDoor answers 421 to a Host the allowlist does not name, and marks the
// probes' responses with this start's instance value.
func frontDoor(next http.Handler, hosts hostAllowlist, instance string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hosts.allows(r.Host) {
			http.Error(w, "support-engine: unknown host "+r.Host+
				" (allow it with HATCHET_ENGINE_ALLOWED_HOSTS)", http.StatusMisdirectedRequest)
			return
		}
		if instance != "" && strings.HasPrefix(r.URL.Path, "/healthz/") {
			w.Header().Set(instanceHeader, instance)
		}
		next.ServeHTTP(w, r)
	})
}
