"""The framework's floor for a single enqueue: a bare FastAPI endpoint that validates a small JSON
body and does one asyncpg INSERT, served by uvicorn with the settings `wa-outbound serve` uses
(uvloop, httptools, one worker, access log on). No auth, no consent, no idempotency, no event.

    python bench/baseline_app.py --dsn postgresql://... --port 9200
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel

TABLE = """CREATE TABLE IF NOT EXISTS bench_insert (
    id uuid PRIMARY KEY, org_id text NOT NULL, to_phone text NOT NULL, payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now())"""
INSERT = "INSERT INTO bench_insert (id, org_id, to_phone, payload) VALUES ($1, $2, $3, $4)"


class Body(BaseModel):
    to: str
    template: dict[str, Any]


def create_app(dsn: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        pool = await asyncpg.create_pool(dsn, min_size=20, max_size=30)
        try:
            await pool.execute(TABLE)
            yield {"pool": pool}
        finally:
            await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/insert", status_code=202)
    async def insert(body: Body, request: Request) -> Response:
        message_id = uuid.uuid4()
        await request.state.pool.execute(
            INSERT, message_id, "bench", body.to, orjson.dumps(body.template).decode()
        )
        content = orjson.dumps({"id": str(message_id), "to": body.to, "status": "QUEUED"})
        return Response(content, status_code=202, media_type="application/json")

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.dsn),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=True,
        timeout_keep_alive=30,
    )


if __name__ == "__main__":
    main()
