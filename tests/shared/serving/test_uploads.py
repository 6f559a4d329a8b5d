"""A client that hangs up mid-upload: one 499 log line, no 500, no traceback, and the server
keeps serving (shared/serving/uploads.py, used by the gateway and the search service)."""

from __future__ import annotations

import logging
import socket
import time

import httpx
from fastapi import FastAPI, Request

from shared.serving.uploads import read_image_form
from tests.gateway.gateway_fakes import ServerThread


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/upload")
    async def upload(request: Request) -> dict:
        form = await read_image_form(request, 1 << 20, ("k",))
        return {"bytes": len(form.image)}

    return app


def test_hang_up_mid_upload_is_a_499_line_not_a_500(caplog):
    caplog.set_level(logging.INFO)
    with ServerThread(_app()) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as s:
            s.sendall(
                b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                b'Content-Length: 500000\r\n\r\n--b\r\nContent-Disposition: form-data; name="file"; '
                b'filename="p.jpg"\r\n\r\n' + b"\xff" * 20_000
            )
            time.sleep(0.3)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any("499" in r.getMessage() for r in caplog.records):
            time.sleep(0.05)
        ok = httpx.post(server.url + "/upload", files={"file": ("p.jpg", b"\xff\xd8 photo", "image/jpeg")})
        assert ok.status_code == 200
    lines = [r for r in caplog.records if "client closed the request" in r.getMessage()]
    assert len(lines) == 1 and "499" in lines[0].getMessage() and lines[0].levelno == logging.WARNING
    assert lines[0].exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], [
        r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
    ]
