"""The example resource, `items`: its API shapes and the SQL that reads and writes it."""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg.rows import class_row
from pydantic import BaseModel, Field


class ItemIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class Item(BaseModel):
    id: int
    owner: str
    name: str
    created_at: datetime


async def list_items(conn: psycopg.AsyncConnection, owner: str, limit: int = 100) -> list[Item]:
    async with conn.cursor(row_factory=class_row(Item)) as cur:
        await cur.execute("SELECT id, owner, name, created_at FROM items WHERE owner = %s"
                          " ORDER BY id LIMIT %s", (owner, limit))
        return await cur.fetchall()


async def get_item(conn: psycopg.AsyncConnection, owner: str, item_id: int) -> Item | None:
    async with conn.cursor(row_factory=class_row(Item)) as cur:
        await cur.execute("SELECT id, owner, name, created_at FROM items WHERE owner = %s AND id = %s",
                          (owner, item_id))
        return await cur.fetchone()


async def create_item(conn: psycopg.AsyncConnection, owner: str, item: ItemIn) -> Item:
    async with conn.cursor(row_factory=class_row(Item)) as cur:
        await cur.execute("INSERT INTO items (owner, name) VALUES (%s, %s)"
                          " RETURNING id, owner, name, created_at", (owner, item.name))
        created = await cur.fetchone()
        assert created is not None
        return created
