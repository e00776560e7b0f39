package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/hatchet-dev/hatchet/pkg/config/loader"
	"github.com/hatchet-dev/hatchet/pkg/config/server"
)

// The sidecar's API token lives this long, and is replaced once less than
// renewWithin of it is left: a client started just before the replacement
// keeps a token that works for renewWithin more.
const (
	tokenLifetime = 90 * 24 * time.Hour
	renewWithin   = 30 * 24 * time.Hour
)

// tokenChecker is what reusing a stored token needs from the engine: whether
// it still accepts the token (signature, audience, not revoked, not expired),
// for which tenant, and until when.
type tokenChecker interface {
	validate(ctx context.Context, token string) (tenant uuid.UUID, expires time.Time, err error)
	mint(ctx context.Context, tenant uuid.UUID, name string, expires time.Time) (string, error)
	grpcAddress() string
}

// usableToken says why a stored token cannot be handed out again, or nil.
func usableToken(ctx context.Context, engine tokenChecker, token string, tenant uuid.UUID, now time.Time) error {
	owner, expires, err := engine.validate(ctx, token)
	if err != nil {
		return err
	}
	if owner != tenant {
		return errors.New("it belongs to another tenant")
	}
	if expires.Sub(now) < renewWithin {
		return fmt.Errorf("it expires on %s", expires.Format(time.RFC3339))
	}
	// Clients dial the address the token names; the engine's may have moved.
	if addr := tokenClaim(token, "grpc_broadcast_address"); addr != engine.grpcAddress() {
		return fmt.Errorf("it names gRPC address %q, the engine is at %q", addr, engine.grpcAddress())
	}
	return nil
}

// tokenClaim reads one string claim of a JWT whose signature was checked already.
func tokenClaim(token, name string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims map[string]any
	if json.Unmarshal(raw, &claims) != nil {
		return ""
	}
	value, _ := claims[name].(string)
	return value
}

// sidecarToken returns the token in file while the engine still accepts it
// for long enough, else mints one and stores it there (0600, in one rename).
// One token serves every start over the same database, so tokens do not pile
// up (each start used to mint a new 90-day one) and a client that lives
// through an engine restart keeps a token the engine accepts.
func sidecarToken(ctx context.Context, engine tokenChecker, file string, tenant uuid.UUID, now time.Time) (string, bool, error) {
	if raw, err := os.ReadFile(file); err == nil {
		stored := strings.TrimSpace(string(raw))
		reason := usableToken(ctx, engine, stored, tenant, now)
		if reason == nil {
			return stored, true, nil
		}
		fmt.Fprintf(os.Stderr, "support-engine: minting a new API token: the stored one is not reused (%v)\n", reason)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	token, err := engine.mint(ctx, tenant, fmt.Sprintf("sidecar-%d", now.Unix()), now.Add(tokenLifetime))
	if err != nil {
		return "", false, err
	}
	if err := writePrivate(file, token+"\n"); err != nil {
		return "", false, err
	}
	return token, false, nil
}

// writePrivate replaces file with content, readable by its owner only from the start.
func writePrivate(file, content string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".token-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.WriteString(content); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

// engineTokens checks and mints tokens with the engine's own key set and database.
type engineTokens struct{ sc *server.ServerConfig }

func (e engineTokens) validate(ctx context.Context, token string) (uuid.UUID, time.Time, error) {
	tenant, id, err := e.sc.Auth.JWTManager.ValidateTenantToken(ctx, token)
	if err != nil {
		return uuid.Nil, time.Time{}, err
	}
	row, err := e.sc.V1.APIToken().GetAPITokenById(ctx, id)
	if err != nil {
		return uuid.Nil, time.Time{}, err
	}
	return tenant, row.ExpiresAt.Time, nil
}

func (e engineTokens) mint(ctx context.Context, tenant uuid.UUID, name string, expires time.Time) (string, error) {
	token, err := e.sc.Auth.JWTManager.GenerateTenantToken(ctx, tenant, name, false, &expires)
	if err != nil {
		return "", err
	}
	return token.Token, nil
}

func (e engineTokens) grpcAddress() string { return e.sc.Runtime.GRPCBroadcastAddress }

// sidecarTokenCommand implements `support-engine sidecar-token -config DIR
// -tenant-id ID -file F`: print the API token the sidecar hands its clients.
func sidecarTokenCommand(args []string) int {
	fs := flag.NewFlagSet("sidecar-token", flag.ExitOnError)
	configDir := fs.String("config", "", "the engine's config directory (server.yaml, keys)")
	tenantID := fs.String("tenant-id", "", "the tenant the token is for")
	file := fs.String("file", "", "where the token is kept between starts (mode 0600)")
	_ = fs.Parse(args)
	tenant, err := uuid.Parse(*tenantID)
	if err != nil || *file == "" {
		fmt.Fprintln(os.Stderr, "sidecar-token: -tenant-id (a UUID) and -file are required")
		return 2
	}
	cleanup, sc, err := loader.NewConfigLoader(*configDir).CreateServerFromConfig(Version, func(scf *server.ServerConfigFile) {
		scf.MessageQueue.Enabled = false  // only the database is needed
		scf.SecurityCheck.Enabled = false // no calls home
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "sidecar-token: loading the server config: %v\n", err)
		return 1
	}
	defer func() { _ = cleanup(); _ = sc.Disconnect() }()
	token, _, err := sidecarToken(context.Background(), engineTokens{sc}, *file, tenant, time.Now().UTC())
	if err != nil {
		fmt.Fprintf(os.Stderr, "sidecar-token: %v\n", err)
		return 1
	}
	fmt.Println(token)
	return 0
}
