"""A single-threaded, event-driven HTTP/1.1 WSGI server with TLS and keep-alive.

Why not Werkzeug's `run_simple`: its development server closes every
connection after one response (and waits 10 ms draining the socket), so each
request pays a TLS handshake; at thousands of certificates per second that
dominates.

Why not a thread per connection (what this module was first): issuing a
certificate is CPU work under the GIL (token and CSR checks, signing, the
SQLite commit), so extra threads never add throughput inside one process;
they only add GIL hand-offs, and with 4-16 busy connections those hand-offs
cost about a third more CPU per certificate than serving the same
connections from one thread. `cirrus up` gets parallelism from one process
per core instead (sharing one listening socket), so each worker runs this loop: non-blocking
sockets under `selectors` (epoll), TLS handshakes and reads driven by
readiness, and each complete request handed to the WSGI app inline.

Why not a well-kept server (granian's WSGI mode, gunicorn's gthread worker),
measured for issue 18 with `bench/http_fronts.py`: the same `cirrus up` app
(same store, nonce ledger, background process; on the threaded fronts a
commit thread batches the issuance writes of concurrent requests, as the loop
turn does here) served by each at once, 2 workers each, 8 threads per worker
for the other two; `/sign` at c=16 (wrk, one-time tokens) and complete ACME
orders, the fronts taking turns, 5 rounds, medians, ratios taken within a
round. 2026-12-07, 2-core VM shared with other work (never idle during the
runs; one of four runs shown, the others' ratios in brackets):

| front | c=16 certs/s | ratio | CPU ms/cert | ACME orders/s | hostile checks (below) |
|---|---|---|---|---|---|
| ours | 567 | 1 | 1.61 | 24.5 | all pass |
| granian 2.8.9 | 568 | 1.00 (1.24, 2.82, 1.72) | 1.86 (1.13x) | 29.0 (0.98x) | slow body, lock-out, Host |
| gunicorn 27.0.1 | 481 | 0.85 (1.24, 1.78, 1.85) | 2.44 (1.48x) | 29.2 (0.99x) | slow head and body, lock-out |

On a shared machine throughput follows the CPU share a front gets, and one
with more runnable threads gets more (granian and gunicorn used 1.1-1.2 cores
to our 0.9 in the run shown; 1.0 to our 0.4 in the 2.82 run), while per
certificate they cost 0.97-1.21x (granian) and 0.97-1.48x (gunicorn) our
CPU. (Their commit thread batched 2.7-3.4 writes per commit at c=16; a run
without it gave 1.08x and 1.46x, within the noise.) So granian cleared the
90 % bar in every run and gunicorn in three of four; the hostile checks (raw
sockets over TLS) decide. All three refuse obs-fold, differing duplicate
Content-Lengths and heads over 64 KiB (granian once its buffer is set to
that). Granian answers CL+TE by the chunked framing
and closes (RFC 9112 s.6.3 allows it; we refuse with 400), passes a request
with two Host headers to the app (s.3.2 says 400), cuts a slow head at its
header deadline but never a slow body, and 40 connections dripping `/sign`
bodies hold all its blocking threads (a WSGI app reads `wsgi.input` on one),
so a newcomer is not served. Gunicorn has no head or body deadline at all: 40
dripping connections lock everyone out. And `cirrus up`'s mTLS renew, rekey
and revoke need the verified client certificate: granian's WSGI environ has
no place for it, gunicorn leaves the app to dig it out of its socket
(`gunicorn.socket`). Granian also copies the process environment into every
request's environ. So `cirrus up` keeps this server; tests/unit/core/
test_http_front.py holds the same checks against it.

Requests that wait on the network rather than the CPU (an ACME challenge
validation fetching from the client, or a forward to a remote issuer) must
not stall the other connections, so the caller can name them with the
`offload(method, path)` predicate: those run on a small thread pool and their
responses are written by the loop when they finish.

A request may leave work for after its answer is written (an ACME challenge
validation, RFC 8555 s.7.5.1: answer "processing", then validate): the app
appends callables to `environ[AFTER_RESPONSE_KEY]` (`shared.api.wsgi`). They run on the thread
pool once the answer is handed to the socket, and the connection reads its
next request only when they are done, so a client polling on the same
connection sees their outcome; other connections are not held up.

With a `commit_group`, requests answered inline in one turn of the loop may
leave their store writes for one shared commit at the end of the turn (group
commit, see `shared.groupcommit`): their answers are held until it is done,
and replaced by an error answer if their write failed.

The HTTP handling is deliberately small: request line and headers (strict,
bounded: `head`), `Content-Length` bodies only (chunked uploads get 411),
keep-alive per HTTP/1.1, `Expect: 100-continue`, pipelined requests answered
in order, deadlines and a connection cap (`limits`), and the verified client
certificate (the TLS layer checks it against the roots) passed as
`SSL_CLIENT_CERT`. The modules: `head` (parsing the request head), `limits`
(deadlines, caps, accept back-off, the balance between workers), `exchange`
(one request through the WSGI app), `connection` (one connection's state and
taking its requests), `transport` (its bytes: handshakes, reads, writes),
`answering` (its requests, in order, inline, offloaded or after the shared
commit), `offload` (the thread pool) and `loop` (accepting, the event loop).
"""

from shared.httpserver.answering import Offload
from shared.httpserver.exchange import CommitGroup, WSGIApp
from shared.httpserver.limits import ConnectionBalance, Limits
from shared.httpserver.loop import WSGIServer

__all__ = ["CommitGroup", "ConnectionBalance", "Limits", "Offload", "WSGIApp", "WSGIServer"]
