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
(one request through the WSGI app) and `loop` (the event loop).
"""

from shared.httpserver.exchange import CommitGroup, WSGIApp
from shared.httpserver.limits import ConnectionBalance, Limits
from shared.httpserver.loop import Offload, WSGIServer

__all__ = ["CommitGroup", "ConnectionBalance", "Limits", "Offload", "WSGIApp", "WSGIServer"]
