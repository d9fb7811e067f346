// Package models holds the example resource, items: its API shapes and the SQL that reads and
// writes it. Replace it with your own; keep the Store interface so handlers stay testable
// without a database.
package models

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound: no such item for this owner.
var ErrNotFound = errors.New("no such item")

// ItemIn is the body of POST /items.
type ItemIn struct {
	Name string `json:"name" binding:"required,min=1,max=200"`
}

// Item is an item as stored and returned.
type Item struct {
	ID        int64     `json:"id" db:"id"`
	Owner     string    `json:"owner" db:"owner"`
	Name      string    `json:"name" db:"name"`
	CreatedAt time.Time `json:"created_at" db:"created_at"`
}

// Store reads and writes items; every call is scoped to an owner (the token's `sub`).
type Store interface {
	ListItems(ctx context.Context, owner string, limit int) ([]Item, error)
	GetItem(ctx context.Context, owner string, id int64) (Item, error)
	CreateItem(ctx context.Context, owner string, in ItemIn) (Item, error)
}

// PgStore is the Store on PostgreSQL.
type PgStore struct{ Pool *pgxpool.Pool }

const itemColumns = "id, owner, name, created_at"

func (s PgStore) ListItems(ctx context.Context, owner string, limit int) ([]Item, error) {
	rows, _ := s.Pool.Query(ctx, "SELECT "+itemColumns+" FROM items WHERE owner = $1 ORDER BY id LIMIT $2",
		owner, limit)
	items, err := pgx.CollectRows(rows, pgx.RowToStructByName[Item])
	if items == nil && err == nil {
		items = []Item{}
	}
	return items, err
}

func (s PgStore) GetItem(ctx context.Context, owner string, id int64) (Item, error) {
	rows, _ := s.Pool.Query(ctx, "SELECT "+itemColumns+" FROM items WHERE owner = $1 AND id = $2", owner, id)
	item, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Item])
	if errors.Is(err, pgx.ErrNoRows) {
		return Item{}, ErrNotFound
	}
	return item, err
}

func (s PgStore) CreateItem(ctx context.Context, owner string, in ItemIn) (Item, error) {
	rows, _ := s.Pool.Query(ctx, "INSERT INTO items (owner, name) VALUES ($1, $2) RETURNING "+itemColumns,
		owner, in.Name)
	return pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Item])
}
