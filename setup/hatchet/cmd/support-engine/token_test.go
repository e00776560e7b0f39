package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// fakeEngine accepts the tokens it minted (until revoked) and records mints.
type fakeEngine struct {
	grpc    string
	tokens  map[string]time.Time // token -> expiry
	owners  map[string]uuid.UUID
	revoked map[string]bool
	minted  []string
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{grpc: "127.0.0.1:7077", tokens: map[string]time.Time{}, owners: map[string]uuid.UUID{}, revoked: map[string]bool{}}
}

func (f *fakeEngine) validate(_ context.Context, token string) (uuid.UUID, time.Time, error) {
	expires, ok := f.tokens[token]
	if !ok || f.revoked[token] {
		return uuid.Nil, time.Time{}, errors.New("token has been revoked")
	}
	return f.owners[token], expires, nil
}

func (f *fakeEngine) mint(_ context.Context, tenant uuid.UUID, name string, expires time.Time) (string, error) {
	claims := fmt.Sprintf(`{"sub":%q,"name":%q,"grpc_broadcast_address":%q}`, tenant, name, f.grpc)
	token := "eyJhbGciOiJFUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + fmt.Sprintf(".sig%d", len(f.minted))
	f.tokens[token], f.owners[token] = expires, tenant
	f.minted = append(f.minted, token)
	return token, nil
}

func (f *fakeEngine) grpcAddress() string { return f.grpc }

func TestSidecarTokenIsReusedAcrossStartsAndKeptPrivate(t *testing.T) {
	engine, tenant := newFakeEngine(), uuid.New()
	file := filepath.Join(t.TempDir(), "state", "sidecar-token")
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	first, reused, err := sidecarToken(context.Background(), engine, file, tenant, now)
	if err != nil || reused {
		t.Fatalf("first start: %v, reused=%v", err, reused)
	}
	info, err := os.Stat(file)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", info, err)
	}
	for day := 1; day <= 59; day += 29 { // restarts within the token's first 60 days
		again, reused, err := sidecarToken(context.Background(), engine, file, tenant, now.Add(time.Duration(day)*24*time.Hour))
		if err != nil || !reused || again != first {
			t.Fatalf("day %d: got a new token (%v, reused=%v)", day, err, reused)
		}
	}
	if len(engine.minted) != 1 {
		t.Fatalf("%d tokens minted for one database", len(engine.minted))
	}
}

func TestSidecarTokenIsReplacedWhenTheEngineWouldSoonOrNoLongerAcceptIt(t *testing.T) {
	now := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	cases := map[string]func(e *fakeEngine, file, token string) time.Time{
		"near expiry": func(e *fakeEngine, _, _ string) time.Time { return now.Add(61 * 24 * time.Hour) },
		"revoked": func(e *fakeEngine, _, token string) time.Time {
			e.revoked[token] = true
			return now
		},
		"moved engine": func(e *fakeEngine, _, _ string) time.Time {
			e.grpc = "127.0.0.1:7078"
			return now
		},
		"garbage file": func(e *fakeEngine, file, _ string) time.Time {
			_ = os.WriteFile(file, []byte("not a token\n"), 0o600)
			return now
		},
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			engine, tenant := newFakeEngine(), uuid.New()
			file := filepath.Join(t.TempDir(), "sidecar-token")
			first, _, err := sidecarToken(context.Background(), engine, file, tenant, now)
			if err != nil {
				t.Fatal(err)
			}
			later := change(engine, file, first)
			second, reused, err := sidecarToken(context.Background(), engine, file, tenant, later)
			if err != nil || reused || second == first {
				t.Fatalf("kept the old token (%v, reused=%v)", err, reused)
			}
			stored, _ := os.ReadFile(file)
			if strings.TrimSpace(string(stored)) != second {
				t.Fatalf("stored %q, handed out %q", stored, second)
			}
		})
	}
}

func TestSidecarTokenOfAnotherTenantIsNotHandedOut(t *testing.T) {
	engine, now := newFakeEngine(), time.Now().UTC()
	file := filepath.Join(t.TempDir(), "sidecar-token")
	theirs, _, err := sidecarToken(context.Background(), engine, file, uuid.New(), now)
	if err != nil {
		t.Fatal(err)
	}
	ours, reused, err := sidecarToken(context.Background(), engine, file, uuid.New(), now)
	if err != nil || reused || ours == theirs {
		t.Fatalf("another tenant's token handed out (%v, reused=%v)", err, reused)
	}
}
