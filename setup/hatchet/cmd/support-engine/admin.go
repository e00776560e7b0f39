package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hatchet-dev/hatchet/pkg/config/server"
	v1 "github.com/hatchet-dev/hatchet/pkg/repository"
	"github.com/hatchet-dev/hatchet/pkg/validator"
)

// The account and password the engine's seed step uses when ADMIN_EMAIL /
// ADMIN_PASSWORD are not set (pkg/config/database). Never accepted here.
const (
	upstreamDefaultEmail    = "admin@example.com"
	upstreamDefaultPassword = "Admin123!!"
)

// credentials is the JSON in the credentials file (mode 0600).
type credentials struct {
	Email     string `json:"email"`
	Password  string `json:"password"`
	CreatedAt string `json:"created_at,omitempty"`
}

func (c credentials) validate() error {
	if c.Email == "" || strings.ContainsAny(c.Email, "\n\r") {
		return errors.New("no usable email")
	}
	if c.Password == upstreamDefaultPassword {
		return errors.New("the password is the engine's well-known default")
	}
	if strings.ContainsAny(c.Password, "\n\r") {
		return errors.New("the password holds a line break")
	}
	// The rules the engine's seed step and password changes apply.
	rules := struct {
		Password string `validate:"password"`
	}{c.Password}
	if err := validator.NewDefaultValidator().Validate(rules); err != nil {
		return errors.New("the password must be 8-64 characters with an upper-case letter, a lower-case letter and a digit")
	}
	return nil
}

func readCredentials(file string) (credentials, error) {
	var c credentials
	raw, err := os.ReadFile(file)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("%s: %w", file, err)
	}
	if err := c.validate(); err != nil {
		return c, fmt.Errorf("%s: %w", file, err)
	}
	// Holds a password: readable by its owner only, whatever made it.
	if err := os.Chmod(file, 0o600); err != nil {
		return c, err
	}
	return c, nil
}

const passwordAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"

// generatePassword returns 24 characters drawn uniformly from 57 letters and
// digits (about 140 bits), with at least one upper-case letter, one
// lower-case letter and one digit, as the engine requires.
func generatePassword() (string, error) {
	for {
		var b strings.Builder
		for i := 0; i < 24; i++ {
			n, err := rand.Int(rand.Reader, big.NewInt(int64(len(passwordAlphabet))))
			if err != nil {
				return "", err
			}
			b.WriteByte(passwordAlphabet[n.Int64()])
		}
		pw := b.String()
		if strings.ContainsAny(pw, "ABCDEFGHJKLMNPQRSTUVWXYZ") &&
			strings.ContainsAny(pw, "abcdefghijkmnopqrstuvwxyz") &&
			strings.ContainsAny(pw, "23456789") {
			return pw, nil
		}
	}
}

// ensureCredentials reads the credentials file, creating it first (0600, in
// one rename) with a generated password when it does not exist.
func ensureCredentials(file, email string) (credentials, error) {
	c, err := readCredentials(file)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return c, err
	}
	pw, err := generatePassword()
	if err != nil {
		return c, err
	}
	c = credentials{Email: email, Password: pw, CreatedAt: time.Now().UTC().Format(time.RFC3339)}
	if err := c.validate(); err != nil {
		return c, err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return c, err
	}
	raw, _ := json.MarshalIndent(c, "", "  ")
	tmp, err := os.CreateTemp(filepath.Dir(file), ".credentials-*")
	if err != nil {
		return c, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		return c, err
	}
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		return c, err
	}
	if err := tmp.Close(); err != nil {
		return c, err
	}
	// Link, not rename: a file another start wrote meanwhile wins.
	if err := os.Link(tmp.Name(), file); err != nil {
		if errors.Is(err, os.ErrExist) {
			return readCredentials(file)
		}
		return c, err
	}
	return c, nil
}

// adminCredentialsCommand implements `support-engine admin-credentials`: make
// sure the credentials file exists, then print ADMIN_EMAIL=... and
// ADMIN_PASSWORD=... lines for the engine's seed step.
func adminCredentialsCommand(args []string) int {
	fs := flag.NewFlagSet("admin-credentials", flag.ExitOnError)
	file := fs.String("file", "", "the credentials file (created with a generated password if missing)")
	email := fs.String("email", upstreamDefaultEmail, "the admin's email when the file is created")
	_ = fs.Parse(args)
	if *file == "" {
		fmt.Fprintln(os.Stderr, "admin-credentials: -file is required")
		return 2
	}
	c, err := ensureCredentials(*file, *email)
	if err != nil {
		fmt.Fprintf(os.Stderr, "admin-credentials: %v\n", err)
		return 1
	}
	fmt.Printf("ADMIN_EMAIL=%s\nADMIN_PASSWORD=%s\n", c.Email, c.Password)
	return 0
}

// enforceAdminPassword runs before any port opens. The admin named in the
// credentials file gets the file's password (the file is the truth: this also
// replaces the default password of a database seeded by an earlier set-up,
// and a password changed in the dashboard is reset on the next start). The
// seed's default account, if it is another one, must not keep the default
// password either. Sessions opened under a replaced password end.
func enforceAdminPassword(ctx context.Context, sc *server.ServerConfig, file string) error {
	c, err := readCredentials(file)
	if err != nil {
		return err
	}
	if err := setPassword(ctx, sc, c.Email, c.Password, false); err != nil {
		return err
	}
	if c.Email != upstreamDefaultEmail {
		pw, err := generatePassword()
		if err != nil {
			return err
		}
		return setPassword(ctx, sc, upstreamDefaultEmail, pw, true)
	}
	return nil
}

// setPassword gives the user with this email the password unless it already
// has it (or, with onlyIfDefault, unless it has any password but the default).
func setPassword(ctx context.Context, sc *server.ServerConfig, email, password string, onlyIfDefault bool) error {
	users := sc.V1.User()
	user, err := users.GetUserByEmail(ctx, email)
	if err != nil {
		if !onlyIfDefault {
			sc.Logger.Warn().Msgf("support-engine: no dashboard user %s (%v); the seed step creates it", email, err)
		}
		return nil
	}
	stored, err := users.GetUserPassword(ctx, user.ID)
	if err != nil {
		return fmt.Errorf("reading the password of %s: %w", email, err)
	}
	if onlyIfDefault {
		if ok, _ := v1.VerifyPassword(stored.Hash, upstreamDefaultPassword); !ok {
			return nil
		}
	} else if ok, _ := v1.VerifyPassword(stored.Hash, password); ok {
		return nil
	}
	hash, err := v1.HashPassword(password)
	if err != nil {
		return err
	}
	if _, err := users.UpdateUser(ctx, user.ID, &v1.UpdateUserOpts{Password: hash}); err != nil {
		return fmt.Errorf("setting the password of %s: %w", email, err)
	}
	if _, err := sc.Pool.Exec(ctx, `DELETE FROM "UserSession" WHERE "userId" = $1`, user.ID); err != nil {
		return fmt.Errorf("ending the sessions of %s: %w", email, err)
	}
	sc.Logger.Warn().Msgf("support-engine: replaced the password of dashboard user %s and ended its sessions", email)
	return nil
}

// refuseDefaultLogin answers 401 to a login with the engine's well-known
// default password, whatever the database holds, and 415 to a login that is
// not JSON: the engine's binder also reads XML bodies (field names as element
// names), which this filter does not look into.
func refuseDefaultLogin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/api/v1/users/login" {
			// The media type as the engine's binder (echo) reads it.
			if base, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); strings.TrimSpace(base) != "application/json" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnsupportedMediaType)
				_, _ = w.Write([]byte(`{"errors":[{"description":"a login is sent as application/json"}]}`))
				return
			}
			body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			_ = r.Body.Close()
			if err != nil {
				http.Error(w, "could not read the request", http.StatusBadRequest)
				return
			}
			// Read as the engine reads it (echo's binder): the first JSON value
			// of the body, whatever follows it, and whatever else fails to
			// decode (a field of the wrong type still leaves the password set).
			var login struct {
				Password string `json:"password"`
			}
			_ = json.NewDecoder(bytes.NewReader(body)).Decode(&login)
			if login.Password == upstreamDefaultPassword {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"errors":[{"description":"the default admin password is disabled on this engine"}]}`))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		next.ServeHTTP(w, r)
	})
}
