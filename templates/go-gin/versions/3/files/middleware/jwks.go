package middleware

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"sync"
	"time"
)

// retryAfterFailure is the time before fetching again after a failed fetch, so an issuer
// outage does not stall every request.
const retryAfterFailure = 2 * time.Second

// ErrKeysUnavailable: the issuer's keys could not be fetched and none are cached.
var ErrKeysUnavailable = errors.New("the issuer's keys are unavailable")

// signingKey is one usable key of the JWKS and the algorithm it signs with.
type signingKey struct {
	alg string // RS256 or ES256
	key crypto.PublicKey
}

// JWKS caches the issuer's public keys: fetched once, trusted for MaxAge, and fetched again when a
// token names a key id the cache does not know (the issuer rotated its key), at most every
// MinRefresh.
type JWKS struct {
	URL, File  string
	MaxAge     time.Duration
	MinRefresh time.Duration
	Client     *http.Client

	mu        sync.Mutex // held while fetching; guards the fields below
	keys      map[string]signingKey
	fetchedAt time.Time
	failedAt  time.Time
	fetches   int
}

// NewJWKS is a cache reading url (or file, when set).
func NewJWKS(url, file string, maxAge, minRefresh time.Duration) *JWKS {
	return &JWKS{URL: url, File: file, MaxAge: maxAge, MinRefresh: minRefresh,
		Client: &http.Client{Timeout: 5 * time.Second}}
}

// Fetches is how many times the keys were fetched successfully.
func (j *JWKS) Fetches() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.fetches
}

// Key is the key with id kid (any key when kid is empty and there is one), or an error: a
// *TokenError when no such key exists, ErrKeysUnavailable when there are no keys at all.
func (j *JWKS) Key(ctx context.Context, kid string) (signingKey, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if time.Since(j.fetchedAt) > j.MaxAge {
		if err := j.refresh(ctx); err != nil {
			return signingKey{}, err
		}
	}
	key, ok := j.lookup(kid)
	if !ok && time.Since(j.fetchedAt) >= j.MinRefresh {
		if err := j.refresh(ctx); err != nil {
			return signingKey{}, err
		}
		key, ok = j.lookup(kid)
	}
	if !ok {
		return signingKey{}, &TokenError{"token signed with an unknown key"}
	}
	return key, nil
}

func (j *JWKS) lookup(kid string) (signingKey, bool) {
	if kid == "" && len(j.keys) == 1 {
		for _, key := range j.keys {
			return key, true
		}
	}
	key, ok := j.keys[kid]
	return key, ok
}

// refresh fetches the keys (j.mu held). A failure keeps the keys already known.
func (j *JWKS) refresh(ctx context.Context) error {
	if time.Since(j.failedAt) < retryAfterFailure {
		if len(j.keys) == 0 {
			return ErrKeysUnavailable
		}
		return nil
	}
	keys, err := j.fetch(ctx)
	if err != nil {
		j.failedAt = time.Now()
		where := j.URL
		if j.File != "" {
			where = j.File
		}
		slog.Warn("cannot fetch the issuer's keys", "from", where, "error", err)
		if len(j.keys) == 0 {
			return ErrKeysUnavailable
		}
		return nil // keep serving with the keys already known
	}
	j.keys, j.fetchedAt = keys, time.Now()
	j.fetches++
	return nil
}

func (j *JWKS) fetch(ctx context.Context) (map[string]signingKey, error) {
	var data []byte
	if j.File != "" {
		var err error
		if data, err = os.ReadFile(j.File); err != nil {
			return nil, err
		}
	} else {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.URL, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		resp, err := j.Client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		if data, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20)); err != nil {
			return nil, err
		}
	}
	return ParseJWKS(data)
}

type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// ParseJWKS reads the RSA and P-256 signing keys of a JWKS document; other keys are skipped.
func ParseJWKS(data []byte) (map[string]signingKey, error) {
	var document struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &document); err != nil {
		return nil, fmt.Errorf("the JWKS document is not JSON: %w", err)
	}
	if document.Keys == nil {
		return nil, errors.New("the JWKS document has no `keys` list")
	}
	keys := make(map[string]signingKey, len(document.Keys))
	for _, raw := range document.Keys {
		var entry jwk
		if json.Unmarshal(raw, &entry) != nil || (entry.Use != "" && entry.Use != "sig") {
			continue
		}
		key, err := entry.signingKey()
		if err != nil {
			slog.Warn("skipping JWKS key", "kid", entry.Kid, "error", err)
			continue
		}
		if key.alg != "" {
			keys[entry.Kid] = key
		}
	}
	return keys, nil
}

func (k jwk) signingKey() (signingKey, error) {
	switch {
	case k.Kty == "RSA" && (k.Alg == "" || k.Alg == "RS256"):
		n, err1 := decodeInt(k.N)
		e, err2 := decodeInt(k.E)
		if err := errors.Join(err1, err2); err != nil {
			return signingKey{}, err
		}
		if !e.IsInt64() || e.Int64() < 3 || n.BitLen() < 2048 {
			return signingKey{}, errors.New("RSA key too weak or malformed")
		}
		return signingKey{alg: "RS256", key: &rsa.PublicKey{N: n, E: int(e.Int64())}}, nil
	case k.Kty == "EC" && k.Crv == "P-256" && (k.Alg == "" || k.Alg == "ES256"):
		x, err1 := decodeInt(k.X)
		y, err2 := decodeInt(k.Y)
		if err := errors.Join(err1, err2); err != nil {
			return signingKey{}, err
		}
		key := &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}
		if _, err := key.ECDH(); err != nil { // checks the point is on the curve
			return signingKey{}, errors.New("EC point not on P-256")
		}
		return signingKey{alg: "ES256", key: key}, nil
	default:
		return signingKey{}, nil // a key type or algorithm this service does not accept
	}
}

func decodeInt(value string) (*big.Int, error) {
	data, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(data) == 0 {
		return nil, errors.New("bad base64url number")
	}
	return new(big.Int).SetBytes(data), nil
}
