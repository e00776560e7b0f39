package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hatchet-dev/hatchet/pkg/config/loader"
	"github.com/hatchet-dev/hatchet/pkg/config/server"
)

func TestGeneratedPasswordsMeetTheEngineRules(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		pw, err := generatePassword()
		if err != nil {
			t.Fatal(err)
		}
		if err := (credentials{Email: "a@b.c", Password: pw}).validate(); err != nil {
			t.Fatalf("%q: %v", pw, err)
		}
		if seen[pw] {
			t.Fatalf("%q generated twice", pw)
		}
		seen[pw] = true
	}
}

func TestCredentialsRejectTheDefaultAndWeakPasswords(t *testing.T) {
	for _, pw := range []string{upstreamDefaultPassword, "short1A", "alllowercase1", "ALLUPPERCASE1", "NoDigitsHere", "Line\nBreak1"} {
		if err := (credentials{Email: "a@b.c", Password: pw}).validate(); err == nil {
			t.Errorf("%q accepted", pw)
		}
	}
}

func TestEnsureCredentialsCreatesOnceWithMode0600(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state", "dashboard-credentials.json")
	first, err := ensureCredentials(file, "admin@example.com")
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", info.Mode().Perm())
	}
	again, err := ensureCredentials(file, "someone@else.org")
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Fatalf("second call changed the credentials: %+v vs %+v", again, first)
	}
	var onDisk credentials
	raw, _ := os.ReadFile(file)
	if err := json.Unmarshal(raw, &onDisk); err != nil || onDisk.Password != first.Password || onDisk.Email != "admin@example.com" {
		t.Fatalf("file holds %s (%v)", raw, err)
	}
}

func TestEnsureCredentialsRefusesABrokenFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(file, []byte(`{"email":"admin@example.com","password":"Admin123!!"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ensureCredentials(file, "admin@example.com"); err == nil || !strings.Contains(err.Error(), "default") {
		t.Fatalf("got %v", err)
	}
}

func TestRefuseDefaultLogin(t *testing.T) {
	var gotBody string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.WriteHeader(http.StatusOK)
	})
	h := refuseDefaultLogin(next)
	postAs := func(contentType, path, body string) int {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	post := func(path, body string) int { return postAs("application/json; charset=utf-8", path, body) }
	if code := post("/api/v1/users/login", `{"email":"admin@example.com","password":"Admin123!!"}`); code != http.StatusUnauthorized {
		t.Fatalf("default password: %d", code)
	}
	body := `{"email":"admin@example.com","password":"Other1234"}`
	if code := post("/api/v1/users/login", body); code != http.StatusOK || gotBody != body {
		t.Fatalf("other password: %d, body passed on %q", code, gotBody)
	}
	if code := post("/api/v1/other", `{"password":"Admin123!!"}`); code != http.StatusOK {
		t.Fatalf("other path: %d", code)
	}
	// The engine reads the first JSON value and ignores what follows; a
	// field of the wrong type does not stop it from reading the password.
	for _, body := range []string{
		`{"email":"admin@example.com","password":"Admin123!!"} x`,
		`{"email":"admin@example.com","password":"Admin123!!"}{"password":"Other1234"}`,
		`{"email":"admin@example.com","password":"Admin123!!"}]`,
		`{"email":5,"password":"Admin123!!"}`,
		` {"PASSWORD":"Admin123!!"}`,
	} {
		if code := post("/api/v1/users/login", body); code != http.StatusUnauthorized {
			t.Errorf("%s: %d", body, code)
		}
	}
	// The engine binds XML logins too; this filter reads JSON only.
	xml := `<UserLoginRequest><Email>admin@example.com</Email><Password>Admin123!!</Password></UserLoginRequest>`
	for _, contentType := range []string{"application/xml", "text/xml", ""} {
		if code := postAs(contentType, "/api/v1/users/login", xml); code != http.StatusUnsupportedMediaType {
			t.Errorf("login as %q: %d", contentType, code)
		}
	}
}

func TestUnknownCommandsAreUsageErrors(t *testing.T) {
	var served []string
	fake := func(configDir string) error { served = append(served, configDir); return nil }
	for _, args := range [][]string{{"sidecar-tokn"}, {"--config", "/x", "serve"}, {"help"}} {
		if code := runCommand(args, fake); code != 2 {
			t.Errorf("%q: exit %d", args, code)
		}
	}
	if code := runCommand([]string{"--no-such-flag"}, fake); code != 2 {
		t.Errorf("unknown flag: exit %d", code)
	}
	if len(served) != 0 {
		t.Fatalf("the engine ran for %q", served)
	}
	if code := runCommand([]string{"--config", "/x"}, fake); code != 0 || len(served) != 1 || served[0] != "/x" {
		t.Fatalf("--config /x: exit %d, served %q", code, served)
	}
}

func TestLoopbackDashboardPagesGoToTheCookieDomain(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	h := toCookieDomain(next, "localhost")
	for _, c := range []struct{ method, target, host, location string }{
		{http.MethodGet, "/tenants/t/runs?a=b", "127.0.0.1:8080", "http://localhost:8080/tenants/t/runs?a=b"},
		{http.MethodHead, "/", "127.0.0.1:18080", "http://localhost:18080/"},
		{http.MethodGet, "/auth/login", "[::1]:8080", "http://localhost:8080/auth/login"},
		{http.MethodGet, "/", "127.0.0.1", "http://localhost/"},
		// Pages at the cookie's domain, the API, the probes, other methods
		// and other hosts are served where they are asked for.
		{http.MethodGet, "/", "localhost:8080", ""},
		{http.MethodGet, "/api/v1/users/current", "127.0.0.1:8080", ""},
		{http.MethodGet, "/api", "127.0.0.1:8080", ""},
		{http.MethodGet, "/healthz/ready", "127.0.0.1:8080", ""},
		{http.MethodPost, "/", "127.0.0.1:8080", ""},
		{http.MethodGet, "/", "192.0.2.7:8080", ""},
		{http.MethodGet, "/", "example.org", ""},
	} {
		req := httptest.NewRequest(c.method, c.target, nil)
		req.Host = c.host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if c.location == "" {
			if rec.Code != http.StatusOK {
				t.Errorf("%s %s at %s: %d (Location %q)", c.method, c.target, c.host, rec.Code, rec.Header().Get("Location"))
			}
			continue
		}
		if rec.Code != http.StatusFound || rec.Header().Get("Location") != c.location {
			t.Errorf("%s %s at %s: %d to %q, want 302 to %s", c.method, c.target, c.host, rec.Code,
				rec.Header().Get("Location"), c.location)
		}
	}
	// Another cookie domain: nothing to correct.
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Host = "127.0.0.1:8080"
	rec := httptest.NewRecorder()
	toCookieDomain(next, "support.example.org").ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("cookie domain support.example.org: %d", rec.Code)
	}
}

func TestLockDownKeepsEveryEngineListenerOnTheBindAddress(t *testing.T) {
	scf := defaultServerConfigFile(t)
	scf.Runtime.GRPCBindAddress = "0.0.0.0"
	scf.Runtime.Healthcheck = true
	scf.Services = []string{"all", "health"}
	scf.Prometheus.Enabled = true
	scf.Prometheus.Address = ":9090"
	scf.SecurityCheck.Enabled = true
	lockDown("127.0.0.1")(scf)
	if scf.Runtime.GRPCBindAddress != "127.0.0.1" || scf.Runtime.Healthcheck || scf.Prometheus.Address != "127.0.0.1:9090" ||
		scf.SecurityCheck.Enabled || len(scf.Services) != 1 || scf.Services[0] != "all" {
		t.Fatalf("%+v %+v %v", scf.Runtime, scf.Prometheus, scf.Services)
	}
	lockDown("::1")(scf)
	if scf.Runtime.GRPCBindAddress != "[::1]" {
		t.Fatalf("IPv6 gRPC bind %q", scf.Runtime.GRPCBindAddress)
	}
}

func TestMissingDashboardServes503(t *testing.T) {
	h := missingDashboard("no dashboard build at /nowhere")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/tenants/x/runs", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "/nowhere") {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
}

func defaultServerConfigFile(t *testing.T) *server.ServerConfigFile {
	t.Helper()
	scf, err := loader.LoadServerConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return scf
}
