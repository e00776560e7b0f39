package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestOnlyKnownHostsAreAnswered(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	t.Setenv("SERVER_URL", "http://127.0.0.2:8080")
	t.Setenv("HATCHET_DASHBOARD_URL", "https://hatchet.example.org/")
	t.Setenv("SERVER_AUTH_COOKIE_DOMAIN", ".cookie.example.org")
	t.Setenv("HATCHET_ENGINE_ALLOWED_HOSTS", "proxy.internal, Other.Example")
	for _, c := range []struct {
		bind, host string
		want       int
	}{
		{"127.0.0.1", "127.0.0.1:8080", 200},
		{"127.0.0.1", "localhost:8080", 200},
		{"127.0.0.1", "LOCALHOST.", 200},
		{"127.0.0.1", "app.localhost:8080", 200},
		{"127.0.0.1", "[::1]:8080", 200},
		{"127.0.0.1", "", 200},
		{"127.0.0.1", "127.0.0.2:8080", 200}, // SERVER_URL's host (and loopback)
		{"127.0.0.1", "hatchet.example.org", 200},
		{"127.0.0.1", "cookie.example.org:8080", 200},
		{"127.0.0.1", "proxy.internal:8080", 200},
		{"127.0.0.1", "other.example", 200},
		{"192.0.2.7", "192.0.2.7:8080", 200},
		{"0.0.0.0", "192.0.2.9:8080", 200}, // every interface: its addresses
		// A rebinding page's name, or another address: refused.
		{"127.0.0.1", "attacker.example:8080", 421},
		{"127.0.0.1", "localhost.attacker.example", 421},
		{"127.0.0.1", "192.0.2.9:8080", 421},
		{"0.0.0.0", "attacker.example", 421},
	} {
		h := frontDoor(ok, hostAllowlistFromEnv(c.bind), "")
		req := httptest.NewRequest(http.MethodGet, "/api/v1/users/current", nil)
		req.Host = c.host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("bind %s, Host %q: %d, want %d", c.bind, c.host, rec.Code, c.want)
		}
	}
}

func TestProbesCarryTheInstance(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	h := frontDoor(ok, newHostAllowlist("127.0.0.1", nil), "c0ffee")
	for path, want := range map[string]string{"/healthz/ready": "c0ffee", "/healthz/version": "c0ffee", "/": "", "/api/ready": ""} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Host = "127.0.0.1:8080"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if got := rec.Header().Get(instanceHeader); got != want {
			t.Errorf("%s: %s %q, want %q", path, instanceHeader, got, want)
		}
	}
}
