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
	post := func(path, body string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
		return rec.Code
	}
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
