"""A real OpenAI-compatible chat-completions server on 127.0.0.1, for tests.

It speaks `POST /v1/chat/completions`, streaming (SSE, chunked, `stream_options.include_usage`)
and not, with `usage` and optional `logprobs`/`top_logprobs` (`logprobs=False`: never returned;
`reject_logprobs=True`: HTTP 400 when asked for). Answers come from a callable
(`reply(messages) -> str | {"text": str, "top_logprobs": [(token, logprob), ...]}`) or from a
tiny local causal LM through `transformers` generate (`model_path=`). Scripted misbehaviour is
consumed one request at a time from `script`: "429" (with `Retry-After`), "500", "hang"
(longer than the client's timeout), "trickle" (a whole reply, status line included, one byte
every `trickle_s`), "malformed" (invalid JSON), "cut" (a stream that closes cleanly after its
first piece, without finish_reason, usage or `[DONE]`), "negative-usage" (a whole reply whose
`usage` says -1,000,000 tokens each way), "401" (echoing the key, as real APIs partly
do), "400", "ok". Every request is recorded (headers, body, what was done), and `usage_sent`
lists the usage of each well-formed reply (with `done=False`, streams carry everything but the
final `data: [DONE]`) (what the server bills; also kept with
`usage=False`, where replies carry no `usage`). With `honour_max_tokens=True` a reply is cut
to `max_tokens` pieces (one piece per word). Prompt tokens are `count_tokens(content)`
(default: words) + 4 per message + 3.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def words(text: str) -> int:
    return len(text.split())


class ApiServer:
    def __init__(
        self,
        reply: Callable[[list[dict]], Any] | None = None,
        *,
        model_path: str | Path | None = None,
        logprobs: bool = True,
        retry_after: str = "0",
        hang_s: float = 3.0,
        reject_logprobs: bool = False,
        delay_s: float = 0.0,
        usage: bool = True,
        count_tokens: Callable[[str], int] | None = None,
        trickle_s: float = 0.05,
        honour_max_tokens: bool = False,
        done: bool = True,
    ) -> None:
        self.done = done
        self.reply = reply or (lambda messages: "ok")
        self.logprobs = logprobs
        self.reject_logprobs = reject_logprobs
        self.delay_s = delay_s  # before the first byte of every normal reply (time to first token)
        self.retry_after = retry_after
        self.send_usage = usage
        self.count_tokens = count_tokens or words
        self.trickle_s = trickle_s
        self.honour_max_tokens = honour_max_tokens
        self.hang_s = hang_s
        self.script: deque[str] = deque()
        self.requests: list[dict[str, Any]] = []
        self.usage_sent: list[tuple[int, int]] = []
        self.outputs: list[tuple[str, str]] = []  # (last user message, text sent)
        self.in_flight = 0  # requests inside their delay right now, and the most seen at once
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._model = None
        if model_path is not None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(model_path)
            self._model = AutoModelForCausalLM.from_pretrained(model_path).eval()
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> ApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    # --- behaviour --------------------------------------------------------------------------
    def next_behaviour(self) -> str:
        with self._lock:
            return self.script.popleft() if self.script else "ok"

    def answer(self, body: dict[str, Any]) -> tuple[str, list[list[tuple[str, float]]], int, int]:
        """(text, top logprobs per output piece, prompt tokens, completion tokens)."""
        messages = body.get("messages") or []
        if self._model is not None:
            return self._generate(messages, int(body.get("max_tokens") or 8),
                                  int(body.get("top_logprobs") or 5))
        out = self.reply(messages)
        text, top = (out["text"], out.get("top_logprobs")) if isinstance(out, dict) else (out, None)
        pieces = _pieces(text)
        if self.honour_max_tokens and body.get("max_tokens"):  # cut as a real server would
            pieces = pieces[: int(body["max_tokens"])]
            text = "".join(pieces)
        tops = [[(p, 0.0)] for p in pieces]
        if top is not None and tops:
            tops[0] = list(top)
        prompt_tokens = sum(4 + self.count_tokens(str(m.get("content", ""))) for m in messages) + 3
        return text, tops, prompt_tokens, max(1, len(pieces))

    def _generate(self, messages, max_new: int, k: int):
        import torch

        prompt = self._tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        enc = self._tok(prompt, return_tensors="pt", add_special_tokens=False)
        with self._lock, torch.inference_mode():
            out = self._model.generate(
                **enc, max_new_tokens=max_new, do_sample=False, output_scores=True,
                return_dict_in_generate=True, pad_token_id=self._tok.pad_token_id,
            )
        new = out.sequences[0, enc["input_ids"].shape[1]:].tolist()
        tops = []
        for step, tid in enumerate(new):
            logp = torch.log_softmax(out.scores[step][0].float(), dim=-1)
            vals, ids = logp.topk(min(k, logp.numel()))
            tops.append([(self._tok.decode([i]), float(v)) for v, i in zip(vals, ids.tolist())])
            # the sampled token first, as the API puts it in `token`
            tops[-1].insert(0, (self._tok.decode([tid]), float(logp[tid])))
        pieces = [self._tok.decode([t]) for t in new]
        return "".join(pieces), tops, int(enc["input_ids"].shape[1]), len(new)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients closing kept-alive connections (resets, broken pipes) are not errors here."""


def _pieces(text: str) -> list[str]:
    """Split a reply into stream pieces at word starts, spaces kept (like BPE tokens)."""
    out: list[str] = []
    for i, w in enumerate(text.split(" ")):
        piece = w if i == 0 else " " + w
        if piece:
            out.append(piece)
    return out or [""]


def _handler(server: ApiServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

        def _send(self, code: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.loads(raw or b"{}")
            behaviour = server.next_behaviour()
            with server._lock:
                server.requests.append({"path": self.path, "headers": dict(self.headers),
                                        "body": body, "behaviour": behaviour})
            if not self.path.endswith("/chat/completions"):
                self._send(404, json.dumps({"error": {"message": "not found"}}).encode())
                return
            if behaviour == "429":
                self._send(429, b'{"error": {"message": "rate limited"}}',
                           {"Retry-After": server.retry_after})
                return
            if behaviour == "401":  # like real APIs, echo (part of) the key it refused
                key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                msg = {"error": {"message": f"Incorrect API key provided: {key}"}}
                self._send(401, json.dumps(msg).encode())
                return
            if behaviour == "400" or (server.reject_logprobs and body.get("logprobs")):
                self._send(400, b'{"error": {"message": "logprobs are not supported"}}')
                return
            if behaviour == "500":
                self._send(500, b'{"error": {"message": "internal error"}}')
                return
            if behaviour == "hang":
                server._stop.wait(server.hang_s)
                self.close_connection = True
                return
            if behaviour == "trickle":
                self._trickle(body)
                return
            stream = bool(body.get("stream"))
            if behaviour == "malformed":
                if stream:
                    self._start_stream()
                    self._chunk(b'data: {"choices": [{"delta": {"content": "pos\n\n')
                    self._chunk(b"")
                else:
                    self._send(200, b'{"choices": [{"message": {"content": "po')
                return
            if server.delay_s:
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                server._stop.wait(server.delay_s)
                with server._lock:
                    server.in_flight -= 1
            text, tops, n_in, n_out = server.answer(body)
            want_lp = server.logprobs and bool(body.get("logprobs"))
            k = int(body.get("top_logprobs") or 0)
            usage = {"prompt_tokens": n_in, "completion_tokens": n_out,
                     "total_tokens": n_in + n_out}
            if behaviour == "negative-usage":
                usage = {"prompt_tokens": -1_000_000, "completion_tokens": -1_000_000,
                         "total_tokens": -2_000_000}
            last_user = next((m.get("content", "") for m in reversed(body.get("messages") or [])
                              if m.get("role") == "user"), "")
            with server._lock:
                server.usage_sent.append((n_in, n_out))
                server.outputs.append((str(last_user), text))
            pieces = _pieces(text) if server._model is None else None
            if server._model is not None:  # one piece per generated token
                pieces = [t[0][0] for t in tops] or [""]
                tops = [t[1:] for t in tops]
            lp_entries = [
                {"token": p, "logprob": (top[0][1] if top else 0.0),
                 "top_logprobs": [{"token": t, "logprob": v} for t, v in top[:k]]}
                for p, top in zip(pieces, tops)
            ]
            if not stream:
                choice = {"index": 0, "message": {"role": "assistant", "content": text},
                          "finish_reason": "stop"}
                if want_lp:
                    choice["logprobs"] = {"content": lp_entries}
                reply = {"id": "cmpl-test", "object": "chat.completion",
                         "model": body.get("model"), "choices": [choice]}
                if server.send_usage:
                    reply["usage"] = usage
                self._send(200, json.dumps(reply).encode())
                return
            self._start_stream()
            first = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
            self._event(first)
            if behaviour == "cut":  # the first piece, then the stream ends: no [DONE]
                self._event({"choices": [{"index": 0, "delta": {"content": pieces[0]}}]})
                self._chunk(b"")
                return
            for p, entry in zip(pieces, lp_entries):
                choice = {"index": 0, "delta": {"content": p}}
                if want_lp:
                    choice["logprobs"] = {"content": [entry]}
                self._event({"object": "chat.completion.chunk", "choices": [choice]})
            self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if server.send_usage and (body.get("stream_options") or {}).get("include_usage"):
                self._event({"choices": [], "usage": usage})
            if server.done:
                self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")

        def _trickle(self, body: dict[str, Any]) -> None:
            """A valid reply, status line to last byte, one byte every `trickle_s` (never
            idle long enough for a per-read timeout); stops when the client hangs up."""
            self.close_connection = True
            if body.get("stream"):
                payload = (b'data: {"choices": [{"index": 0, "delta": {"content": "ok"}}]}\n\n'
                           b"data: [DONE]\n\n")
                head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            else:
                payload = json.dumps({"choices": [{"index": 0, "message": {"content": "ok"}}]}).encode()
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            raw = head + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload
            for i in range(len(raw)):
                if server._stop.wait(server.trickle_s):
                    return
                try:
                    self.wfile.write(raw[i:i + 1])
                    self.wfile.flush()
                except OSError:
                    return

        def _start_stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

        def _event(self, obj: dict[str, Any]) -> None:
            self._chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler


def keyword_reply(positive_words: set[str], answers: tuple[str, str] = ("negative", "positive"),
                  confidence: float = 0.9) -> Callable[[list[dict]], dict]:
    """A reply rule for SST-2-like prompts: `answers[1]` if the last user message contains a
    positive word, else `answers[0]`; top logprobs put `confidence` on that answer."""

    def reply(messages: list[dict]) -> dict:
        text = str(messages[-1].get("content", "")).lower()
        label = answers[1] if set(text.replace(".", " ").split()) & positive_words else answers[0]
        other = answers[0] if label == answers[1] else answers[1]
        return {"text": label, "top_logprobs": [(label, math.log(confidence)),
                                                 (other, math.log(1 - confidence))]}

    return reply


def dspy_reply(label_of: Callable[[str], str]) -> Callable[[list[dict]], str]:
    """A reply rule that speaks DSPy's chat format (ChatAdapter): every output field the system
    message lists, `label` = `label_of(the last user message)`, any other field (MIPROv2's
    proposals) a sentence naming it, then the `completed` marker."""
    import re

    def reply(messages: list[dict]) -> str:
        system = messages[0]["content"] if messages and messages[0].get("role") == "system" else ""
        listed = system.split("Your output fields are:")[-1].split("All interactions")[0]
        fields = re.findall(r"^\d+\. `(\w+)`", listed, re.M) or ["label"]
        query = str(messages[-1].get("content", ""))
        parts = [f"[[ ## {f} ## ]]\n" + (label_of(query) if f == "label" else f"A proposed {f}.")
                 for f in fields]
        return "\n\n".join(parts) + "\n\n[[ ## completed ## ]]"

    return reply


def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return True
        time.sleep(0.01)
    return cond()
