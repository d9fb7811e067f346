package middleware

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"
)

const (
	issuer   = "http://127.0.0.1:9000/application/o/test/"
	audience = "test-client"
)

var (
	rsaKey, _ = rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _  = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
)

func b64(data []byte) string { return base64.RawURLEncoding.EncodeToString(data) }

func rsaJWK(kid string, key *rsa.PublicKey) map[string]string {
	return map[string]string{"kty": "RSA", "use": "sig", "kid": kid, "n": b64(key.N.Bytes()),
		"e": b64(big.NewInt(int64(key.E)).Bytes())}
}

func ecJWK(kid string, key *ecdsa.PublicKey) map[string]string {
	raw, _ := key.Bytes() // uncompressed point: 0x04 || X || Y
	return map[string]string{"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(raw[1:33]), "y": b64(raw[33:])}
}

// jwksServer serves a JWKS over loopback HTTP; set swaps the keys it serves.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	keys []map[string]string
}

func newJWKSServer(t *testing.T, keys ...map[string]string) *jwksServer {
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": s.keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(keys ...map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = keys
}

func claims(overrides jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "alice", "iss": issuer, "aud": audience,
		"exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix()}
	for key, value := range overrides {
		if value == nil {
			delete(c, key)
		} else {
			c[key] = value
		}
	}
	return c
}

func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	token := jwt.NewWithClaims(method, c)
	if kid != "" {
		token.Header["kid"] = kid
	}
	raw, err := token.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func verifier(url string) *Verifier {
	return &Verifier{Issuer: issuer, Audience: audience, Leeway: 0,
		Keys: NewJWKS(url, "", 5*time.Minute, 0)}
}

func router(v *Verifier) *gin.Engine {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.GET("/me", Auth(v), func(c *gin.Context) { c.String(200, Subject(c)) })
	return r
}

func call(r http.Handler, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/me", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

func TestValidTokensAreAccepted(t *testing.T) {
	jwks := newJWKSServer(t, rsaJWK("r1", &rsaKey.PublicKey), ecJWK("e1", &ecKey.PublicKey))
	r := router(verifier(jwks.URL))
	for name, token := range map[string]string{
		"RS256": sign(t, jwt.SigningMethodRS256, rsaKey, "r1", claims(nil)),
		"ES256": sign(t, jwt.SigningMethodES256, ecKey, "e1", claims(nil)),
	} {
		if w := call(r, token); w.Code != 200 || w.Body.String() != "alice" {
			t.Errorf("%s: got %d %s", name, w.Code, w.Body)
		}
	}
}

func TestBadTokensAreRefused(t *testing.T) {
	jwks := newJWKSServer(t, rsaJWK("r1", &rsaKey.PublicKey))
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	hmac := sign(t, jwt.SigningMethodHS256, []byte("secret"), "r1", claims(nil))
	cases := map[string]struct{ token, reason string }{
		"no token":       {"", "missing bearer token"},
		"bad signature":  {sign(t, jwt.SigningMethodRS256, other, "r1", claims(nil)), "bad token signature"},
		"expired":        {sign(t, jwt.SigningMethodRS256, rsaKey, "r1", claims(jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()})), "token expired"},
		"no exp":         {sign(t, jwt.SigningMethodRS256, rsaKey, "r1", claims(jwt.MapClaims{"exp": nil})), "token has no 'exp' claim"},
		"wrong audience": {sign(t, jwt.SigningMethodRS256, rsaKey, "r1", claims(jwt.MapClaims{"aud": "someone-else"})), "token is for another audience"},
		"wrong issuer":   {sign(t, jwt.SigningMethodRS256, rsaKey, "r1", claims(jwt.MapClaims{"iss": "http://evil/"})), "token is from another issuer"},
		"empty sub":      {sign(t, jwt.SigningMethodRS256, rsaKey, "r1", claims(jwt.MapClaims{"sub": ""})), "token has no 'sub' claim"},
		"no sub":         {sign(t, jwt.SigningMethodRS256, rsaKey, "r1", claims(jwt.MapClaims{"sub": nil})), "token has no 'sub' claim"},
		"alg none":       {none, `unsupported signing algorithm "none"`},
		"alg HS256":      {hmac, `unsupported signing algorithm "HS256"`},
		"garbage":        {"not.a.jwt", "malformed token"},
	}
	r := router(verifier(jwks.URL))
	for name, tc := range cases {
		w := call(r, tc.token)
		if w.Code != 401 {
			t.Errorf("%s: got %d, want 401", name, w.Code)
			continue
		}
		if got := w.Header().Get("Content-Type"); got != "application/problem+json" {
			t.Errorf("%s: Content-Type %q", name, got)
		}
		var body map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		if body["detail"] != tc.reason || body["status"] != float64(401) {
			t.Errorf("%s: body %v, want detail %q", name, body, tc.reason)
		}
		if challenge := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(challenge, "Bearer ") {
			t.Errorf("%s: WWW-Authenticate %q", name, challenge)
		}
	}
}

func TestUnknownKeyIDRefetchesTheKeys(t *testing.T) {
	jwks := newJWKSServer(t, rsaJWK("old", &rsaKey.PublicKey))
	v := verifier(jwks.URL)
	r := router(v)
	if w := call(r, sign(t, jwt.SigningMethodRS256, rsaKey, "old", claims(nil))); w.Code != 200 {
		t.Fatalf("old key: %d %s", w.Code, w.Body)
	}
	rotated, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks.set(rsaJWK("new", &rotated.PublicKey))
	if w := call(r, sign(t, jwt.SigningMethodRS256, rotated, "new", claims(nil))); w.Code != 200 {
		t.Fatalf("rotated key: %d %s", w.Code, w.Body)
	}
	if got := v.Keys.Fetches(); got != 2 {
		t.Fatalf("fetches = %d, want 2", got)
	}
}

func TestUnknownKeyIDsDoNotFloodTheIssuer(t *testing.T) {
	jwks := newJWKSServer(t, rsaJWK("r1", &rsaKey.PublicKey))
	v := verifier(jwks.URL)
	v.Keys.MinRefresh = time.Hour
	r := router(v)
	for i := 0; i < 5; i++ {
		w := call(r, sign(t, jwt.SigningMethodRS256, rsaKey, "forged", claims(nil)))
		if w.Code != 401 || !strings.Contains(w.Body.String(), "unknown key") {
			t.Fatalf("forged kid: %d %s", w.Code, w.Body)
		}
	}
	if got := v.Keys.Fetches(); got != 1 {
		t.Fatalf("fetches = %d, want 1", got)
	}
}

func TestKeysUnavailableIs503(t *testing.T) {
	jwks := newJWKSServer(t)
	url := jwks.URL
	jwks.Close()
	w := call(router(verifier(url)), sign(t, jwt.SigningMethodRS256, rsaKey, "r1", claims(nil)))
	if w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("got %d %v", w.Code, w.Header())
	}
}

func TestParseJWKSSkipsKeysItCannotUse(t *testing.T) {
	doc, _ := json.Marshal(map[string]any{"keys": []any{
		rsaJWK("r1", &rsaKey.PublicKey),
		map[string]string{"kty": "oct", "kid": "h1", "k": "c2VjcmV0"},
		map[string]string{"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
		map[string]string{"kty": "RSA", "kid": "weak", "n": "AQAB", "e": "AQAB"},
	}})
	keys, err := ParseJWKS(doc)
	if err != nil || len(keys) != 1 || keys["r1"].alg != "RS256" {
		t.Fatalf("keys %v, err %v", keys, err)
	}
	if _, err := ParseJWKS([]byte(`{"nokeys": 1}`)); err == nil {
		t.Fatal("a document without keys must be an error")
	}
}
