// Package problem writes errors as RFC 9457 problem details (application/problem+json).
package problem

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// ContentType is the media type of every error response.
const ContentType = "application/problem+json"

// Details is an RFC 9457 problem; Extra holds extension members (e.g. "database").
type Details struct {
	Type   string         `json:"type"`
	Title  string         `json:"title"`
	Status int            `json:"status"`
	Detail string         `json:"detail,omitempty"`
	Extra  map[string]any `json:"-"`
}

// New is a problem of type about:blank: its title is the status's reason phrase.
func New(status int, detail string) Details {
	return Details{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail}
}

func (p Details) body() map[string]any {
	body := make(map[string]any, len(p.Extra)+4)
	for key, value := range p.Extra {
		body[key] = value
	}
	body["type"], body["title"], body["status"] = p.Type, p.Title, p.Status
	if p.Detail != "" {
		body["detail"] = p.Detail
	}
	return body
}

// Write sends p and stops the handler chain.
func Write(c *gin.Context, p Details) {
	c.Header("Content-Type", ContentType) // gin's JSON renderer keeps a Content-Type already set
	c.Header("Cache-Control", "no-store")
	c.AbortWithStatusJSON(p.Status, p.body())
}

// Abort sends a problem of type about:blank.
func Abort(c *gin.Context, status int, detail string) { Write(c, New(status, detail)) }
