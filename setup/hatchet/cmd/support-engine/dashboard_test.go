package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func testBuild(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"index.html":       `<html><base href="{{ .BasePath }}">app</html>`,
		"assets/app-1.js":  "console.log(1)",
		"favicon.ico":      "icon",
		buildStamp:         `{"recipe": "x"}`,
		"assets/.hidden":   "no",
		"fonts/inter.woff": "font",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestTheDashboardServesItsFilesOnly(t *testing.T) {
	dir := testBuild(t)
	h, err := staticServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A real server: upstream's logging middleware needs a real ResponseWriter.
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, c := range []struct {
		path string
		code int
		body string
	}{
		{"/", 200, "app"},
		{"/tenants/t/runs", 200, "app"}, // the app's own routes
		{"/assets/app-1.js", 200, "console.log(1)"},
		{"/favicon.ico", 200, "icon"},
		{"/assets/app-2.js", 404, ""}, // another build's chunk: not index.html
		{"/assets/", 404, ""},         // no listing
		{"/assets", 404, ""},
		{"/fonts/", 404, ""},
		{"/" + buildStamp, 404, ""},
		{"/assets/.hidden", 404, ""},
		{"/assets/../" + buildStamp, 404, ""},
	} {
		resp, err := http.Get(srv.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || (c.body != "" && !strings.Contains(string(body), c.body)) {
			t.Errorf("%s: %d %.60q, want %d %q", c.path, resp.StatusCode, body, c.code, c.body)
		}
	}
}

func TestTheServedBuildIsHeld(t *testing.T) {
	dir := testBuild(t)
	tryExclusive := func() error {
		f, err := os.Open(filepath.Join(dir, buildStamp))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err := tryExclusive(); err != nil {
		t.Fatalf("an unserved build is locked: %v", err)
	}
	if err := holdBuild(dir); err != nil {
		t.Fatal(err)
	}
	defer func() { heldBuild.Close(); heldBuild = nil }()
	// What setup/dashboard.sh asks (flock -n -x) before it deletes a build.
	if err := tryExclusive(); err == nil {
		t.Fatal("the served build could be locked for deletion")
	}
}
